"""Prices registered by the user, which win over genai-prices.

They cover models the library lacks (fine-tunes, private deployments, local
models) and negotiated rates. They need no library, so they also work on
Python 3.10.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Final

from dexcost.pricing.money import parse_rate_per_mtok
from dexcost.pricing.price_set import PricedUnit, build_price_set
from dexcost.pricing.rate_card import RateCard
from dexcost.pricing.usage import LIBRARY_USAGE_KEYS, REPORTED_UNIT_DIMENSIONS

USER_SOURCE: Final = "user"
_TOKENS_PER_RATE: Final = 1_000_000

# (provider or None for any provider, model) -> card. Replaced as a whole on
# every change, so readers never see a dict being modified.
_cards: dict[tuple[str | None, str], RateCard] = {}
_write_lock = threading.Lock()


def register_model_price(
    model: str,
    *,
    provider: str | None = None,
    input_per_mtok: str | Decimal,
    output_per_mtok: str | Decimal,
    cache_read_per_mtok: str | Decimal | None = None,
    cache_write_per_mtok: str | Decimal | None = None,
) -> None:
    """Register USD prices per million tokens for `model`, overriding genai-prices.

    `model` must equal the model name the call reports. With `provider` (an
    OpenTelemetry ``gen_ai.provider.name`` such as ``"openai"``) the price
    applies to that provider only, and it wins over a provider-less one.
    Cached tokens without their own rate pay the input rate, and reasoning
    tokens pay the output rate. Raises ValueError for an empty model name or a
    rate that is negative, non-numeric, a float or not finite.
    """
    if not isinstance(model, str) or not model:
        raise ValueError(f"invalid model={model!r}: pass the model name the LLM call reports")
    if provider is not None and (not isinstance(provider, str) or not provider):
        raise ValueError(
            f"invalid provider={provider!r}: pass a gen_ai.provider.name such as 'openai', "
            "or None for every provider"
        )

    rates = {
        "input_mtok": parse_rate_per_mtok("input_per_mtok", input_per_mtok),
        "output_mtok": parse_rate_per_mtok("output_per_mtok", output_per_mtok),
    }
    if cache_read_per_mtok is not None:
        rates["cache_read_mtok"] = parse_rate_per_mtok("cache_read_per_mtok", cache_read_per_mtok)
    if cache_write_per_mtok is not None:
        rates["cache_write_mtok"] = parse_rate_per_mtok(
            "cache_write_per_mtok", cache_write_per_mtok
        )

    card = _card(model, rates)
    global _cards
    with _write_lock:
        _cards = {**_cards, (provider, model): card}


def clear_model_prices() -> None:
    """Remove every registered price, so genai-prices prices all models again."""
    global _cards
    with _write_lock:
        _cards = {}


def find_user_card(provider: str, model: str) -> RateCard | None:
    """Return the registered card for this provider and model, if any."""
    cards = _cards
    if not cards:
        return None
    return cards.get((provider, model)) or cards.get((None, model))


def _card(model: str, rates: dict[str, Decimal]) -> RateCard:
    usage_keys = {
        "input_mtok": "input_tokens",
        "output_mtok": "output_tokens",
        "cache_read_mtok": "cache_read_tokens",
        "cache_write_mtok": "cache_write_tokens",
    }
    units = [
        PricedUnit(
            usage_key=usage_keys[price_key],
            price_key=price_key,
            per=_TOKENS_PER_RATE,
            dimensions=REPORTED_UNIT_DIMENSIONS[usage_keys[price_key]],
            rate=rate,
        )
        for price_key, rate in rates.items()
    ]
    reported = {
        library_key: (index, REPORTED_UNIT_DIMENSIONS[library_key])
        for index, (_, library_key) in enumerate(LIBRARY_USAGE_KEYS)
    }
    price_set = build_price_set(units, reported)
    return RateCard(
        matched_model=model,
        source=USER_SOURCE,
        conditions=(None,),
        variants=(),
        price_sets={(0, ()): price_set},
    )
