"""The scanner on the fixture project: every cost point found, nothing else, nothing run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dexcost.scan import (
    NEEDS_MANUAL_RECORDING,
    Catalog,
    ScanResult,
    scan_path,
)

from .conftest import FIXTURES, expected_findings


@pytest.fixture
def result(project: Path, catalog: Catalog) -> ScanResult:
    return scan_path(project, catalog)


def _found(result: ScanResult) -> set[tuple[str, int, str, str]]:
    return {(f.file, f.line, f.kind, f.library) for f in result.findings}


def test_scan_finds_every_expected_cost_point(result: ScanResult, project: Path) -> None:
    expected = expected_findings(project / "app")
    expected = {(f"app/{name}", line, kind, library) for name, line, kind, library in expected}

    assert _found(result) == expected


def test_scan_fixture_marks_many_points() -> None:
    # Guards the test above: an emptied fixture would make it pass trivially.
    assert len(expected_findings(FIXTURES / "project")) == 33


def test_scan_never_runs_scanned_code(result: ScanResult, project: Path) -> None:
    assert not (project / "app" / "EXECUTED").exists()


def test_scan_skips_environments_and_build_folders(result: ScanResult) -> None:
    hidden = [f.file for f in result.findings if f.file.endswith("hidden.py")]

    assert hidden == []


def test_scan_counts_only_project_files(result: ScanResult) -> None:
    # app/: __init__, llm, tools, payments, side_effects and broken.
    assert result.files_scanned == 6


def test_scan_reports_unparsable_file(result: ScanResult) -> None:
    assert [(s.file, s.line) for s in result.skipped] == [("app/broken.py", 1)]


def test_scan_reason_names_openrouter_host(result: ScanResult) -> None:
    reasons = [f.reason for f in result.findings if f.file == "app/llm.py" and f.line == 23]

    assert reasons == ["openai call through openrouter.ai, patched and priced by dexcost"]


def test_scan_auto_priced_carries_catalog_price(result: ScanResult) -> None:
    tavily = [f for f in result.findings if f.service == "tavily"]

    assert [(f.library, f.unit_price) for f in tavily] == [("httpx", "0.008 USD per 1 credit")]


def test_scan_manual_finding_uses_catalog_entry(result: ScanResult) -> None:
    textract = [f for f in result.findings if f.call == "textract.analyze_document"]

    assert [(f.service, f.unit_price) for f in textract] == [
        ("aws-textract", "1.5 USD per 1,000 page")
    ]


def test_scan_untracked_lists_only_manual_points(result: ScanResult) -> None:
    assert {f.kind for f in result.untracked} == {NEEDS_MANUAL_RECORDING}


def test_scan_symlink_loop_terminates(project: Path, catalog: Catalog) -> None:
    os.symlink(project, project / "app" / "loop")
    os.symlink(project / "app" / "llm.py", project / "app" / "llm_link.py")
    os.symlink(project / "app" / "llm.py", project / "app" / "llm_link2.py")

    result = scan_path(project, catalog)

    # The loop adds nothing; of the two links to llm.py only the first is read.
    assert result.files_scanned == 7


def test_scan_single_file_reports_its_name(project: Path, catalog: Catalog) -> None:
    result = scan_path(project / "app" / "payments.py", catalog)

    assert {f.file for f in result.findings} == {"payments.py"}


def test_scan_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        scan_path(tmp_path / "absent")
