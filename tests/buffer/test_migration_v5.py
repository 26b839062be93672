"""Moving a version 4 buffer to the end-time key keeps every row, id, sync state and counter."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from dexcost import buffer as buffer_module
from dexcost import buffer_schema
from dexcost.buffer import SYNC_FAILED, SYNC_SYNCED, Buffer, BufferSchemaError
from dexcost.buffer_schema import INSERT_SPAN_SQL, MIGRATIONS, span_to_row

from .spans import END_NS, llm_span

V4 = 4
LEASE_EXPIRES_NS = 4_102_444_800_000_000_000  # 2100-01-01, so the lease is still held


def build_v4_file(path: Path) -> None:
    """Write a version 4 buffer with the v4 statements: pending, synced and failed rows.

    It also holds a span without an end time, a lease, counters and sync bookkeeping.
    """
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("BEGIN")
        for migration in MIGRATIONS[:V4]:
            for statement in migration:
                connection.execute(statement)
        spans = [llm_span(span_id, end_ns=END_NS + span_id) for span_id in range(1, 9)]
        spans.append(llm_span(99, end_ns=None))
        for span in spans:
            connection.execute(INSERT_SPAN_SQL, span_to_row(span, END_NS))
        connection.execute(
            "UPDATE spans SET sync_state = ?, synced_at = ? WHERE id <= 3",
            (SYNC_SYNCED, END_NS + 10),
        )
        connection.execute(
            "UPDATE spans SET sync_state = ?, sync_error = 'HTTP 400: bad span' WHERE id = 4",
            (SYNC_FAILED,),
        )
        # A row leased by a release that wrote the per-row lease columns.
        connection.execute(
            "UPDATE spans SET lease_owner = 'old', lease_expires_ns = 5 WHERE id = 5"
        )
        connection.execute(
            "INSERT INTO sync_leases (first_id, last_id, owner, expires_ns) "
            "VALUES (6, 7, 'worker-a', ?)",
            (LEASE_EXPIRES_NS,),
        )
        connection.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?)",
            [("dropped_events", 12), ("evicted_events", 3)],
        )
        connection.execute(
            "INSERT INTO sync_state (key, value, updated_at) "
            "VALUES ('last_sync_at', '2026-01-01T00:00:00.000Z', 1)"
        )
        connection.execute(f"PRAGMA user_version = {V4}")
        connection.execute("COMMIT")


def dump(path: Path, table: str, order: str) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(path)) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute(f"SELECT * FROM {table} ORDER BY {order}")]


def migrated(tmp_path: Path) -> tuple[Path, dict[str, list[dict[str, Any]]]]:
    """Build a v4 file, read every table, then open it with this release."""
    path = tmp_path / "v4.db"
    build_v4_file(path)
    before = {
        "spans": dump(path, "spans", "id"),
        "counters": dump(path, "counters", "name"),
        "sync_state": dump(path, "sync_state", "key"),
        "sync_leases": dump(path, "sync_leases", "first_id"),
    }
    Buffer.open(path).close()
    return path, before


def test_migration_reaches_the_current_version(tmp_path: Path) -> None:
    path, _ = migrated(tmp_path)
    with closing(sqlite3.connect(path)) as connection:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    assert version == buffer_schema.SCHEMA_VERSION


def test_migration_keeps_every_span_row_and_column(tmp_path: Path) -> None:
    path, before = migrated(tmp_path)
    assert dump(path, "spans", "id") == before["spans"]


@pytest.mark.parametrize("table,order", [("counters", "name"), ("sync_state", "key")])
def test_migration_keeps_bookkeeping_tables(tmp_path: Path, table: str, order: str) -> None:
    path, before = migrated(tmp_path)
    assert dump(path, table, order) == before[table]


def test_migration_keeps_leases(tmp_path: Path) -> None:
    path, before = migrated(tmp_path)
    assert dump(path, "sync_leases", "first_id") == before["sync_leases"]


def test_migration_keeps_sync_counts(tmp_path: Path) -> None:
    path, _ = migrated(tmp_path)
    with Buffer.open(path) as opened:
        assert opened.sync_counts() == {"pending": 5, "synced": 3, "failed": 1}


def test_migrated_rows_claimed_outside_leases(tmp_path: Path) -> None:
    path, _ = migrated(tmp_path)
    with Buffer.open(path) as opened:
        claimed = opened.claim_pending("worker-b", 10, 60)
    assert [row[0] for row in claimed] == [5, 8, 9]


def test_migrated_spans_are_still_recognized_on_retry(tmp_path: Path) -> None:
    path, _ = migrated(tmp_path)
    retried = [llm_span(span_id, end_ns=END_NS + span_id) for span_id in range(1, 9)]
    retried.append(llm_span(99, end_ns=None))
    with Buffer.open(path) as opened:
        assert opened.insert_spans(retried) == 0


def test_new_row_after_migration_gets_the_next_id(tmp_path: Path) -> None:
    path, _ = migrated(tmp_path)
    with Buffer.open(path) as opened:
        opened.insert_spans([llm_span(500, end_ns=END_NS + 500)])
    assert dump(path, "spans", "id")[-1]["id"] == 10


def index_names(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as connection:
        rows = connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'spans'"
        ).fetchall()
    return {str(name) for (name,) in rows}


def test_migration_leaves_the_new_indexes_only(tmp_path: Path) -> None:
    path, _ = migrated(tmp_path)
    assert index_names(path) == {
        "spans_end_ids",
        "spans_unended_ids",
        "spans_sync_state",
        "spans_event_type_end",
    }


def test_new_file_matches_migrated_indexes(tmp_path: Path) -> None:
    migrated_path, _ = migrated(tmp_path)
    new_path = tmp_path / "new.db"
    Buffer.open(new_path).close()
    assert index_names(new_path) == index_names(migrated_path)


def test_migrated_file_passes_integrity_check(tmp_path: Path) -> None:
    path, _ = migrated(tmp_path)
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_connection_opened_before_the_migration_keeps_storing(tmp_path: Path) -> None:
    # A process running the previous release has the file open while this one migrates
    # it. Its prepared INSERT is re-prepared by SQLite against the rebuilt table.
    path = tmp_path / "v4.db"
    build_v4_file(path)
    with closing(sqlite3.connect(path, isolation_level=None)) as older:
        older.execute(INSERT_SPAN_SQL, span_to_row(llm_span(300, end_ns=END_NS + 300), END_NS))
        Buffer.open(path).close()
        older.execute(INSERT_SPAN_SQL, span_to_row(llm_span(301, end_ns=END_NS + 301), END_NS))
        older.execute(INSERT_SPAN_SQL, span_to_row(llm_span(300, end_ns=END_NS + 300), END_NS))
    assert [row["span_id"] for row in dump(path, "spans", "id")[-2:]] == [
        f"{300:016x}",
        f"{301:016x}",
    ]


def test_version_4_release_rejects_migrated_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = migrated(tmp_path)
    monkeypatch.setattr(buffer_schema, "SCHEMA_VERSION", V4)
    with pytest.raises(BufferSchemaError, match=f"schema version {V4 + 1}.*up to {V4}"):
        Buffer.open(path)


def test_open_waits_for_long_migration_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A process rebuilding a large table holds the write lock for longer than one busy
    # timeout. Opening the file must wait for it instead of failing.
    path = tmp_path / "v4.db"
    build_v4_file(path)
    monkeypatch.setattr(buffer_module, "BUSY_TIMEOUT_SECONDS", 0.05)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, holder.execute, args=("ROLLBACK",))
    release.start()
    try:
        Buffer.open(path).close()
    finally:
        release.join()
        holder.close()
    with closing(sqlite3.connect(path)) as connection:
        version = buffer_schema.read_schema_version(connection)
    assert version == buffer_schema.SCHEMA_VERSION


def _version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as connection:
        return int(connection.execute("PRAGMA user_version").fetchone()[0])


def test_init_rebuilds_before_returning(tmp_path: Path) -> None:
    """A process that exits right after init() still stores its events in the new table."""
    import dexcost

    path = tmp_path / "v4.db"
    build_v4_file(path)
    dexcost.init(storage="local", buffer_path=str(path), auto_instrument=[])
    try:
        migrated_at_init = _version(path)
        dexcost.record_cost("maps", "0.005")
        assert dexcost.flush(timeout=30)
    finally:
        dexcost.shutdown()

    assert migrated_at_init == len(MIGRATIONS)
    assert len(dump(path, "spans", "id")) == 11  # nine from version 4, the event and its task
