"""PriceSet on hand-made price tables, checked against ModelPrice.calc_price."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import pytest
from genai_prices import Usage
from genai_prices.types import ModelPrice, Tier, TieredPrices

from dexcost.pricing.library import Library
from dexcost.pricing.price_set import (
    PricedUnit,
    PriceSet,
    PriceSetError,
    Rate,
    ReportedUnits,
    Tiered,
    build_price_set,
)

LIBRARY_TO_INDEX = {
    "input_tokens": 0,
    "output_tokens": 1,
    "cache_read_tokens": 2,
    "cache_write_tokens": 3,
    "cache_write_1h_tokens": 4,
    "output_reasoning_tokens": 5,
    "input_audio_tokens": 6,
    "cache_audio_read_tokens": 7,
    "output_audio_tokens": 8,
}


def compile_prices(
    library: Library, rates: Mapping[str, Rate], reported_keys: list[str]
) -> PriceSet:
    registry = library.registry
    units = []
    for price_key, rate in rates.items():
        unit = registry.unit_for_price_key(price_key)
        units.append(PricedUnit(unit.usage_key, price_key, unit.per, unit.dimensions, rate))
    reported: ReportedUnits = {
        key: (LIBRARY_TO_INDEX[key], registry.units[key].dimensions) for key in reported_keys
    }
    return build_price_set(units, reported)


def counts_of(usage: Mapping[str, int]) -> tuple[int, ...]:
    counts = [0] * len(LIBRARY_TO_INDEX)
    for key, value in usage.items():
        counts[LIBRARY_TO_INDEX[key]] = value
    return tuple(counts)


def library_rate(rate: Rate) -> Decimal | TieredPrices:
    if isinstance(rate, Tiered):
        return TieredPrices(rate.base, [Tier(start, price) for start, price in rate.tiers])
    return rate


def library_total(rates: Mapping[str, Rate], usage: Mapping[str, int]) -> Decimal | None:
    prices = ModelPrice(**{key: library_rate(rate) for key, rate in rates.items()})
    try:
        return prices.calc_price(Usage(**usage))["total_price"]
    except ValueError:
        return None


def test_sub_counts_leave_their_parent(library: Library) -> None:
    rates = {
        "input_mtok": Decimal("3"),
        "cache_read_mtok": Decimal("0.3"),
        "cache_write_mtok": Decimal("3.75"),
        "cache_write_1h_mtok": Decimal("6"),
        "output_mtok": Decimal("15"),
    }
    usage = {
        "input_tokens": 9_000,
        "cache_read_tokens": 5_000,
        "cache_write_tokens": 3_000,
        "cache_write_1h_tokens": 1_000,
        "output_tokens": 700,
    }
    price_set = compile_prices(library, rates, list(usage))
    assert price_set.cost(counts_of(usage)) == Decimal("0.0285")
    assert price_set.cost(counts_of(usage)) == library_total(rates, usage)


def test_unpriced_sub_count_pays_parent_rate(library: Library) -> None:
    rates = {"input_mtok": Decimal("2"), "output_mtok": Decimal("8")}
    usage = {"input_tokens": 1_000, "cache_read_tokens": 900, "output_tokens": 10}
    price_set = compile_prices(library, rates, list(usage))
    assert price_set.cost(counts_of(usage)) == Decimal("0.00208")


def test_audio_cache_read_counted_once(library: Library) -> None:
    rates = {
        "input_mtok": Decimal("0.3"),
        "cache_read_mtok": Decimal("0.03"),
        "input_audio_mtok": Decimal("1"),
        "cache_audio_read_mtok": Decimal("0.1"),
        "output_mtok": Decimal("2.5"),
    }
    usage = {
        "input_tokens": 10_000,
        "cache_read_tokens": 4_000,
        "input_audio_tokens": 3_000,
        "cache_audio_read_tokens": 1_000,
        "output_tokens": 0,
    }
    price_set = compile_prices(library, rates, list(usage))
    assert price_set.cost(counts_of(usage)) == library_total(rates, usage)


def test_sub_count_above_total_unpriced(library: Library) -> None:
    rates = {"input_mtok": Decimal("3"), "cache_read_mtok": Decimal("0.3")}
    usage = {"input_tokens": 100, "cache_read_tokens": 101}
    price_set = compile_prices(library, rates, list(usage))
    assert library_total(rates, usage) is None
    assert price_set.cost(counts_of(usage)) is None


def test_unreported_unit_with_reported_part_unpriced(library: Library) -> None:
    # cache_read is priced but not reported, while its part cache_audio_read is.
    rates = {"input_mtok": Decimal("1"), "cache_read_mtok": Decimal("0.1")}
    usage = {"input_tokens": 100, "cache_audio_read_tokens": 10}
    price_set = compile_prices(library, rates, list(usage))
    assert library_total(rates, usage) is None
    assert price_set.cost(counts_of(usage)) is None


def test_unreported_overlap_unit_unpriced(library: Library) -> None:
    # cache_audio_read is priced but not reported, and cache_read and
    # input_audio, both reported, overlap exactly on it.
    rates = {
        "input_mtok": Decimal("1"),
        "cache_read_mtok": Decimal("0.1"),
        "input_audio_mtok": Decimal("2"),
        "cache_audio_read_mtok": Decimal("0.2"),
    }
    usage = {"input_tokens": 100, "cache_read_tokens": 10, "input_audio_tokens": 20}
    price_set = compile_prices(library, rates, list(usage))
    assert library_total(rates, usage) is None
    assert price_set.cost(counts_of(usage)) is None


def test_unreported_overlap_unit_inferred_as_zero(library: Library) -> None:
    rates = {
        "input_mtok": Decimal("1"),
        "cache_read_mtok": Decimal("0.1"),
        "input_audio_mtok": Decimal("2"),
        "cache_audio_read_mtok": Decimal("0.2"),
    }
    usage = {"input_tokens": 100, "cache_read_tokens": 10, "input_audio_tokens": 0}
    price_set = compile_prices(library, rates, list(usage))
    assert price_set.cost(counts_of(usage)) == library_total(rates, usage)


def test_tiers_pick_highest_exceeded_start(library: Library) -> None:
    tiered = Tiered(Decimal("1"), ((100, Decimal("2")), (1_000, Decimal("4"))))
    rates = {"input_mtok": tiered, "output_mtok": Decimal("10")}
    price_set = compile_prices(library, rates, ["input_tokens", "output_tokens"])
    for input_tokens in (0, 100, 101, 1_000, 1_001, 50_000):
        usage = {"input_tokens": input_tokens, "output_tokens": 7}
        assert price_set.cost(counts_of(usage)) == library_total(rates, usage), input_tokens


def test_request_fee_added_once(library: Library) -> None:
    rates = {
        "input_mtok": Decimal("1"),
        "output_mtok": Decimal("1"),
        "requests_kcount": Decimal("12"),
    }
    usage = {"input_tokens": 1_000, "output_tokens": 1_000}
    price_set = compile_prices(library, rates, list(usage))
    assert price_set.cost(counts_of(usage)) == Decimal("0.014")


def test_huge_counts_not_rounded(library: Library) -> None:
    # 40 significant digits: the library's default 28-digit context would round this.
    rates = {"input_mtok": Decimal("0.123456789"), "output_mtok": Decimal("1")}
    usage = {"input_tokens": 10**30 + 1, "output_tokens": 0}
    price_set = compile_prices(library, rates, list(usage))
    rounded = Decimal("0.123456789") * (10**30 + 1) / 10**6
    exact = Decimal(f"{123456789 * (10**30 + 1)}E-15")  # string construction never rounds
    assert rounded != exact
    assert price_set.cost(counts_of(usage)) == exact


def test_result_has_no_trailing_zeros(library: Library) -> None:
    rates = {"input_mtok": Decimal("0.15"), "output_mtok": Decimal("0.6")}
    price_set = compile_prices(library, rates, ["input_tokens", "output_tokens"])
    cost = price_set.cost(counts_of({"input_tokens": 1_200, "output_tokens": 300}))
    assert str(cost) == "0.00036"


def test_zero_usage_costs_zero(library: Library) -> None:
    rates = {"input_mtok": Decimal("0.15"), "output_mtok": Decimal("0.6")}
    price_set = compile_prices(library, rates, ["input_tokens", "output_tokens"])
    assert price_set.cost(counts_of({})) == Decimal(0)


def test_float_count_unpriced(library: Library) -> None:
    rates = {"input_mtok": Decimal("0.15"), "output_mtok": Decimal("0.6")}
    price_set = compile_prices(library, rates, ["input_tokens", "output_tokens"])
    counts = (1.5, 0, 0, 0, 0, 0, 0, 0, 0)
    assert price_set.cost(counts) is None  # type: ignore[arg-type]


def test_character_billed_set_not_billable(library: Library) -> None:
    price_set = compile_prices(library, {"input_mchars": Decimal("15")}, ["input_tokens"])
    assert price_set.billable_by_tokens is False


def test_empty_set_billable_and_free(library: Library) -> None:
    price_set = compile_prices(library, {}, ["input_tokens"])
    assert price_set.billable_by_tokens is True
    assert price_set.cost(counts_of({"input_tokens": 10})) == Decimal(0)


def test_non_decimal_per_rejected() -> None:
    unit = PricedUnit("audio_seconds", "audio_hours", 3_600, {"family": "durations"}, Decimal("1"))
    reported: ReportedUnits = {"audio_seconds": (0, {"family": "durations"})}
    with pytest.raises(PriceSetError, match="per=3600"):
        build_price_set([unit], reported)


def test_uncounted_non_decimal_per_accepted(library: Library) -> None:
    # whisper-style audio-hour rates compile, because token usage never counts seconds.
    price_set = compile_prices(library, {"audio_hours": Decimal("0.36")}, ["input_tokens"])
    assert price_set.billable_by_tokens is False
