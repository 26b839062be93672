"""Reading model and usage out of Mistral responses and stream chunks.

Mistral reports usage the OpenAI way: ``prompt_tokens`` includes the prompt tokens read
from the prompt cache, which ``prompt_tokens_details.cached_tokens`` counts separately,
so ``prompt_tokens`` maps to input tokens as it is. The SDK's ``UsageInfo`` keeps
fields it does not declare (``prompt_tokens_details``) as extra attributes.
"""

from __future__ import annotations

from typing import Any

from dexcost.instrumentation._fields import InvalidUsage, field, token_count
from dexcost.pricing import TokenUsage

# gen_ai.provider.name of Mistral AI in the OpenTelemetry GenAI conventions.
MISTRAL = "mistral_ai"
CHAT = "chat"
EMBEDDINGS = "embeddings"
# Fill-in-the-middle is a text completion in the conventions' terms.
TEXT_COMPLETION = "text_completion"


def usage_from_mistral(usage: Any) -> TokenUsage | None:
    """Convert a ``usage`` object to :class:`TokenUsage`; None when absent or invalid."""
    if usage is None or field(usage, "prompt_tokens") is None:
        return None
    try:
        prompt = token_count(field(usage, "prompt_tokens"))
        completion = token_count(field(usage, "completion_tokens"))
        cached = token_count(field(field(usage, "prompt_tokens_details"), "cached_tokens"))
    except InvalidUsage:
        return None
    if cached > prompt:
        return None
    return TokenUsage(input_tokens=prompt, output_tokens=completion, cache_read_tokens=cached)


def read_response(response: Any) -> tuple[str | None, TokenUsage | None]:
    """Return (response model, usage) of a chat, FIM or embeddings response."""
    model = field(response, "model")
    usage = usage_from_mistral(field(response, "usage"))
    return (model if isinstance(model, str) and model else None, usage)
