"""Buffer methods the sync worker uses: leases, outcomes, counts and the row cap."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dexcost.buffer import (
    EVICTED_EVENTS,
    SYNC_FAILED,
    SYNC_PENDING,
    SYNC_SYNCED,
    Buffer,
)


def make_spans(count: int) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("dexcost")
    for index in range(count):
        with tracer.start_as_current_span(f"call {index}") as span:
            span.set_attribute("dexcost.event_type", "llm_call")
            span.set_attribute("dexcost.cost_usd", "0.00036")
    return list(exporter.get_finished_spans())


@pytest.fixture
def buffer(tmp_path: Path) -> Iterator[Buffer]:
    with Buffer.open(tmp_path / "buffer.db") as opened:
        opened.insert_spans(make_spans(10))
        yield opened


def states(buffer: Buffer) -> list[int]:
    with closing(sqlite3.connect(buffer.path)) as connection:
        rows = connection.execute("SELECT sync_state FROM spans ORDER BY id")
        return [state for (state,) in rows]


def ids_of(rows: list[tuple[object, ...]]) -> list[int]:
    return [int(row[0]) for row in rows]  # type: ignore[call-overload]


def test_claim_returns_oldest_rows(buffer: Buffer) -> None:
    assert ids_of(buffer.claim_pending("a", 3, 60)) == [1, 2, 3]


def test_claim_skips_rows_leased_by_another(buffer: Buffer) -> None:
    buffer.claim_pending("a", 4, 60)
    assert ids_of(buffer.claim_pending("b", 3, 60)) == [5, 6, 7]


def test_claim_takes_rows_of_expired_lease(buffer: Buffer) -> None:
    buffer.claim_pending("a", 4, 0.05)
    time.sleep(0.1)
    assert ids_of(buffer.claim_pending("b", 2, 60)) == [1, 2]


def test_release_returns_rows_to_pool(buffer: Buffer) -> None:
    buffer.claim_pending("a", 4, 60)
    buffer.release([1, 2], "a")
    assert ids_of(buffer.claim_pending("b", 3, 60)) == [1, 2, 5]


def test_release_ignores_other_owner_lease(buffer: Buffer) -> None:
    buffer.claim_pending("a", 4, 60)
    buffer.release([1, 2], "b")
    assert ids_of(buffer.claim_pending("b", 1, 60)) == [5]


def test_mark_synced_sets_state_and_time(buffer: Buffer) -> None:
    buffer.mark_synced([1, 2], synced_at_ns=1_700_000_000_000_000_000)
    assert (states(buffer)[:3], buffer.sync_state()["last_sync_at"]) == (
        [SYNC_SYNCED, SYNC_SYNCED, SYNC_PENDING],
        "2023-11-14T22:13:20.000Z",
    )


def test_mark_synced_clears_last_error(buffer: Buffer) -> None:
    buffer.set_sync_state("last_sync_error", "HTTP 503")
    buffer.mark_synced([1])
    assert buffer.sync_state()["last_sync_error"] is None


def test_mark_failed_keeps_row_and_reason(buffer: Buffer) -> None:
    buffer.mark_failed([3], "HTTP 400: bad")
    with closing(sqlite3.connect(buffer.path)) as connection:
        row = connection.execute("SELECT sync_state, sync_error FROM spans WHERE id = 3").fetchone()
    assert row == (SYNC_FAILED, "HTTP 400: bad")


def test_failed_rows_are_never_claimed(buffer: Buffer) -> None:
    buffer.mark_failed([1], "HTTP 400")
    assert 1 not in ids_of(buffer.claim_pending("a", 10, 60))


def test_sync_counts_by_state(buffer: Buffer) -> None:
    buffer.mark_synced([1, 2])
    buffer.mark_failed([3], "HTTP 400")
    assert buffer.sync_counts() == {"pending": 7, "synced": 2, "failed": 1}


def test_count_pending_stops_at_limit(buffer: Buffer) -> None:
    assert (buffer.count_pending(4), buffer.count_pending()) == (4, 10)


def test_row_cap_prunes_synced_rows_first(buffer: Buffer) -> None:
    buffer.mark_synced([1, 2, 3, 4, 5])
    evicted = buffer.enforce_max_rows(8, keep_fraction=0.75)
    assert (evicted, buffer.sync_counts()["pending"], buffer.sync_counts()["synced"]) == (0, 5, 1)


def test_row_cap_counts_evicted_pending_rows(buffer: Buffer) -> None:
    evicted = buffer.enforce_max_rows(5, keep_fraction=0.6)
    assert (evicted, buffer.counters()[EVICTED_EVENTS]) == (7, 7)


def test_row_cap_under_limit_deletes_nothing(buffer: Buffer) -> None:
    assert (buffer.enforce_max_rows(10), buffer.sync_counts()["pending"]) == (0, 10)


def test_row_cap_rejects_zero(buffer: Buffer) -> None:
    with pytest.raises(ValueError, match="max_rows"):
        buffer.enforce_max_rows(0)


def test_migration_adds_sync_columns_to_version_2(tmp_path: Path) -> None:
    from dexcost.buffer_schema import MIGRATIONS

    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as connection:
        for migration in MIGRATIONS[:2]:
            for statement in migration:
                connection.execute(statement)
        connection.execute(
            "INSERT INTO spans (trace_id, span_id, name, kind, status_code, attributes, "
            "resource, created_at) VALUES ('t', 's', 'chat', 2, 0, '{}', '{}', 1)"
        )
        connection.execute("PRAGMA user_version = 2")
        connection.commit()
    with Buffer.open(path) as opened:
        rows = opened.claim_pending("a", 10, 60)
    assert [(row[1], row[2]) for row in rows] == [("t", "s")]


def test_status_shows_evicted_and_rejected(buffer: Buffer) -> None:
    from dexcost.status import collect_status, render_status_text

    buffer.add_counter(EVICTED_EVENTS, 4)
    buffer.add_counter("rejected_events", 2)
    text = render_status_text(collect_status(buffer.path))
    assert ("events evicted unsent:    4" in text, "events rejected upstream: 2" in text) == (
        True,
        True,
    )


def leases(buffer: Buffer) -> list[tuple[int, int, str]]:
    with closing(sqlite3.connect(buffer.path)) as connection:
        rows = connection.execute(
            "SELECT first_id, last_id, owner FROM sync_leases ORDER BY first_id"
        ).fetchall()
    return [(int(first), int(last), str(owner)) for first, last, owner in rows]


def test_claim_writes_lease_not_rows(buffer: Buffer) -> None:
    buffer.claim_pending("a", 4, 60)
    with closing(sqlite3.connect(buffer.path)) as connection:
        leased_rows = connection.execute(
            "SELECT COUNT(*) FROM spans WHERE lease_owner IS NOT NULL"
        ).fetchone()[0]
    assert leases(buffer) == [(1, 4, "a")]
    assert leased_rows == 0


def test_claim_spans_gaps_between_leases(buffer: Buffer) -> None:
    buffer.claim_pending("a", 6, 60)
    buffer.release([1, 2], "a")
    buffer.claim_pending("b", 4, 60)
    assert leases(buffer) == [(1, 2, "b"), (3, 6, "a"), (7, 8, "b")]


def test_release_splits_lease_range(buffer: Buffer) -> None:
    buffer.claim_pending("a", 6, 60)
    buffer.release([3, 4], "a")
    assert leases(buffer) == [(1, 2, "a"), (5, 6, "a")]


def test_mark_synced_ends_finished_lease(buffer: Buffer) -> None:
    buffer.claim_pending("a", 4, 60)
    buffer.mark_synced([1, 2, 3, 4], owner="a")
    assert leases(buffer) == []


def test_partly_synced_lease_keeps_rows(buffer: Buffer) -> None:
    buffer.claim_pending("a", 4, 60)
    buffer.mark_synced([1, 2], owner="a")
    claimed = ids_of(buffer.claim_pending("b", 2, 60))
    assert claimed == [5, 6]
    assert leases(buffer) == [(1, 4, "a"), (5, 6, "b")]


def test_mark_failed_ends_finished_lease(buffer: Buffer) -> None:
    buffer.claim_pending("a", 2, 60)
    buffer.mark_synced([1], owner="a")
    buffer.mark_failed([2], "HTTP 400", owner="a")
    assert leases(buffer) == []


def test_claim_deletes_expired_lease(buffer: Buffer) -> None:
    buffer.claim_pending("a", 4, 0.05)
    time.sleep(0.1)
    buffer.claim_pending("b", 1, 60)
    assert leases(buffer) == [(1, 1, "b")]


def test_migration_keeps_pending_rows(tmp_path: Path) -> None:
    from dexcost.buffer_schema import MIGRATIONS

    path = tmp_path / "v3.db"
    with closing(sqlite3.connect(path)) as connection:
        for migration in MIGRATIONS[:3]:
            for statement in migration:
                connection.execute(statement)
        connection.execute(
            "INSERT INTO spans (trace_id, span_id, name, kind, status_code, attributes, "
            "resource, created_at, lease_owner, lease_expires_ns) "
            "VALUES ('t', 's', 'chat', 2, 0, '{}', '{}', 1, 'old', 1)"
        )
        connection.execute("PRAGMA user_version = 3")
        connection.commit()
    with Buffer.open(path) as opened:
        rows = opened.claim_pending("a", 10, 60)
        assert [(row[1], row[2]) for row in rows] == [("t", "s")]
        assert leases(opened) == [(1, 1, "a")]
