"""Text, JSON and code-stub output of a scan."""

from __future__ import annotations

from itertools import groupby
from typing import Any

from dexcost.scan import (
    AUTO_INSTRUMENTED,
    AUTO_PRICED,
    MANUALLY_RECORDED,
    NEEDS_MANUAL_RECORDING,
    Finding,
    ScanResult,
)

JSON_SCHEMA_VERSION = 1

_LABELS = {
    AUTO_INSTRUMENTED: "auto-instrumented",
    AUTO_PRICED: "auto-priced",
    MANUALLY_RECORDED: "recorded by hand",
    NEEDS_MANUAL_RECORDING: "NEEDS MANUAL RECORDING",
}


def stub(finding: Finding) -> str | None:
    """Return a snippet that records the cost of an untracked call, or None when tracked."""
    if finding.kind != NEEDS_MANUAL_RECORDING:
        return None
    service = finding.service or finding.library
    if finding.unit_price is not None:
        price = f"catalog price {finding.unit_price}; set units to what this call used"
    else:
        price = (
            "no catalog price: store a rate with dexcost rates --import, or call "
            f'dexcost.record_cost("{service}", cost_usd) with the price in USD'
        )
    return (
        f"# {finding.file}:{finding.line} {finding.call}\n"
        f'dexcost.record_usage("{service}", 1)  # {price}'
    )


def summary_line(result: ScanResult) -> str:
    untracked = result.count(NEEDS_MANUAL_RECORDING)
    parts = [
        f"{result.count(AUTO_INSTRUMENTED)} auto-instrumented",
        f"{result.count(AUTO_PRICED)} auto-priced",
        f"{result.count(MANUALLY_RECORDED)} recorded by hand",
        f"{untracked} {'needs' if untracked == 1 else 'need'} manual recording",
    ]
    files = "file" if result.files_scanned == 1 else "files"
    line = f"Scanned {result.files_scanned} {files}: {', '.join(parts)}"
    if result.skipped:
        line += f"; {len(result.skipped)} skipped (see above)"
    return line + "."


def render_text(result: ScanResult, *, stubs: bool = False) -> str:
    """Findings grouped by file, skipped files, then one summary line."""
    lines: list[str] = []
    for file, group in groupby(result.findings, key=lambda finding: finding.file):
        lines.append(file)
        for finding in group:
            lines.append(
                f"  {finding.line:>4}:{finding.column:<3} {_LABELS[finding.kind]:<22}  "
                f"{finding.call}  ({finding.reason})"
            )
        lines.append("")
    for skipped in result.skipped:
        where = skipped.file if skipped.line is None else f"{skipped.file}:{skipped.line}"
        lines.append(f"skipped {where}: {skipped.error}")
    if result.skipped:
        lines.append("")
    if result.catalog is None:
        lines.append(
            "No service catalog was found, so calls to paid HTTP APIs are not reported. "
            "Pass --catalog FILE to use one."
        )
    if stubs and result.untracked:
        lines.append("Paste these where each call is made (import dexcost first):")
        lines.extend(text for finding in result.untracked if (text := stub(finding)))
        lines.append("")
    lines.append(summary_line(result))
    return "\n".join(lines)


def render_json(result: ScanResult) -> dict[str, Any]:
    """Return the scan as a JSON-ready dict; docs/scan.md describes its keys."""
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "root": result.root,
        "catalog": result.catalog,
        "files_scanned": result.files_scanned,
        "summary": {
            kind: result.count(kind)
            for kind in (AUTO_INSTRUMENTED, AUTO_PRICED, MANUALLY_RECORDED, NEEDS_MANUAL_RECORDING)
        },
        "findings": [
            {
                "file": finding.file,
                "line": finding.line,
                "column": finding.column,
                "kind": finding.kind,
                "library": finding.library,
                "call": finding.call,
                "reason": finding.reason,
                "service": finding.service,
                "unit_price": finding.unit_price,
                "stub": stub(finding),
            }
            for finding in result.findings
        ],
        "skipped": [
            {"file": skipped.file, "line": skipped.line, "error": skipped.error}
            for skipped in result.skipped
        ],
    }
