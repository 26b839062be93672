"""Reading billed usage out of Cohere responses and stream events.

Cohere reports two sets of counts: ``tokens`` (everything the model processed) and
``billed_units`` (what Cohere charges for). They differ because Cohere adds prompt
template and special tokens that it does not bill, so dexcost prices ``billed_units``.
The v2 API puts them under ``usage``; the v1 API and every embed and rerank response
put them under ``meta``. The SDK types declare the counts as floats, so a count is
accepted when it is a non-negative whole number of either type.
"""

from __future__ import annotations

from typing import Any

from dexcost.instrumentation._fields import field
from dexcost.pricing import TokenUsage

COHERE = "cohere"

# OTel gen_ai.operation.name values per patched method.
CHAT = "chat"
EMBEDDINGS = "embeddings"
RERANK = "rerank"
OPERATIONS = {"chat": CHAT, "chat_stream": CHAT, "embed": EMBEDDINGS, "rerank": RERANK}

# Last event of a stream: v2 carries usage in its delta, v1 the whole response.
V2_END_EVENT = "message-end"
V1_END_EVENT = "stream-end"


def count(value: Any) -> int | None:
    """Return a unit count as an int, 0 when absent, None when it is not a whole number ≥ 0."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    number = int(value)
    return number if number >= 0 else None


def billed_units(response: Any) -> Any:
    """Return the ``billed_units`` object of a response, v2 ``usage`` first, then ``meta``."""
    for container in ("usage", "meta"):
        units = field(field(response, container), "billed_units")
        if units is not None:
            return units
    return None


def usage_from_billed(units: Any) -> TokenUsage | None:
    """Convert ``billed_units`` to :class:`TokenUsage`; None when absent or invalid.

    A response with ``billed_units`` but no token field (an embed reply omits
    ``output_tokens``) counts the missing field as 0.
    """
    if units is None:
        return None
    input_tokens = count(field(units, "input_tokens"))
    output_tokens = count(field(units, "output_tokens"))
    if input_tokens is None or output_tokens is None:
        return None
    return TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens)


def search_units(response: Any) -> int | None:
    """Return the billed search units of a rerank response; None when absent or invalid."""
    units = billed_units(response)
    value = field(units, "search_units")
    if value is None:
        return None
    return count(value)


def is_stream_end(event: Any) -> bool:
    """True for the final event of a stream: ``message-end`` (v2) or ``stream-end`` (v1)."""
    return bool(field(event, "type") == V2_END_EVENT or field(event, "event_type") == V1_END_EVENT)


def stream_end_usage(event: Any) -> TokenUsage | None:
    """Return the billed usage of a stream's final event; None when missing or invalid."""
    if field(event, "type") == V2_END_EVENT:
        return usage_from_billed(field(field(field(event, "delta"), "usage"), "billed_units"))
    return usage_from_billed(billed_units(field(event, "response")))
