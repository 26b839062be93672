"""Tests for DexcostSpanProcessor: storing spans, the bounded queue, late writes and fork."""

from __future__ import annotations

import contextvars
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import Tracer

import dexcost
from dexcost import errors
from dexcost import processor as processor_module
from dexcost import status as status_module
from dexcost.buffer import Buffer
from dexcost.processor import DexcostSpanProcessor
from dexcost.runtime import current_runtime

Stored = Callable[..., list[dict[str, Any]]]

# How long a test waits for the writer thread before it counts as stuck.
WAIT_SECONDS = 10.0

# Python 3.12+ warns when a process with threads forks. The fork tests do it on purpose,
# and the child only uses dexcost, which restarts its writer thread after fork.
fork_warning_allowed = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _row_count(path: Path) -> int:
    with closing(sqlite3.connect(path)) as connection:
        (count,) = connection.execute("SELECT COUNT(*) FROM spans").fetchone()
    return int(count)


def _counter(path: Path, name: str) -> int | None:
    with closing(sqlite3.connect(path)) as connection:
        row = connection.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
    return None if row is None else int(row[0])


def _llm_costs(path: Path, task_type: str) -> list[str | None]:
    with closing(sqlite3.connect(path)) as connection:
        rows = connection.execute(
            "SELECT cost_usd FROM spans WHERE event_type = 'llm_call' AND task_type = ?",
            (task_type,),
        ).fetchall()
    return [row[0] for row in rows]


class PrivateTracing:
    """A TracerProvider that sends spans only to one DexcostSpanProcessor."""

    def __init__(self, processor: DexcostSpanProcessor) -> None:
        self.processor = processor
        self.provider = TracerProvider(shutdown_on_exit=False)
        self.provider.add_span_processor(processor)
        self.tracer: Tracer = self.provider.get_tracer("dexcost-tests")

    def end_spans(self, count: int) -> None:
        for index in range(count):
            self.tracer.start_span(f"span {index}").end()

    def finished_span(self) -> ReadableSpan:
        span = self.tracer.start_span("detached")
        span.end()
        assert isinstance(span, ReadableSpan)
        return span


@pytest.fixture
def tracing(buffer_path: Path) -> Iterator[PrivateTracing]:
    processor = DexcostSpanProcessor(buffer_path)
    yield PrivateTracing(processor)
    processor.shutdown()


class GatedInserts:
    """Replaces Buffer.insert_rows with a version where each call waits for a permit.

    ``wait_entered`` returns once the writer is inside a call. The writer then stays in
    that call until the test calls ``release_one`` or ``release_all``.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._entered: queue.Queue[int] = queue.Queue()
        self._permits = threading.Semaphore(0)
        original = Buffer.insert_rows

        def insert_rows(buffer: Buffer, rows: Sequence[tuple[object, ...]]) -> int:
            self._entered.put(len(rows))
            self._permits.acquire(timeout=WAIT_SECONDS)
            return original(buffer, rows)

        monkeypatch.setattr(Buffer, "insert_rows", insert_rows)

    def wait_entered(self) -> int:
        """Wait until the writer calls insert_rows and return the batch size."""
        return self._entered.get(timeout=WAIT_SECONDS)

    def release_one(self) -> None:
        self._permits.release()

    def release_all(self) -> None:
        self._permits.release(1_000_000)


@pytest.fixture
def gated_inserts(monkeypatch: pytest.MonkeyPatch) -> Iterator[GatedInserts]:
    gate = GatedInserts(monkeypatch)
    yield gate
    gate.release_all()


# --- storing ---


def test_spans_reach_sqlite_after_flush(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    with dexcost.task("research") as t:
        t.record_llm_call("openai", "gpt-4o-mini", 1200, 300)

    assert [row["event_type"] for row in stored()] == ["llm_call", "task"]


def test_force_flush_stores_queued_spans(tracing: PrivateTracing, buffer_path: Path) -> None:
    tracing.end_spans(3)

    flushed = tracing.processor.force_flush(int(WAIT_SECONDS * 1000))

    assert flushed is True
    assert _row_count(buffer_path) == 3


def test_force_flush_stores_more_than_batch(tracing: PrivateTracing, buffer_path: Path) -> None:
    # More than BATCH_SIZE (500), the count that wakes the writer.
    tracing.end_spans(1201)

    tracing.processor.force_flush(int(WAIT_SECONDS * 1000))

    assert _row_count(buffer_path) == 1201


def test_force_flush_stores_more_than_one_transaction(
    buffer_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(processor_module, "TRANSACTION_SIZE", 100)
    tracing = PrivateTracing(DexcostSpanProcessor(buffer_path))
    try:
        tracing.end_spans(250)
        tracing.processor.force_flush(int(WAIT_SECONDS * 1000))
        assert _row_count(buffer_path) == 250
    finally:
        tracing.processor.shutdown()


def _stored_names(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as connection:
        return [name for (name,) in connection.execute("SELECT name FROM spans ORDER BY id")]


def test_transactions_keep_span_order(buffer_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processor_module, "TRANSACTION_SIZE", 100)
    tracing = PrivateTracing(DexcostSpanProcessor(buffer_path))
    try:
        tracing.end_spans(250)
        assert tracing.processor.force_flush(int(WAIT_SECONDS * 1000))
    finally:
        tracing.processor.shutdown()
    assert _stored_names(buffer_path) == [f"span {index}" for index in range(250)]


def test_failed_transaction_requeued_in_order(
    buffer_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(processor_module, "TRANSACTION_SIZE", 100)
    monkeypatch.setattr(processor_module, "_RETRY_DELAY_SECONDS", 0.01)
    monkeypatch.setattr(errors, "RAISE_INTERNAL_ERRORS", False)
    calls: list[int] = []
    original = Buffer.insert_rows

    def insert_rows(buffer: Buffer, rows: Sequence[tuple[object, ...]]) -> int:
        calls.append(len(rows))
        if len(calls) == 2:
            raise sqlite3.OperationalError("disk I/O error")
        return original(buffer, rows)

    monkeypatch.setattr(Buffer, "insert_rows", insert_rows)
    tracing = PrivateTracing(DexcostSpanProcessor(buffer_path))
    try:
        tracing.end_spans(250)
        assert tracing.processor.force_flush(int(WAIT_SECONDS * 1000))
    finally:
        tracing.processor.shutdown()
    assert len(calls) >= 3  # the failed transaction was stored again
    assert _stored_names(buffer_path) == [f"span {index}" for index in range(250)]


def test_force_flush_with_empty_queue_returns_true(tracing: PrivateTracing) -> None:
    assert tracing.processor.force_flush(int(WAIT_SECONDS * 1000)) is True


def test_force_flush_times_out_when_writer_blocked(
    tracing: PrivateTracing, gated_inserts: GatedInserts
) -> None:
    tracing.end_spans(1)
    gated_inserts.wait_entered()

    assert tracing.processor.force_flush(timeout_millis=50) is False


def test_shutdown_stores_spans_and_stops(buffer_path: Path) -> None:
    processor = DexcostSpanProcessor(buffer_path)
    writer = processor._thread
    PrivateTracing(processor).end_spans(5)

    processor.shutdown()

    assert _row_count(buffer_path) == 5
    assert not writer.is_alive()


# --- late writes ---


def test_span_after_shutdown_is_stored(buffer_path: Path) -> None:
    processor = DexcostSpanProcessor(buffer_path)
    tracing = PrivateTracing(processor)
    span = tracing.tracer.start_span("stream finished late")
    processor.shutdown()

    span.end()

    assert _row_count(buffer_path) == 1


def test_task_ended_after_shutdown_is_stored(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    with dexcost.task("late_task"):
        dexcost.shutdown()

    assert [row["task_type"] for row in stored("task")] == ["late_task"]


def test_force_flush_after_shutdown_returns_true(tracing: PrivateTracing) -> None:
    tracing.processor.shutdown()

    assert tracing.processor.force_flush() is True


# --- a broken buffer path ---


def _repair(broken_path: Path) -> None:
    """Replace the regular file that blocks ``broken_path`` with a folder."""
    if broken_path.parent.is_file():
        broken_path.parent.unlink()
        broken_path.parent.mkdir()


@pytest.fixture
def broken_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A buffer path whose parent is a regular file, so SQLite cannot create it.

    Internal errors are logged, not raised, as in production.
    """
    monkeypatch.setattr(errors, "RAISE_INTERNAL_ERRORS", False)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a regular file\n")
    return blocker / "buffer.db"


@pytest.fixture
def broken_processor(broken_path: Path) -> Iterator[DexcostSpanProcessor]:
    processor = DexcostSpanProcessor(broken_path)
    yield processor
    # Let the writer store its queued spans and stop before internal errors raise again.
    _repair(broken_path)
    processor.shutdown(timeout_millis=int(WAIT_SECONDS * 1000))
    processor._wake.set()
    processor._thread.join(WAIT_SECONDS)


@pytest.fixture
def contained_errors(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the step named by each internal error that dexcost contains."""
    steps: list[str] = []
    original = errors.log_internal_error

    def log_internal_error(what: str) -> None:
        steps.append(what)
        original(what)

    monkeypatch.setattr(errors, "log_internal_error", log_internal_error)
    return steps


def _wait_until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_on_end_with_broken_path_keeps_span(
    broken_processor: DexcostSpanProcessor,
) -> None:
    span = PrivateTracing(broken_processor).finished_span()

    broken_processor.on_end(span)

    # Both the provider's on_end call and this one queued the span: nothing raised.
    assert broken_processor.queued == 2


def test_broken_path_flush_returns_false(broken_processor: DexcostSpanProcessor) -> None:
    PrivateTracing(broken_processor).end_spans(1)

    assert broken_processor.force_flush(timeout_millis=50) is False


def test_late_span_with_broken_path_is_contained(
    broken_processor: DexcostSpanProcessor, contained_errors: list[str]
) -> None:
    span = PrivateTracing(broken_processor).tracer.start_span("stream finished late")
    broken_processor.shutdown(timeout_millis=50)

    span.end()

    assert "queueing a cost event" in contained_errors


def test_broken_path_stores_error_count_later(
    broken_processor: DexcostSpanProcessor, broken_path: Path, contained_errors: list[str]
) -> None:
    PrivateTracing(broken_processor).end_spans(1)
    assert _wait_until(lambda: bool(contained_errors))
    _repair(broken_path)

    broken_processor.shutdown(int(WAIT_SECONDS * 1000))

    assert (_counter(broken_path, "internal_errors") or 0) >= 1


def test_writer_stores_after_path_is_repaired(
    broken_processor: DexcostSpanProcessor, broken_path: Path
) -> None:
    PrivateTracing(broken_processor).end_spans(2)
    _repair(broken_path)

    broken_processor.force_flush(int(WAIT_SECONDS * 1000))

    assert _row_count(broken_path) == 2


# --- the bounded queue ---


@pytest.fixture
def tiny_queue(buffer_path: Path, gated_inserts: GatedInserts) -> Iterator[PrivateTracing]:
    """A processor whose queue has room for 2 spans, its writer stuck in its first insert."""
    processor = DexcostSpanProcessor(buffer_path, max_queue=2)
    tracing = PrivateTracing(processor)
    tracing.end_spans(1)
    gated_inserts.wait_entered()
    yield tracing
    gated_inserts.release_all()
    processor.shutdown()


def test_full_queue_stores_dropped_count(
    tiny_queue: PrivateTracing, gated_inserts: GatedInserts, buffer_path: Path
) -> None:
    # The writer is storing span 0. Spans 1 and 2 fit in the queue and the other 5 are dropped.
    tiny_queue.end_spans(7)
    gated_inserts.release_all()

    tiny_queue.processor.force_flush(int(WAIT_SECONDS * 1000))

    assert _counter(buffer_path, "dropped_events") == 5
    assert _row_count(buffer_path) == 3


def test_full_queue_on_end_does_not_block(tiny_queue: PrivateTracing) -> None:
    tiny_queue.end_spans(50)

    assert tiny_queue.processor.queued == 2


def test_drop_count_accumulates(
    tiny_queue: PrivateTracing, gated_inserts: GatedInserts, buffer_path: Path
) -> None:
    tiny_queue.end_spans(4)  # 2 queued, 2 dropped
    gated_inserts.release_one()
    # The writer stored the first count and is now stuck storing the 2 queued spans.
    gated_inserts.wait_entered()
    tiny_queue.end_spans(5)  # 2 queued, 3 dropped
    gated_inserts.release_all()

    tiny_queue.processor.force_flush(int(WAIT_SECONDS * 1000))

    assert _counter(buffer_path, "dropped_events") == 2 + 3


def test_flush_waits_for_drop_count(buffer_path: Path, gated_inserts: GatedInserts) -> None:
    processor = DexcostSpanProcessor(buffer_path, max_queue=1)
    tracing = PrivateTracing(processor)
    try:
        tracing.end_spans(1)
        gated_inserts.wait_entered()  # insert 1 is storing span 0
        tracing.end_spans(1)  # span 1 fills the queue
        flushed: list[bool] = []
        flusher = threading.Thread(target=lambda: flushed.append(processor.force_flush()))
        flusher.start()
        assert _wait_until(lambda: processor.queued == 2)  # span 1 and the flush marker
        gated_inserts.release_one()
        gated_inserts.wait_entered()  # insert 2 stores span 1, before the flush marker
        tracing.end_spans(2)  # span 2 is queued, span 3 is dropped
        gated_inserts.release_one()
        flusher.join(WAIT_SECONDS)
        assert flushed == [True]
        gated_inserts.wait_entered()  # insert 3 is storing span 2 and waits until the end

        assert _counter(buffer_path, "dropped_events") == 1
    finally:
        gated_inserts.release_all()
        processor.shutdown()


def test_no_drops_stores_no_counter(tracing: PrivateTracing, buffer_path: Path) -> None:
    tracing.end_spans(3)

    tracing.processor.force_flush(int(WAIT_SECONDS * 1000))

    assert _counter(buffer_path, "dropped_events") is None


# --- the writer thread's context ---


class InsertContextProbe:
    """Wraps Buffer.insert_rows to record the OTel context the writer calls it in."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.suppressed: list[object] = []
        self.baggage: list[dict[str, object]] = []
        self.span_valid: list[bool] = []
        original = Buffer.insert_rows

        def insert_rows(buffer: Buffer, rows: Sequence[tuple[object, ...]]) -> int:
            self.suppressed.append(otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY))
            self.baggage.append(dict(baggage.get_all()))
            self.span_valid.append(trace.get_current_span().get_span_context().is_valid)
            return original(buffer, rows)

        monkeypatch.setattr(Buffer, "insert_rows", insert_rows)


class ContextCopyingThread(threading.Thread):
    """A Thread that runs in a copy of its starter's context.

    OTel's threading instrumentation makes every thread behave this way.
    """

    def start(self) -> None:
        self._starter_context = contextvars.copy_context()
        super().start()

    def run(self) -> None:
        self._starter_context.run(super().run)


def test_writer_suppresses_instrumentation(
    dx: dexcost.DexcostConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = InsertContextProbe(monkeypatch)
    dexcost.record_cost("serpapi", "0.015")

    assert dexcost.flush(WAIT_SECONDS)

    assert probe.suppressed[0] is True


def test_writer_has_no_caller_baggage(buffer_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = InsertContextProbe(monkeypatch)
    token = otel_context.attach(baggage.set_baggage("tenant.region", "eu"))
    try:
        with monkeypatch.context() as patch:
            patch.setattr(threading, "Thread", ContextCopyingThread)
            dexcost.init(storage="local", buffer_path=str(buffer_path))
        dexcost.record_cost("serpapi", "0.015")
    finally:
        otel_context.detach(token)

    assert dexcost.flush(WAIT_SECONDS)

    assert probe.baggage[0] == {}


def test_writer_has_no_caller_span(buffer_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = InsertContextProbe(monkeypatch)
    request_span = trace.NonRecordingSpan(
        trace.SpanContext(trace_id=0x1234, span_id=0x5678, is_remote=True)
    )
    token = otel_context.attach(trace.set_span_in_context(request_span))
    try:
        with monkeypatch.context() as patch:
            patch.setattr(threading, "Thread", ContextCopyingThread)
            dexcost.init(storage="local", buffer_path=str(buffer_path))
    finally:
        otel_context.detach(token)
    dexcost.record_cost("serpapi", "0.015")

    assert dexcost.flush(WAIT_SECONDS)

    assert probe.span_valid[0] is False


# --- fork ---


def _wait_for_child(pid: int) -> int:
    """Wait for a forked child and return its exit code; kill it if it hangs."""
    deadline = time.monotonic() + 60
    while True:
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -signal.SIGKILL
        time.sleep(0.01)


def _run_in_child(action: Callable[[], int]) -> int:
    """Fork, run ``action`` in the child and return the exit code it returned (1 if it raised)."""
    pid = os.fork()
    if pid == 0:
        exit_code = 1
        try:
            exit_code = action()
        finally:
            os._exit(exit_code)
    return _wait_for_child(pid)


@needs_fork
@fork_warning_allowed
def test_forked_child_stores_llm_call(dx: dexcost.DexcostConfig, buffer_path: Path) -> None:
    # Price one call first so the child does not depend on the price table warm-up.
    with dexcost.task("parent_task") as t:
        t.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
    assert dexcost.flush(WAIT_SECONDS)

    def record_in_child() -> int:
        with dexcost.task("child_task") as child:
            child.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
        return 0 if dexcost.flush(WAIT_SECONDS) else 2

    _run_in_child(record_in_child)

    assert _llm_costs(buffer_path, "child_task") == ["0.00036"]


@needs_fork
@fork_warning_allowed
def test_child_leaves_parent_session_tasks(dx: dexcost.DexcostConfig, buffer_path: Path) -> None:
    """A child's shutdown does not end and store the session task it inherited."""
    dexcost.set_context(customer_id="acme")
    dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
    assert dexcost.flush(WAIT_SECONDS)

    def shut_down_in_child() -> int:
        dexcost.shutdown()
        return 0

    assert _run_in_child(shut_down_in_child) == 0
    dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
    dexcost.shutdown()

    with closing(sqlite3.connect(buffer_path)) as connection:
        tasks = connection.execute(
            "SELECT span_id, cost_usd FROM spans WHERE event_type = 'task'"
        ).fetchall()
    assert len(tasks) == 1
    assert tasks[0][1] == "0.00072"


@needs_fork
@fork_warning_allowed
def test_parent_keeps_storing_after_fork(dx: dexcost.DexcostConfig, buffer_path: Path) -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    _wait_for_child(pid)

    with dexcost.task("after_fork") as t:
        t.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
    assert dexcost.flush(WAIT_SECONDS)

    assert _llm_costs(buffer_path, "after_fork") == ["0.00036"]


@needs_fork
@fork_warning_allowed
def test_shut_down_writer_stays_stopped_in_child(dx: dexcost.DexcostConfig) -> None:
    runtime = current_runtime()
    assert runtime is not None
    dexcost.shutdown()

    pid = os.fork()
    if pid == 0:
        os._exit(1 if runtime.processor._thread.is_alive() else 0)

    assert _wait_for_child(pid) == 0


# Runs in a fresh interpreter, so the price table is not loaded yet. An import hook
# stops the warm-up thread inside `import genai_prices` until the script forks, so the
# fork happens while that import is running. The child then records one LLM call.
FORK_DURING_WARM_UP = textwrap.dedent(
    """
    import importlib.abc
    import os
    import sys
    import threading

    import_started = threading.Event()
    import_may_finish = threading.Event()


    class HoldGenaiPricesImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "genai_prices" and not import_started.is_set():
                import_started.set()
                import_may_finish.wait(10)
            return None


    sys.meta_path.insert(0, HoldGenaiPricesImport())

    import dexcost
    from dexcost.pricing import library

    # Fork hooks registered later run first, so the import resumes before any hook that
    # dexcost registered at import time runs.
    os.register_at_fork(before=import_may_finish.set)
    dexcost.init(storage="local", buffer_path=sys.argv[1])
    import_started.wait(10)
    pid = os.fork()
    if pid == 0:
        exit_code = 1
        try:
            # Shortens how long a price lookup waits for an unfinished warm-up (5 s).
            library.WAIT_SECONDS = 1.0
            with dexcost.task("child_task") as t:
                t.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
            exit_code = 0 if dexcost.flush(10) else 2
        finally:
            os._exit(exit_code)
    os.waitpid(pid, 0)
    dexcost.shutdown()
    """
)


@needs_fork
def test_fork_during_price_warm_up_prices_child(buffer_path: Path, tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-c", FORK_DURING_WARM_UP, str(buffer_path)],
        check=True,
        timeout=60,
        env={**os.environ, "HOME": str(tmp_path / "home")},
    )

    assert _llm_costs(buffer_path, "child_task") == ["0.00036"]


def test_shutdown_shares_one_deadline(tmp_path, monkeypatch) -> None:
    import dexcost.processor as processor_module

    now = [100.0]
    monkeypatch.setattr(processor_module.time, "monotonic", lambda: now[0])
    processor = processor_module.DexcostSpanProcessor(tmp_path / "buffer.db")
    joins: list[float | None] = []

    def slow_flush(timeout_millis: int = 30_000) -> bool:
        now[0] += timeout_millis / 1000  # the whole budget goes on the flush
        return False

    real_join = processor._thread.join

    def recording_join(timeout: float | None = None) -> None:
        joins.append(timeout)
        real_join(5)

    monkeypatch.setattr(processor, "force_flush", slow_flush)
    monkeypatch.setattr(processor._thread, "join", recording_join)
    processor.shutdown(timeout_millis=2_000)

    # Only the short grace is left for the join, not another full timeout.
    assert joins == [0.1]


def test_deleted_buffer_is_created_again(dx, buffer_path, stored, caplog) -> None:
    import dexcost

    dexcost.record_cost("serpapi", "0.015")
    assert dexcost.flush(timeout=10)
    for suffix in ("", "-wal", "-shm"):
        path = buffer_path.with_name(buffer_path.name + suffix)
        if path.exists():
            path.unlink()

    dexcost.record_cost("serpapi", "0.02")
    rows = stored("external_cost")

    assert [row["cost_usd"] for row in rows] == ["0.02"]
    assert "was deleted or replaced while in use" in caplog.text


# --- the row cap without uploads ---


def _stored_span_ids(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as connection:
        return [span_id for (span_id,) in connection.execute("SELECT span_id FROM spans")]


def test_local_cap_evicts_oldest_rows(
    buffer_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DEXCOST_BUFFER_MAX_ROWS", "100")
    monkeypatch.setattr(processor_module, "PRUNE_INTERVAL_SECONDS", 0.0)
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])
    with dexcost.task("first"):
        for _ in range(60):
            dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
    assert dexcost.flush(WAIT_SECONDS)
    first = set(_stored_span_ids(buffer_path))
    assert len(first) == 61  # 60 calls and their task
    with dexcost.task("second"):
        for _ in range(60):
            dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
    assert dexcost.flush(WAIT_SECONDS)

    # 122 rows are over the cap of 100, so the writer deletes down to 90: the 32 oldest.
    assert _wait_until(lambda: _row_count(buffer_path) == 90)
    remaining = set(_stored_span_ids(buffer_path))
    assert len(first - remaining) == 32
    assert _counter(buffer_path, "evicted_events") == 32
    assert "deleted the 32 oldest cost events" in caplog.text
    dexcost.shutdown()
    assert status_module.collect_status(buffer_path)["evicted_events"] == 32


def test_local_cap_keeps_rows_under_it(buffer_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEXCOST_BUFFER_MAX_ROWS", "100")
    monkeypatch.setattr(processor_module, "PRUNE_INTERVAL_SECONDS", 0.0)
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])
    with dexcost.task("small"):
        for _ in range(99):
            dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
    dexcost.shutdown()

    assert _row_count(buffer_path) == 100
    assert _counter(buffer_path, "evicted_events") is None


def test_invalid_row_cap_fails_local_init(
    buffer_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEXCOST_BUFFER_MAX_ROWS", "lots")

    with pytest.raises(ValueError, match="DEXCOST_BUFFER_MAX_ROWS='lots' is invalid"):
        dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])
