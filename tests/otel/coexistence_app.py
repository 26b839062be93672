"""An application with an OpenTelemetry setup of its own, run with and without dexcost.

``test_coexistence.py`` runs this script in a subprocess, because the global tracer
provider can be set only once per process. The argument is a JSON object:

- ``setup``: the application's tracing, one of ``sdk`` (an SDK TracerProvider with an
  in-memory exporter), ``wrapper`` (a non-SDK provider wrapping an SDK one, as Logfire
  does), ``none`` (no provider: the API's ProxyTracerProvider), ``always_off`` and
  ``ratio_zero`` (an SDK provider that samples nothing);
- ``dexcost``: whether to call ``dexcost.init()`` at all (False gives the baseline);
- ``init``: ``before`` or ``after``, when ``dexcost.init()`` runs relative to the
  provider set-up;
- ``instrumentors``: ``none``, ``before`` or ``after``: whether the application
  instruments requests and httpx with hooks of its own, and when;
- ``propagators``: whether the application sets a composite propagator of its own;
- ``allow_hosts``: dexcost's ``propagate_context_to`` (optional);
- ``buffer``: the dexcost buffer file.

Inside a span of its own the application makes one chat completion with the real
openai SDK against the fake OpenAI API (mock transport, no socket), and one requests
and one httpx call to a server on 127.0.0.1. After ``dexcost.shutdown()`` it makes the
two HTTP calls again. It prints a JSON summary of what its own exporter, hooks and
server saw.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

import httpx
import httpx2
import openai
import requests
from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

from dexcost.demo.fake_openai import FakeOpenAI, FakeUsage

APP_TENANT_HEADER = "x-app-tenant"


class WrapperTracerProvider(trace.TracerProvider):
    """A provider that is not an SDK one but forwards to one, like Logfire's."""

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

    def add_span_processor(self, processor: Any) -> None:
        self.inner.add_span_processor(processor)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()


class AppTenantPropagator(TextMapPropagator):
    """The application's own propagator: its ``app.tenant`` baggage as a header."""

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        return context if context is not None else otel_context.get_current()

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        tenant = baggage.get_baggage("app.tenant", context)
        if tenant is not None:
            setter.set(carrier, APP_TENANT_HEADER, str(tenant))

    @property
    def fields(self) -> set[str]:
        return {APP_TENANT_HEADER}


class Recorder(http.server.BaseHTTPRequestHandler):
    """Loopback server that records the headers of each request and replies with a small JSON."""

    received: list[dict[str, Any]] = []

    def do_GET(self) -> None:
        self.received.append({"path": self.path, "headers": dict(self.headers.items())})
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@contextlib.contextmanager
def loopback_server() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def host_provider(setup: str, exporter: InMemorySpanExporter) -> trace.TracerProvider | None:
    """Build the application's provider, exporting to ``exporter``. Return None for ``none``."""
    if setup == "none":
        return None
    sampler = {"always_off": ALWAYS_OFF, "ratio_zero": TraceIdRatioBased(0)}.get(setup)
    sdk_provider = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
    sdk_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return WrapperTracerProvider(sdk_provider) if setup == "wrapper" else sdk_provider


class Hooks:
    """Request and response hooks of the application. Each tags the span and logs the call."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def requests_request(self, span: trace.Span, request: Any) -> None:
        self.calls.append(f"requests.request {request.method}")
        span.set_attribute("app.hook.request", "requests")

    def requests_response(self, span: trace.Span, request: Any, response: Any) -> None:
        self.calls.append(f"requests.response {response.status_code}")
        span.set_attribute("app.hook.response", response.status_code)

    def httpx_request(self, span: trace.Span, request: Any) -> None:
        self.calls.append(f"httpx.request {request.method.decode()}")
        span.set_attribute("app.hook.request", "httpx")

    def httpx_response(self, span: trace.Span, request: Any, response: Any) -> None:
        self.calls.append(f"httpx.response {response.status_code}")
        span.set_attribute("app.hook.response", response.status_code)


def instrument_http(hooks: Hooks) -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    RequestsInstrumentor().instrument(
        request_hook=hooks.requests_request, response_hook=hooks.requests_response
    )
    HTTPXClientInstrumentor().instrument(
        request_hook=hooks.httpx_request, response_hook=hooks.httpx_response
    )


def set_app_propagators() -> None:
    propagate.set_global_textmap(
        CompositePropagator(
            [TraceContextTextMapPropagator(), W3CBaggagePropagator(), AppTenantPropagator()]
        )
    )


def start_dexcost(buffer: str, allow_hosts: Sequence[str]) -> None:
    import dexcost

    dexcost.init(
        storage="local",
        buffer_path=buffer,
        auto_instrument=["openai"],
        propagate_context_to=allow_hosts,
    )


def http_calls(base_url: str, label: str) -> None:
    requests.get(f"{base_url}/{label}/requests", timeout=5).raise_for_status()
    with httpx.Client() as client:
        client.get(f"{base_url}/{label}/httpx", timeout=5).raise_for_status()


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


def normalise(value: Any, port: int) -> Any:
    """Replace the server's random port, so two runs compare equal."""
    if value == port:
        return "<port>"
    if isinstance(value, str):
        return value.replace(f":{port}", ":<port>")
    if isinstance(value, (tuple, list)):
        return [normalise(item, port) for item in value]
    return value


def describe(spans: Sequence[ReadableSpan], port: int) -> list[dict[str, Any]]:
    """Return the spans the application's exporter received, without ids, times or the port."""
    names = {span.context.span_id: span.name for span in spans if span.context is not None}
    described = []
    for span in spans:
        parent = None
        if span.parent is not None:
            parent = names.get(span.parent.span_id, "<not exported>")
        described.append(
            {
                "name": span.name,
                "kind": span.kind.name,
                "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
                "parent": parent,
                "status": span.status.status_code.name,
                "attributes": {
                    key: normalise(value, port) for key, value in (span.attributes or {}).items()
                },
                "trace_id": format(span.context.trace_id, "032x") if span.context else None,
            }
        )
    return described


def parse_baggage(header: str | None) -> dict[str, str]:
    if not header:
        return {}
    entries = {}
    for member in header.split(","):
        key, _, value = member.strip().partition("=")
        entries[unquote(key.strip())] = unquote(value.split(";")[0].strip().replace("+", " "))
    return entries


def received(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    summaries = []
    for record in records:
        headers: Mapping[str, str] = {k.lower(): v for k, v in record["headers"].items()}
        summaries.append(
            {
                "path": record["path"],
                "traceparent": "traceparent" in headers,
                "baggage": parse_baggage(headers.get("baggage")),
                "app_tenant": headers.get(APP_TENANT_HEADER),
            }
        )
    return summaries


def main(options: dict[str, Any]) -> dict[str, Any]:
    use_dexcost = bool(options["dexcost"])
    exporter = InMemorySpanExporter()
    hooks = Hooks()
    provider = host_provider(options["setup"], exporter)

    # Taken before any provider is set, as a module-level tracer would be.
    tracer = trace.get_tracer("coexistence_app")
    if options["propagators"]:
        set_app_propagators()
    if options["instrumentors"] == "before":
        instrument_http(hooks)
    if use_dexcost and options["init"] == "before":
        start_dexcost(options["buffer"], options.get("allow_hosts", []))
    if provider is not None:
        trace.set_tracer_provider(provider)
    if use_dexcost and options["init"] == "after":
        start_dexcost(options["buffer"], options.get("allow_hosts", []))
    if options["instrumentors"] == "after":
        instrument_http(hooks)

    import dexcost

    summary: dict[str, Any] = {"global_provider": type(trace.get_tracer_provider()).__name__}
    with loopback_server() as server:
        port = server.server_address[1]
        base_url = f"http://127.0.0.1:{port}"
        attribution = (
            dexcost.context(customer_id="acme") if use_dexcost else contextlib.nullcontext()
        )
        token = otel_context.attach(baggage.set_baggage("app.tenant", "t1"))
        try:
            with tracer.start_as_current_span(
                "handle_ticket", attributes={"app.ticket": 7}
            ) as span:
                summary["ticket_trace_id"] = format(span.get_span_context().trace_id, "032x")
                with attribution:
                    summary["baggage_in_process"] = sorted(baggage.get_all())
                    chat_completion()
                    with tracer.start_as_current_span("lookup"):
                        http_calls(base_url, "during")
        finally:
            otel_context.detach(token)
        summary["flushed"] = dexcost.flush(timeout=5)
        dexcost.shutdown()
        # The application's instrumentation must outlive dexcost's patches.
        with tracer.start_as_current_span("after_shutdown"):
            http_calls(base_url, "after")
        summary["received"] = received(Recorder.received)
        summary["global_provider_at_end"] = type(trace.get_tracer_provider()).__name__
        if provider is not None:
            provider.force_flush()  # type: ignore[attr-defined]
        summary["host_spans"] = describe(exporter.get_finished_spans(), port)
    summary["hooks"] = hooks.calls
    summary["instrumented_after_shutdown"] = dexcost.runtime.instrumented_libraries()
    return summary


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
