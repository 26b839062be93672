"""Reading model, usage and service tier out of OpenAI responses.

Usage is normalised to the OpenTelemetry GenAI meaning, which OpenAI already uses:
``prompt_tokens`` / ``input_tokens`` include cached tokens, and ``completion_tokens`` /
``output_tokens`` include reasoning tokens. Responses may be SDK models or plain dicts
(``.parse(to=dict)``), so every read goes through :func:`field`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dexcost.pricing import TokenUsage

CHAT = "chat"
RESPONSES = "responses"
EMBEDDINGS = "embeddings"

# OTel gen_ai.operation.name for each patched API.
OPERATION_NAMES = {CHAT: "chat", RESPONSES: "chat", EMBEDDINGS: "embeddings"}

# Responses API stream events that carry the final response with its usage.
FINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def field(obj: Any, name: str) -> Any:
    """Return ``obj.name`` or ``obj[name]``, or None when absent."""
    if obj is None:
        return None
    # SDK models first: isinstance against the Mapping ABC is slow on the hot path.
    value = getattr(obj, name, None)
    if value is not None or (type(obj) is not dict and not isinstance(obj, Mapping)):
        return value
    return obj.get(name)


def _count(obj: Any, name: str) -> int:
    value = field(obj, name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_from_chat(usage: Any) -> TokenUsage | None:
    """Convert a chat-completions ``usage`` object; None when the response has none."""
    if usage is None:
        return None
    prompt = field(usage, "prompt_tokens")
    if not isinstance(prompt, int):
        return None
    prompt_details = field(usage, "prompt_tokens_details")
    completion_details = field(usage, "completion_tokens_details")
    return TokenUsage(
        input_tokens=prompt,
        output_tokens=_count(usage, "completion_tokens"),
        cache_read_tokens=_count(prompt_details, "cached_tokens"),
        input_audio_tokens=_count(prompt_details, "audio_tokens"),
        reasoning_tokens=_count(completion_details, "reasoning_tokens"),
        output_audio_tokens=_count(completion_details, "audio_tokens"),
    )


def usage_from_responses(usage: Any) -> TokenUsage | None:
    """Convert a Responses API ``usage`` object; None when the response has none."""
    if usage is None:
        return None
    input_tokens = field(usage, "input_tokens")
    if not isinstance(input_tokens, int):
        return None
    return TokenUsage(
        input_tokens=input_tokens,
        output_tokens=_count(usage, "output_tokens"),
        cache_read_tokens=_count(field(usage, "input_tokens_details"), "cached_tokens"),
        reasoning_tokens=_count(field(usage, "output_tokens_details"), "reasoning_tokens"),
    )


def usage_from_embeddings(usage: Any) -> TokenUsage | None:
    """Convert an embeddings ``usage`` object (input tokens only)."""
    if usage is None:
        return None
    prompt = field(usage, "prompt_tokens")
    if not isinstance(prompt, int):
        return None
    return TokenUsage(input_tokens=prompt)


USAGE_READERS = {
    CHAT: usage_from_chat,
    RESPONSES: usage_from_responses,
    EMBEDDINGS: usage_from_embeddings,
}


def read_result(api: str, result: Any) -> tuple[str | None, TokenUsage | None, str | None]:
    """Return (response model, usage, service tier) of a parsed response."""
    model = field(result, "model")
    tier = field(result, "service_tier")
    usage = USAGE_READERS[api](field(result, "usage"))
    return (
        model if isinstance(model, str) else None,
        usage,
        tier if isinstance(tier, str) else None,
    )
