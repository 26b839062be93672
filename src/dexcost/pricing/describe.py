"""The rates dexcost would apply to a model, for people to read (``dexcost prices``)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from dexcost.pricing.library import pricing_version, wait_for_library, warm_up
from dexcost.pricing.llm_price import LLMPrice
from dexcost.pricing.price_set import PriceSet, Tiered
from dexcost.pricing.pricer import lookup_card
from dexcost.pricing.rate_card import RateCard

LIBRARY_WAIT_SECONDS: Final = 30.0


@dataclass(frozen=True)
class UnitRate:
    """One priced unit: USD per ``per`` units, and the rates above long-context tiers."""

    price_key: str
    """The price table's name for the unit, e.g. ``input_mtok`` (per million input tokens)."""
    per: int
    rate: Decimal
    tiers: tuple[tuple[int, Decimal], ...]
    """(input tokens above which the whole request pays this rate, rate), ascending."""


@dataclass(frozen=True)
class PriceContext:
    """Rates under one price context: the standard rates, or a batch or service tier."""

    name: str
    rates: tuple[UnitRate, ...]


@dataclass(frozen=True)
class ModelPrices:
    """The rates ``price_llm`` applies to one provider's model, with their source."""

    provider: str
    model: str
    matched_model: str | None
    source: str | None
    contexts: tuple[PriceContext, ...]
    reason: str | None
    """The reason the model has no rates, or None when it has rates."""


def describe_model_prices(provider: str, model: str) -> ModelPrices:
    """Return the rates for ``model`` at ``provider`` (an OpenTelemetry provider name).

    An empty ``provider`` lets the price table pick the provider from the model
    name, as pricing an event with an unknown provider does.
    """
    warm_up()
    wait_for_library(LIBRARY_WAIT_SECONDS)
    entry = lookup_card(provider, model)
    if isinstance(entry, LLMPrice):
        source = entry.source or pricing_version()
        return ModelPrices(
            provider, model, entry.matched_model, source, (), f"not priced by {source}"
        )
    return ModelPrices(
        provider, model, entry.matched_model, entry.source, _contexts(entry), reason=None
    )


def _contexts(card: RateCard) -> tuple[PriceContext, ...]:
    # The current time condition (the last one whose start has passed) and each variant
    # alone: the standard rates, then batch and each service tier the model has.
    selections: list[tuple[str, str | None, bool]] = [("standard", None, False)]
    for variant in card.variants:
        if variant.service_tier is not None:
            selections.append((f"service tier {variant.service_tier}", variant.service_tier, False))
        elif variant.batch:
            selections.append(("batch", None, True))
    contexts: list[PriceContext] = []
    for name, service_tier, batch in selections:
        price_set = card.select(service_tier, batch, None)
        if not isinstance(price_set, PriceSet):
            continue
        rates = _unit_rates(price_set)
        # A tier with the standard rates (OpenAI's "default") is not worth a section.
        if contexts and contexts[0].rates == rates:
            continue
        contexts.append(PriceContext(name, rates))
    return tuple(contexts)


def _unit_rates(price_set: PriceSet) -> tuple[UnitRate, ...]:
    rates: list[UnitRate] = []
    for unit in price_set.units:
        if isinstance(unit.rate, Tiered):
            base = unit.rate.base
            tiers = tuple((start, _plain(rate)) for start, rate in unit.rate.tiers)
        else:
            base, tiers = unit.rate, ()
        rates.append(UnitRate(unit.price_key, unit.per, _plain(base), tiers))
    return tuple(rates)


def _plain(value: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent notation (``1.2500`` -> ``1.25``)."""
    normalized = value.normalize()
    _, _, exponent = normalized.as_tuple()
    if isinstance(exponent, int) and exponent > 0:
        return normalized.quantize(Decimal(1))
    return normalized
