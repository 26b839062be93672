"""Prices registered by the user, which win over genai-prices.

They cover models the library lacks (fine-tunes, private deployments, local
models) and negotiated rates. They need no library, so they also work on
Python 3.10. Two layers exist: prices registered in code with
``register_model_price`` and, below them, prices that ``dexcost.init()`` loads
from the rate registry in the buffer (``dexcost rates --import``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Final

from dexcost.pricing.money import parse_rate_per_mtok
from dexcost.pricing.price_set import PricedUnit, build_price_set
from dexcost.pricing.rate_card import RateCard
from dexcost.pricing.usage import LIBRARY_USAGE_KEYS, REPORTED_UNIT_DIMENSIONS

USER_SOURCE: Final = "user"
STORED_SOURCE: Final = "user rates"
_TOKENS_PER_RATE: Final = 1_000_000

# Keyword names of register_model_price mapped to rate card price keys.
_PRICE_KEYS: Final = {
    "input_per_mtok": "input_mtok",
    "output_per_mtok": "output_mtok",
    "cache_read_per_mtok": "cache_read_mtok",
    "cache_write_per_mtok": "cache_write_mtok",
}

_CardKey = tuple[str | None, str]  # (provider or None for any provider, model)

# The two layers, and _cards which merges them for lookups. Each dict is replaced
# as a whole on every change, so readers never see a dict being modified.
_registered: dict[_CardKey, RateCard] = {}
_stored: dict[_CardKey, RateCard] = {}
_cards: dict[_CardKey, RateCard] = {}
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

    card = _card(model, rates, USER_SOURCE)
    global _registered
    with _write_lock:
        _registered = {**_registered, (provider, model): card}
        _merge_layers()


def clear_model_prices() -> None:
    """Remove every price registered with ``register_model_price``.

    Prices loaded from the buffer's rate registry stay until
    ``set_stored_model_prices`` replaces them or ``dexcost.shutdown()`` runs.
    """
    global _registered
    with _write_lock:
        _registered = {}
        _merge_layers()


def set_stored_model_prices(
    prices: Iterable[tuple[str | None, str, Mapping[str, Decimal]]],
) -> None:
    """Replace the layer of prices loaded from the rate registry.

    Each item is ``(provider or None, model, prices)`` with prices keyed by the
    ``register_model_price`` keyword names (``input_per_mtok`` and so on), already
    checked by the caller. Prices registered in code win over these.
    """
    cards = {
        (provider, model): _card(
            model,
            {_PRICE_KEYS[name]: value for name, value in rates.items()},
            STORED_SOURCE,
        )
        for provider, model, rates in prices
    }
    global _stored
    with _write_lock:
        _stored = cards
        _merge_layers()


def _merge_layers() -> None:
    """Rebuild ``_cards`` so that two lookups find the right card; hold ``_write_lock``.

    ``find_user_card`` tries ``(provider, model)`` then ``(None, model)``. A price
    registered in code for any provider must beat a stored price for one provider,
    so a stored card is dropped when code registered the same model for any
    provider or for the same provider.
    """
    global _cards
    code_any_provider = {model for provider, model in _registered if provider is None}
    merged = {key: card for key, card in _stored.items() if key[1] not in code_any_provider}
    merged.update(_registered)
    _cards = merged


def find_user_card(provider: str, model: str) -> RateCard | None:
    """Return the user's card for this provider and model, code prices first, if any."""
    cards = _cards
    if not cards:
        return None
    return cards.get((provider, model)) or cards.get((None, model))


def _card(model: str, rates: dict[str, Decimal], source: str) -> RateCard:
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
        source=source,
        conditions=(None,),
        variants=(),
        price_sets={(0, ()): price_set},
    )
