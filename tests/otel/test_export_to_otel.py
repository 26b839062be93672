"""``export_to_otel``: a copy of each cost span in the application's own tracing pipeline.

The application's provider is a real SDK TracerProvider (or a wrapper around one)
with an in-memory exporter, set as the global provider for the test. The LLM calls go
through the real openai SDK to the fake OpenAI API over a mock transport.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind
from opentelemetry.util._once import Once
from opentelemetry.util.types import Attributes

import dexcost
from dexcost import errors, otel_export, runtime
from dexcost.config import EXPORT_TO_OTEL_ENV, DexcostConfig
from dexcost.demo.fake_openai import FakeOpenAI, FakeUsage

# gpt-4o-mini: 1200 input tokens at $0.15/M plus 300 output tokens at $0.60/M.
EXPECTED_COST = "0.00036"
Stored = Callable[..., list[dict[str, Any]]]


class WrapperTracerProvider(trace.TracerProvider):
    """A provider that is not an SDK one but forwards to one, as Logfire's does."""

    def __init__(self, inner: TracerProvider) -> None:
        self.inner = inner

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> trace.Tracer:
        return self.inner.get_tracer(
            instrumenting_module_name, instrumenting_library_version, schema_url, attributes
        )


class RaisingTracerProvider(trace.TracerProvider):
    """A provider whose tracer cannot be had, to check nothing reaches the application."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        raise RuntimeError("this provider is broken")


@pytest.fixture
def set_global(monkeypatch: pytest.MonkeyPatch) -> Callable[[trace.TracerProvider], None]:
    """Return a setter of the global provider; the test's provider is removed afterwards."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    return trace.set_tracer_provider


@pytest.fixture
def exporter(set_global: Callable[[trace.TracerProvider], None]) -> InMemorySpanExporter:
    """The in-memory exporter of the application's SDK provider, set as the global one."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    set_global(provider)
    return spans


@pytest.fixture
def start(buffer_path: Path) -> Iterator[Callable[..., DexcostConfig]]:
    def init(**options: Any) -> DexcostConfig:
        options.setdefault("export_to_otel", True)
        return dexcost.init(
            storage="local", buffer_path=str(buffer_path), auto_instrument=["openai"], **options
        )

    yield init
    dexcost.shutdown()


def chat_completion() -> None:
    fake = FakeOpenAI(usage=FakeUsage(prompt_tokens=1200, completion_tokens=300))
    with openai.OpenAI(
        api_key="sk-test",
        base_url="http://fake.test/v1",
        http_client=httpx2.Client(transport=fake.httpx2_transport()),
        max_retries=0,
    ) as client:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
        )


def handle_ticket(**attribution: Any) -> trace.Span:
    """Make one chat completion inside an application span; return that span."""
    with (
        trace.get_tracer("app").start_as_current_span("handle_ticket") as span,
        dexcost.context(customer_id="acme", **attribution),
    ):
        chat_completion()
    return span


def copies(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [
        span
        for span in exporter.get_finished_spans()
        if span.instrumentation_scope is not None
        and span.instrumentation_scope.name == "dexcost.export"
    ]


def stored_attributes(row: dict[str, Any]) -> dict[str, Any]:
    attributes = row["attributes"]
    return attributes if isinstance(attributes, dict) else json.loads(attributes)


# --- the copy ---


def test_copy_carries_model_tokens_cost_and_attribution(
    start: Callable[..., DexcostConfig], exporter: InMemorySpanExporter
) -> None:
    start()
    handle_ticket(project_id="support")

    (copy,) = copies(exporter)
    attributes = dict(copy.attributes or {})
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (
        1200,
        300,
    )
    assert attributes["dexcost.cost_usd"] == EXPECTED_COST
    assert attributes["dexcost.cost_status"] == "priced"
    assert (attributes["dexcost.customer_id"], attributes["dexcost.project_id"]) == (
        "acme",
        "support",
    )
    assert copy.kind is SpanKind.CLIENT


def test_copy_is_a_child_of_the_application_span(
    start: Callable[..., DexcostConfig], exporter: InMemorySpanExporter
) -> None:
    start()
    app_span = handle_ticket().get_span_context()

    (copy,) = copies(exporter)
    assert copy.parent is not None
    assert copy.parent.span_id == app_span.span_id
    assert copy.context is not None
    assert copy.context.trace_id == app_span.trace_id


def test_copy_matches_the_stored_span(
    start: Callable[..., DexcostConfig], exporter: InMemorySpanExporter, stored: Stored
) -> None:
    start()
    handle_ticket()

    (row,) = stored("llm_call")
    (copy,) = copies(exporter)
    assert dict(copy.attributes or {}) == stored_attributes(row)
    assert copy.name == row["name"]
    assert (copy.start_time, copy.end_time) == (row["start_ns"], row["end_ns"])
    assert copy.context is not None
    assert format(copy.context.trace_id, "032x") == row["trace_id"]


def test_off_by_default(
    start: Callable[..., DexcostConfig], exporter: InMemorySpanExporter
) -> None:
    config = start(export_to_otel=None)
    handle_ticket()

    assert config.export_to_otel is False
    assert [span.name for span in exporter.get_finished_spans()] == ["handle_ticket"]


def test_environment_turns_it_on(
    monkeypatch: pytest.MonkeyPatch,
    start: Callable[..., DexcostConfig],
    exporter: InMemorySpanExporter,
) -> None:
    monkeypatch.setenv(EXPORT_TO_OTEL_ENV, "true")
    start(export_to_otel=None)
    handle_ticket()

    assert len(copies(exporter)) == 1


def test_argument_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXPORT_TO_OTEL_ENV, "true")
    assert DexcostConfig(storage="local", export_to_otel=False).export_to_otel is False


@pytest.mark.parametrize("value", ["yes please", "2"])
def test_unreadable_environment_value_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(EXPORT_TO_OTEL_ENV, value)
    with pytest.raises(ValueError, match=EXPORT_TO_OTEL_ENV):
        DexcostConfig(storage="local")


@pytest.mark.parametrize("value", ["true", 1, "yes"])
def test_non_bool_argument_is_refused(value: object) -> None:
    with pytest.raises(TypeError, match="export_to_otel"):
        DexcostConfig(storage="local", export_to_otel=value)  # type: ignore[arg-type]


# --- sampling and providers ---


def test_host_sampler_drops_the_copy_not_the_cost(
    start: Callable[..., DexcostConfig],
    set_global: Callable[[trace.TracerProvider], None],
    stored: Stored,
) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0)))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    set_global(provider)
    start()
    handle_ticket()

    assert spans.get_finished_spans() == ()
    (row,) = stored("llm_call")
    assert Decimal(row["cost_usd"]) == Decimal(EXPECTED_COST)


def test_wrapper_provider_receives_the_copy(
    start: Callable[..., DexcostConfig], set_global: Callable[[trace.TracerProvider], None]
) -> None:
    spans = InMemorySpanExporter()
    inner = TracerProvider()
    inner.add_span_processor(SimpleSpanProcessor(spans))
    set_global(WrapperTracerProvider(inner))
    start()
    app_span = handle_ticket().get_span_context()

    (copy,) = copies(spans)
    assert copy.parent is not None
    assert copy.parent.span_id == app_span.span_id


def test_no_provider_exports_nothing_until_one_is_set(
    start: Callable[..., DexcostConfig],
    set_global: Callable[[trace.TracerProvider], None],
    stored: Stored,
) -> None:
    start()
    handle_ticket()
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    set_global(provider)
    handle_ticket()

    assert len(stored("llm_call")) == 2
    assert len(copies(spans)) == 1


def test_task_started_before_provider_gives_no_dangling_parent(
    start: Callable[..., DexcostConfig],
    set_global: Callable[[trace.TracerProvider], None],
) -> None:
    start()
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    with dexcost.task("triage") as task:
        set_global(provider)
        with trace.get_tracer("app").start_as_current_span("handle_ticket"):
            task.record_cost("serpapi", "0.01")

    # The task has no copy and started outside any span, so the event's copy is a
    # root span rather than the child of a span the backend never receives.
    (copy,) = copies(spans)
    assert (copy.attributes or {})["dexcost.event_type"] == "external_cost"
    assert copy.parent is None


def test_dexcost_provider_as_global_is_not_fed_back(
    start: Callable[..., DexcostConfig],
    set_global: Callable[[trace.TracerProvider], None],
    stored: Stored,
) -> None:
    start()
    active = runtime.current_runtime()
    assert active is not None
    set_global(active.provider)
    chat_completion()

    assert len(stored("llm_call")) == 1


def test_broken_provider_error_is_contained(
    start: Callable[..., DexcostConfig],
    set_global: Callable[[trace.TracerProvider], None],
    stored: Stored,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(errors, "RAISE_INTERNAL_ERRORS", False)
    set_global(RaisingTracerProvider())
    start()
    with caplog.at_level(logging.WARNING, logger="dexcost"):
        chat_completion()

    assert len(stored("llm_call")) == 1
    assert "copying a cost span" in caplog.text


class _RaisingProcessor(SimpleSpanProcessor):
    """An application processor that fails on every span it is given."""

    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("the application's exporter is down")


def test_app_processor_error_blamed_on_app(
    start: Callable[..., DexcostConfig],
    set_global: Callable[[trace.TracerProvider], None],
    stored: Stored,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Internal errors re-raise under the tests, so this also checks that the
    # application's failure is not counted as one of dexcost's.
    monkeypatch.setattr(otel_export, "_host_failures", 0)
    provider = TracerProvider()
    provider.add_span_processor(_RaisingProcessor(InMemorySpanExporter()))
    set_global(provider)
    start()
    with caplog.at_level(logging.WARNING, logger="dexcost"):
        chat_completion()

    assert len(stored("llm_call")) == 1
    assert "the application's tracer provider raised" in caplog.text
    assert "exporter is down" in caplog.text


def test_stream_on_other_thread_keeps_parent(
    start: Callable[..., DexcostConfig], exporter: InMemorySpanExporter
) -> None:
    start()
    fake = FakeOpenAI(usage=FakeUsage(prompt_tokens=1200, completion_tokens=300))
    tracer = trace.get_tracer("app")
    with openai.OpenAI(
        api_key="sk-test",
        base_url="http://fake.test/v1",
        http_client=httpx2.Client(transport=fake.httpx2_transport()),
        max_retries=0,
    ) as client:
        with tracer.start_as_current_span("handle_ticket") as app_span:
            stream = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hello"}],
                stream=True,
            )

        def read() -> None:
            # The stream ends, and the call is recorded, inside another span.
            with tracer.start_as_current_span("worker"):
                for _ in stream:
                    pass

        worker = threading.Thread(target=read)
        worker.start()
        worker.join()

    (copy,) = copies(exporter)
    assert copy.parent is not None
    assert copy.parent.span_id == app_span.get_span_context().span_id
    assert (copy.attributes or {})["dexcost.cost_usd"] == EXPECTED_COST


# --- privacy, tasks and duplicates ---


def test_redaction_and_hashing_apply_to_the_copy(
    start: Callable[..., DexcostConfig], exporter: InMemorySpanExporter, stored: Stored
) -> None:
    start(redact_fields=["email"], hash_customer_id=True)
    handle_ticket(metadata={"email": "jo@example.com", "plan": "pro"})

    (row,) = stored("llm_call")
    (copy,) = copies(exporter)
    attributes = dict(copy.attributes or {})
    assert "dexcost.metadata.email" not in attributes
    assert attributes["dexcost.metadata.plan"] == "pro"
    assert attributes["dexcost.customer_id"] != "acme"
    assert attributes["dexcost.customer_id"] == row["customer_id"]


def test_task_copy_parents_its_events(
    start: Callable[..., DexcostConfig], exporter: InMemorySpanExporter
) -> None:
    start()
    tracer = trace.get_tracer("app")
    with (
        tracer.start_as_current_span("handle_ticket") as app_span,
        dexcost.task("triage", customer_id="acme") as task,
    ):
        chat_completion()
        task.record_cost("serpapi", "0.01")

    by_type = {(span.attributes or {})["dexcost.event_type"]: span for span in copies(exporter)}
    task_copy = by_type["task"]
    assert task_copy.parent is not None
    assert task_copy.parent.span_id == app_span.get_span_context().span_id
    assert task_copy.context is not None
    for event_type in ("llm_call", "external_cost"):
        parent = by_type[event_type].parent
        assert parent is not None
        assert parent.span_id == task_copy.context.span_id
    assert (task_copy.attributes or {})["dexcost.task.cost_usd"] == "0.01036"


def test_each_cost_is_exported_once_and_stored_once(
    start: Callable[..., DexcostConfig], exporter: InMemorySpanExporter, stored: Stored
) -> None:
    start()
    handle_ticket()
    handle_ticket()
    with dexcost.task("batch"):
        dexcost.record_cost("serpapi", "0.01")

    exported = copies(exporter)
    event_types = sorted((span.attributes or {})["dexcost.event_type"] for span in exported)
    assert event_types == ["external_cost", "llm_call", "llm_call", "task"]
    assert len({span.context.span_id for span in exported if span.context}) == 4
    # The copies never reach dexcost's own buffer.
    assert len(stored("llm_call")) == 2
    assert len(stored("external_cost")) == 1


# --- under opentelemetry-instrument ---

INSTRUMENTED_APP = Path(__file__).with_name("instrumented_app.py")
INSTRUMENT = Path(sys.executable).with_name("opentelemetry-instrument")


@pytest.mark.skipif(not INSTRUMENT.exists(), reason="opentelemetry-instrument is not installed")
def test_auto_launch_exports_to_the_configured_provider(tmp_path: Path) -> None:
    # The distro starts dexcost before the configurator sets the application's provider:
    # the copy goes to the provider that is global when the call is made.
    spans_file = tmp_path / "app-spans.jsonl"
    buffer = tmp_path / "buffer.db"
    result = subprocess.run(
        [str(INSTRUMENT), sys.executable, str(INSTRUMENTED_APP)],
        env={
            **os.environ,
            "HOME": str(tmp_path),
            "OTEL_PYTHON_DISTRO": "dexcost",
            "OTEL_PYTHON_CONFIGURATOR": "dexcost",
            "DEXCOST_AUTO_INSTRUMENT": "openai",
            "DEXCOST_EXPORT_TO_OTEL": "true",
            "DEXCOST_BUFFER_PATH": str(buffer),
            "APP_SPANS_FILE": str(spans_file),
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    app_spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    (copy,) = [span for span in app_spans if span["scope"] == "dexcost.export"]
    assert copy["attributes"]["dexcost.cost_usd"] == EXPECTED_COST
    assert copy["attributes"]["dexcost.customer_id"] == "acme"
    connection = sqlite3.connect(buffer)
    try:
        query = "SELECT count(*) FROM spans WHERE event_type = 'llm_call'"
        (count,) = connection.execute(query).fetchone()
    finally:
        connection.close()
    assert count == 1
