"""Tests for init(), flush() and shutdown(): re-init, the private provider and the exit hook."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.util._once import Once

import dexcost
from dexcost.runtime import current_runtime

Stored = Callable[..., list[dict[str, Any]]]


@pytest.fixture(autouse=True)
def _fresh_otel_context() -> Iterator[None]:
    """Start each test on an empty OTel context; set_context would leak into the next test."""
    token = otel_context.attach(otel_context.Context())
    yield
    otel_context.detach(token)


def _init(buffer_path: Path, **settings: Any) -> dexcost.DexcostConfig:
    return dexcost.init(storage="local", buffer_path=str(buffer_path), **settings)


def _one_call(task_type: str) -> None:
    with dexcost.task(task_type) as t:
        t.record_llm_call("openai", "gpt-4o-mini", 1200, 300)


def _rows(path: Path) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(
            "SELECT event_type, task_type, cost_usd FROM spans ORDER BY id"
        ).fetchall()


class AppTracing:
    """An application's own global SDK TracerProvider that exports to memory."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = trace.get_tracer("checkout-api")

    def exported_scopes(self) -> set[str]:
        return {
            span.instrumentation_scope.name
            for span in self.exporter.get_finished_spans()
            if span.instrumentation_scope is not None
        }


def _install_global_provider(
    monkeypatch: pytest.MonkeyPatch, provider: TracerProvider
) -> AppTracing:
    # The OTel API lets a process set its global provider only once. Resetting that guard
    # lets each test set its own, and monkeypatch restores the previous provider afterwards.
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    trace.set_tracer_provider(provider)
    return AppTracing(provider)


@pytest.fixture
def app_tracing(monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTracing]:
    app = _install_global_provider(monkeypatch, TracerProvider(shutdown_on_exit=False))
    yield app
    app.provider.shutdown()


@pytest.fixture
def app_tracing_sampled_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTracing]:
    """An application that samples none of its own root spans."""
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF), shutdown_on_exit=False)
    app = _install_global_provider(monkeypatch, provider)
    yield app
    app.provider.shutdown()


# --- flush and shutdown ---


def test_flush_before_init_returns_true() -> None:
    assert dexcost.flush() is True


def test_flush_after_init_returns_true(buffer_path: Path) -> None:
    _init(buffer_path)
    _one_call("research")

    assert dexcost.flush(timeout=10) is True


def test_shutdown_twice_is_harmless(buffer_path: Path) -> None:
    dexcost.shutdown()
    _init(buffer_path)
    dexcost.shutdown()

    dexcost.shutdown()

    assert current_runtime() is None


def test_shutdown_stores_unflushed_events(buffer_path: Path) -> None:
    _init(buffer_path)
    _one_call("research")

    dexcost.shutdown()

    assert _rows(buffer_path) == [
        ("llm_call", "research", "0.00036"),
        ("task", "research", "0.00036"),
    ]


def test_init_after_shutdown_records(buffer_path: Path, tmp_path: Path) -> None:
    _init(tmp_path / "first.db")
    dexcost.shutdown()
    _init(buffer_path)

    _one_call("research")
    dexcost.shutdown()

    assert ("llm_call", "research", "0.00036") in _rows(buffer_path)


def test_init_returns_config(buffer_path: Path) -> None:
    config = _init(buffer_path)

    assert config.buffer_path == str(buffer_path)


def test_invalid_init_keeps_running_runtime(buffer_path: Path, tmp_path: Path) -> None:
    _init(buffer_path)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a regular file\n")
    with pytest.raises(ValueError, match="cannot be written"):
        _init(blocker / "buffer.db")

    _one_call("research")
    dexcost.shutdown()

    assert ("llm_call", "research", "0.00036") in _rows(buffer_path)


# --- init twice ---


def test_reinit_stops_old_writer(buffer_path: Path) -> None:
    _init(buffer_path)
    old = current_runtime()
    assert old is not None

    _init(buffer_path)

    assert not old.processor._thread.is_alive()


def test_reinit_keeps_earlier_events(buffer_path: Path) -> None:
    _init(buffer_path)
    _one_call("before_reinit")

    _init(buffer_path)
    dexcost.shutdown()

    assert ("llm_call", "before_reinit", "0.00036") in _rows(buffer_path)


def test_reinit_keeps_earlier_session_costs(buffer_path: Path) -> None:
    _init(buffer_path)
    dexcost.record_cost("serpapi", "0.015")

    _init(buffer_path)
    dexcost.shutdown()

    assert ("task", "agent_session", "0.015") in _rows(buffer_path)


def test_reinit_records_each_event_once(buffer_path: Path) -> None:
    _init(buffer_path)
    _init(buffer_path)

    _one_call("after_reinit")
    dexcost.shutdown()

    assert [row for row in _rows(buffer_path) if row[0] == "llm_call"] == [
        ("llm_call", "after_reinit", "0.00036")
    ]


def test_reinit_switches_buffer(buffer_path: Path, tmp_path: Path) -> None:
    first = tmp_path / "first.db"
    _init(first)
    _init(buffer_path)

    _one_call("after_reinit")
    dexcost.shutdown()

    assert [row[1] for row in _rows(first)] == []


def test_reinit_with_open_task_keeps_its_row(buffer_path: Path) -> None:
    _init(buffer_path)

    with dexcost.task("spans_reinit") as t:
        _init(buffer_path)
        t.record_cost("serpapi", "0.015")
    dexcost.shutdown()

    assert ("task", "spans_reinit", "0.015") in _rows(buffer_path)


# --- the private provider ---


def test_init_leaves_global_provider_unchanged(buffer_path: Path) -> None:
    before = trace.get_tracer_provider()

    _init(buffer_path)

    runtime = current_runtime()
    assert runtime is not None
    assert trace.get_tracer_provider() is before
    assert trace.get_tracer_provider() is not runtime.provider


def test_app_provider_sees_no_dexcost_spans(buffer_path: Path, app_tracing: AppTracing) -> None:
    _init(buffer_path)

    with app_tracing.tracer.start_as_current_span("POST /tickets"):
        _one_call("research")
        dexcost.record_cost("serpapi", "0.015")
    dexcost.shutdown()

    assert app_tracing.exported_scopes() == {"checkout-api"}


def test_task_joins_app_trace(buffer_path: Path, app_tracing: AppTracing, stored: Stored) -> None:
    _init(buffer_path)

    with app_tracing.tracer.start_as_current_span("POST /tickets") as request:
        _one_call("research")

    (task_row,) = stored("task")
    assert task_row["trace_id"] == format(request.get_span_context().trace_id, "032x")


def test_app_span_in_task_keeps_app_parent(
    buffer_path: Path, app_tracing: AppTracing
) -> None:
    _init(buffer_path)

    with app_tracing.tracer.start_as_current_span("POST /tickets") as request:
        with dexcost.task("research"):
            app_tracing.tracer.start_span("SELECT tickets").end()
    exported = app_tracing.exporter.get_finished_spans()
    (query,) = [span for span in exported if span.name == "SELECT tickets"]
    parent_span_id = None if query.parent is None else query.parent.span_id

    assert parent_span_id == request.get_span_context().span_id


def test_app_sampler_decides_inside_task(
    buffer_path: Path, app_tracing_sampled_off: AppTracing
) -> None:
    _init(buffer_path)

    with dexcost.task("research"):
        app_tracing_sampled_off.tracer.start_span("SELECT tickets").end()

    assert app_tracing_sampled_off.exporter.get_finished_spans() == ()


# --- exit hook ---

RECORD_AND_EXIT = textwrap.dedent(
    """
    import sys

    import dexcost

    dexcost.init(storage="local", buffer_path=sys.argv[1])
    with dexcost.task("exit_without_flush") as t:
        t.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
    """
)


def test_exit_without_flush_stores_event(buffer_path: Path, tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-c", RECORD_AND_EXIT, str(buffer_path)],
        check=True,
        timeout=60,
        env={**os.environ, "HOME": str(tmp_path / "home")},
    )

    llm_rows = [row for row in _rows(buffer_path) if row[0] == "llm_call"]
    assert llm_rows == [("llm_call", "exit_without_flush", "0.00036")]


def test_init_rejects_garbage_buffer(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"\x00not sqlite\xff" * 500)
    with pytest.raises(ValueError, match="buffer_path"):
        dexcost.init(storage="local", buffer_path=str(garbage), auto_instrument=[])


def test_init_leaves_other_app_database_alone(tmp_path: Path) -> None:
    import sqlite3

    other = tmp_path / "app.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE users (id INTEGER)")
    with pytest.raises(ValueError, match="not a dexcost buffer"):
        dexcost.init(storage="local", buffer_path=str(other), auto_instrument=[])
    tables = sqlite3.connect(other).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("users",)]
    mode = sqlite3.connect(other).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "delete"


def test_flush_zero_with_nothing_pending(buffer_path: Path) -> None:
    _init(buffer_path)
    assert dexcost.flush(0) is True


@pytest.mark.parametrize("timeout", ["5", None, True])
def test_flush_timeout_type_checked(timeout: object) -> None:
    with pytest.raises(TypeError, match="timeout"):
        dexcost.flush(timeout)  # type: ignore[arg-type]


def test_shutdown_bad_timeout_changes_nothing(buffer_path: Path) -> None:
    from dexcost.runtime import current_runtime

    _init(buffer_path)
    before = current_runtime()
    with pytest.raises(ValueError, match="timeout"):
        dexcost.shutdown(-1)
    assert current_runtime() is before
