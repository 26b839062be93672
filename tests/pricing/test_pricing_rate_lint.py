"""Plausibility lint over every compiled text-model rate in the genai-prices data.

A per-token input or output rate outside $0.001-$200 per million tokens is
almost always a unit error (per token vs per thousand vs per million). Exact
zero is allowed, because free models ("...:free" routes, subscriptions) are
priced at zero on purpose.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from dexcost.pricing.card_compiler import compile_card
from dexcost.pricing.library import Library
from dexcost.pricing.price_set import PricedUnit, PriceSet, Tiered, build_price_set
from dexcost.pricing.usage import LIBRARY_USAGE_KEYS, REPORTED_UNIT_DIMENSIONS

MIN_PER_TOKEN = Decimal("1e-9")  # $0.001 per million tokens
MAX_PER_TOKEN = Decimal("2e-4")  # $200 per million tokens
CHECKED_PRICE_KEYS = ("input_mtok", "output_mtok")

# (provider id, model id, price key, rate per million tokens) that are real list
# prices above $200 per million output tokens in genai-prices 0.2.3 to 0.2.5.
EXCEPTIONS = {
    ("openai", "o1-pro", "output_mtok", Decimal("600")),  # $150 in / $600 out
    ("openai", "o1-pro", "output_mtok", Decimal("300")),  # the same, batch (half)
    ("openrouter", "openai/o1-pro", "output_mtok", Decimal("600")),
    ("openai", "gpt-5.4-pro", "output_mtok", Decimal("270")),
    ("openrouter", "openai/gpt-5.4-pro", "output_mtok", Decimal("270")),
    ("openai", "gpt-5.5-pro", "output_mtok", Decimal("270")),
    ("openrouter", "openai/gpt-5.5-pro", "output_mtok", Decimal("270")),
    # The "ultrafast" service tier, below and above 272k input tokens.
    ("openai", "gpt-6.2-astra", "output_mtok", Decimal("240")),
    ("openai", "gpt-6.2-astra", "output_mtok", Decimal("360")),
}


def rate_values(unit: PricedUnit) -> Iterator[Decimal]:
    if isinstance(unit.rate, Tiered):
        yield unit.rate.base
        yield from (price for _, price in unit.rate.tiers)
    else:
        yield unit.rate


def rate_problems(provider: str, model: str, price_set: PriceSet) -> list[str]:
    """List the implausible per-token text rates of one price set."""
    problems = []
    for unit in price_set.units:
        if unit.price_key not in CHECKED_PRICE_KEYS:
            continue
        for rate in rate_values(unit):
            per_token = rate / unit.per
            plausible = per_token == 0 or MIN_PER_TOKEN <= per_token <= MAX_PER_TOKEN
            if not plausible and (provider, model, unit.price_key, rate) not in EXCEPTIONS:
                problems.append(f"{provider}/{model} {unit.price_key}={rate} per {unit.per}")
    return problems


LibraryPriceSets = list[tuple[str, str, PriceSet]]


@pytest.fixture(scope="module")
def library_price_sets(library: Library) -> LibraryPriceSets:
    """Every price set of every model of every provider, compiled as price_llm would."""
    price_sets = []
    for provider in library.get_snapshot().providers:
        for model in provider.models:
            card = compile_card(library, provider, model)
            for price_set in card.price_sets.values():
                assert isinstance(price_set, PriceSet), (provider.id, model.id, price_set)
                price_sets.append((provider.id, model.id, price_set))
    return price_sets


def test_library_text_rates_plausible(library_price_sets: LibraryPriceSets) -> None:
    problems = [
        problem
        for provider, model, price_set in library_price_sets
        for problem in rate_problems(provider, model, price_set)
    ]
    assert problems == []


def test_lint_checks_thousands_of_rates(library_price_sets: LibraryPriceSets) -> None:
    checked = sum(
        1
        for _, _, price_set in library_price_sets
        for unit in price_set.units
        if unit.price_key in CHECKED_PRICE_KEYS
    )
    assert checked > 2_000


def test_exceptions_still_exist(library_price_sets: LibraryPriceSets) -> None:
    seen = {
        (provider, model, unit.price_key, rate)
        for provider, model, price_set in library_price_sets
        for unit in price_set.units
        for rate in rate_values(unit)
    }
    missing = EXCEPTIONS - seen
    assert missing == set()


def synthetic_price_set(input_per_mtok: str) -> PriceSet:
    reported = {
        library_key: (index, REPORTED_UNIT_DIMENSIONS[library_key])
        for index, (_, library_key) in enumerate(LIBRARY_USAGE_KEYS)
    }
    units = [
        PricedUnit(
            "input_tokens",
            "input_mtok",
            1_000_000,
            REPORTED_UNIT_DIMENSIONS["input_tokens"],
            Decimal(input_per_mtok),
        ),
        PricedUnit(
            "output_tokens",
            "output_mtok",
            1_000_000,
            REPORTED_UNIT_DIMENSIONS["output_tokens"],
            Decimal("10"),
        ),
    ]
    return build_price_set(units, reported)


def test_lint_accepts_real_rate() -> None:
    assert rate_problems("acme", "model", synthetic_price_set("2.50")) == []


def test_lint_catches_thousandfold_rate() -> None:
    # $2.50 per thousand tokens entered as if it were per million.
    problems = rate_problems("acme", "model", synthetic_price_set("2500"))
    assert problems == ["acme/model input_mtok=2500 per 1000000"]


def test_lint_catches_per_token_rate_as_per_million() -> None:
    # $2.50 per million entered as the per-token price 0.0000025.
    problems = rate_problems("acme", "model", synthetic_price_set("0.0000025"))
    assert problems == ["acme/model input_mtok=0.0000025 per 1000000"]
