"""Tests for the SQLite span buffer, using real spans from a private TracerProvider."""

from __future__ import annotations

import json
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from dexcost import buffer as buffer_module
from dexcost import errors, semconv
from dexcost.buffer import (
    DROPPED_EVENTS,
    INTERNAL_ERRORS,
    SCHEMA_VERSION,
    SYNC_PENDING,
    Buffer,
    BufferOpenError,
    BufferSchemaError,
    default_buffer_path,
    fallback_buffer_path,
    resolve_buffer_path,
    span_to_row,
)
from dexcost.buffer_schema import SPAN_COLUMNS


class CollectingProcessor(SpanProcessor):
    """Keeps every finished span in memory, in the order spans end."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


@pytest.fixture
def tracing() -> Iterator[tuple[Tracer, list[ReadableSpan]]]:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "checkout-api"}), shutdown_on_exit=False
    )
    processor = CollectingProcessor()
    provider.add_span_processor(processor)
    yield provider.get_tracer(semconv.SCOPE_NAME, "0.1.0"), processor.spans
    provider.shutdown()


LLM_ATTRIBUTES: dict[str, Any] = {
    semconv.EVENT_TYPE: semconv.LLM_CALL,
    semconv.COST_USD: "0.00036",
    semconv.COST_STATUS: semconv.PRICED,
    semconv.GEN_AI_PROVIDER_NAME: "openai",
    semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
    semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
    semconv.GEN_AI_INPUT_TOKENS: 1200,
    semconv.GEN_AI_OUTPUT_TOKENS: 300,
    semconv.GEN_AI_CACHE_READ_TOKENS: 200,
    semconv.GEN_AI_REASONING_TOKENS: 64,
    semconv.CUSTOMER_ID: "acme",
    semconv.PROJECT_ID: "proj-9",
    semconv.AGENT: "triage",
    semconv.TASK_ID: "task-1",
    semconv.TASK_TYPE: "support_ticket",
}

TASK_ATTRIBUTES: dict[str, Any] = {
    semconv.EVENT_TYPE: semconv.TASK,
    semconv.TASK_ID: "task-1",
    semconv.TASK_TYPE: "support_ticket",
    semconv.TASK_STATUS: "completed",
    semconv.TASK_COST_USD: "0.00123",
    semconv.TASK_EVENT_COUNT: 2,
    semconv.CUSTOMER_ID: "acme",
}


def record_task(tracer: Tracer) -> tuple[ReadableSpan, ReadableSpan]:
    """Record a task span with one llm_call child, and return (llm_span, task_span)."""
    with (
        tracer.start_as_current_span("task support_ticket", attributes=TASK_ATTRIBUTES) as task,
        tracer.start_as_current_span(
            "chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=LLM_ATTRIBUTES
        ) as llm,
    ):
        llm.set_status(Status(StatusCode.OK))
    assert isinstance(llm, ReadableSpan)
    assert isinstance(task, ReadableSpan)
    return llm, task


def record_span(tracer: Tracer, attributes: dict[str, Any]) -> ReadableSpan:
    with tracer.start_as_current_span("operation", attributes=attributes) as span:
        pass
    assert isinstance(span, ReadableSpan)
    return span


def read_rows(path: Path) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(path)) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute("SELECT * FROM spans ORDER BY id")]


def read_pragma(path: Path, name: str) -> Any:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(f"PRAGMA {name}").fetchone()[0]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "buffer.db"


@pytest.fixture
def buffer(db_path: Path) -> Iterator[Buffer]:
    opened = Buffer.open(db_path)
    yield opened
    opened.close()


def store_one(buffer: Buffer, db_path: Path, span: ReadableSpan) -> dict[str, Any]:
    buffer.insert_spans([span])
    return read_rows(db_path)[0]


# --- paths ---


def test_default_path_is_under_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_buffer_path() == tmp_path / ".dexcost" / "buffer.db"


def test_explicit_path_creates_parent_folders(tmp_path: Path) -> None:
    path = resolve_buffer_path(str(tmp_path / "a" / "b" / "events.db"))
    assert path.parent.is_dir()


def test_explicit_path_is_returned_as_given(tmp_path: Path) -> None:
    expected_path = tmp_path / "events.db"
    assert resolve_buffer_path(str(expected_path)) == expected_path


def test_explicit_unwritable_path_raises_with_path(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a regular file")
    requested = blocker / "events.db"
    with pytest.raises(ValueError, match=re.escape(str(requested))):
        resolve_buffer_path(str(requested))


def test_explicit_folder_path_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is a folder"):
        resolve_buffer_path(str(tmp_path))


def test_default_path_used_when_writable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_buffer_path(None) == tmp_path / ".dexcost" / "buffer.db"


@pytest.fixture
def unwritable_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point HOME below a regular file, which no user (not even root) can create folders in."""
    blocker = tmp_path / "home-file"
    blocker.write_text("a regular file")
    monkeypatch.setenv("HOME", str(blocker / "home"))
    temp_root = tmp_path / "tmp"
    temp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_root))
    return temp_root


def test_unwritable_home_falls_back_to_temp(unwritable_home: Path) -> None:
    with pytest.warns(RuntimeWarning):
        path = resolve_buffer_path(None)
    assert path == fallback_buffer_path()


def test_fallback_is_under_temp_folder(unwritable_home: Path) -> None:
    with pytest.warns(RuntimeWarning):
        path = resolve_buffer_path(None)
    assert path.parent.parent == unwritable_home


def test_fallback_warning_names_both_paths(unwritable_home: Path) -> None:
    with pytest.warns(RuntimeWarning) as record:
        path = resolve_buffer_path(None)
    message = str(record[0].message)
    assert str(default_buffer_path()) in message
    assert str(path) in message
    assert "buffer_path=" in message


def test_fallback_warns_once(unwritable_home: Path) -> None:
    with pytest.warns(RuntimeWarning) as record:
        resolve_buffer_path(None)
    assert len(record) == 1


def test_unwritable_home_and_temp_raises(
    unwritable_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = unwritable_home / "temp-file"
    blocker.write_text("a regular file")
    monkeypatch.setattr(tempfile, "tempdir", str(blocker))
    with pytest.raises(ValueError, match="buffer_path="):
        resolve_buffer_path(None)


# --- span conversion ---


def test_span_to_row_matches_columns(tracing: tuple[Tracer, list[ReadableSpan]]) -> None:
    llm, _ = record_task(tracing[0])
    assert len(span_to_row(llm)) == len(SPAN_COLUMNS)


def test_span_to_row_uses_given_store_time(tracing: tuple[Tracer, list[ReadableSpan]]) -> None:
    llm, _ = record_task(tracing[0])
    row = dict(zip(SPAN_COLUMNS, span_to_row(llm, stored_at_ns=42), strict=True))
    assert row["created_at"] == 42


def test_span_to_row_rejects_span_without_context() -> None:
    with pytest.raises(ValueError, match="no span context"):
        span_to_row(ReadableSpan(name="orphan"))


LLM_COLUMN_VALUES: dict[str, Any] = {
    "name": "chat gpt-4o-mini",
    "kind": SpanKind.CLIENT.value,
    "status_code": StatusCode.OK.value,
    "status_message": None,
    "event_type": "llm_call",
    "task_id": "task-1",
    "task_type": "support_ticket",
    "customer_id": "acme",
    "project_id": "proj-9",
    "agent": "triage",
    "cost_usd": "0.00036",
    "cost_status": "priced",
    "provider": "openai",
    "model": "gpt-4o-mini-2024-07-18",
    "service": None,
    "input_tokens": 1200,
    "output_tokens": 300,
    "cache_read_tokens": 200,
    "reasoning_tokens": 64,
    "scope_name": "dexcost",
    "scope_version": "0.1.0",
    "sync_state": SYNC_PENDING,
    "synced_at": None,
}


@pytest.mark.parametrize(("column", "expected"), LLM_COLUMN_VALUES.items())
def test_llm_span_column_round_trips(
    buffer: Buffer,
    db_path: Path,
    tracing: tuple[Tracer, list[ReadableSpan]],
    column: str,
    expected: Any,
) -> None:
    llm, _ = record_task(tracing[0])
    assert store_one(buffer, db_path, llm)[column] == expected


SPAN_DERIVED_VALUES: dict[str, Callable[[ReadableSpan, ReadableSpan], Any]] = {
    "trace_id": lambda llm, task: format(llm.context.trace_id, "032x"),
    "span_id": lambda llm, task: format(llm.context.span_id, "016x"),
    "parent_span_id": lambda llm, task: format(task.context.span_id, "016x"),
    "start_ns": lambda llm, task: llm.start_time,
    "end_ns": lambda llm, task: llm.end_time,
}


@pytest.mark.parametrize(("column", "expected_from"), SPAN_DERIVED_VALUES.items())
def test_llm_span_identity_round_trips(
    buffer: Buffer,
    db_path: Path,
    tracing: tuple[Tracer, list[ReadableSpan]],
    column: str,
    expected_from: Callable[[ReadableSpan, ReadableSpan], Any],
) -> None:
    llm, task = record_task(tracing[0])
    assert store_one(buffer, db_path, llm)[column] == expected_from(llm, task)


def test_trace_id_is_lowercase_hex(
    buffer: Buffer, db_path: Path, tracing: tuple[Tracer, list[ReadableSpan]]
) -> None:
    llm, _ = record_task(tracing[0])
    assert re.fullmatch(r"[0-9a-f]{32}", store_one(buffer, db_path, llm)["trace_id"])


def test_attributes_column_keeps_all_attributes(
    buffer: Buffer, db_path: Path, tracing: tuple[Tracer, list[ReadableSpan]]
) -> None:
    llm, _ = record_task(tracing[0])
    assert json.loads(store_one(buffer, db_path, llm)["attributes"]) == LLM_ATTRIBUTES


def test_resource_column_holds_resource_attributes(
    buffer: Buffer, db_path: Path, tracing: tuple[Tracer, list[ReadableSpan]]
) -> None:
    llm, _ = record_task(tracing[0])
    resource = json.loads(store_one(buffer, db_path, llm)["resource"])
    assert resource["service.name"] == "checkout-api"


def test_created_at_is_store_time(
    buffer: Buffer, db_path: Path, tracing: tuple[Tracer, list[ReadableSpan]]
) -> None:
    llm, _ = record_task(tracing[0])
    before = time.time_ns()
    created_at = store_one(buffer, db_path, llm)["created_at"]
    assert before <= created_at <= time.time_ns()


def test_root_span_has_no_parent(
    buffer: Buffer, db_path: Path, tracing: tuple[Tracer, list[ReadableSpan]]
) -> None:
    _, task = record_task(tracing[0])
    assert store_one(buffer, db_path, task)["parent_span_id"] is None


def test_task_span_cost_comes_from_task_cost(
    buffer: Buffer, db_path: Path, tracing: tuple[Tracer, list[ReadableSpan]]
) -> None:
    _, task = record_task(tracing[0])
    assert store_one(buffer, db_path, task)["cost_usd"] == "0.00123"


def test_model_falls_back_to_request_model(
    buffer: Buffer, db_path: Path, tracing: tuple[Tracer, list[ReadableSpan]]
) -> None:
    attributes = {**LLM_ATTRIBUTES}
    del attributes[semconv.GEN_AI_RESPONSE_MODEL]
    span = record_span(tracing[0], attributes)
    assert store_one(buffer, db_path, span)["model"] == "gpt-4o-mini"


def test_external_cost_stores_service(
    buffer: Buffer, db_path: Path, tracing: tuple[Tracer, list[ReadableSpan]]
) -> None:
    span = record_span(
        tracing[0],
        {
            semconv.EVENT_TYPE: semconv.EXTERNAL_COST,
            semconv.SERVICE: "twilio",
            semconv.COST_USD: "0.0079",
        },
    )
    assert store_one(buffer, db_path, span)["service"] == "twilio"


def test_cost_is_stored_as_text(
    buffer: Buffer, db_path: Path, tracing: tuple[Tracer, list[ReadableSpan]]
) -> None:
    span = record_span(tracing[0], {semconv.EVENT_TYPE: semconv.LLM_CALL, semconv.COST_USD: 0.1})
    buffer.insert_spans([span])
    with closing(sqlite3.connect(db_path)) as connection:
        stored = connection.execute("SELECT typeof(cost_usd), cost_usd FROM spans").fetchone()
    assert stored == ("text", "0.1")


def test_non_numeric_cost_is_stored_as_null(
    buffer: Buffer, db_path: Path, tracing: tuple[Tracer, list[ReadableSpan]]
) -> None:
    span = record_span(tracing[0], {semconv.COST_USD: "about a cent"})
    assert store_one(buffer, db_path, span)["cost_usd"] is None


def test_tuple_attribute_becomes_json_list(
    buffer: Buffer, db_path: Path, tracing: tuple[Tracer, list[ReadableSpan]]
) -> None:
    span = record_span(tracing[0], {"gen_ai.response.finish_reasons": ("stop", "length")})
    attributes = json.loads(store_one(buffer, db_path, span)["attributes"])
    assert attributes["gen_ai.response.finish_reasons"] == ["stop", "length"]


def test_error_status_message_is_stored(
    buffer: Buffer, db_path: Path, tracing: tuple[Tracer, list[ReadableSpan]]
) -> None:
    with tracing[0].start_as_current_span("chat", record_exception=False) as span:
        span.set_status(Status(StatusCode.ERROR, "rate limited"))
    assert isinstance(span, ReadableSpan)
    assert store_one(buffer, db_path, span)["status_message"] == "rate limited"


# --- inserting ---


def test_insert_returns_new_row_count(
    buffer: Buffer, tracing: tuple[Tracer, list[ReadableSpan]]
) -> None:
    assert buffer.insert_spans(record_task(tracing[0])) == 2


def test_insert_empty_batch_returns_zero(buffer: Buffer) -> None:
    assert buffer.insert_spans([]) == 0


def test_insert_many_counts_each_once(
    buffer: Buffer, db_path: Path, tracing: tuple[Tracer, list[ReadableSpan]]
) -> None:
    # 600 rows: one full statement and a short one, padded by repeating its last row.
    spans = [record_span(tracing[0], {"index": index}) for index in range(600)]
    assert buffer.insert_spans(spans) == 600
    assert len(read_rows(db_path)) == 600


def test_padded_statement_keeps_each_row(
    buffer: Buffer, db_path: Path, tracing: tuple[Tracer, list[ReadableSpan]]
) -> None:
    spans = [record_span(tracing[0], {"index": index}) for index in range(45)]
    buffer.insert_spans(spans)
    stored = sorted(json.loads(row["attributes"])["index"] for row in read_rows(db_path))
    assert stored == list(range(45))


def test_reinsert_returns_zero(buffer: Buffer, tracing: tuple[Tracer, list[ReadableSpan]]) -> None:
    spans = record_task(tracing[0])
    buffer.insert_spans(spans)
    assert buffer.insert_spans(spans) == 0


def test_reinsert_keeps_one_row_per_span(
    buffer: Buffer, db_path: Path, tracing: tuple[Tracer, list[ReadableSpan]]
) -> None:
    spans = record_task(tracing[0])
    buffer.insert_spans(spans)
    buffer.insert_spans(spans)
    assert len(read_rows(db_path)) == 2


def test_unconvertible_span_is_skipped(
    buffer: Buffer, tracing: tuple[Tracer, list[ReadableSpan]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(errors, "RAISE_INTERNAL_ERRORS", False)
    llm, _ = record_task(tracing[0])
    assert buffer.insert_spans([llm, ReadableSpan(name="orphan")]) == 1


def test_unconvertible_span_counts_internal_error(
    buffer: Buffer, tracing: tuple[Tracer, list[ReadableSpan]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(errors, "RAISE_INTERNAL_ERRORS", False)
    llm, _ = record_task(tracing[0])
    before = errors.internal_error_count()
    buffer.insert_spans([llm, ReadableSpan(name="orphan")])
    assert errors.internal_error_count() == before + 1


def test_unconvertible_span_raises_in_tests(buffer: Buffer) -> None:
    # conftest sets RAISE_INTERNAL_ERRORS, which turns contained errors into failures.
    with pytest.raises(ValueError, match="no span context"):
        buffer.insert_spans([ReadableSpan(name="orphan")])


def test_closed_buffer_rejects_inserts(
    buffer: Buffer, tracing: tuple[Tracer, list[ReadableSpan]]
) -> None:
    buffer.close()
    with pytest.raises(RuntimeError, match="closed"):
        buffer.insert_spans(record_task(tracing[0]))


def test_close_twice_is_harmless(buffer: Buffer) -> None:
    buffer.close()
    buffer.close()


# --- SQLite settings and schema ---


def test_buffer_uses_wal(buffer: Buffer, db_path: Path) -> None:
    assert read_pragma(db_path, "journal_mode") == "wal"


def test_schema_version_is_set(buffer: Buffer, db_path: Path) -> None:
    assert read_pragma(db_path, "user_version") == SCHEMA_VERSION


def traced_connect(statements: list[str]) -> Callable[..., sqlite3.Connection]:
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = real_connect(*args, **kwargs)
        connection.set_trace_callback(statements.append)
        return connection

    return connect


def test_reopen_does_not_migrate_again(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Buffer.open(db_path).close()
    statements: list[str] = []
    monkeypatch.setattr(sqlite3, "connect", traced_connect(statements))
    Buffer.open(db_path).close()
    assert not [sql for sql in statements if sql.lstrip().upper().startswith("CREATE")]


def test_reopen_keeps_rows(db_path: Path, tracing: tuple[Tracer, list[ReadableSpan]]) -> None:
    with Buffer.open(db_path) as first:
        first.insert_spans(record_task(tracing[0]))
    with Buffer.open(db_path):
        assert len(read_rows(db_path)) == 2


def test_newer_schema_raises(db_path: Path) -> None:
    with closing(sqlite3.connect(db_path)) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(BufferSchemaError, match=f"schema version {SCHEMA_VERSION + 1}"):
        Buffer.open(db_path)


def test_newer_schema_error_says_upgrade(db_path: Path) -> None:
    with closing(sqlite3.connect(db_path)) as connection:
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(BufferSchemaError, match="Upgrade dexcost"):
        Buffer.open(db_path)


def test_non_sqlite_file_raises_open_error(db_path: Path) -> None:
    db_path.write_bytes(b"this is not a database, just some text" * 100)
    with pytest.raises(BufferOpenError, match=re.escape(str(db_path))):
        Buffer.open(db_path)


# --- counters and sync bookkeeping ---


def test_counter_starts_from_delta(buffer: Buffer) -> None:
    buffer.add_counter(DROPPED_EVENTS, 3)
    assert buffer.counters() == {DROPPED_EVENTS: 3}


def test_counter_accumulates(buffer: Buffer) -> None:
    buffer.add_counter(DROPPED_EVENTS, 3)
    buffer.add_counter(DROPPED_EVENTS, 2)
    assert buffer.counters()[DROPPED_EVENTS] == 5


def test_counters_persist_across_reopen(db_path: Path) -> None:
    with Buffer.open(db_path) as first:
        first.add_counter(INTERNAL_ERRORS, 7)
    with Buffer.open(db_path) as second:
        assert second.counters()[INTERNAL_ERRORS] == 7


def test_counter_rejects_bool_delta(buffer: Buffer) -> None:
    with pytest.raises(TypeError, match="delta"):
        buffer.add_counter(DROPPED_EVENTS, True)


def test_counter_rejects_empty_name(buffer: Buffer) -> None:
    with pytest.raises(ValueError, match="counter name"):
        buffer.add_counter("", 1)


def test_sync_state_value_is_replaced(buffer: Buffer, db_path: Path) -> None:
    buffer.set_sync_state("last_sync_error", "HTTP 503")
    buffer.set_sync_state("last_sync_error", None)
    with closing(sqlite3.connect(db_path)) as connection:
        rows = connection.execute("SELECT key, value FROM sync_state").fetchall()
    assert rows == [("last_sync_error", None)]


# --- OpenTelemetry suppression ---


def suppression_flags(statements_seen: list[object]) -> Callable[[str], None]:
    def record(_sql: str) -> None:
        statements_seen.append(otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY))

    return record


def test_insert_runs_with_instrumentation_suppressed(
    buffer: Buffer, tracing: tuple[Tracer, list[ReadableSpan]]
) -> None:
    flags: list[object] = []
    connection = buffer._open_connection()
    connection.set_trace_callback(suppression_flags(flags))
    buffer.insert_spans(record_task(tracing[0]))
    connection.set_trace_callback(None)
    assert flags
    assert all(flag is True for flag in flags)


def test_open_runs_with_instrumentation_suppressed(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags: list[object] = []
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        flags.append(otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY))
        connection = real_connect(*args, **kwargs)
        connection.set_trace_callback(suppression_flags(flags))
        return connection

    monkeypatch.setattr(sqlite3, "connect", connect)
    Buffer.open(db_path).close()
    assert flags
    assert all(flag is True for flag in flags)


def test_suppression_ends_after_insert(
    buffer: Buffer, tracing: tuple[Tracer, list[ReadableSpan]]
) -> None:
    buffer.insert_spans(record_task(tracing[0]))
    assert otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY) is None


def test_fallback_suppression_sets_context_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buffer_module, "_otel_suppress_instrumentation", None)
    with buffer_module.suppressed_instrumentation():
        assert otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY) is True


# --- concurrency ---


def test_two_writers_store_every_span(
    db_path: Path, tracing: tuple[Tracer, list[ReadableSpan]]
) -> None:
    tracer, _ = tracing
    batches_per_writer = [
        [[record_span(tracer, LLM_ATTRIBUTES) for _ in range(500)] for _ in range(10)]
        for _ in range(2)
    ]
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def write(batches: list[list[ReadableSpan]]) -> None:
        try:
            start.wait()
            with Buffer.open(db_path) as own_buffer:
                for batch in batches:
                    own_buffer.insert_spans(batch)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=write, args=(batches,)) for batches in batches_per_writer]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert failures == []
    with closing(sqlite3.connect(db_path)) as connection:
        assert connection.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 10_000


def test_racing_opens_of_new_file_succeed(tmp_path: Path) -> None:
    # Without a retry, SQLite 3.40 fails a racing switch of one new file to WAL
    # with "database is locked" in about one race out of five (2-core machine),
    # so 20 races make a regression near certain to show.
    failures: list[BaseException] = []

    def open_and_close(path: Path, start: threading.Barrier) -> None:
        try:
            start.wait()
            Buffer.open(path).close()
        except BaseException as error:
            failures.append(error)

    for attempt in range(20):
        path = tmp_path / f"race-{attempt}.db"
        start = threading.Barrier(2)
        threads = [threading.Thread(target=open_and_close, args=(path, start)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    assert failures == []
