"""``dexcost scan``: find the places in a project that spend money, without running it.

The scanner parses each file with :mod:`ast` and never imports or executes the
code it reads. See ``docs/scan.md``.
"""

from __future__ import annotations

import tokenize
from dataclasses import dataclass, field
from pathlib import Path

from dexcost.scan.analyzer import (
    AUTO_INSTRUMENTED,
    AUTO_PRICED,
    MANUALLY_RECORDED,
    NEEDS_MANUAL_RECORDING,
    Finding,
    analyze_source,
)
from dexcost.scan.catalog import Catalog, CatalogError, load_catalog
from dexcost.scan.walk import iter_python_files

__all__ = [
    "AUTO_INSTRUMENTED",
    "AUTO_PRICED",
    "MANUALLY_RECORDED",
    "NEEDS_MANUAL_RECORDING",
    "Catalog",
    "CatalogError",
    "Finding",
    "ScanResult",
    "SkippedFile",
    "load_catalog",
    "scan_path",
]


@dataclass(frozen=True)
class SkippedFile:
    """A file that could not be read or parsed, and why."""

    file: str
    line: int | None
    error: str


@dataclass
class ScanResult:
    """Everything one scan found, in file and line order."""

    root: str
    files_scanned: int = 0
    findings: list[Finding] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    catalog: str | None = None  # the catalog file used, None when none was found

    def count(self, kind: str) -> int:
        return sum(1 for finding in self.findings if finding.kind == kind)

    @property
    def untracked(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.kind == NEEDS_MANUAL_RECORDING]


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def scan_path(path: Path, catalog: Catalog | None = None) -> ScanResult:
    """Scan ``path`` (a folder or one ``.py`` file) and return its cost points.

    ``catalog`` defaults to the bundled service catalog. Raises FileNotFoundError
    when ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    chosen = load_catalog() if catalog is None else catalog
    base = path.parent if path.is_file() else path
    result = ScanResult(
        root=str(path), catalog=None if chosen.source is None else str(chosen.source)
    )
    for file in iter_python_files(path):
        name = _relative(file, base)
        try:
            source = file.read_bytes()
        except OSError as error:
            result.skipped.append(SkippedFile(name, None, f"cannot read: {error.strerror}"))
            continue
        result.files_scanned += 1
        try:
            result.findings.extend(analyze_source(source, name, chosen))
        except SyntaxError as error:
            result.skipped.append(SkippedFile(name, error.lineno, f"syntax error: {error.msg}"))
        except (ValueError, tokenize.TokenError, RecursionError) as error:
            result.skipped.append(SkippedFile(name, None, f"cannot parse: {error}"))
    return result
