"""Time conditions that select which of a model's prices apply to a request.

Both follow genai-prices 0.2.3 (``StartDateConstraint`` and
``TimeOfDateConstraint``): the request time is compared in UTC, and a naive
timestamp is taken to be UTC already. Times are POSIX seconds, because
``time.time()`` is several times cheaper than ``datetime.now()`` on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Protocol

UTC = timezone.utc
_SECONDS_PER_DAY = 86_400


class Constraint(Protocol):
    def active(self, seconds: float) -> bool: ...


def posix_seconds(timestamp: datetime) -> float:
    """Convert a timestamp to POSIX seconds, reading a naive one as UTC."""
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    return timestamp.timestamp()


@dataclass(frozen=True, slots=True)
class StartDate:
    """Price applies from midnight UTC of a calendar date on."""

    start: float
    """Midnight UTC of the start date, in POSIX seconds."""

    @classmethod
    def from_date(cls, start: date) -> StartDate:
        return cls(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp())

    def active(self, seconds: float) -> bool:
        return seconds >= self.start


@dataclass(frozen=True, slots=True)
class DailyWindow:
    """Price applies between two UTC times of day, e.g. an off-peak discount.

    An `end` before `start` means the window wraps past midnight. `start` is
    inclusive and `end` exclusive. Both are seconds since midnight UTC.
    """

    start: float
    end: float

    @classmethod
    def from_times(cls, start: time, end: time) -> DailyWindow:
        return cls(_seconds_of_day(start), _seconds_of_day(end))

    def active(self, seconds: float) -> bool:
        now = seconds % _SECONDS_PER_DAY
        if self.end < self.start:
            return now >= self.start or now < self.end
        return self.start <= now < self.end


def _seconds_of_day(value: time) -> float:
    """Convert a time of day to seconds since midnight UTC; a naive time is UTC."""
    if value.tzinfo is not None:
        value = datetime.combine(date(1970, 1, 1), value).astimezone(UTC).time()
    return value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6
