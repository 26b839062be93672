"""Reading model and usage out of Anthropic Messages API responses.

Anthropic reports ``input_tokens`` WITHOUT the prompt tokens read from or written to
the prompt cache; those come as ``cache_read_input_tokens`` and
``cache_creation_input_tokens``. dexcost's :class:`TokenUsage` counts input the
OpenTelemetry GenAI way, inclusive, so the three are added up here. The 1-hour part
of the cache writes is ``cache_creation.ephemeral_1h_input_tokens``; the rest is
priced at the 5-minute rate. Responses may be SDK models or plain dicts, so every
read goes through :func:`field`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dexcost.instrumentation._fields import InvalidUsage, token_count
from dexcost.instrumentation._fields import field as field  # used by stream.py and batches.py
from dexcost.pricing import TokenUsage

ANTHROPIC = "anthropic"
# OTel gen_ai.operation.name of the Messages API.
CHAT = "chat"

# Usage fields of a message, and of a stream's message_delta (which repeats the
# input counts in newer API versions and always carries the final output count).
USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


def raw_counts(usage: Any) -> dict[str, Any]:
    """Return the usage fields present (not None) in ``usage``, plus the 1-hour cache writes."""
    counts: dict[str, Any] = {}
    for name in USAGE_FIELDS:
        value = field(usage, name)
        if value is not None:
            counts[name] = value
    value = field(field(usage, "cache_creation"), "ephemeral_1h_input_tokens")
    if value is not None:
        counts["cache_creation_1h"] = value
    return counts


def usage_from_counts(counts: Mapping[str, Any]) -> TokenUsage | None:
    """Normalise Anthropic counts to :class:`TokenUsage`; None when absent or invalid.

    A negative or non-integer count is a provider or proxy bug. Pricing around it
    would under- or over-bill, so the whole usage is treated as unknown instead.
    """
    if counts.get("input_tokens") is None:
        return None
    try:
        uncached = token_count(counts.get("input_tokens"))
        cache_read = token_count(counts.get("cache_read_input_tokens"))
        cache_write = token_count(counts.get("cache_creation_input_tokens"))
        cache_write_1h = token_count(counts.get("cache_creation_1h"))
        output = token_count(counts.get("output_tokens"))
    except InvalidUsage:
        return None
    if cache_write_1h > cache_write:
        return None
    return TokenUsage(
        input_tokens=uncached + cache_read + cache_write,
        output_tokens=output,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=cache_write_1h,
    )


def usage_from_anthropic(usage: Any) -> TokenUsage | None:
    """Convert a message's ``usage`` object; None when absent or invalid."""
    if usage is None:
        return None
    return usage_from_counts(raw_counts(usage))


def read_message(message: Any) -> tuple[str | None, TokenUsage | None]:
    """Return (response model, usage) of a parsed message."""
    model = field(message, "model")
    usage = usage_from_anthropic(field(message, "usage"))
    return (model if isinstance(model, str) and model else None, usage)
