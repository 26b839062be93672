"""Exact USD prices of LLM calls, from token usage.

Model prices come from genai-prices (https://github.com/pydantic/genai-prices),
loaded in the background by `warm_up()` and compiled per model into rate
cards, so pricing a call costs a few microseconds. Importing this package
does not import genai-prices. Costs are Decimals and never pass through float.

Example::

    from dexcost.pricing import TokenUsage, price_llm

    price = price_llm("openai", "gpt-4o-mini", TokenUsage(input_tokens=1200, output_tokens=300))
    price.cost_usd  # Decimal('0.00036')
"""

from __future__ import annotations

from dexcost.pricing.library import pricing_version, warm_up
from dexcost.pricing.llm_price import LLMPrice
from dexcost.pricing.money import format_usd
from dexcost.pricing.pricer import price_llm
from dexcost.pricing.usage import TokenUsage
from dexcost.pricing.user_prices import clear_model_prices, register_model_price

__all__ = [
    "LLMPrice",
    "TokenUsage",
    "clear_model_prices",
    "format_usd",
    "price_llm",
    "pricing_version",
    "register_model_price",
    "warm_up",
]
