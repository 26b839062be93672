"""Fixtures for sync tests: a loopback OTLP receiver and dexcost pushing to it fast."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest

import dexcost
from dexcost.buffer import SYNC_SYNCED
from dexcost.sync import worker

from .receiver import Receiver

API_KEY = "dx_test_" + "k" * 24


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver that is bound but refuses connections until the test calls ``up()``."""
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def fast_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorten the worker's waits so fault tests take a second, not minutes."""
    monkeypatch.setattr(worker, "REQUEST_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(worker, "BACKOFF_BASE_SECONDS", 0.05)
    monkeypatch.setattr(worker, "BACKOFF_CAP_SECONDS", 0.2)
    monkeypatch.setattr(worker, "POLL_SECONDS", 0.05)


@pytest.fixture
def push(
    receiver: Receiver, buffer_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., dexcost.DexcostConfig]]:
    """Return a function that starts dexcost pushing to the receiver."""
    monkeypatch.setenv("DEXCOST_ENDPOINT", receiver.endpoint)

    def start(**settings: object) -> dexcost.DexcostConfig:
        options: dict[str, object] = {
            "api_key": API_KEY,
            "buffer_path": str(buffer_path),
            "flush_interval": 0.1,
            "auto_instrument": [],
        }
        options.update(settings)
        return dexcost.init(**options)  # type: ignore[arg-type]

    yield start
    dexcost.shutdown()


def record_calls(count: int, model: str = "gpt-4o-mini") -> None:
    """Record ``count`` gpt-4o-mini calls of 1,200 prompt and 300 completion tokens.

    gpt-4o-mini list price: $0.15 per million input tokens and $0.60 per million
    output tokens, so one call costs 1200 * 0.15e-6 + 300 * 0.60e-6 = $0.00036.
    """
    for _ in range(count):
        dexcost.record_llm_call("openai", model, 1200, 300)


def stored_events(path: Path) -> dict[str, Decimal]:
    """Return the cost of every stored event (not task) by span id."""
    with closing(sqlite3.connect(path)) as connection:
        rows = connection.execute(
            "SELECT span_id, cost_usd FROM spans WHERE event_type IS NOT 'task'"
        ).fetchall()
    return {span_id: Decimal(cost or 0) for span_id, cost in rows}


def stored_span_ids(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as connection:
        return {span_id for (span_id,) in connection.execute("SELECT span_id FROM spans")}


def sync_states(path: Path) -> dict[int, int]:
    with closing(sqlite3.connect(path)) as connection:
        return dict(
            connection.execute("SELECT sync_state, COUNT(*) FROM spans GROUP BY sync_state")
        )


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``condition`` every 20 ms until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def all_delivered(receiver: Receiver, path: Path) -> Callable[[], bool]:
    def check() -> bool:
        dexcost.flush(timeout=5)
        expected = stored_span_ids(path)
        synced = set(sync_states(path)) == {SYNC_SYNCED}
        return bool(expected) and synced and receiver.span_ids() == expected

    return check
