"""Events whose span the buffer's writer thread builds, against spans built by the caller.

With the SQLite buffer as the only reader of event spans, ``emit_event`` queues the
values it fixed on the caller's thread and the writer builds the span. The stored rows
must be the same as when the caller builds each span. A batch put back after a failed
write keeps its span ids. A console or an export still gets each span as the event is
recorded.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

import dexcost
from dexcost import errors
from dexcost import processor as processor_module
from dexcost.buffer import Buffer
from dexcost.processor import DexcostSpanProcessor
from dexcost.runtime import current_runtime

# Columns that differ between two recordings of the same events: ids, times, the task.
_VARYING = {"id", "trace_id", "span_id", "parent_span_id", "start_ns", "end_ns", "created_at"}
_VARYING_ATTRIBUTES = {"dexcost.task.id"}


def _rows(path: Path) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(path)) as connection:
        connection.row_factory = sqlite3.Row
        rows = [dict(row) for row in connection.execute("SELECT * FROM spans ORDER BY id")]
    return rows


def _comparable(row: dict[str, Any]) -> dict[str, Any]:
    kept = {key: value for key, value in row.items() if key not in _VARYING | {"task_id"}}
    attributes = json.loads(kept.pop("attributes"))
    kept["attributes"] = {
        key: value for key, value in attributes.items() if key not in _VARYING_ATTRIBUTES
    }
    kept.pop("resource")
    return kept


def _record_events(buffer_path: Path, *, built_by_caller: bool) -> list[dict[str, Any]]:
    dexcost.init(
        storage="local",
        buffer_path=str(buffer_path),
        auto_instrument=[],
        hash_customer_id=True,
        redact_fields=["secret"],
    )
    try:
        runtime = current_runtime()
        assert runtime is not None
        if built_by_caller:
            runtime.event_sink = None
        else:
            assert runtime.event_sink is runtime.processor
        tracer = TracerProvider(shutdown_on_exit=False).get_tracer("app")
        with (
            tracer.start_as_current_span("request"),
            dexcost.task(
                "support",
                customer_id="acme",
                project_id="p1",
                metadata={"plan": "pro", "secret": "s"},
            ) as tracked,
        ):
            tracked.record_llm_call("openai", "gpt-4o-mini", 1200, 300, cached_tokens=200)
            tracked.record_llm_call("openai", "no-such-model-xyz", 10, 5)
            tracked.record_cost("maps", "0.005", units=1, unit="request")
            tracked.record_usage("unknown-service", 3)
            tracked.mark_retry("timeout", cost_usd="0.0001")
        assert dexcost.flush(timeout=10)
    finally:
        dexcost.shutdown()
    return _rows(buffer_path)


def test_rows_match_spans_built_by_the_caller(tmp_path: Path) -> None:
    deferred = _record_events(tmp_path / "deferred.db", built_by_caller=False)
    direct = _record_events(tmp_path / "direct.db", built_by_caller=True)
    assert len(deferred) == len(direct) == 6  # five events and the task
    assert [_comparable(row) for row in deferred] == [_comparable(row) for row in direct]
    events = [row for row in deferred if row["event_type"] != "task"]
    task = next(row for row in deferred if row["event_type"] == "task")
    # Parented to the task span, in the application's trace, hashed and redacted.
    assert {row["trace_id"] for row in deferred} == {task["trace_id"]}
    assert {row["parent_span_id"] for row in events} == {task["span_id"]}
    assert {row["customer_id"] for row in deferred} != {"acme"}
    assert all("secret" not in row["attributes"] for row in deferred)
    assert task["cost_usd"] == "0.005445"  # 0.000345 + 0.005 + 0.0001; two unpriced


def test_writer_builds_the_spans(buffer_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The queue contains the recorded values, not spans, until the writer takes them."""
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])
    try:
        runtime = current_runtime()
        assert runtime is not None and isinstance(runtime.processor, DexcostSpanProcessor)
        processor = runtime.processor
        with processor._io_lock, dexcost.task("batch") as tracked:
            tracked.record_cost("maps", "0.005")
            queued = list(processor._queue)
            assert len(queued) == 1
            assert type(queued[0]) is tuple
        assert dexcost.flush(timeout=10)
    finally:
        dexcost.shutdown()
    assert [row["cost_usd"] for row in _rows(buffer_path)] == ["0.005", "0.005"]


def test_failed_write_keeps_span_ids(buffer_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processor_module, "_RETRY_DELAY_SECONDS", 0.01)
    monkeypatch.setattr(errors, "RAISE_INTERNAL_ERRORS", False)
    attempts: list[list[int]] = []
    original = Buffer.insert_rows

    def insert_rows(buffer: Buffer, rows: Sequence[tuple[Any, ...]]) -> int:
        attempts.append([int(row[1], 16) for row in rows])  # the span_id column
        if len(attempts) == 1:
            raise sqlite3.OperationalError("disk I/O error")
        return original(buffer, rows)

    monkeypatch.setattr(Buffer, "insert_rows", insert_rows)
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])
    try:
        with dexcost.task("batch") as tracked:
            for _ in range(3):
                tracked.record_cost("maps", "0.005")
        assert dexcost.flush(timeout=10)
    finally:
        dexcost.shutdown()
    assert len(attempts) >= 2
    stored = {int(row["span_id"], 16) for row in _rows(buffer_path)}
    assert set(attempts[0]) <= stored
    assert len(stored) == 4


@pytest.mark.parametrize(
    "options",
    [
        {"environment": "development"},
        {"storage": "local", "export_to_otel": True},
    ],
    ids=["console", "export"],
)
def test_span_readers_get_spans_built_by_the_caller(
    buffer_path: Path, options: dict[str, Any]
) -> None:
    dexcost.init(buffer_path=str(buffer_path), auto_instrument=[], **options)
    try:
        runtime = current_runtime()
        assert runtime is not None
        assert runtime.event_sink is None
    finally:
        dexcost.shutdown()


def test_export_copy_made_at_record_time(
    buffer_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.util._once import Once

    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    trace.set_tracer_provider(provider)
    dexcost.init(
        storage="local", buffer_path=str(buffer_path), auto_instrument=[], export_to_otel=True
    )
    try:
        with dexcost.task("batch") as tracked:
            tracked.record_cost("maps", "0.005")
            # Before the task ends and before any flush: built on this thread.
            names = [span.name for span in exporter.get_finished_spans()]
    finally:
        dexcost.shutdown()
    assert names == ["external_cost maps"]
