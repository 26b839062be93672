"""Reading the operation, model and token counts of Ollama requests and responses.

Ollama reports tokens as ``prompt_eval_count`` (the whole prompt, cached part
included) and ``eval_count`` (generated tokens, thinking included). A non-streamed
response carries them at top level. A stream carries them in its last part, the one
with ``done: true``.
"""

from __future__ import annotations

from typing import Any, Final

from dexcost.pricing import TokenUsage

PROVIDER: Final = "ollama"

# API path -> OpenTelemetry gen_ai.operation.name. Other paths (pull, list, show, ...)
# are management calls that generate nothing, so they are not recorded.
OPERATIONS: Final = {
    "/api/chat": "chat",
    "/api/generate": "text_completion",
    "/api/embed": "embeddings",
    "/api/embeddings": "embeddings",
}

# done_reason of a request with no prompt, which only loads or unloads the model.
_MODEL_LOAD_REASONS: Final = frozenset({"load", "unload"})


def _count(response: Any, name: str) -> int | None:
    """Return a token count, or None when absent. Raise ValueError for an invalid value."""
    value = getattr(response, name, None)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"invalid {name}={value!r}")
    return value


def read_usage(response: Any) -> TokenUsage | None:
    """Convert a response's token counts, or return None without a valid prompt count.

    An absent ``eval_count`` counts as zero output tokens (``/api/embed`` has none).
    NOTE: server releases before July 2024 left out ``prompt_eval_count`` when the
    whole prompt came from the cache. Such a call is recorded as usage_unknown, not as
    a free prompt.
    """
    if getattr(response, "done_reason", None) in _MODEL_LOAD_REASONS:
        return TokenUsage()
    try:
        prompt_tokens = _count(response, "prompt_eval_count")
        output_tokens = _count(response, "eval_count")
    except ValueError:
        return None
    if prompt_tokens is None:
        return None
    return TokenUsage(input_tokens=prompt_tokens, output_tokens=output_tokens or 0)


def response_model(response: Any) -> str | None:
    model = getattr(response, "model", None)
    return model if isinstance(model, str) and model else None
