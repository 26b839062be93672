#!/usr/bin/env python3
"""Set up virtualenvs and run the demo or the checks, on a machine with only Python.

    python3 scripts/dev.py demo   # python -m dexcost.demo in .venv
    python3 scripts/dev.py test   # docs build, older-SDK tests, full test suite

Each command creates what it needs: ``.venv`` in the repository root with
``pip install -e ".[test,test-sdks]"`` (the newest release of every SDK), and
for ``test`` also ``.venv-legacy`` with the newest openai 1.x and anthropic 0.x
releases, the generation many applications still run, and ``.venv-phoenix``
with only arize-phoenix, the OTLP backend the Phoenix interop test starts. A
virtualenv is reused while its interpreter runs and what it was installed from
(pyproject.toml, or the Phoenix requirement) is unchanged since its last install.
Uses only the standard library, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

MINIMUM_PYTHON = (3, 10)
REPO = Path(__file__).resolve().parent.parent
MAIN_VENV = REPO / ".venv"
MAIN_EXTRAS = "test,test-sdks"
LEGACY_VENV = REPO / ".venv-legacy"
LEGACY_EXTRAS = "test"
LEGACY_REQUIREMENTS = ("openai>=1.66,<2", "anthropic>=0.43,<1")
# The tests that must also pass on openai 1.x and anthropic 0.x, which run on
# httpx, not httpx2.
LEGACY_TEST_PATHS = (
    "tests/instrumentation/openai",
    "tests/instrumentation/anthropic",
    "tests/demo",
)
# The tests of pricing other instrumentations' GenAI spans also run next to the real
# instrumentations, which cannot all share the main virtualenv. openai-v2 2.4b0 imports
# a module that opentelemetry-util-genai removed in 1.2b0.
GENAI_VENV = REPO / ".venv-genai"
GENAI_EXTRAS = "test,openai,anthropic"
GENAI_REQUIREMENTS = (
    "opentelemetry-instrumentation-openai-v2==2.4b0",
    "opentelemetry-util-genai==1.1b0",
    "opentelemetry-instrumentation-openai==0.62.4",
    "opentelemetry-instrumentation-anthropic==0.62.4",
)
GENAI_TEST_PATHS = ("tests/otel/test_genai_spans.py",)
# The interop test in tests/otel starts a Phoenix server from this virtualenv, which
# has no dexcost in it. 20.26.1 is the release the test was written against, and
# Phoenix needs Python 3.11 or newer.
PHOENIX_VENV = REPO / ".venv-phoenix"
PHOENIX_REQUIREMENT = "arize-phoenix>=20.26.1"
PHOENIX_MINIMUM_PYTHON = (3, 11)
# Written into a virtualenv after a successful install. It contains a hash of
# what was installed, so an unchanged virtualenv is not installed again.
STAMP_NAME = ".dexcost-dev-install"
PIP_FLAGS = ("--disable-pip-version-check", "--no-input", "--progress-bar", "off", "--quiet")
PYTEST_NO_TESTS_COLLECTED = 5


class StepFailed(Exception):
    """A step of the command failed; the message names the step and the cause."""


@dataclass(frozen=True)
class Environment:
    """A virtualenv in the repository and the extra requirements it is built with."""

    path: Path
    extras: str = MAIN_EXTRAS
    extra_requirements: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.path.name

    @property
    def python(self) -> Path:
        scripts = "Scripts" if os.name == "nt" else "bin"
        return self.path / scripts / ("python.exe" if os.name == "nt" else "python")


def main(argv: Sequence[str] | None = None) -> int:
    if sys.version_info < MINIMUM_PYTHON:
        version = ".".join(map(str, sys.version_info[:3]))
        print(f"dexcost needs Python 3.10 or newer; this is Python {version}.", file=sys.stderr)
        return 2

    options = _parse_arguments(argv)
    try:
        if options.command == "demo":
            return run_demo(recreate=options.recreate)
        return run_tests(options.pytest_args, recreate=options.recreate)
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    arguments = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if "--" in arguments:
        split = arguments.index("--")
        arguments, pytest_args = arguments[:split], arguments[split + 1 :]

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--recreate",
        action="store_true",
        help="delete the virtualenvs this command uses and build them again",
    )
    parser = argparse.ArgumentParser(
        prog="python3 scripts/dev.py",
        description="Set up the virtualenvs and run the demo or the checks.",
        epilog="Arguments after -- go to both pytest runs of the test command.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", parents=[common], help="run python -m dexcost.demo in .venv")
    commands.add_parser("test", parents=[common], help="build the docs and run every test suite")
    options = parser.parse_args(arguments)
    if pytest_args and options.command != "test":
        parser.error("only the test command takes pytest arguments after --")
    options.pytest_args = pytest_args
    return options


def run_demo(*, recreate: bool) -> int:
    environment = Environment(MAIN_VENV)
    if recreate:
        _delete(environment)
    try:
        prepare(environment)
    except StepFailed as error:
        print(f"\nFailed: {error}", file=sys.stderr)
        return 1
    # OPENAI_API_KEY is passed on unchanged: with it the demo calls the real API.
    return subprocess.call([str(environment.python), "-m", "dexcost.demo"], cwd=REPO)


def run_tests(pytest_args: Sequence[str], *, recreate: bool) -> int:
    """Run every step, even after a failure, and return 1 if any failed.

    The full suite runs last, so pytest's summary of it is the last line
    printed when everything passes.
    """
    main_environment = Environment(MAIN_VENV)
    legacy_environment = Environment(LEGACY_VENV, LEGACY_EXTRAS, LEGACY_REQUIREMENTS)
    phoenix_environment = Environment(PHOENIX_VENV, "", (PHOENIX_REQUIREMENT,))
    genai_environment = Environment(GENAI_VENV, GENAI_EXTRAS, GENAI_REQUIREMENTS)
    if recreate:
        _delete(main_environment, legacy_environment, phoenix_environment, genai_environment)
    steps: list[tuple[str, Callable[[], None]]] = [
        ("docs: mkdocs build --strict", lambda: build_docs(main_environment)),
        ("static checks: ruff and mypy --strict on src", lambda: check_source(main_environment)),
        (
            "tests on openai 1.x and anthropic 0.x: " + " ".join(LEGACY_TEST_PATHS),
            lambda: run_legacy_tests(legacy_environment, pytest_args),
        ),
        (
            "tests next to other GenAI instrumentations: " + " ".join(GENAI_TEST_PATHS),
            lambda: run_pytest(genai_environment, pytest_args, GENAI_TEST_PATHS),
        ),
        (
            "Phoenix for the interop test: " + PHOENIX_VENV.name,
            lambda: prepare_phoenix(phoenix_environment),
        ),
        (
            "tests on the newest SDKs: the full suite",
            lambda: run_pytest(main_environment, pytest_args, ()),
        ),
    ]

    failures = []
    for number, (name, run) in enumerate(steps, start=1):
        _heading(f"[{number}/{len(steps)}] {name}")
        try:
            run()
        except StepFailed as error:
            failures.append(f"{name}: {error}")

    if failures:
        print("\nFailed steps:", file=sys.stderr)
        for failure in failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    return 0


def build_docs(environment: Environment) -> None:
    if not (REPO / "mkdocs.yml").exists():
        print("skipped: there is no mkdocs.yml yet")
        return
    prepare(environment)
    with tempfile.TemporaryDirectory(prefix="dexcost-site-") as site:
        command = [str(environment.python), "-m", "mkdocs", "build", "--strict", "--quiet"]
        _run([*command, "--site-dir", site], description="mkdocs build --strict")
    print("docs built without warnings")


def check_source(environment: Environment) -> None:
    prepare(environment)
    python = str(environment.python)
    _run([python, "-m", "ruff", "check", "src"], description="ruff check src")
    _run([python, "-m", "mypy"], description="mypy (strict, settings in pyproject.toml)")
    print("ruff and mypy found no problems")


def run_legacy_tests(environment: Environment, pytest_args: Sequence[str]) -> None:
    paths = tuple(path for path in LEGACY_TEST_PATHS if (REPO / path).is_dir())
    if not paths:
        print("skipped: none of " + " ".join(LEGACY_TEST_PATHS) + " exists yet")
        return
    run_pytest(environment, pytest_args, paths)


def run_pytest(environment: Environment, pytest_args: Sequence[str], paths: Sequence[str]) -> None:
    """Run pytest in the virtualenv; its summary line is the last line this prints."""
    prepare(environment)
    versions = ", ".join(
        f"{package} {_installed_version(environment, package)}"
        for package in ("openai", "anthropic")
    )
    print(versions, flush=True)
    # No test may reach the real OpenAI API, whatever the caller's shell exports.
    env = {name: value for name, value in os.environ.items() if name != "OPENAI_API_KEY"}
    command = [str(environment.python), "-m", "pytest", *pytest_args, *paths]
    code = subprocess.call(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL)
    if code == PYTEST_NO_TESTS_COLLECTED:
        raise StepFailed("pytest collected no tests")
    if code != 0:
        raise StepFailed(f"pytest exited with code {code}")


def prepare_phoenix(environment: Environment) -> None:
    """Create or reuse the Phoenix virtualenv. A failure prints a warning and the run goes on.

    After a failed install the virtualenv is deleted, so the interop test finds no
    Phoenix and skips instead of failing on a broken one.
    """
    if sys.version_info < PHOENIX_MINIMUM_PYTHON:
        print("skipped: arize-phoenix needs Python 3.11 or newer; the Phoenix test will skip")
        return
    started = time.monotonic()
    try:
        if not _is_healthy(environment):
            if environment.path.exists():
                print(f"{environment.label} does not work; creating it again")
                shutil.rmtree(environment.path)
            print(f"creating {environment.label} with Python {sys.version.split()[0]}", flush=True)
            _create_virtualenv(environment.path)
        stamp = environment.path / STAMP_NAME
        # Only the requirement and the Python version matter: dexcost is not installed here.
        requirements = environment.extra_requirements
        fingerprint = hashlib.sha256("\n".join((*requirements, sys.version)).encode()).hexdigest()
        if stamp.exists() and stamp.read_text() == fingerprint:
            print(f"{environment.label} is up to date")
            return
        print(f"installing {' '.join(requirements)}", flush=True)
        stamp.unlink(missing_ok=True)
        pip = [str(environment.python), "-m", "pip", "install", *PIP_FLAGS]
        _run([*pip, "--upgrade", "pip"], description=f"upgrading pip in {environment.label}")
        _run(
            [*pip, *requirements],
            description=f"installing {' '.join(requirements)} into {environment.label}",
        )
        stamp.write_text(fingerprint)
    except (StepFailed, OSError) as error:
        print(
            f"warning: {error}. The Phoenix interop test will skip; the next run tries again.",
            file=sys.stderr,
        )
        shutil.rmtree(environment.path, ignore_errors=True)
        return
    print(f"{environment.label} ready in {time.monotonic() - started:.0f} s", flush=True)


def prepare(environment: Environment) -> None:
    """Create or reuse the virtualenv and install the project into it, if needed."""
    started = time.monotonic()
    if not _is_healthy(environment):
        if environment.path.exists():
            print(f"{environment.label} does not work; creating it again")
            shutil.rmtree(environment.path)
        print(f"creating {environment.label} with Python {sys.version.split()[0]}", flush=True)
        _create_virtualenv(environment.path)

    stamp = environment.path / STAMP_NAME
    fingerprint = _install_fingerprint(environment)
    if stamp.exists() and stamp.read_text() == fingerprint:
        print(f"{environment.label} is up to date")
        return

    target = f"dexcost[{environment.extras}] {' '.join(environment.extra_requirements)}"
    print(f"installing {target.rstrip()}", flush=True)
    stamp.unlink(missing_ok=True)
    pip = [str(environment.python), "-m", "pip", "install", *PIP_FLAGS]
    _run([*pip, "--upgrade", "pip"], description=f"upgrading pip in {environment.label}")
    _run(
        [*pip, "--editable", f".[{environment.extras}]", *environment.extra_requirements],
        description=f"installing dexcost[{environment.extras}] into {environment.label}",
    )
    stamp.write_text(fingerprint)
    print(f"{environment.label} ready in {time.monotonic() - started:.0f} s", flush=True)


def _delete(*environments: Environment) -> None:
    for environment in environments:
        if environment.path.exists():
            print(f"deleting {environment.label} (--recreate)")
            shutil.rmtree(environment.path)


def _is_healthy(environment: Environment) -> bool:
    """Tell whether the virtualenv's Python starts, is new enough and has pip."""
    if not environment.python.exists():
        return False
    check = f"import sys, pip; sys.exit(sys.version_info < {MINIMUM_PYTHON!r})"
    try:
        result = subprocess.run(
            [str(environment.python), "-c", check],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _create_virtualenv(path: Path) -> None:
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(path)
    except (OSError, subprocess.CalledProcessError) as error:
        raise StepFailed(
            f"could not create {path.name} ({error}). On Debian and Ubuntu, install the "
            "python3-venv package for this Python version."
        ) from error


def _install_fingerprint(environment: Environment) -> str:
    """Hash what an install depends on: pyproject.toml, extras and requirements, Python version."""
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes())
    digest.update(environment.extras.encode())
    digest.update("\n".join(environment.extra_requirements).encode())
    version = subprocess.run(
        [str(environment.python), "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    digest.update(version.encode())
    return digest.hexdigest()


def _installed_version(environment: Environment, package: str) -> str:
    result = subprocess.run(
        [str(environment.python), "-c", f"import {package}; print({package}.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "is not importable"


def _run(command: Sequence[str], *, description: str) -> None:
    """Run a set-up command, letting its errors print, and fail the step if it fails."""
    code = subprocess.call(list(command), cwd=REPO, stdin=subprocess.DEVNULL)
    if code != 0:
        raise StepFailed(f"{description} failed with exit code {code}")


def _heading(text: str) -> None:
    print(f"\n==> {text}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
