"""Retry-After parsing and the backoff schedule."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from dexcost.sync.sender import backoff_delay, parse_retry_after

NOW = 1_700_000_000.0


def test_retry_after_seconds_parsed() -> None:
    assert parse_retry_after("120", now=NOW) == 120.0


def test_retry_after_http_date_parsed() -> None:
    assert parse_retry_after(formatdate(NOW + 30, usegmt=True), now=NOW) == 30.0


def test_retry_after_past_date_means_no_wait() -> None:
    assert parse_retry_after(formatdate(NOW - 30, usegmt=True), now=NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5"])
def test_retry_after_invalid_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


@pytest.mark.parametrize("attempt", [1, 2, 3, 4])
def test_backoff_grows_within_jitter_bounds(attempt: int) -> None:
    step = 2.0 ** (attempt - 1)
    delays = [backoff_delay(attempt, 1.0, 60.0) for _ in range(200)]
    assert step / 2 <= min(delays) and max(delays) <= step


def test_backoff_is_capped() -> None:
    assert max(backoff_delay(50, 1.0, 60.0) for _ in range(200)) <= 60.0
