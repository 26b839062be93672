"""dexcost attribution stays out of outbound requests unless the host is allowlisted."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import dexcost
from dexcost import propagation


class _Recorder(BaseHTTPRequestHandler):
    """A third-party API on loopback that keeps the headers of each request."""

    seen: list[dict[str, str]]

    def do_GET(self) -> None:
        self.server.seen.append({k.lower(): v for k, v in self.headers.items()})  # type: ignore[attr-defined]
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def third_party() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def host_tracing() -> Iterator[InMemorySpanExporter]:
    """The application's own tracing: an SDK provider and requests instrumentation."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = RequestsInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield exporter
    instrumentor.uninstrument()
    provider.shutdown()


@pytest.fixture(autouse=True)
def _restore_propagator() -> Iterator[None]:
    yield
    propagation.uninstall()


def _url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/v1/search"


def _baggage_header(server: ThreadingHTTPServer) -> str:
    (headers,) = server.seen  # type: ignore[attr-defined]
    return headers.get("baggage", "")


def _init(buffer_path, **settings: object) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[], **settings)


def test_outbound_request_carries_no_dexcost_baggage(
    buffer_path, third_party, host_tracing
) -> None:
    _init(buffer_path)
    otel_context.attach(baggage.set_baggage("tenant.region", "eu"))
    dexcost.set_context(customer_id="acme", project_id="support", metadata={"plan": "pro"})
    try:
        requests.get(_url(third_party), timeout=5)
    finally:
        dexcost.shutdown()

    header = _baggage_header(third_party)
    assert "tenant.region=eu" in header
    assert "dexcost." not in header
    # The app's own tracing kept working: it traced the request.
    assert [span.kind for span in host_tracing.get_finished_spans()] == [trace.SpanKind.CLIENT]


def test_allowlisted_host_receives_dexcost_baggage(buffer_path, third_party, host_tracing) -> None:
    _init(buffer_path, propagate_context_to=["127.0.0.1"])
    dexcost.set_context(customer_id="acme")
    try:
        requests.get(_url(third_party), timeout=5)
    finally:
        dexcost.shutdown()

    assert "dexcost.customer_id=acme" in _baggage_header(third_party)


def test_wildcard_pattern_not_matching_host(buffer_path, third_party, host_tracing) -> None:
    _init(buffer_path, propagate_context_to=["*.internal.example.com"])
    dexcost.set_context(customer_id="acme")
    try:
        requests.get(_url(third_party), timeout=5)
    finally:
        dexcost.shutdown()

    assert "dexcost." not in _baggage_header(third_party)


def test_baggage_stays_filtered_after_shutdown(buffer_path, third_party, host_tracing) -> None:
    _init(buffer_path)
    dexcost.set_context(customer_id="acme")
    dexcost.shutdown()

    requests.get(_url(third_party), timeout=5)
    assert "dexcost." not in _baggage_header(third_party)


def test_inject_without_client_span_strips(buffer_path) -> None:
    # A propagator called outside any HTTP client: no destination host is known.
    _init(buffer_path, propagate_context_to=["*"])
    dexcost.set_context(customer_id="acme")
    carrier: dict[str, str] = {}
    try:
        W3CBaggagePropagator().inject(carrier)
    finally:
        dexcost.shutdown()

    assert "dexcost." not in carrier.get("baggage", "")


@pytest.mark.parametrize(
    ("host", "patterns", "allowed"),
    [
        ("billing.internal.example.com", ("*.internal.example.com",), True),
        ("internal.example.com", ("*.internal.example.com",), False),
        ("API.Example.com.", ("api.example.com",), True),
        ("api.openai.com", ("api.example.com",), False),
        ("api.openai.com", ("*",), True),
        (None, ("*",), False),
        ("api.example.com", (), False),
        ("evilexample.com", ("*.example.com",), False),
        ("::1", ("::1",), True),
        ("10.0.0.7", ("10.0.0.7",), True),
        # Invalid patterns are left out by normalise_patterns, so they match nothing.
        ("evilexample.com", ("*example.com",), False),
        ("api.openai.com", ("api*",), False),
        ("api.openai.com", ("*.",), False),
    ],
)
def test_host_allowlist_matching(
    host: str | None, patterns: tuple[str, ...], allowed: bool
) -> None:
    assert propagation.host_allowed(host, propagation.normalise_patterns(patterns)) is allowed


@pytest.mark.parametrize(
    "pattern",
    [
        "https://api.example.com",
        "api.example.com:443",
        "api.example.com/v1",
        " ",
        "*.",
        "*example.com",
        "api*",
        "**.example.com",
        "a..b",
        "-bad-.com",
        "x" * 300,
    ],
)
def test_invalid_host_pattern_rejected(buffer_path, pattern: str) -> None:
    with pytest.raises(ValueError, match="propagate_context_to has an invalid host pattern"):
        _init(buffer_path, propagate_context_to=[pattern])


def test_host_pattern_string_rejected(buffer_path) -> None:
    with pytest.raises(TypeError, match=r'wrap it in a list: propagate_context_to=\["'):
        _init(buffer_path, propagate_context_to="api.example.com")


# --- inbound attribution ---


def _attach_inbound(customer_id: str) -> None:
    """Attach baggage as server middleware does after extracting an inbound header."""
    carrier = {"baggage": f"dexcost.customer_id={customer_id},dexcost.project_id=web"}
    otel_context.attach(W3CBaggagePropagator().extract(carrier))


def test_inbound_baggage_ignored_by_default(buffer_path) -> None:
    _init(buffer_path)
    _attach_inbound("victim")
    try:
        assert dexcost.get_context() is None
    finally:
        dexcost.shutdown()


def test_inbound_baggage_trusted_when_enabled(buffer_path, stored) -> None:
    _init(buffer_path, trust_inbound_context=True)
    _attach_inbound("acme")
    dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
    context = dexcost.get_context()

    (event,) = stored("llm_call")
    dexcost.shutdown()
    assert context is not None
    assert context.customer_id == "acme"
    assert event["customer_id"] == "acme"
    assert event["project_id"] == "web"


def test_local_context_wins_over_inbound(buffer_path) -> None:
    _init(buffer_path, trust_inbound_context=True)
    _attach_inbound("acme")
    dexcost.set_context(customer_id="beta")
    try:
        context = dexcost.get_context()
    finally:
        dexcost.shutdown()

    assert context is not None
    assert context.customer_id == "beta"
    # Fields the local code did not set still come from the caller.
    assert context.project_id == "web"


def test_inbound_values_are_validated(buffer_path) -> None:
    _init(buffer_path, trust_inbound_context=True)
    _attach_inbound("x" * 300)
    try:
        with pytest.warns(RuntimeWarning, match="customer_id is 300 characters long"):
            context = dexcost.get_context()
    finally:
        dexcost.shutdown()

    assert context is not None
    assert context.customer_id is not None
    assert context.customer_id.startswith("sha256:")
