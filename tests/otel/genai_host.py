"""The application side of the GenAI span tests: its own provider and its SDK clients.

``host_provider()`` gives the test a fresh global SDK TracerProvider that keeps every
finished span in memory, and puts the process's previous global provider back after.
OpenTelemetry lets a process set its global provider only once, so the test resets the
API's private guard; nothing else does that.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from dexcost.demo.fake_anthropic import FakeAnthropic
from dexcost.demo.fake_openai import FakeOpenAI
from dexcost.instrumentation.registry import parse_version

MESSAGES = [{"role": "user", "content": "Reset my password"}]


@dataclass
class Host:
    provider: TracerProvider
    exporter: InMemorySpanExporter

    def genai_spans(self) -> list[ReadableSpan]:
        """The finished spans that carry token usage, from every instrumentation."""
        return [
            span
            for span in self.exporter.get_finished_spans()
            if span.attributes and "gen_ai.usage.output_tokens" in span.attributes
        ]


@contextmanager
def unset_global_provider() -> Iterator[None]:
    """Run with no global provider set (the API's proxy), then restore the previous one."""
    saved = (trace_api._TRACER_PROVIDER, trace_api._TRACER_PROVIDER_SET_ONCE)
    trace_api._TRACER_PROVIDER = None
    trace_api._TRACER_PROVIDER_SET_ONCE = Once()
    try:
        yield
    finally:
        trace_api._TRACER_PROVIDER, trace_api._TRACER_PROVIDER_SET_ONCE = saved


def new_host() -> Host:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Host(provider, exporter)


@contextmanager
def host_provider() -> Iterator[Host]:
    """Set a fresh global SDK provider for the block, as an application would."""
    with unset_global_provider():
        host = new_host()
        trace_api.set_tracer_provider(host.provider)
        try:
            yield host
        finally:
            host.provider.shutdown()


@contextmanager
def methods_restored(*packages: str) -> Iterator[None]:
    """Put back every method of the SDK classes in ``packages`` as it was before the block.

    OpenLLMetry 0.62's ``uninstrument()`` leaves its wrapper on the openai 3.x
    resource methods, which would trace later tests into providers already shut down.
    """
    for package in packages:
        # Submodules load lazily: import them all, so the snapshot covers every class an
        # instrumentation may wrap during the block.
        module = importlib.import_module(package)
        for found in pkgutil.walk_packages(module.__path__, f"{package}."):
            importlib.import_module(found.name)
    prefixes = tuple(f"{package}." for package in packages)
    saved: list[tuple[type, dict[str, Any]]] = []
    for name, module in list(sys.modules.items()):
        if not name.startswith(prefixes):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, type) and value.__module__ == name:
                saved.append((value, dict(vars(value))))
    try:
        yield
    finally:
        for cls, before in saved:
            for attribute, value in before.items():
                if vars(cls).get(attribute) is not value:
                    setattr(cls, attribute, value)


def openai_client(fake: FakeOpenAI) -> Any:
    """A real openai client that reaches ``fake`` through a mock transport."""
    import openai

    if parse_version(openai.__version__) >= (3,):
        import httpx2

        http_client: Any = httpx2.Client(transport=fake.httpx2_transport())
    else:
        import httpx

        http_client = httpx.Client(transport=fake.httpx_transport())
    return openai.OpenAI(
        api_key="sk-test", base_url="http://fake.test/v1", http_client=http_client, max_retries=0
    )


def anthropic_client(fake: FakeAnthropic) -> Any:
    """A real anthropic client that reaches ``fake`` through a mock transport."""
    import anthropic

    if parse_version(anthropic.__version__) >= (2,):
        import httpx2

        http_client: Any = httpx2.Client(transport=fake.httpx2_transport())
    else:
        import httpx

        http_client = httpx.Client(transport=fake.httpx_transport())
    return anthropic.Anthropic(
        api_key="sk-ant-test", base_url="http://fake.test", http_client=http_client, max_retries=0
    )
