"""Fixtures for the scanner: a copy of the fixture project with the folders it must skip."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from dexcost.scan import Catalog, load_catalog

FIXTURES = Path(__file__).parent / "fixtures"
_EXPECT = re.compile(r"# expect: (\S+) (\S+)")

HIDDEN_CALL = "import openai\n\nopenai.OpenAI().chat.completions.create(model='m', messages=[])\n"


def expected_findings(root: Path) -> set[tuple[str, int, str, str]]:
    """Read the ``# expect: KIND LIBRARY`` comments of the fixture files."""
    expected = set()
    for path in sorted(root.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = _EXPECT.search(line)
            if match:
                name = path.relative_to(root).as_posix()
                expected.add((name, number, match.group(1), match.group(2)))
    return expected


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog(FIXTURES / "services.json")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The fixture project, plus a broken file and folders that hold calls to skip.

    Those extra folders are made here because git ignores ``.venv`` and ``build``.
    """
    root = tmp_path / "project"
    shutil.copytree(FIXTURES / "project", root)
    (root / "app" / "broken.py").write_text("def unfinished(:\n    pass\n")
    for folder in (
        ".venv/lib/python3.11/site-packages/pkg",
        "venv",
        "node_modules/pkg",
        "build/lib",
        "dist",
        ".git/hooks",
        "app/__pycache__",
        "vendor/site-packages",
        "tools/env",
    ):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "hidden.py").write_text(HIDDEN_CALL)
    (root / "tools" / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    return root
