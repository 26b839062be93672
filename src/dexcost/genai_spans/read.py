"""Read one LLM call from the attributes of another instrumentation's GenAI span.

Pure functions on plain mappings, so they are tested without OpenTelemetry. What each
instrumentation writes was read in its source:

- ``opentelemetry-instrumentation-openai-v2`` 2.4b0 (scope
  ``opentelemetry.instrumentation.openai_v2``; ``opentelemetry.util.genai.handler``
  with ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``): ``gen_ai.system``
  or ``gen_ai.provider.name`` ``openai``, input tokens are OpenAI's ``prompt_tokens``,
  which include cached tokens.
- OpenLLMetry ``opentelemetry-instrumentation-openai`` 0.62 (scope
  ``opentelemetry.instrumentation.openai.v1``): ``gen_ai.provider.name`` from the base
  URL (``openai``, ``azure.ai.openai``, ``aws.bedrock``, ``gcp.vertex_ai``,
  ``openrouter``), input tokens include cached tokens.
- OpenLLMetry ``opentelemetry-instrumentation-anthropic`` 0.62 (scope
  ``opentelemetry.instrumentation.anthropic``): adds the cache tokens to Anthropic's
  ``input_tokens``, so its input includes them.
- anthropic 2.x's own spans (scope ``com.anthropic.sdk.python``): input includes cache
  tokens; cache writes are ``gen_ai.usage.cache_write.input_tokens``, with the 1-hour
  part in ``anthropic.usage.cache_creation.ephemeral_1h_input_tokens``.
- OpenLIT (scope ``openlit.otel.tracing``): ``gen_ai.system`` values such as
  ``openai``, ``anthropic``, ``aws.bedrock``, ``gemini``, ``vertex_ai``,
  ``az.ai.inference`` and ``az.ai.openai``. Its Anthropic input tokens leave the cache
  tokens out. NOTE: read in its source only, because OpenLIT 1.45 cannot be installed
  next to openai 3.x or anthropic 2.x.

Anything else is read by the GenAI conventions (input includes cache tokens), except
that an input count smaller than its own cache counts cannot include them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from dexcost.pricing import TokenUsage

# Operations that are one model request. Everything else (invoke_agent, invoke_workflow,
# create_agent, execute_tool, retrieval, the memory operations) groups or follows
# model requests that are recorded on their own.
LLM_OPERATIONS: Final = frozenset(
    {"chat", "text_completion", "generate_content", "embeddings", "completion", "embedding"}
)
# OpenLLMetry's older spans name the operation in llm.request.type.
_REQUEST_TYPES: Final[Mapping[str, str]] = {
    "chat": "chat",
    "completion": "text_completion",
    "embedding": "embeddings",
}
# OpenLLMetry's span kinds for the framework spans around model requests.
_FRAMEWORK_SPAN_KINDS: Final = frozenset({"workflow", "task", "agent", "tool"})

OPERATION: Final = "gen_ai.operation.name"
PROVIDER: Final = "gen_ai.provider.name"
LEGACY_SYSTEM: Final = "gen_ai.system"
REQUEST_MODEL: Final = "gen_ai.request.model"
RESPONSE_MODEL: Final = "gen_ai.response.model"
SERVICE_TIER: Final = "openai.response.service_tier"
HTTP_STATUS: Final = "http.response.status_code"

_INPUT: Final = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
_OUTPUT: Final = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
_CACHE_READ: Final = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
)
_CACHE_WRITE: Final = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_write.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
)
_CACHE_WRITE_1H: Final = ("anthropic.usage.cache_creation.ephemeral_1h_input_tokens",)
_REASONING: Final = ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens")
_AUDIO_INPUT: Final = ("gen_ai.usage.audio.input_tokens",)
_AUDIO_OUTPUT: Final = ("gen_ai.usage.audio.output_tokens",)

# Provider names the instrumentations write, lower-cased -> the conventions' names that
# dexcost's price table maps. Names not listed are used as they are.
_PROVIDER_ALIASES: Final[Mapping[str, str]] = {
    "bedrock": "aws.bedrock",
    "aws": "aws.bedrock",
    "gemini": "gcp.gemini",
    "google": "gcp.gemini",
    "google_genai": "gcp.gen_ai",
    "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "vertex ai": "gcp.vertex_ai",
    "az.ai.inference": "azure.ai.inference",
    "azure_ai_inference": "azure.ai.inference",
    "az.ai.openai": "azure.ai.openai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "xai": "x_ai",
    "together": "together_ai",
    "fireworks": "fireworks_ai",
    "watsonx": "ibm.watsonx.ai",
    "ibm.watson.ai": "ibm.watsonx.ai",
    "google-ai-studio": "gcp.gemini",
    "google.ai.studio": "gcp.gemini",
    "azure-ai-inference": "azure.ai.inference",
    "vllm": "hosted_vllm",
}

# Scopes of instrumentations whose Anthropic input tokens leave the cache tokens out.
_EXCLUSIVE_CACHE_SCOPES: Final = frozenset({"openlit.otel.tracing", "openlit"})


@dataclass(frozen=True, slots=True)
class SpanCall:
    """The LLM call one GenAI span describes."""

    operation: str
    provider: str
    request_model: str | None
    response_model: str | None
    usage: TokenUsage | None
    """None when the span carries no token counts."""
    service_tier: str | None = None
    http_status: int | None = None


def is_genai(attributes: Mapping[str, object]) -> bool:
    """Tell whether a span carries any GenAI attribute that names an operation or provider."""
    return (
        OPERATION in attributes
        or PROVIDER in attributes
        or LEGACY_SYSTEM in attributes
        or "llm.request.type" in attributes
    )


def operation_of(attributes: Mapping[str, object]) -> str | None:
    """Return the span's operation in the conventions' words, or None when it has none."""
    operation = attributes.get(OPERATION)
    if isinstance(operation, str) and operation:
        return operation
    request_type = attributes.get("llm.request.type")
    if isinstance(request_type, str):
        return _REQUEST_TYPES.get(request_type, request_type)
    return None


def is_model_request(attributes: Mapping[str, object]) -> bool:
    """Tell whether the span is one model request rather than a group of them."""
    kind = attributes.get("traceloop.span.kind")
    if isinstance(kind, str) and kind in _FRAMEWORK_SPAN_KINDS:
        return False
    return operation_of(attributes) in LLM_OPERATIONS


def provider_of(attributes: Mapping[str, object]) -> str:
    """Return the provider in the conventions' words, or an empty string when unnamed."""
    value = attributes.get(PROVIDER)
    if not isinstance(value, str) or not value:
        value = attributes.get(LEGACY_SYSTEM)
    if not isinstance(value, str):
        return ""
    name = value.strip().lower()
    return _PROVIDER_ALIASES.get(name, name)


def read_call(attributes: Mapping[str, object], scope: str) -> SpanCall:
    """Return the call a model-request span describes; see :func:`is_model_request`."""
    operation = operation_of(attributes) or "chat"
    provider = provider_of(attributes)
    status = attributes.get(HTTP_STATUS)
    tier = attributes.get(SERVICE_TIER)
    return SpanCall(
        operation=_OPERATION_NAMES.get(operation, operation),
        provider=provider,
        request_model=_text(attributes.get(REQUEST_MODEL)),
        response_model=_text(attributes.get(RESPONSE_MODEL)),
        usage=read_usage(attributes, scope, provider),
        service_tier=tier if isinstance(tier, str) and tier else None,
        http_status=status if isinstance(status, int) and not isinstance(status, bool) else None,
    )


_OPERATION_NAMES: Final[Mapping[str, str]] = {
    "completion": "text_completion",
    "embedding": "embeddings",
}


def read_usage(attributes: Mapping[str, object], scope: str, provider: str) -> TokenUsage | None:
    """Return the span's token counts as inclusive totals, or None when it has none."""
    input_tokens = _count(attributes, _INPUT)
    output_tokens = _count(attributes, _OUTPUT)
    if input_tokens is None and output_tokens is None:
        return None
    cache_read = _count(attributes, _CACHE_READ) or 0
    cache_write = _count(attributes, _CACHE_WRITE) or 0
    cache_write_1h = min(_count(attributes, _CACHE_WRITE_1H) or 0, cache_write)
    reasoning = _count(attributes, _REASONING) or 0
    input_total = input_tokens or 0
    if _excludes_cache(input_total, cache_read + cache_write, scope, provider):
        input_total += cache_read + cache_write
    output_total = output_tokens or 0
    return TokenUsage(
        input_tokens=input_total,
        output_tokens=output_total,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=cache_write_1h,
        reasoning_tokens=min(reasoning, output_total),
        input_audio_tokens=min(_count(attributes, _AUDIO_INPUT) or 0, input_total),
        output_audio_tokens=min(_count(attributes, _AUDIO_OUTPUT) or 0, output_total),
    )


def _excludes_cache(input_tokens: int, cache_tokens: int, scope: str, provider: str) -> bool:
    if not cache_tokens:
        return False
    if input_tokens < cache_tokens:
        # A total smaller than its own parts cannot include them.
        return True
    return provider == "anthropic" and scope in _EXCLUSIVE_CACHE_SCOPES


def _count(attributes: Mapping[str, object], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = attributes.get(name)
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and value >= 0:
            return value
        if isinstance(value, float) and value >= 0 and value.is_integer():
            return int(value)
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
