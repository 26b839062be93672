"""A self-contained HTML cost report: inline CSS, JavaScript and SVG, no network."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from html import escape

from dexcost.pricing.money import format_usd
from dexcost.report.query import Report, Totals
from dexcost.report.render import NONE_LABEL, period_text

# Gaps between days with events are filled with $0 bars up to this many days.
_MAX_FILLED_DAYS = 1100
_CHART_WIDTH = 760
_CHART_HEIGHT = 220
_MARGIN_LEFT = 70
_MARGIN_BOTTOM = 30

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #1d2330; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; }
p.period { color: #5a6275; margin-top: 0; }
.cards { display: flex; gap: 1rem; flex-wrap: wrap; margin: 1rem 0 1.5rem; }
.card { border: 1px solid #d8dce6; border-radius: 6px; padding: .6rem 1rem; min-width: 9rem; }
.card b { display: block; font-size: 1.2rem; }
table { border-collapse: collapse; width: 100%; margin-bottom: 1.5rem; }
th, td { padding: .3rem .6rem; border-bottom: 1px solid #e6e9f0; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { cursor: pointer; background: #f4f6fa; user-select: none; }
tr.total td { font-weight: 600; border-top: 2px solid #1d2330; }
svg .bar { fill: #3a6fd8; }
svg .axis { stroke: #8a91a3; stroke-width: 1; }
svg text { font-size: 11px; fill: #5a6275; }
.note { color: #8a4b00; }
"""

# Sorts a table by the clicked column; numbers compare as numbers.
_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var ascending = th.dataset.order !== "asc";
      th.dataset.order = ascending ? "asc" : "desc";
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.value || a.cells[column].textContent;
        var y = b.cells[column].dataset.value || b.cells[column].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var order = isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny;
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _daily_series(daily: Report) -> list[tuple[str, Decimal]]:
    points = [(key[0], totals.cost_usd) for key, totals in daily.groups.items() if key[0]]
    if len(points) < 2:
        return points
    first, last = date.fromisoformat(points[0][0]), date.fromisoformat(points[-1][0])
    if (last - first).days > _MAX_FILLED_DAYS:
        return points
    known = dict(points)
    days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
    return [(day.isoformat(), known.get(day.isoformat(), Decimal(0))) for day in days]


def chart_svg(daily: Report) -> str:
    """Return an SVG bar chart of cost per day; bar heights are only a drawing."""
    series = _daily_series(daily)
    width, height = _CHART_WIDTH, _CHART_HEIGHT
    plot_width = width - _MARGIN_LEFT - 10
    plot_height = height - _MARGIN_BOTTOM - 10
    parts = [
        f'<svg id="cost-chart" role="img" aria-label="Cost per day in USD" '
        f'xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
    ]
    base_y = 10 + plot_height
    parts.append(
        f'<line class="axis" x1="{_MARGIN_LEFT}" y1="{base_y}" x2="{width - 10}" y2="{base_y}"/>'
    )
    parts.append(
        f'<line class="axis" x1="{_MARGIN_LEFT}" y1="10" x2="{_MARGIN_LEFT}" y2="{base_y}"/>'
    )
    if not series:
        parts.append(f'<text x="{_MARGIN_LEFT + 10}" y="{height / 2:.0f}">No cost events</text>')
        parts.append("</svg>")
        return "".join(parts)
    peak = max(cost for _, cost in series)
    parts.append(
        f'<text x="{_MARGIN_LEFT - 6}" y="14" text-anchor="end">${format_usd(peak)}</text>'
    )
    parts.append(f'<text x="{_MARGIN_LEFT - 6}" y="{base_y}" text-anchor="end">$0</text>')
    slot = plot_width / len(series)
    for index, (day, cost) in enumerate(series):
        share = float(cost / peak) if peak > 0 else 0.0
        bar_height = max(share * plot_height, 0.0)
        x = _MARGIN_LEFT + index * slot + slot * 0.1
        parts.append(
            f'<rect class="bar" x="{x:.2f}" y="{base_y - bar_height:.2f}" '
            f'width="{max(slot * 0.8, 0.5):.2f}" height="{bar_height:.2f}" data-day="{day}">'
            f"<title>{day}: ${format_usd(cost)}</title></rect>"
        )
    for index in sorted({0, len(series) - 1}):
        x = _MARGIN_LEFT + index * slot + slot / 2
        anchor = "start" if index == 0 else "end"
        parts.append(
            f'<text x="{x:.2f}" y="{height - 10}" text-anchor="{anchor}">{series[index][0]}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _row(label: list[str], totals: Totals, css: str = "") -> str:
    keys = "".join(f"<td>{escape(cell)}</td>" for cell in label)
    values = [
        (str(totals.events), str(totals.events)),
        (f"${format_usd(totals.cost_usd)}", format_usd(totals.cost_usd)),
        (str(totals.not_priced_events), str(totals.not_priced_events)),
        (str(totals.retry_events), str(totals.retry_events)),
        (f"${format_usd(totals.retry_cost_usd)}", format_usd(totals.retry_cost_usd)),
        (f"{totals.input_tokens:,}", str(totals.input_tokens)),
        (f"{totals.output_tokens:,}", str(totals.output_tokens)),
    ]
    cells = "".join(f'<td data-value="{raw}">{shown}</td>' for shown, raw in values)
    attribute = f' class="{css}"' if css else ""
    return f"<tr{attribute}>{keys}{cells}</tr>"


def table_html(report: Report, table_id: str) -> str:
    headers = [*report.by, "events", "cost", "unpriced", "retries", "retry cost", "input tokens"]
    headers.append("output tokens")
    head = "".join(f"<th>{escape(name)}</th>" for name in headers)
    body = "".join(
        _row([NONE_LABEL if part is None else part for part in key], totals)
        for key, totals in report.groups.items()
    )
    total = _row(["TOTAL", *([""] * (len(report.by) - 1))], report.total, "total")
    return (
        f'<table id="{table_id}" class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody><tfoot>{total}</tfoot></table>"
    )


def render_html(by_customer: Report, daily: Report, requested: Report | None) -> str:
    """Return the page: totals, the daily cost chart, per-customer and requested tables."""
    total = by_customer.total
    cards = [
        ("Total cost", f"${format_usd(total.cost_usd)}"),
        ("Events", f"{total.events:,}"),
        ("Without a price", f"{total.not_priced_events:,}"),
        ("Retry waste", f"${format_usd(total.retry_cost_usd)} ({total.retry_events:,})"),
    ]
    card_html = "".join(
        f'<div class="card">{escape(name)}<b>{escape(value)}</b></div>' for name, value in cards
    )
    sections = [
        "<h2>Cost per day</h2>",
        chart_svg(daily),
        "<h2>Cost per customer</h2>",
        table_html(by_customer, "by-customer"),
    ]
    if requested is not None and requested.by and requested.by != ("customer",):
        sections.append(f"<h2>Cost per {escape(' and '.join(requested.by))}</h2>")
        sections.append(table_html(requested, "by-requested"))
    if total.not_priced_events:
        sections.append(
            f'<p class="note">{total.not_priced_events:,} event(s) have no price and add '
            "nothing to the cost shown; they are counted in the unpriced column.</p>"
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>dexcost report</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>dexcost cost report</h1>"
        f'<p class="period">{escape(period_text(by_customer))}, from '
        f"{escape(by_customer.db_path)}. Times are UTC, amounts USD.</p>"
        f'<div class="cards">{card_html}</div>'
        + "".join(sections)
        + f"<script>{_SCRIPT}</script></body></html>"
    )
