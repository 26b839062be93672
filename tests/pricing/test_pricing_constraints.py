"""Time conditions must switch at the same instants as genai-prices' own constraints."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import pytest
from genai_prices.types import StartDateConstraint, TimeOfDateConstraint

from dexcost.pricing.constraints import DailyWindow, StartDate, posix_seconds

UTC = timezone.utc
MICROSECOND = timedelta(microseconds=1)
PLUS_FIVE_THIRTY = timezone(timedelta(hours=5, minutes=30))


def around(instant: datetime) -> list[datetime]:
    """Return instants at, just before and just after `instant`, naive and in other zones."""
    moments = [instant - MICROSECOND, instant, instant + MICROSECOND]
    return [
        variant
        for moment in moments
        for variant in (
            moment,
            moment.replace(tzinfo=None),
            moment.astimezone(PLUS_FIVE_THIRTY),
            moment.astimezone(timezone(timedelta(hours=-8))),
        )
    ]


def test_start_date_switches_at_utc_midnight() -> None:
    library = StartDateConstraint(start_date=date(2026, 10, 14))
    ours = StartDate.from_date(date(2026, 10, 14))
    for moment in around(datetime(2026, 10, 14, tzinfo=UTC)):
        assert ours.active(posix_seconds(moment)) == library.active(moment), moment


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (time(0, 30, tzinfo=UTC), time(16, 30, tzinfo=UTC)),
        (time(16, 30), time(0, 30)),  # naive times, wrapping past midnight
        (time(9, 0, tzinfo=PLUS_FIVE_THIRTY), time(18, 0, tzinfo=PLUS_FIVE_THIRTY)),
    ],
)
def test_daily_window_edges_match_library(start: time, end: time) -> None:
    library = TimeOfDateConstraint(start_time=start, end_time=end)
    ours = DailyWindow.from_times(start, end)
    day = date(2026, 11, 2)
    edges = [
        datetime.combine(day, value).astimezone(UTC)
        if value.tzinfo
        else datetime.combine(day, value, tzinfo=UTC)
        for value in (start, end)
    ]
    for edge in edges:
        for moment in around(edge):
            assert ours.active(posix_seconds(moment)) == library.active(moment), moment


def test_daily_window_end_is_exclusive() -> None:
    window = DailyWindow.from_times(time(0, 30), time(16, 30))
    assert window.active(posix_seconds(datetime(2026, 11, 2, 16, 30, tzinfo=UTC))) is False


def test_naive_timestamp_read_as_utc() -> None:
    naive = datetime(2026, 11, 2, 12, 0)
    aware = naive.replace(tzinfo=UTC)
    assert posix_seconds(naive) == posix_seconds(aware)
