"""``dexcost report`` on the command line: formats, options, errors and the HTML page."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dexcost import semconv
from dexcost.cli import main

from .conftest import Event, ns

MakeBuffer = Callable[[list[Event]], Path]
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def buffer(make_buffer: MakeBuffer) -> Path:
    return make_buffer(
        [
            Event(
                customer_id="acme", model="gpt-4o-mini", cost_usd="0.0015", end_ns=ns("2026-03-01")
            ),
            Event(customer_id="acme", model="gpt-4o", cost_usd="0.02", end_ns=ns("2026-03-03")),
            Event(customer_id="globex", model="gpt-4o", cost_usd="1.1", end_ns=ns("2026-03-03")),
            Event(
                customer_id="globex",
                cost_usd=None,
                cost_status=semconv.UNPRICED,
                end_ns=ns("2026-03-03"),
            ),
            Event(customer_id=None, cost_usd="0.3", is_retry=True, end_ns=ns("2026-03-04")),
        ]
    )


def _report(*args: str) -> Result:
    return CliRunner().invoke(main, ["report", *args])


def test_report_table_shows_total_row(buffer: Path) -> None:
    output = _report("--db", str(buffer), "--by", "customer").output
    (total,) = [line.split() for line in output.splitlines() if line.startswith("TOTAL")]

    assert total[:3] == ["TOTAL", "5", "1.4215"]


def test_report_table_notes_unpriced_events(buffer: Path) -> None:
    output = _report("--db", str(buffer)).output

    assert "1 event(s) have no price (1 unpriced, 0 with unknown usage)" in output


def test_report_csv_has_row_per_group(buffer: Path) -> None:
    output = _report("--db", str(buffer), "--by", "customer", "--format", "csv").output
    rows = list(csv.DictReader(io.StringIO(output)))

    assert [(r["customer"], r["cost_usd"], r["unpriced"]) for r in rows] == [
        ("acme", "0.0215", "0"),
        ("globex", "1.1", "1"),
        ("", "0.3", "0"),
    ]


def test_report_json_keeps_exact_strings(buffer: Path) -> None:
    document = json.loads(_report("--db", str(buffer), "--format", "json").output)

    assert document["total"]["cost_usd"] == "1.4215"
    assert document["total"]["retry_cost_usd"] == "0.3"


def test_report_json_groups_carry_keys(buffer: Path) -> None:
    args = ("--db", str(buffer), "--by", "customer", "--by", "model", "--format", "json")
    document = json.loads(_report(*args).output)

    assert document["groups"][0]["key"] == {"customer": "acme", "model": "gpt-4o"}


def test_report_reads_env_buffer(buffer: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEXCOST_BUFFER_PATH", str(buffer))
    document = json.loads(_report("--format", "json").output)

    assert document["db_path"] == str(buffer)


def test_report_filters_by_dates(buffer: Path) -> None:
    args = ("--db", str(buffer), "--since", "2026-03-03", "--until", "2026-03-04T00:00:00Z")
    document = json.loads(_report(*args, "--format", "json").output)

    assert document["total"]["cost_usd"] == "1.12"


def test_report_unknown_by_exits_two(buffer: Path) -> None:
    result = _report("--db", str(buffer), "--by", "region")

    assert result.exit_code == 2
    assert "'region' is not one of 'customer'" in result.output


def test_report_bad_date_exits_two(buffer: Path) -> None:
    result = _report("--db", str(buffer), "--since", "yesterday")

    assert result.exit_code == 2
    assert "'yesterday' is not a date; use YYYY-MM-DD" in result.output


def test_report_missing_db_exits_one(tmp_path: Path) -> None:
    result = _report("--db", str(tmp_path / "absent.db"))

    assert result.exit_code == 1
    assert "Pass --db PATH" in result.output


def test_report_html_is_self_contained(buffer: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    _report("--db", str(buffer), "--html", str(page))
    text = page.read_text()

    assert "src=" not in text
    assert "href=" not in text
    assert "@import" not in text


def test_report_html_chart_has_bar_per_day(buffer: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    _report("--db", str(buffer), "--html", str(page))

    # 2026-03-01 to 2026-03-04, with the empty 2026-03-02 drawn as a $0 bar.
    assert page.read_text().count('class="bar"') == 4


@pytest.mark.skipif(
    not CHROMIUM.exists() or shutil.which("chromium") is None,
    reason="needs /usr/bin/chromium (Debian: apt-get install -y chromium)",
)
def test_report_html_renders_in_chromium(buffer: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    _report("--db", str(buffer), "--by", "model", "--html", str(page))
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        page.as_uri(),
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout

    assert all(
        marker in dom
        for marker in ('id="cost-chart"', 'id="by-customer"', 'id="by-requested"', "$1.4215")
    )


def test_report_since_far_past_is_accepted(buffer: Path) -> None:
    result = _report(
        "--db", str(buffer), "--by", "customer", "--since", "0001-01-01", "--until", "9999-12-31"
    )

    assert result.exit_code == 0, result.output
    (total,) = [line.split() for line in result.output.splitlines() if line.startswith("TOTAL")]
    assert total[:3] == ["TOTAL", "5", "1.4215"]


def test_report_implausible_amount_is_an_error(make_buffer) -> None:
    path = make_buffer([Event(cost_usd="1e999999"), Event(cost_usd="0.001")])
    result = _report("--db", str(path))

    assert result.exit_code == 1
    assert "cost_usd='1e999999', which is not a plausible amount" in result.output


def test_report_csv_guards_formulas(make_buffer) -> None:
    path = make_buffer([Event(customer_id='=HYPERLINK("http://x.example","y")')])
    output = _report("--db", str(path), "--by", "customer", "--format", "csv").output

    assert "'=HYPERLINK" in output
