"""Pricing other instrumentations' GenAI spans (``price_genai_spans=True``), each call once.

The real third-party instrumentations run where they are installed (each test skips
without its package): openai-v2, OpenLLMetry's openai and anthropic packages, and the
anthropic SDK's own spans. Real SDK clients talk to dexcost's fake APIs through mock
transports. Spans of frameworks (agent, workflow and framework chat spans) are made
with the host's own tracer, with the attributes such libraries write.

Prices per million tokens used below:
- gpt-4o-mini: input $0.15, cached input $0.075, output $0.60.
- claude-sonnet-4-20250514: input $3, cache write $3.75 (5 minutes) and $6 (1 hour),
  cache read $0.30, output $15.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.trace import StatusCode

import dexcost
from dexcost import errors, genai_spans
from dexcost.config import DexcostConfig
from dexcost.demo.fake_anthropic import AnthropicUsage, FakeAnthropic
from dexcost.demo.fake_openai import FakeOpenAI, FakeUsage
from dexcost.genai_spans import processor as pricer_module
from dexcost.genai_spans.read import provider_of, read_usage

from .genai_host import (
    MESSAGES,
    Host,
    anthropic_client,
    host_provider,
    methods_restored,
    new_host,
    openai_client,
    unset_global_provider,
)

pytestmark = [
    # anthropic 2.x warns that the dated Claude model the prices are taken from retires.
    pytest.mark.filterwarnings(
        "ignore:The model 'claude-sonnet-4-20250514' is deprecated:DeprecationWarning"
    ),
    # OpenLLMetry 0.62 declares pydantic models with a class-based config, which
    # pydantic 2 warns about when its modules are imported.
    pytest.mark.filterwarnings("ignore:Support for class-based `config`:DeprecationWarning"),
]

# 1,200 input tokens at $0.15/M + 300 output tokens at $0.60/M.
GPT_4O_MINI_COST = Decimal("0.00036")
# 200 uncached input at $0.15/M + 1,000 cached at $0.075/M + 300 output at $0.60/M.
GPT_4O_MINI_CACHED_COST = Decimal("0.000285")
# 1,000 input at $3/M + 5,000 cache reads at $0.30/M + 2,000 5-minute cache writes at
# $3.75/M + 300 output at $15/M = 0.003 + 0.0015 + 0.0075 + 0.0045.
CLAUDE_CACHED_COST = Decimal("0.0165")
# 100 input at $3/M + 1,000 5-minute writes at $3.75/M + 1,000 1-hour writes at $6/M
# + 300 output at $15/M = 0.0003 + 0.00375 + 0.006 + 0.0045.
CLAUDE_1H_COST = Decimal("0.01455")
CLAUDE = "claude-sonnet-4-20250514"

# Foreign instrumentations of the openai SDK: (import path, scope of their spans).
OPENAI_INSTRUMENTATIONS = {
    "openai-v2": "opentelemetry.instrumentation.openai_v2",
    "openllmetry": "opentelemetry.instrumentation.openai",
}

Rows = Callable[..., list[dict[str, Any]]]


@pytest.fixture
def host() -> Iterator[Host]:
    with host_provider() as host:
        yield host
        dexcost.shutdown()


@pytest.fixture
def start(buffer_path: Path) -> Callable[..., DexcostConfig]:
    def start(patch: list[str], *, price: bool = True) -> DexcostConfig:
        return dexcost.init(
            storage="local",
            buffer_path=str(buffer_path),
            auto_instrument=patch,
            price_genai_spans=price,
        )

    return start


@pytest.fixture
def calls(stored: Rows) -> Callable[[], list[dict[str, Any]]]:
    return lambda: stored("llm_call")


def _import_instrumentation(name: str) -> Any:
    """Import an instrumentation package, or skip the test when it is not installed."""
    return pytest.importorskip(name, exc_type=ImportError)


@pytest.fixture(params=sorted(OPENAI_INSTRUMENTATIONS))
def openai_instrumentor(request: pytest.FixtureRequest, host: Host) -> Iterator[Callable[[], None]]:
    """Return a function that turns one real openai instrumentation on."""
    module = _import_instrumentation(OPENAI_INSTRUMENTATIONS[request.param])
    instrumentor = module.OpenAIInstrumentor()
    with methods_restored("openai.resources"):
        yield lambda: instrumentor.instrument(tracer_provider=host.provider)
        dexcost.shutdown()
        instrumentor.uninstrument()


@pytest.fixture
def anthropic_instrumentor(host: Host) -> Iterator[Callable[[], None]]:
    """Return a function that turns OpenLLMetry's anthropic instrumentation on."""
    module = _import_instrumentation("opentelemetry.instrumentation.anthropic")
    instrumentor = module.AnthropicInstrumentor()
    with methods_restored("anthropic.resources"):
        yield lambda: instrumentor.instrument(tracer_provider=host.provider)
        dexcost.shutdown()
        instrumentor.uninstrument()


def _chat(usage: FakeUsage | None = None) -> None:
    fake = FakeOpenAI(usage=usage or FakeUsage(prompt_tokens=1200, completion_tokens=300))
    with openai_client(fake) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def _streamed_chat(**options: Any) -> None:
    fake = FakeOpenAI(usage=FakeUsage(prompt_tokens=1200, completion_tokens=300))
    with openai_client(fake) as client:
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, **options
        )
        for _ in stream:
            pass


def _message(usage: AnthropicUsage) -> None:
    pytest.importorskip("anthropic")
    with anthropic_client(FakeAnthropic(usage=usage)) as client:
        client.messages.create(model=CLAUDE, max_tokens=64, messages=MESSAGES)


# --- real openai instrumentations ---


@pytest.mark.parametrize("dexcost_first", [True, False], ids=["dexcost-first", "dexcost-second"])
def test_patched_openai_counts_once(
    host: Host, openai_instrumentor: Callable[[], None], start: Any, calls: Any, dexcost_first: bool
) -> None:
    # Whichever wrapper is outermost, the call is recorded once, by dexcost's patch.
    if dexcost_first:
        start(["openai"])
        openai_instrumentor()
    else:
        openai_instrumentor()
        start(["openai"])
    _chat()
    assert len(host.genai_spans()) == 1
    (event,) = calls()
    assert Decimal(event["cost_usd"]) == GPT_4O_MINI_COST
    assert "dexcost.genai_span.scope" not in event["attributes"]


@pytest.mark.parametrize("dexcost_first", [True, False], ids=["dexcost-first", "dexcost-second"])
def test_patched_openai_stream_counts_once(
    host: Host,
    openai_instrumentor: Callable[[], None],
    start: Any,
    calls: Any,
    dexcost_first: bool,
) -> None:
    # The foreign span ends when the stream is read to the end, after the SDK call.
    # Patched second, dexcost goes inside the other wrapper and still reads the usage.
    if dexcost_first:
        start(["openai"])
        openai_instrumentor()
    else:
        openai_instrumentor()
        start(["openai"])
    _streamed_chat()
    (event,) = calls()
    assert Decimal(event["cost_usd"]) == GPT_4O_MINI_COST


def test_stream_span_priced_with_usage(
    host: Host, openai_instrumentor: Callable[[], None], start: Any, calls: Any
) -> None:
    openai_instrumentor()
    start([])
    _streamed_chat(stream_options={"include_usage": True})
    (event,) = calls()
    assert Decimal(event["cost_usd"]) == GPT_4O_MINI_COST


def test_stream_span_without_usage_unknown(
    host: Host, openai_instrumentor: Callable[[], None], start: Any, calls: Any
) -> None:
    # Without dexcost's patch the request does not ask the API for a stream's usage.
    openai_instrumentor()
    start([])
    _streamed_chat()
    (event,) = calls()
    assert event["cost_status"] == "usage_unknown"
    assert event["cost_usd"] is None


def test_openai_span_priced_without_patch(
    host: Host, openai_instrumentor: Callable[[], None], start: Any, calls: Any
) -> None:
    openai_instrumentor()
    start(["anthropic"])
    _chat()
    (event,) = calls()
    assert Decimal(event["cost_usd"]) == GPT_4O_MINI_COST


def test_span_event_names_model_and_span(
    host: Host, openai_instrumentor: Callable[[], None], start: Any, calls: Any
) -> None:
    openai_instrumentor()
    start([])
    _chat()
    (span,) = host.genai_spans()
    (event,) = calls()
    assert event["model"] == "gpt-4o-mini-2024-07-18"
    assert event["input_tokens"] == 1200
    assert event["output_tokens"] == 300
    assert event["attributes"]["dexcost.genai_span.scope"] == span.instrumentation_scope.name
    assert event["parent_span_id"] == format(span.context.span_id, "016x")


def test_option_off_ignores_spans(
    host: Host, openai_instrumentor: Callable[[], None], start: Any, calls: Any
) -> None:
    openai_instrumentor()
    start([], price=False)
    _chat()
    assert len(host.genai_spans()) == 1
    assert calls() == []


@pytest.mark.parametrize("openai_instrumentor", ["openllmetry"], indirect=True)
def test_cached_openai_tokens_priced(
    host: Host, openai_instrumentor: Callable[[], None], start: Any, calls: Any
) -> None:
    # openai-v2 2.4b0 writes no cache counts on its spans, so its cached calls are
    # priced at the full input rate. The GenAI spans page documents that gap.
    openai_instrumentor()
    start([])
    _chat(FakeUsage(prompt_tokens=1200, completion_tokens=300, cached_tokens=1000))
    (event,) = calls()
    assert Decimal(event["cost_usd"]) == GPT_4O_MINI_CACHED_COST


# --- anthropic: OpenLLMetry's instrumentation and the SDK's own spans ---


def test_anthropic_sdk_span_priced(host: Host, start: Any, calls: Any) -> None:
    pytest.importorskip("anthropic", minversion="2")
    start([])
    _message(
        AnthropicUsage(
            input_tokens=100,
            cache_creation_input_tokens=2000,
            cache_creation_1h_input_tokens=1000,
            output_tokens=300,
        )
    )
    (event,) = calls()
    assert Decimal(event["cost_usd"]) == CLAUDE_1H_COST
    assert event["attributes"]["dexcost.genai_span.scope"] == "com.anthropic.sdk.python"


def test_patched_anthropic_counts_once(host: Host, start: Any, calls: Any) -> None:
    pytest.importorskip("anthropic", minversion="2")
    start(["anthropic"])
    _message(
        AnthropicUsage(
            input_tokens=100,
            cache_creation_input_tokens=2000,
            cache_creation_1h_input_tokens=1000,
            output_tokens=300,
        )
    )
    assert len(host.genai_spans()) == 1
    (event,) = calls()
    assert Decimal(event["cost_usd"]) == CLAUDE_1H_COST


CACHED_CLAUDE = AnthropicUsage(
    input_tokens=1000,
    cache_read_input_tokens=5000,
    cache_creation_input_tokens=2000,
    output_tokens=300,
)


def test_openllmetry_anthropic_priced_once(
    host: Host, anthropic_instrumentor: Callable[[], None], start: Any, calls: Any
) -> None:
    # With anthropic 2.x there are two spans for the request: OpenLLMetry's around
    # the SDK's own. The inner one is priced, the outer one is not.
    anthropic_instrumentor()
    start([])
    _message(CACHED_CLAUDE)
    (event,) = calls()
    assert Decimal(event["cost_usd"]) == CLAUDE_CACHED_COST


@pytest.mark.parametrize("dexcost_first", [True, False], ids=["dexcost-first", "dexcost-second"])
def test_patched_anthropic_openllmetry_once(
    host: Host,
    anthropic_instrumentor: Callable[[], None],
    start: Any,
    calls: Any,
    dexcost_first: bool,
) -> None:
    if dexcost_first:
        start(["anthropic"])
        anthropic_instrumentor()
    else:
        anthropic_instrumentor()
        start(["anthropic"])
    _message(CACHED_CLAUDE)
    (event,) = calls()
    assert Decimal(event["cost_usd"]) == CLAUDE_CACHED_COST


# --- spans of frameworks and unknown instrumentations ---


def _genai(
    host: Host,
    scope: str,
    name: str,
    *,
    operation: str = "chat",
    provider: str = "openai",
    model: str = "gpt-4o-mini",
    usage: tuple[int, int] | None = (1200, 300),
) -> Any:
    """Start a span with the GenAI attributes a library of scope ``scope`` writes."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
    }
    span = host.provider.get_tracer(scope).start_span(name, attributes=attributes)
    if usage is not None:
        span.set_attribute("gen_ai.usage.input_tokens", usage[0])
        span.set_attribute("gen_ai.usage.output_tokens", usage[1])
    return span


def test_span_without_usage_unknown(host: Host, start: Any, calls: Any) -> None:
    start([])
    _genai(host, "acme.genai", "chat gpt-4o-mini", usage=None).end()
    (event,) = calls()
    assert event["cost_status"] == "usage_unknown"
    assert event["cost_usd"] is None


def test_failed_request_costs_nothing(host: Host, start: Any, calls: Any) -> None:
    start([])
    span = _genai(host, "acme.genai", "chat gpt-4o-mini", usage=None)
    span.set_attribute("http.response.status_code", 429)
    span.set_status(StatusCode.ERROR)
    span.end()
    (event,) = calls()
    assert event["cost_status"] == "priced"
    assert Decimal(event["cost_usd"]) == 0


def test_unknown_model_keeps_tokens(host: Host, start: Any, calls: Any) -> None:
    start([])
    _genai(host, "acme.genai", "chat acme-7b", provider="acme", model="acme-7b").end()
    (event,) = calls()
    assert event["cost_status"] == "unpriced"
    assert event["input_tokens"] == 1200
    assert event["output_tokens"] == 300


def test_framework_spans_around_patch_once(host: Host, start: Any, calls: Any) -> None:
    # The framework's spans name no SDK dexcost patches: only the recorded call
    # inside them keeps them from being priced.
    start(["openai"])
    tracer_scope = "langchain"
    agent = _genai(
        host, tracer_scope, "invoke_agent", operation="invoke_agent", provider="langchain"
    )
    with trace_api.use_span(agent, end_on_exit=True):
        chat = _genai(host, tracer_scope, "chat", provider="langchain")
        with trace_api.use_span(chat, end_on_exit=True):
            _chat()
    (event,) = calls()
    assert Decimal(event["cost_usd"]) == GPT_4O_MINI_COST


def test_framework_span_around_span_once(host: Host, start: Any, calls: Any) -> None:
    start([])
    outer = _genai(host, "langchain", "chat", provider="langchain")
    with trace_api.use_span(outer, end_on_exit=True):
        _genai(host, "acme.openai", "chat gpt-4o-mini").end()
    (event,) = calls()
    assert event["attributes"]["dexcost.genai_span.scope"] == "acme.openai"


def test_child_ending_late_not_priced(host: Host, start: Any, calls: Any) -> None:
    start([])
    outer = _genai(host, "langchain", "chat", provider="langchain")
    with trace_api.use_span(outer):
        inner = _genai(host, "acme.openai", "chat gpt-4o-mini")
    outer.end()
    inner.end()
    assert len(calls()) == 1


def test_agent_span_never_priced(host: Host, start: Any, calls: Any) -> None:
    start([])
    _genai(host, "acme.agents", "invoke_agent", operation="invoke_agent").end()
    assert calls() == []


@pytest.mark.parametrize("scope", ["dexcost", "dexcost.export"])
def test_dexcost_scope_skipped(scope: str, host: Host, start: Any, calls: Any) -> None:
    start([])
    _genai(host, scope, "chat gpt-4o-mini").end()
    assert calls() == []


def test_attribution_from_span_start(host: Host, start: Any, calls: Any) -> None:
    start([])
    with dexcost.task("ticket", customer_id="acme"):
        span = _genai(host, "acme.openai", "chat gpt-4o-mini")
        # A thread that carries no context ends it.
        ender = threading.Thread(target=span.end)
        ender.start()
        ender.join()
    (event,) = calls()
    assert event["customer_id"] == "acme"
    assert event["task_type"] == "ticket"


# --- attaching to the host's provider ---


def test_provider_set_after_init(
    buffer_path: Path, calls: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with unset_global_provider():
        caplog.set_level("DEBUG", logger="dexcost.genai_spans")
        dexcost.init(
            storage="local",
            buffer_path=str(buffer_path),
            auto_instrument=[],
            price_genai_spans=True,
        )
        assert "found no SDK TracerProvider" in caplog.text
        host = new_host()
        trace_api.set_tracer_provider(host.provider)
        _genai(host, "acme.openai", "chat gpt-4o-mini").end()
        dexcost.shutdown()
    (event,) = calls()
    assert Decimal(event["cost_usd"]) == GPT_4O_MINI_COST


class _Wrapper(trace_api.TracerProvider):
    """A vendor provider that keeps the SDK provider in an attribute (no add_span_processor)."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        return self.provider.get_tracer(*args, **kwargs)


def test_provider_behind_wrapper(buffer_path: Path, calls: Any) -> None:
    host = new_host()
    with unset_global_provider():
        trace_api.set_tracer_provider(_Wrapper(host.provider))
        dexcost.init(
            storage="local",
            buffer_path=str(buffer_path),
            auto_instrument=[],
            price_genai_spans=True,
        )
        _genai(host, "acme.openai", "chat gpt-4o-mini").end()
        dexcost.shutdown()
    assert len(calls()) == 1


def test_pricer_added_once(host: Host, start: Any) -> None:
    start([])
    start([])
    processors = host.provider._active_span_processor._span_processors
    assert processors.count(genai_spans.pricer()) == 1


def test_pricing_failure_contained(host: Host, start: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("read failed")

    monkeypatch.setattr(errors, "RAISE_INTERNAL_ERRORS", False)
    monkeypatch.setattr(pricer_module, "read_call", broken)
    start([])
    before = errors.internal_error_count()
    _genai(host, "acme.openai", "chat gpt-4o-mini").end()
    assert errors.internal_error_count() == before + 1


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("1", True), ("off", False)])
def test_option_from_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("DEXCOST_PRICE_GENAI_SPANS", value)
    assert DexcostConfig(storage="local").price_genai_spans is expected


def test_invalid_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEXCOST_PRICE_GENAI_SPANS", "sometimes")
    with pytest.raises(ValueError, match="'sometimes'"):
        DexcostConfig(storage="local")


# --- reading the attributes each instrumentation writes ---

CLAUDE_CACHE_ATTRIBUTES = {
    "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.cache_read.input_tokens": 5000,
    "gen_ai.usage.cache_creation.input_tokens": 2000,
}


def test_openlit_anthropic_adds_cache(host: Host, start: Any, calls: Any) -> None:
    # OpenLIT writes Anthropic's own input count, which leaves the cache tokens out.
    start([])
    span = host.provider.get_tracer("openlit.otel.tracing").start_span(
        "chat claude-sonnet-4-20250514",
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "anthropic",
            "gen_ai.request.model": CLAUDE,
            "gen_ai.usage.input_tokens": 1000,
            **CLAUDE_CACHE_ATTRIBUTES,
        },
    )
    span.end()
    (event,) = calls()
    assert Decimal(event["cost_usd"]) == CLAUDE_CACHED_COST


def test_conventional_input_kept() -> None:
    attributes = {"gen_ai.usage.input_tokens": 8000, **CLAUDE_CACHE_ATTRIBUTES}
    usage = read_usage(attributes, "com.anthropic.sdk.python", "anthropic")
    assert usage is not None
    assert usage.input_tokens == 8000


def test_small_input_gets_cache_added() -> None:
    attributes = {"gen_ai.usage.input_tokens": 1000, **CLAUDE_CACHE_ATTRIBUTES}
    usage = read_usage(attributes, "acme.anthropic", "anthropic")
    assert usage is not None
    assert usage.input_tokens == 8000


def test_legacy_token_names_read() -> None:
    attributes = {"gen_ai.usage.prompt_tokens": 1200, "gen_ai.usage.completion_tokens": 300}
    usage = read_usage(attributes, "acme", "openai")
    assert usage is not None
    assert usage.input_tokens == 1200
    assert usage.output_tokens == 300


@pytest.mark.parametrize(
    ("written", "provider"),
    [
        ({"gen_ai.system": "az.ai.inference"}, "azure.ai.inference"),
        ({"gen_ai.system": "gemini"}, "gcp.gemini"),
        ({"gen_ai.system": "OpenAI"}, "openai"),
        ({"gen_ai.provider.name": "aws.bedrock", "gen_ai.system": "bedrock"}, "aws.bedrock"),
    ],
)
def test_provider_names_mapped(written: dict[str, str], provider: str) -> None:
    assert provider_of(written) == provider


def test_option_rejects_non_bool() -> None:
    with pytest.raises(TypeError, match="price_genai_spans"):
        DexcostConfig(storage="local", price_genai_spans="yes")  # type: ignore[arg-type]


def test_provider_named_in_environment_gets_pricer(
    buffer_path: Path, calls: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # get_tracer_provider() loads and sets this provider inside init().
    monkeypatch.setenv("OTEL_PYTHON_TRACER_PROVIDER", "sdk_tracer_provider")
    with unset_global_provider():
        dexcost.init(
            storage="local",
            buffer_path=str(buffer_path),
            auto_instrument=[],
            price_genai_spans=True,
        )
        provider = trace_api.get_tracer_provider()
        span = provider.get_tracer("acme.openai").start_span(
            "chat gpt-4o-mini",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 1200,
                "gen_ai.usage.output_tokens": 300,
            },
        )
        span.end()
        dexcost.shutdown()
        provider.shutdown()
    (event,) = calls()
    assert Decimal(event["cost_usd"]) == GPT_4O_MINI_COST
