"""``dexcost report``: exact cost totals from the local buffer, grouped as asked.

See ``docs/report.md``.
"""

from __future__ import annotations

from dexcost.report.query import (
    GROUPINGS,
    Report,
    ReportError,
    Totals,
    build_report,
    parse_when,
)

__all__ = ["GROUPINGS", "Report", "ReportError", "Totals", "build_report", "parse_when"]
