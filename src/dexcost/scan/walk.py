"""List the Python files of a project, skipping environments, caches and build output."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

SKIPPED_FOLDERS: Final = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        "build",
        "dist",
        "site-packages",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
    }
)


def iter_python_files(root: Path) -> Iterator[Path]:
    """Yield each ``.py`` file under ``root`` once, in a stable order.

    Symbolic links are followed, but each folder is entered once by its real path,
    so a link that points back up the tree cannot loop. A folder holding
    ``pyvenv.cfg`` is a virtualenv, whatever its name, and is skipped.
    """
    if root.is_file():
        yield root
        return
    visited: set[str] = set()
    linked_files: set[str] = set()
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            real = os.path.realpath(folder)
        except OSError:
            continue
        if real in visited:
            continue
        visited.add(real)
        try:
            with os.scandir(folder) as entries:
                listing = sorted(entries, key=lambda entry: entry.name)
        except OSError:
            continue
        if any(entry.name == "pyvenv.cfg" for entry in listing) and folder != str(root):
            continue
        folders = []
        for entry in listing:
            try:
                if entry.is_dir():
                    if entry.name not in SKIPPED_FOLDERS:
                        folders.append(entry.path)
                elif entry.name.endswith(".py") and entry.is_file():
                    if entry.is_symlink():
                        target = os.path.realpath(entry.path)
                        if target in linked_files:
                            continue
                        linked_files.add(target)
                    yield Path(entry.path)
            except OSError:
                continue
        stack.extend(reversed(folders))
