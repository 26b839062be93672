"""Reading provider, model and usage out of litellm requests and responses.

litellm returns the reply of every provider in the OpenAI format. Its ``usage.prompt_tokens``
already contains the prompt tokens read from and written to the prompt cache, also
for Anthropic, whose own API reports them apart (checked on litellm 1.110:
``input_tokens`` 200, ``cache_read_input_tokens`` 5,000 and
``cache_creation_input_tokens`` 1,000 arrive as ``prompt_tokens`` 6,200). That is the
inclusive meaning of :class:`TokenUsage`, so the counts are copied, and the cache
counts are read from ``prompt_tokens_details`` or from the Anthropic-style fields
litellm adds next to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dexcost.instrumentation._fields import InvalidUsage, token_count
from dexcost.instrumentation._fields import field as field  # used by stream.py
from dexcost.pricing import TokenUsage

CHAT = "chat"
EMBEDDINGS = "embeddings"

# litellm's provider names (``custom_llm_provider``) -> OpenTelemetry
# gen_ai.provider.name values. A provider missing here keeps litellm's name.
_PROVIDER_NAMES: Mapping[str, str] = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "chatgpt": "openai",
    "aiohttp_openai": "openai",
    "azure": "azure.ai.openai",
    "azure_text": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "anthropic": "anthropic",
    "anthropic_text": "anthropic",
    "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "bedrock_mantle": "aws.bedrock",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "mistral": "mistral_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "openrouter": "openrouter",
    "together_ai": "together_ai",
    "fireworks_ai": "fireworks_ai",
    "cerebras": "cerebras",
    "moonshot": "moonshot_ai",
    "ollama": "ollama",
    "ollama_chat": "ollama",
    "watsonx": "ibm.watsonx.ai",
}


def provider_name(litellm_provider: str) -> str:
    """Return the OpenTelemetry provider name for a litellm provider name."""
    return _PROVIDER_NAMES.get(litellm_provider, litellm_provider)


def strip_provider(model: str | None, litellm_provider: str | None) -> str | None:
    """Return ``model`` without a leading ``"<litellm_provider>/"``; None for an empty name."""
    if not isinstance(model, str) or not model:
        return None
    if litellm_provider and model.startswith(litellm_provider + "/"):
        return model[len(litellm_provider) + 1 :] or None
    return model


def _first(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)


def usage_from_litellm(usage: Any) -> TokenUsage | None:
    """Convert a litellm ``Usage`` (chat or embeddings); None when absent or invalid.

    A negative or non-integer count is a provider or proxy bug, and so is a prompt
    count smaller than its own cache counts. Pricing around either would under- or
    over-bill, so the whole usage is treated as unknown instead.
    """
    prompt = field(usage, "prompt_tokens")
    if usage is None or prompt is None:
        return None
    prompt_details = field(usage, "prompt_tokens_details")
    completion_details = field(usage, "completion_tokens_details")
    try:
        input_tokens = token_count(prompt)
        cache_read = token_count(
            _first(field(prompt_details, "cached_tokens"), field(usage, "cache_read_input_tokens"))
        )
        cache_write = token_count(
            _first(
                field(usage, "cache_creation_input_tokens"),
                field(prompt_details, "cache_creation_tokens"),
                field(prompt_details, "cache_write_tokens"),
            )
        )
        creation_details = field(prompt_details, "cache_creation_token_details")
        cache_write_1h = token_count(field(creation_details, "ephemeral_1h_input_tokens"))
        usage_out = TokenUsage(
            input_tokens=input_tokens,
            output_tokens=token_count(field(usage, "completion_tokens")),
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            cache_write_1h_tokens=cache_write_1h,
            reasoning_tokens=token_count(field(completion_details, "reasoning_tokens")),
            input_audio_tokens=token_count(field(prompt_details, "audio_tokens")),
            output_audio_tokens=token_count(field(completion_details, "audio_tokens")),
        )
    except InvalidUsage:
        return None
    if cache_read + cache_write > input_tokens or cache_write_1h > cache_write:
        return None
    return usage_out


def merge_stream_usage(usages: Iterable[TokenUsage]) -> TokenUsage | None:
    """Combine the usage of a stream's chunks: each count is the largest one seen.

    Providers send running totals, not increments: Anthropic's first event carries
    the input counts and a provisional output count, its last one the final counts;
    Gemini repeats the totals so far on every chunk. The largest value of each count
    is therefore the final one, even when the last chunk leaves out the input counts.
    """
    merged: TokenUsage | None = None
    for usage in usages:
        if merged is None:
            merged = usage
            continue
        merged = TokenUsage(
            input_tokens=max(merged.input_tokens, usage.input_tokens),
            output_tokens=max(merged.output_tokens, usage.output_tokens),
            cache_read_tokens=max(merged.cache_read_tokens, usage.cache_read_tokens),
            cache_write_tokens=max(merged.cache_write_tokens, usage.cache_write_tokens),
            cache_write_1h_tokens=max(merged.cache_write_1h_tokens, usage.cache_write_1h_tokens),
            reasoning_tokens=max(merged.reasoning_tokens, usage.reasoning_tokens),
            input_audio_tokens=max(merged.input_audio_tokens, usage.input_audio_tokens),
            cache_audio_read_tokens=max(
                merged.cache_audio_read_tokens, usage.cache_audio_read_tokens
            ),
            output_audio_tokens=max(merged.output_audio_tokens, usage.output_audio_tokens),
        )
    return merged


def read_response(
    response: Any, litellm_provider: str | None
) -> tuple[str | None, TokenUsage | None]:
    """Return (response model, usage) of a ``ModelResponse`` or ``EmbeddingResponse``."""
    model = strip_provider(field(response, "model"), litellm_provider)
    return model, usage_from_litellm(field(response, "usage"))


def hidden_params(response: Any) -> Mapping[str, Any]:
    """Return litellm's ``_hidden_params`` of a response, or an empty mapping."""
    params = getattr(response, "_hidden_params", None)
    return params if isinstance(params, Mapping) else {}
