"""The sync worker against a loopback OTLP receiver that fails in every way it can."""

from __future__ import annotations

import gzip
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from decimal import Decimal
from email.utils import formatdate
from pathlib import Path

import pytest

import dexcost
from dexcost import errors
from dexcost.buffer import SYNC_FAILED, SYNC_SYNCED, Buffer
from dexcost.sync import worker

from .conftest import (
    all_delivered,
    record_calls,
    stored_events,
    stored_span_ids,
    sync_states,
    wait_until,
)
from .receiver import POISON_MODEL, Receiver

Push = Callable[..., dexcost.DexcostConfig]


def assert_receiver_matches_buffer(receiver: Receiver, path: Path) -> None:
    events = stored_events(path)
    assert receiver.event_ids() == set(events)
    assert receiver.event_cost() == sum(events.values(), Decimal(0))


def deliver(receiver: Receiver, buffer_path: Path, timeout: float = 10.0) -> None:
    assert wait_until(all_delivered(receiver, buffer_path), timeout)
    assert_receiver_matches_buffer(receiver, buffer_path)


def test_worker_delivers_every_event_exactly(
    push: Push, receiver: Receiver, buffer_path: Path
) -> None:
    receiver.up()
    push()
    record_calls(20)
    deliver(receiver, buffer_path)
    assert receiver.event_cost() == Decimal("0.00720")


def test_requests_never_exceed_batch_size(
    push: Push, receiver: Receiver, buffer_path: Path
) -> None:
    # The worker claims several batches per transaction, and each goes in its own
    # request. The calls are recorded during the outage, so 61 rows wait for the first
    # pass.
    push(batch_size=7)
    record_calls(60)
    assert dexcost.flush(timeout=10)
    receiver.up()
    deliver(receiver, buffer_path)
    assert max(receiver.request_spans) <= 7
    assert len(receiver.request_spans) >= 9  # 60 events and the session task span
    assert receiver.deliveries == len(stored_span_ids(buffer_path))


def test_failed_batch_releases_claimed_batches(
    push: Push, receiver: Receiver, buffer_path: Path
) -> None:
    # The second request of a claim fails. The batches claimed with it are released
    # unsent and sent after the backoff, so no span reaches the receiver twice.
    push(batch_size=5)
    record_calls(40)
    assert dexcost.flush(timeout=10)
    receiver.faults.extend([("slow", 0), ("status", 503)])
    receiver.up()
    deliver(receiver, buffer_path)
    assert 503 in receiver.statuses()
    assert max(receiver.request_spans) <= 5
    assert receiver.deliveries == len(stored_span_ids(buffer_path))


def test_delivered_rows_marked_when_claim_fails(
    push: Push, receiver: Receiver, buffer_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The claim that would mark the first batch synced fails once. The rows are still
    # marked at the end of the pass, so they are not sent a second time.
    monkeypatch.setattr(errors, "RAISE_INTERNAL_ERRORS", False)
    original = Buffer.claim_pending
    failed: list[int] = []

    def claim_pending(buffer: Buffer, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
        synced = kwargs.get("synced") or ()
        if synced and not failed:
            failed.append(len(synced))  # type: ignore[arg-type]
            raise sqlite3.OperationalError("database is locked")
        return original(buffer, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Buffer, "claim_pending", claim_pending)
    push(batch_size=5)
    record_calls(40)
    assert dexcost.flush(timeout=10)
    receiver.up()
    deliver(receiver, buffer_path)
    assert failed  # a claim that carried delivered rows failed
    assert receiver.deliveries == len(stored_span_ids(buffer_path))


def test_failed_release_does_not_stall_worker(
    push: Push, receiver: Receiver, buffer_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The slow first request lets the claiming thread fill the queue. The second request
    # fails, and releasing the next queued batch raises. The sending thread must keep
    # emptying the queue, or the claiming thread waits on it for ever.
    monkeypatch.setattr(errors, "RAISE_INTERNAL_ERRORS", False)
    monkeypatch.setattr(worker, "CLAIM_BATCHES", 6)
    monkeypatch.setattr(worker, "LEASE_SECONDS", 1.0)
    original = Buffer.release
    releases: list[int] = []

    def release(buffer: Buffer, ids: Sequence[int], owner: str) -> None:
        releases.append(len(ids))
        if len(releases) == 2:
            raise sqlite3.OperationalError("database is locked")
        original(buffer, ids, owner)

    monkeypatch.setattr(Buffer, "release", release)
    push(batch_size=5)
    record_calls(40)
    assert dexcost.flush(timeout=10)
    receiver.faults.extend([("slow", 0.3), ("status", 503)])
    receiver.up()
    deliver(receiver, buffer_path)
    assert len(releases) >= 2
    assert receiver.deliveries == len(stored_span_ids(buffer_path))


def test_worker_marks_rows_synced_after_2xx(
    push: Push, receiver: Receiver, buffer_path: Path
) -> None:
    receiver.up()
    push()
    record_calls(3)
    deliver(receiver, buffer_path)
    assert wait_until(lambda: set(sync_states(buffer_path)) == {SYNC_SYNCED})


def test_worker_sends_otlp_headers(push: Push, receiver: Receiver, buffer_path: Path) -> None:
    receiver.up()
    push()
    record_calls(1)
    deliver(receiver, buffer_path)
    headers = receiver.requests[0][2]
    assert (
        headers["Content-Type"],
        headers["Authorization"],
        headers["User-Agent"],
    ) == ("application/x-protobuf", "Bearer dx_test_" + "k" * 24, f"dexcost/{dexcost.__version__}")


def test_worker_gzips_large_batches(push: Push, receiver: Receiver, buffer_path: Path) -> None:
    receiver.up()
    push(batch_size=50)
    record_calls(50)
    deliver(receiver, buffer_path)
    assert any(headers.get("Content-Encoding") == "gzip" for _, _, headers in receiver.requests)


def test_worker_delivers_after_receiver_comes_up(
    push: Push, receiver: Receiver, buffer_path: Path
) -> None:
    push()
    record_calls(10)
    assert wait_until(lambda: "ConnectionRefusedError" in (last_error(buffer_path) or ""), 5)
    receiver.up()
    deliver(receiver, buffer_path)


def test_worker_retries_server_errors(push: Push, receiver: Receiver, buffer_path: Path) -> None:
    receiver.faults.extend([("status", 500), ("status", 502), ("status", 503)])
    receiver.up()
    push()
    record_calls(10)
    deliver(receiver, buffer_path)
    assert receiver.statuses()[:3] == [500, 502, 503]


def test_stored_sync_error_has_no_retry_delay(
    push: Push, receiver: Receiver, buffer_path: Path
) -> None:
    """dexcost status shows the stored error later, when a retry delay means nothing."""
    receiver.faults.extend([("status", 503)] * 50)
    receiver.up()
    push()
    record_calls(3)
    assert wait_until(lambda: last_error(buffer_path) is not None, 5)
    error = last_error(buffer_path) or ""
    assert "HTTP 503" in error
    assert "retrying" not in error


def test_worker_honours_retry_after_seconds(
    push: Push, receiver: Receiver, buffer_path: Path
) -> None:
    receiver.faults.append(("retry_after", 429, "1"))
    receiver.up()
    push()
    record_calls(5)
    deliver(receiver, buffer_path)
    first, second = receiver.requests[0][0], receiver.requests[1][0]
    assert second - first >= 0.95


def test_worker_honours_retry_after_date(push: Push, receiver: Receiver, buffer_path: Path) -> None:
    # The date is made when the 503 is sent. An HTTP date has whole seconds, so the
    # requested wait is between 2 and 3 seconds, and the margin absorbs a slow machine.
    def retry_date() -> str:
        return formatdate(time.time() + 3, usegmt=True)

    receiver.faults.append(("retry_after", 503, retry_date))
    receiver.up()
    push()
    record_calls(5)
    deliver(receiver, buffer_path)
    first, second = receiver.requests[0][0], receiver.requests[1][0]
    assert second - first >= 1.5


def test_worker_retries_slow_responses_past_timeout(
    push: Push, receiver: Receiver, buffer_path: Path
) -> None:
    # The receiver keeps the spans but responds after the client's 0.5 s timeout, so
    # the batch is sent again with the same span ids and deduplicated.
    receiver.faults.extend([("slow", 1.0), ("slow", 1.0)])
    receiver.up()
    push()
    record_calls(10)
    deliver(receiver, buffer_path)
    assert receiver.deliveries > len(stored_span_ids(buffer_path))


def test_worker_retries_connection_reset_mid_request(
    push: Push, receiver: Receiver, buffer_path: Path
) -> None:
    receiver.faults.extend([("reset",), ("reset",), ("reset",)])
    receiver.up()
    push()
    record_calls(10)
    deliver(receiver, buffer_path)
    assert receiver.statuses()[:3] == [0, 0, 0]


def last_error(path: Path) -> str | None:
    with closing(sqlite3.connect(path)) as connection:
        row = connection.execute(
            "SELECT value FROM sync_state WHERE key = 'last_sync_error'"
        ).fetchone()
    return None if row is None else row[0]


def test_worker_stops_on_unauthorized_key(
    push: Push, receiver: Receiver, buffer_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.faults.extend([("status", 401)] * 5)
    receiver.up()
    with caplog.at_level(logging.ERROR, logger="dexcost"):
        push()
        record_calls(5)
        assert wait_until(lambda: last_error(buffer_path) is not None, 5)
        dexcost.flush()
        record_calls(5)
        dexcost.shutdown()
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "dx_test_ API key" in errors[0]
    assert "k" * 8 not in errors[0]
    assert receiver.statuses() == [401]
    assert "HTTP 401" in (last_error(buffer_path) or "")
    assert len(stored_events(buffer_path)) == 10


def test_worker_isolates_poisoned_event(push: Push, receiver: Receiver, buffer_path: Path) -> None:
    receiver.up()
    push(batch_size=16, flush_interval=5.0)
    record_calls(7)
    record_calls(1, model=POISON_MODEL)
    record_calls(8)
    dexcost.flush()
    assert wait_until(lambda: sync_states(buffer_path).get(SYNC_FAILED) == 1)
    events = stored_events(buffer_path)
    assert wait_until(lambda: len(receiver.event_ids()) == len(events) - 1)
    assert receiver.event_cost() == Decimal("0.00036") * 15


def test_poisoned_event_keeps_rejection_reason(
    push: Push, receiver: Receiver, buffer_path: Path
) -> None:
    receiver.up()
    push()
    record_calls(1, model=POISON_MODEL)
    dexcost.flush()
    assert wait_until(lambda: sync_states(buffer_path).get(SYNC_FAILED) == 1)
    with closing(sqlite3.connect(buffer_path)) as connection:
        (reason,) = connection.execute(
            "SELECT sync_error FROM spans WHERE sync_state = ?", (SYNC_FAILED,)
        ).fetchone()
    assert reason == "HTTP 400: poisoned event refused"


def test_partial_success_is_counted_not_retried(
    push: Push, receiver: Receiver, buffer_path: Path
) -> None:
    receiver.faults.append(("partial", 2, "cost too large"))
    receiver.up()
    push()
    record_calls(4)
    deliver(receiver, buffer_path)
    assert wait_until(lambda: "rejected 2 cost events" in (last_error(buffer_path) or ""))
    with dexcost.buffer.Buffer.open(buffer_path) as buffer:
        assert buffer.counters()["rejected_events"] == 2


def test_shutdown_flushes_within_timeout(push: Push, receiver: Receiver, buffer_path: Path) -> None:
    receiver.up()
    push(flush_interval=60.0)
    record_calls(5)
    dexcost.shutdown(timeout=3.0)
    assert_receiver_matches_buffer(receiver, buffer_path)
    assert len(receiver.event_ids()) == 5


def test_shutdown_is_bounded_when_receiver_is_down(
    push: Push, receiver: Receiver, buffer_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker, "BACKOFF_BASE_SECONDS", 30.0)
    monkeypatch.setattr(worker, "BACKOFF_CAP_SECONDS", 30.0)
    push(flush_interval=60.0)
    record_calls(5)
    started = time.monotonic()
    dexcost.shutdown(timeout=1.0)
    assert time.monotonic() - started < 2.0
    assert len(stored_events(buffer_path)) == 5


def test_evicted_count_travels_on_the_wire(
    push: Push, receiver: Receiver, buffer_path: Path
) -> None:
    with dexcost.buffer.Buffer.open(buffer_path) as buffer:
        buffer.add_counter("evicted_events", 7)
    receiver.up()
    push()
    record_calls(1)
    deliver(receiver, buffer_path)
    assert receiver.resources[0][worker.EVICTED_ATTRIBUTE] == 7


def test_gzip_body_is_valid(receiver: Receiver) -> None:
    from dexcost.sync.sender import OTLPSender

    receiver.up()
    sender = OTLPSender(receiver.endpoint, "dx_test_" + "k" * 24)
    response = sender.post(b"", 2.0)
    sender.close()
    assert (response.status, gzip.decompress(gzip.compress(b"x"))) == (200, b"x")
