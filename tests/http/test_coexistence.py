"""The application's own OpenTelemetry HTTP instrumentation and dexcost's capture coexist.

The app instruments requests, httpx and httpx2 with its own tracer provider and hooks,
before or after ``dexcost.init()``. Its spans and hooks keep working, dexcost still
prices paid requests, and an unmatched request adds nothing but the app's own span.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
import requests
from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor, HTTPXClientInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import dexcost
from dexcost.demo.fake_openai import FakeOpenAIServer, FakeUsage

from .fake_paid_api import FIXED_COST, FakePaidAPI

Rows = Callable[[], list[dict[str, Any]]]


class App:
    """The application's own tracing: a provider, an exporter and what its hooks saw."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.hooks: list[str] = []

    def request_hook(self, span: Any, request: Any) -> None:
        self.hooks.append("request")

    def response_hook(self, span: Any, request: Any, response: Any) -> None:
        self.hooks.append("response")

    def span_names(self) -> list[str]:
        return [span.name for span in self.exporter.get_finished_spans()]


def _instrumentors() -> list[Any]:
    return [RequestsInstrumentor(), HTTPXClientInstrumentor(), HTTPX2ClientInstrumentor()]


def _instrument(app: App) -> None:
    for instrumentor in _instrumentors():
        instrumentor.instrument(
            tracer_provider=app.provider,
            request_hook=app.request_hook,
            response_hook=app.response_hook,
        )


def _uninstrument() -> None:
    for instrumentor in _instrumentors():
        instrumentor.uninstrument()


@pytest.fixture(params=["app_first", "dexcost_first"])
def app(request: pytest.FixtureRequest, buffer_path: Path, test_catalog: None) -> Iterator[App]:
    app = App()
    app_first = request.param == "app_first"
    if app_first:
        _instrument(app)
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["openai"])
    if not app_first:
        _instrument(app)
    yield app
    # Undone in reverse order: the requests instrumentation can only remove its own
    # patch while it is the outermost one.
    if app_first:
        dexcost.shutdown()
        _uninstrument()
    else:
        _uninstrument()
        dexcost.shutdown()


def _get(client: str, url: str) -> int:
    if client == "requests":
        return requests.get(url).status_code
    module: Any = httpx if client == "httpx" else httpx2
    with module.Client() as http:
        return int(http.get(url).status_code)


CLIENTS = ("requests", "httpx", "httpx2")


@pytest.mark.parametrize("client", CLIENTS)
def test_paid_request_priced_under_tracing(
    app: App, api: FakePaidAPI, costs: Rows, client: str
) -> None:
    _get(client, api.base_url + "/fixed/search")

    (event,) = costs()
    assert Decimal(event["cost_usd"]) == FIXED_COST
    assert app.span_names() == ["GET"]
    assert app.hooks == ["request", "response"]


@pytest.mark.parametrize("client", CLIENTS)
def test_unmatched_request_adds_only_app_span(
    app: App, api: FakePaidAPI, stored: Callable[..., Any], client: str
) -> None:
    status = _get(client, api.base_url + "/free/weather")

    assert status == 200
    assert app.span_names() == ["GET"]
    assert stored() == []


def test_openai_call_priced_once_traced(app: App, costs: Rows, stored: Any) -> None:
    usage = FakeUsage(prompt_tokens=1200, completion_tokens=300)
    with (
        FakeOpenAIServer(usage=usage) as server,
        openai.OpenAI(api_key="sk-test", base_url=server.base_url, max_retries=0) as client,
    ):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )

    (call,) = stored("llm_call")
    # gpt-4o-mini: $0.15 per million input and $0.60 per million output tokens,
    # 1200 * 0.15 / 1e6 + 300 * 0.60 / 1e6 = 0.00018 + 0.00018.
    assert Decimal(call["cost_usd"]) == Decimal("0.00036")
    assert costs() == []
    assert app.span_names() == ["POST"]
