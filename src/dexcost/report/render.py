"""Table, CSV and JSON output of a cost report. Amounts are exact decimal strings."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from dexcost.pricing.money import format_usd
from dexcost.report.query import Report, Totals

NONE_LABEL = "(none)"
JSON_SCHEMA_VERSION = 1

_COLUMNS = (
    "events",
    "cost_usd",
    "unpriced",
    "retries",
    "retry_cost_usd",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "reasoning_tokens",
)


def _cells(totals: Totals) -> list[str]:
    return [
        str(totals.events),
        format_usd(totals.cost_usd),
        str(totals.not_priced_events),
        str(totals.retry_events),
        format_usd(totals.retry_cost_usd),
        str(totals.input_tokens),
        str(totals.output_tokens),
        str(totals.cache_read_tokens),
        str(totals.reasoning_tokens),
    ]


def totals_json(totals: Totals) -> dict[str, Any]:
    return {
        "events": totals.events,
        "cost_usd": format_usd(totals.cost_usd),
        "priced_events": totals.priced_events,
        "unpriced_events": totals.unpriced_events,
        "usage_unknown_events": totals.usage_unknown_events,
        "retry_events": totals.retry_events,
        "retry_cost_usd": format_usd(totals.retry_cost_usd),
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "cache_read_tokens": totals.cache_read_tokens,
        "reasoning_tokens": totals.reasoning_tokens,
    }


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def period_text(report: Report) -> str:
    since, until = _iso(report.since), _iso(report.until)
    if since and until:
        return f"events that ended from {since} to before {until}"
    if since:
        return f"events that ended from {since} on"
    if until:
        return f"events that ended before {until}"
    return "all events"


def render_json(report: Report) -> dict[str, Any]:
    """Return the report as a JSON-ready dict; docs/report.md describes its keys."""
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "db_path": report.db_path,
        "by": list(report.by),
        "since": _iso(report.since),
        "until": _iso(report.until),
        "total": totals_json(report.total),
        "groups": [
            {"key": dict(zip(report.by, key, strict=True)), **totals_json(totals)}
            for key, totals in report.groups.items()
        ],
    }


# A spreadsheet reads a cell starting with one of these as a formula, so a customer id
# such as "=HYPERLINK(...)" would run when the CSV is opened.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell_text(value: str | None) -> str:
    if value is None:
        return ""
    if value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def render_csv(report: Report) -> str:
    """Render one row per group (one row in all without --by), with no total row.

    A group name that a spreadsheet would read as a formula gets a leading quote.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*report.by, *_COLUMNS])
    if report.by:
        for key, totals in report.groups.items():
            writer.writerow([*(_cell_text(part) for part in key), *_cells(totals)])
    else:
        writer.writerow(_cells(report.total))
    return out.getvalue()


def render_table(report: Report) -> str:
    """Aligned columns, a total row, and a note when some events have no price."""
    headers = [*report.by, *_COLUMNS]
    rows = [
        [*(NONE_LABEL if part is None else part for part in key), *_cells(totals)]
        for key, totals in report.groups.items()
    ]
    if report.by:
        rows.append(["TOTAL", *([""] * (len(report.by) - 1)), *_cells(report.total)])
    else:
        rows = [_cells(report.total)]
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    keys = len(report.by)

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if index < keys else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    lines = [f"Cost of {period_text(report)} in {report.db_path} (UTC, USD)", ""]
    lines.append(line(headers))
    lines.extend(line(row) for row in rows)
    missing = report.total.not_priced_events
    if missing:
        lines.append("")
        lines.append(
            f"{missing} event(s) have no price ({report.total.unpriced_events} unpriced, "
            f"{report.total.usage_unknown_events} with unknown usage) and add nothing to "
            "cost_usd. Register a price with dexcost.register_model_price() or dexcost rates."
        )
    return "\n".join(lines)
