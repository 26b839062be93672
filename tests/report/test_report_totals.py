"""build_report: exact sums, groups, filters and what it refuses."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

import dexcost
from dexcost import semconv
from dexcost.report import ReportError, build_report, parse_when

from .conftest import Event, ns, random_events

MakeBuffer = Callable[[list[Event]], Path]


def test_report_total_equals_decimal_sum(make_buffer: MakeBuffer) -> None:
    events = random_events(3000, seed=7)
    path = make_buffer(events)
    expected = sum(
        (Decimal(e.cost_usd) for e in events if e.cost_usd is not None), start=Decimal(0)
    )

    assert build_report(path).total.cost_usd == expected


def test_report_groups_sum_to_decimal_per_customer(make_buffer: MakeBuffer) -> None:
    events = random_events(2000, seed=11)
    path = make_buffer(events)
    expected: dict[str | None, Decimal] = {}
    for event in events:
        if event.cost_usd is not None:
            expected[event.customer_id] = expected.get(event.customer_id, Decimal(0)) + Decimal(
                event.cost_usd
            )

    report = build_report(path, ["customer"])

    assert {key[0]: t.cost_usd for key, t in report.groups.items()} == expected


def test_report_sum_keeps_digits_floats_lose(make_buffer: MakeBuffer) -> None:
    # 10**16 + 1e-12 needs 29 significant digits: float and the default context round it.
    path = make_buffer([Event(cost_usd="10000000000000000"), Event(cost_usd="0.000000000001")])

    assert build_report(path).total.cost_usd == Decimal("10000000000000000.000000000001")


def test_report_unpriced_counted_apart(make_buffer: MakeBuffer) -> None:
    path = make_buffer(
        [
            Event(cost_usd="0.5"),
            Event(cost_usd=None, cost_status=semconv.UNPRICED),
            Event(cost_usd=None, cost_status=semconv.USAGE_UNKNOWN),
        ]
    )
    total = build_report(path).total

    assert total.cost_usd == Decimal("0.5")
    assert total.unpriced_events == 1
    assert total.usage_unknown_events == 1


def test_report_retry_waste_from_marker_and_flag(make_buffer: MakeBuffer) -> None:
    path = make_buffer(
        [
            Event(cost_usd="0.25"),
            Event(cost_usd="0.1", is_retry=True),
            Event(event_type=semconv.RETRY_MARKER, cost_usd="0.02", model=None),
        ]
    )
    total = build_report(path).total

    assert total.retry_events == 2
    assert total.retry_cost_usd == Decimal("0.12")


def test_report_skips_task_rows(make_buffer: MakeBuffer) -> None:
    path = make_buffer([Event(cost_usd="1"), Event(event_type=semconv.TASK, cost_usd="1")])

    assert build_report(path).total.events == 1


def test_report_since_inclusive_until_exclusive(make_buffer: MakeBuffer) -> None:
    path = make_buffer(
        [
            Event(cost_usd="1", end_ns=ns("2026-03-01T00:00:00")),
            Event(cost_usd="2", end_ns=ns("2026-03-02T00:00:00")),
        ]
    )
    report = build_report(
        path, since=parse_when("2026-03-01", "--since"), until=parse_when("2026-03-02", "--until")
    )

    assert report.total.cost_usd == Decimal("1")


def test_report_several_groupings_combine(make_buffer: MakeBuffer) -> None:
    path = make_buffer(
        [
            Event(customer_id="acme", model="a", cost_usd="1"),
            Event(customer_id="acme", model="b", cost_usd="2"),
            Event(customer_id="acme", model="b", cost_usd="3"),
        ]
    )

    groups = build_report(path, ["customer", "model"]).groups

    assert {key: t.cost_usd for key, t in groups.items()} == {
        ("acme", "a"): Decimal("1"),
        ("acme", "b"): Decimal("5"),
    }


def test_report_service_falls_back_to_provider(make_buffer: MakeBuffer) -> None:
    path = make_buffer(
        [
            Event(provider="openai", service=None, cost_usd="1"),
            Event(event_type=semconv.EXTERNAL_COST, provider=None, service="serpapi", cost_usd="2"),
        ]
    )

    groups = build_report(path, ["service"]).groups

    assert sorted(key[0] or "" for key in groups) == ["openai", "serpapi"]


def test_report_day_groups_by_utc_date(make_buffer: MakeBuffer) -> None:
    path = make_buffer([Event(end_ns=ns("2026-03-01T23:59:59")), Event(end_ns=ns("2026-03-02"))])

    assert list(build_report(path, ["day"]).groups) == [("2026-03-01",), ("2026-03-02",)]


def test_report_opens_buffer_read_only(make_buffer: MakeBuffer) -> None:
    path = make_buffer([Event()])
    path.chmod(0o444)
    before = path.read_bytes()

    build_report(path, ["customer"])

    assert path.read_bytes() == before


def test_report_unknown_grouping_names_choices(make_buffer: MakeBuffer) -> None:
    with pytest.raises(ReportError, match="cannot group by 'region'; use one of customer"):
        build_report(make_buffer([]), ["region"])


def test_report_missing_buffer_names_fix(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="Pass --db PATH"):
        build_report(tmp_path / "absent.db")


def test_report_foreign_database_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    connection.close()

    with pytest.raises(ReportError, match="has no spans table"):
        build_report(path)


def test_report_since_after_until_refused(make_buffer: MakeBuffer) -> None:
    with pytest.raises(ReportError, match="is not before --until"):
        build_report(
            make_buffer([]),
            since=parse_when("2026-03-02", "--since"),
            until=parse_when("2026-03-01", "--until"),
        )


def test_parse_when_offset_converts_to_utc() -> None:
    assert parse_when("2026-03-01T02:00:00+02:00", "--since") == parse_when(
        "2026-03-01T00:00:00Z", "--since"
    )


def test_parse_when_bad_date_names_value() -> None:
    with pytest.raises(ReportError, match="--until '03/01/2026' is not a date; use YYYY-MM-DD"):
        parse_when("03/01/2026", "--until")


def test_report_reads_events_dexcost_wrote(buffer_path: Path) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])
    with dexcost.task("support_ticket", customer_id="acme"):
        dexcost.record_cost("serpapi", "0.015")
        dexcost.record_cost("serpapi", "0.015")
        dexcost.mark_retry("timeout", cost_usd="0.002")
    assert dexcost.flush(timeout=10)
    dexcost.shutdown()

    (totals,) = build_report(buffer_path, ["customer"]).groups.values()

    assert totals.events == 3
    assert totals.cost_usd == Decimal("0.032")
    assert totals.retry_cost_usd == Decimal("0.002")


def test_report_long_fractions_stay_exact(make_buffer: MakeBuffer) -> None:
    # 13 fraction digits and exponent notation are summed in Python, not in SQL.
    path = make_buffer([Event(cost_usd="0.0000000000001"), Event(cost_usd="1.5E-7")])

    assert build_report(path).total.cost_usd == Decimal("0.0000001500001")


def test_report_integer_overflow_falls_back_exactly(make_buffer: MakeBuffer) -> None:
    # Two 18-digit amounts overflow SQLite's 64-bit integer sum.
    big = "999999999999999999.5"
    path = make_buffer([Event(cost_usd=big), Event(cost_usd=big)])

    assert build_report(path).total.cost_usd == Decimal("1999999999999999999")
