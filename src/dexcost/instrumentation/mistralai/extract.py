"""Reading model and usage out of Mistral responses and stream chunks.

Mistral reports usage the OpenAI way: ``prompt_tokens`` includes the prompt tokens read
from the prompt cache, which ``prompt_tokens_details.cached_tokens`` counts separately,
so ``prompt_tokens`` maps to input tokens as it is. The SDK's ``UsageInfo`` keeps
fields it does not declare (``prompt_tokens_details``) as extra attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dexcost.pricing import TokenUsage

# gen_ai.provider.name of Mistral AI in the OpenTelemetry GenAI conventions.
MISTRAL = "mistral_ai"
CHAT = "chat"
EMBEDDINGS = "embeddings"
# Fill-in-the-middle is a text completion in the conventions' terms.
TEXT_COMPLETION = "text_completion"


def field(obj: Any, name: str) -> Any:
    """Return ``obj.name`` or ``obj[name]``, or None when absent."""
    if obj is None:
        return None
    value = getattr(obj, name, None)
    if value is not None or not isinstance(obj, Mapping):
        return value
    return obj.get(name)


def _count(value: Any) -> int | None:
    """Return a token count, 0 when absent, None when it is not a whole number >= 0."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def usage_from_mistral(usage: Any) -> TokenUsage | None:
    """Convert a ``usage`` object to :class:`TokenUsage`; None when absent or invalid."""
    if usage is None or field(usage, "prompt_tokens") is None:
        return None
    prompt = _count(field(usage, "prompt_tokens"))
    completion = _count(field(usage, "completion_tokens"))
    cached = _count(field(field(usage, "prompt_tokens_details"), "cached_tokens"))
    if prompt is None or completion is None or cached is None or cached > prompt:
        return None
    return TokenUsage(input_tokens=prompt, output_tokens=completion, cache_read_tokens=cached)


def read_response(response: Any) -> tuple[str | None, TokenUsage | None]:
    """Return (response model, usage) of a chat, FIM or embeddings response."""
    model = field(response, "model")
    usage = usage_from_mistral(field(response, "usage"))
    return (model if isinstance(model, str) and model else None, usage)
