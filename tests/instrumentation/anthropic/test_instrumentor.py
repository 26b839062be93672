from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import anthropic
import pytest
import wrapt
from anthropic.resources.messages import AsyncMessages, Messages
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import dexcost
from dexcost.demo.fake_anthropic import FakeAnthropic
from dexcost.instrumentation import registry

from .conftest import USES_HTTPX2, http_client

MESSAGES = [{"role": "user", "content": "Reset my password"}]
PATCHED = (
    (Messages, "create"),
    (Messages, "stream"),
    (AsyncMessages, "create"),
    (AsyncMessages, "stream"),
    (anthropic.Stream, "close"),
    (anthropic.AsyncStream, "close"),
)


def _run(tmp_path: Path, *parts: str) -> dict:
    """Run the script made of ``parts`` in a fresh interpreter; it prints JSON last."""
    script = "\n".join(textwrap.dedent(part) for part in parts)
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": "", "HOME": str(tmp_path), "PYTHONPATH": ":".join(sys.path)},
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_installed_version_supported() -> None:
    spec = registry.LIBRARIES["anthropic"]
    assert registry.is_supported(spec, anthropic.__version__)
    assert registry.is_supported(spec, "0.43.0")
    assert not registry.is_supported(spec, "0.42.0")
    assert not registry.is_supported(spec, "3.0.0")


@pytest.mark.parametrize(("cls", "name"), PATCHED)
def test_methods_patched_after_init(dx, cls, name) -> None:
    assert isinstance(cls.__dict__[name], wrapt.FunctionWrapper)


def test_count_tokens_not_patched(dx) -> None:
    assert not isinstance(Messages.__dict__["count_tokens"], wrapt.FunctionWrapper)
    assert not isinstance(AsyncMessages.__dict__["count_tokens"], wrapt.FunctionWrapper)


def test_shutdown_restores_originals(dx) -> None:
    patched = {(cls, name): cls.__dict__[name] for cls, name in PATCHED}
    dexcost.shutdown()
    for (cls, name), wrapper in patched.items():
        assert cls.__dict__[name] is wrapper.__wrapped__


def test_reinit_without_anthropic_unpatches(dx, buffer_path: Path) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["openai"])
    assert not isinstance(Messages.__dict__["create"], wrapt.FunctionWrapper)


def test_init_twice_records_each_call_once(dx, buffer_path: Path, client, llm_events) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["anthropic"])
    client.messages.create(model="claude-sonnet-4", max_tokens=64, messages=MESSAGES)
    assert len(llm_events()) == 1


@pytest.mark.skipif(not USES_HTTPX2, reason="anthropic 0.x emits no OpenTelemetry spans itself")
def test_sdk_spans_do_not_add_events(dx, fake: FakeAnthropic, llm_events) -> None:
    """anthropic 2.x traces its own calls; dexcost still records one event per call."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = anthropic.Anthropic(
        api_key="sk-ant-test",
        base_url="http://fake.test",
        http_client=http_client(fake, asynchronous=False),
        max_retries=0,
        open_telemetry={"tracer_provider": provider},
    )
    client.messages.create(model="claude-sonnet-4", max_tokens=64, messages=MESSAGES)
    for _ in client.messages.create(
        model="claude-sonnet-4", max_tokens=64, messages=MESSAGES, stream=True
    ):
        pass
    with client.messages.stream(model="claude-sonnet-4", max_tokens=64, messages=MESSAGES) as s:
        s.get_final_message()
    provider.shutdown()
    assert len(exporter.get_finished_spans()) >= 3
    events = llm_events()
    assert len(events) == 3
    # 1,000 input at $3/M + 300 output at $15/M, each.
    assert all(Decimal(event["cost_usd"]) == Decimal("0.0075") for event in events)


def test_global_tracer_provider_one_event_per_call(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        """
        import json, sqlite3
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)

        import dexcost
        dexcost.init(storage="local", buffer_path="buffer.db", auto_instrument=["anthropic"])
        import anthropic
        from dexcost.demo.fake_anthropic import FakeAnthropic
        fake = FakeAnthropic()
        if int(anthropic.__version__.split(".")[0]) >= 2:
            import httpx2 as httpx_module
            transport = fake.httpx2_transport()
        else:
            import httpx as httpx_module
            transport = fake.httpx_transport()
        client = anthropic.Anthropic(
            api_key="sk-ant-test", base_url="http://fake.test", max_retries=0,
            http_client=httpx_module.Client(transport=transport),
        )
        messages = [{"role": "user", "content": "hi"}]
        client.messages.create(model="claude-sonnet-4", max_tokens=8, messages=messages)
        for _ in client.messages.create(
            model="claude-sonnet-4", max_tokens=8, messages=messages, stream=True
        ):
            pass
        dexcost.flush(timeout=10)
        rows = sqlite3.connect("buffer.db").execute(
            "SELECT COUNT(*) FROM spans WHERE event_type = 'llm_call'"
        ).fetchone()[0]
        dexcost.shutdown()
        print(json.dumps({"events": rows, "sdk_spans": len(exporter.get_finished_spans())}))
        """,
    )
    assert result["events"] == 2
    if registry.parse_version(anthropic.__version__) >= (2,):
        assert result["sdk_spans"] >= 2


def test_init_does_not_import_anthropic(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        """
        import json, sys
        import dexcost
        dexcost.init(storage="local", buffer_path="buffer.db")
        print(json.dumps({"imported": "anthropic" in sys.modules}))
        """,
    )
    assert result["imported"] is False


def test_anthropic_imported_after_init_is_patched(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        """
        import json
        import dexcost
        dexcost.init(storage="local", buffer_path="buffer.db")
        import wrapt
        from anthropic.resources.messages import Messages
        patched = isinstance(Messages.__dict__["create"], wrapt.FunctionWrapper)
        print(json.dumps({"patched": patched}))
        """,
    )
    assert result["patched"] is True
