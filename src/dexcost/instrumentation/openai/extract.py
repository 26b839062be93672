"""Reading model, usage and service tier out of OpenAI responses.

Usage is normalised to the OpenTelemetry GenAI meaning, which OpenAI already uses:
``prompt_tokens`` / ``input_tokens`` include cached tokens, and ``completion_tokens`` /
``output_tokens`` include reasoning tokens. Responses may be SDK models or plain dicts
(``.parse(to=dict)``), so every read goes through :func:`field`.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from dexcost.instrumentation._fields import InvalidUsage, token_count
from dexcost.instrumentation._fields import field as field  # used by patch.py and stream.py
from dexcost.pricing import TokenUsage

CHAT = "chat"
RESPONSES = "responses"
EMBEDDINGS = "embeddings"

# OTel gen_ai.operation.name for each patched API.
OPERATION_NAMES = {CHAT: "chat", RESPONSES: "chat", EMBEDDINGS: "embeddings"}

# Responses API stream events that carry the final response with its usage.
FINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _count(obj: Any, name: str) -> int:
    """Return the token count in field ``name`` of ``obj``, or 0 when absent.

    Raise InvalidUsage for a negative or non-integer count, which is a provider or
    proxy bug. Pricing around it would under- or over-bill, so the whole usage is
    treated as unknown instead.
    """
    return token_count(field(obj, name))


def usage_from_chat(usage: Any) -> TokenUsage | None:
    """Convert a chat-completions ``usage`` object; None when absent or invalid."""
    if usage is None or field(usage, "prompt_tokens") is None:
        return None
    try:
        prompt_details = field(usage, "prompt_tokens_details")
        completion_details = field(usage, "completion_tokens_details")
        return TokenUsage(
            input_tokens=_count(usage, "prompt_tokens"),
            output_tokens=_count(usage, "completion_tokens"),
            cache_read_tokens=_count(prompt_details, "cached_tokens"),
            input_audio_tokens=_count(prompt_details, "audio_tokens"),
            reasoning_tokens=_count(completion_details, "reasoning_tokens"),
            output_audio_tokens=_count(completion_details, "audio_tokens"),
        )
    except InvalidUsage:
        return None


def usage_from_responses(usage: Any) -> TokenUsage | None:
    """Convert a Responses API ``usage`` object; None when absent or invalid."""
    if usage is None or field(usage, "input_tokens") is None:
        return None
    try:
        return TokenUsage(
            input_tokens=_count(usage, "input_tokens"),
            output_tokens=_count(usage, "output_tokens"),
            cache_read_tokens=_count(field(usage, "input_tokens_details"), "cached_tokens"),
            reasoning_tokens=_count(field(usage, "output_tokens_details"), "reasoning_tokens"),
        )
    except InvalidUsage:
        return None


def usage_from_embeddings(usage: Any) -> TokenUsage | None:
    """Convert an embeddings ``usage`` object (input tokens only); None when absent or invalid."""
    if usage is None or field(usage, "prompt_tokens") is None:
        return None
    try:
        return TokenUsage(input_tokens=_count(usage, "prompt_tokens"))
    except InvalidUsage:
        return None


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


# xAI states costs in ticks of 1/10**10 dollar.
_TICKS_PER_USD = Decimal(10) ** 10


def reported_cost(usage: Any) -> Decimal | None:
    """Return the USD cost a provider stated in ``usage``, or None if absent or invalid.

    ``usage.cost_in_usd_ticks`` (xAI, an integer count of 1/10**10 dollar) is divided
    exactly. ``usage.cost`` (OpenRouter, USD) is converted through its decimal text, so
    0.00036 stays 0.00036.
    """
    ticks = field(usage, "cost_in_usd_ticks")
    if isinstance(ticks, int) and not isinstance(ticks, bool) and ticks >= 0:
        return Decimal(ticks) / _TICKS_PER_USD
    value = field(usage, "cost")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        cost = Decimal(str(value))
    except InvalidOperation:
        return None
    return cost if cost.is_finite() and cost >= 0 else None
