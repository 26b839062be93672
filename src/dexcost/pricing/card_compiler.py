"""Compile a genai-prices model entry into a RateCard.

This is the only module that reads genai-prices price objects. It runs once
per (provider, model) pair, so it may be slow. It mirrors how genai-prices 0.2.3
resolves a ``ModelPrice`` (``ModelInfo.get_prices`` and
``_collect_resolved_model_prices``), so a card prices a call exactly as
``genai_prices.calc_price`` would. The tests compare the two.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from dexcost.pricing.constraints import Constraint, DailyWindow, StartDate
from dexcost.pricing.library import Library
from dexcost.pricing.price_set import (
    PricedUnit,
    PriceSet,
    Rate,
    ReportedUnits,
    Tiered,
    build_price_set,
)
from dexcost.pricing.rate_card import (
    BATCH_PROCESSING,
    PROCESSING_KEY,
    SERVICE_TIER_KEY,
    PriceSetKey,
    RateCard,
    Variant,
    condition_indexes,
    reachable_variant_sets,
)
from dexcost.pricing.supplement import SUPPLEMENT_NAME, SupplementEntry
from dexcost.pricing.usage import LIBRARY_USAGE_KEYS

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, ModelPrice, PriceVariant, Provider
    from genai_prices.units import UnitRegistry

logger = logging.getLogger("dexcost.pricing")

# Price-context keys a dexcost call can set; variants keyed on anything else never apply.
_CONTEXT_KEYS: Final = frozenset({SERVICE_TIER_KEY, PROCESSING_KEY})


def compile_card(
    library: Library,
    provider: Provider,
    model: ModelInfo,
    supplement: SupplementEntry | None = None,
) -> RateCard:
    """Build the rate card of `model` as served by `provider`.

    `supplement` adds rates the library lacks (see ``supplement.py``); a rate the
    library has is never replaced.
    """
    from genai_prices.types import ModelPrice

    if isinstance(model.prices, ModelPrice):
        standard: list[ModelPrice] = [model.prices]
        conditions: tuple[Constraint | None, ...] = (None,)
    else:
        standard = [conditional.prices for conditional in model.prices]
        conditions = tuple(_constraint(conditional.constraint) for conditional in model.prices)

    # The library applies variants only to the provider's own models, not to
    # models it falls back to (e.g. Azure serving OpenAI's gpt-4o).
    own_model = any(model is candidate for candidate in provider.models)
    library_variants = [
        variant for variant in model.price_variants or () if own_model and _applicable(variant)
    ]
    variants = tuple(_variant(variant) for variant in library_variants)

    reported = reported_units(library.registry)
    price_sets: dict[PriceSetKey, PriceSet | str] = {}
    for condition in condition_indexes(conditions):
        for applied in reachable_variant_sets(variants):
            overrides = [library_variants[index].prices for index in applied]
            items = _merged_prices(standard[condition], overrides)
            if supplement is not None:
                items = _supplemented(items, supplement)
            price_sets[(condition, applied)] = _compile_price_set(library, items, reported)

    source = library.source if supplement is None else f"{library.source} + {SUPPLEMENT_NAME}"
    return RateCard(
        matched_model=model.id,
        source=source,
        conditions=conditions,
        variants=variants,
        price_sets=price_sets,
    )


def reported_units(registry: UnitRegistry) -> ReportedUnits:
    """Map each library usage key that TokenUsage reports to its count index and dimensions."""
    return {
        library_key: (index, registry.units[library_key].dimensions)
        for index, (_, library_key) in enumerate(LIBRARY_USAGE_KEYS)
    }


def _constraint(constraint: object) -> Constraint | None:
    from genai_prices.types import StartDateConstraint, TimeOfDateConstraint

    if constraint is None:
        return None
    if isinstance(constraint, StartDateConstraint):
        return StartDate.from_date(constraint.start_date)
    if isinstance(constraint, TimeOfDateConstraint):
        return DailyWindow.from_times(constraint.start_time, constraint.end_time)
    raise TypeError(f"unsupported genai-prices price constraint: {constraint!r}")


def _applicable(variant: PriceVariant) -> bool:
    """Return whether a dexcost call can ever carry the context that `variant` requires."""
    when = variant.when
    if not when.keys() <= _CONTEXT_KEYS:
        return False
    return when.get(PROCESSING_KEY, BATCH_PROCESSING) == BATCH_PROCESSING


def _variant(variant: PriceVariant) -> Variant:
    return Variant(
        service_tier=variant.when.get(SERVICE_TIER_KEY),
        batch=PROCESSING_KEY in variant.when,
        constraint=_constraint(variant.constraint),
    )


def _merged_prices(
    standard: ModelPrice, overrides: Iterable[ModelPrice]
) -> list[tuple[str, object]]:
    """Apply variant prices over the standard ones, keeping the library's key order.

    For each key the first variant that sets it wins. A key already in the
    standard prices keeps its position, and new keys are appended.
    """
    chosen: dict[str, object] = {}
    for variant_prices in overrides:
        for key, value in vars(variant_prices).items():
            if value is not None:
                chosen.setdefault(key, value)
    merged = dict(vars(standard))
    merged.update(chosen)
    return list(merged.items())


def _supplemented(
    items: list[tuple[str, object]], supplement: SupplementEntry
) -> list[tuple[str, object]]:
    present = {key for key, value in items if value is not None}
    extra = [(key, rate) for key, rate in supplement.rates.items() if key not in present]
    return [*items, *extra]


def _compile_price_set(
    library: Library, items: list[tuple[str, object]], reported: ReportedUnits
) -> PriceSet | str:
    registry = library.registry
    units: list[PricedUnit] = []
    try:
        for price_key, value in items:
            if price_key.startswith("_") or value is None:
                continue
            try:
                unit = registry.unit_for_price_key(price_key)
            except KeyError:
                # genai-prices warns and skips a price key it has no unit for.
                logger.debug("skipped genai-prices price key without a unit: %s", price_key)
                continue
            units.append(
                PricedUnit(
                    unit.usage_key, price_key, unit.per, unit.dimensions, _rate(price_key, value)
                )
            )
        library.validate_priced_units(
            [registry.unit_for_price_key(unit.price_key) for unit in units], registry
        )
        return build_price_set(units, reported)
    except ValueError as error:
        return str(error)


def _rate(price_key: str, value: object) -> Rate:
    """Convert a library price, rejecting what ``_validate_model_price_value`` rejects."""
    from genai_prices.types import TieredPrices

    if _valid_price(value):
        assert isinstance(value, Decimal)
        return value
    if isinstance(value, TieredPrices) and _valid_price(value.base):
        tiers: list[tuple[int, Decimal]] = []
        for tier in value.tiers:
            valid_start = type(tier.start) is int and tier.start >= 0
            if not valid_start or not _valid_price(tier.price):
                break
            if tiers and tier.start < tiers[-1][0]:
                break
            tiers.append((tier.start, tier.price))
        else:
            return Tiered(value.base, tuple(tiers))
    raise ValueError(f"invalid genai-prices price for {price_key}: {value!r}")


def _valid_price(value: object) -> bool:
    return isinstance(value, Decimal) and value.is_finite() and value >= 0
