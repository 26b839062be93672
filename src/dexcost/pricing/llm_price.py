"""Result of pricing one LLM call."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from dexcost.semconv import PRICED, UNPRICED


@dataclass(frozen=True, slots=True)
class LLMPrice:
    """Exact USD cost of one LLM call, or the record that the call could not be priced."""

    cost_usd: Decimal | None
    """Cost in USD, or None when the call is unpriced."""
    status: str
    """``"priced"`` or ``"unpriced"`` (`dexcost.semconv.PRICED` / `UNPRICED`)."""
    source: str | None
    """Price table used, e.g. ``"genai-prices 0.2.3"``, or ``"user"`` for registered prices."""
    matched_model: str | None
    """Model id in the price table that matched the requested model, e.g. ``"gpt-4o-mini"``."""


def priced(cost_usd: Decimal, source: str, matched_model: str) -> LLMPrice:
    return LLMPrice(cost_usd, PRICED, source, matched_model)


def unpriced(source: str | None, matched_model: str | None = None) -> LLMPrice:
    return LLMPrice(None, UNPRICED, source, matched_model)
