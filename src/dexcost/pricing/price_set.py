"""One resolved set of model prices, compiled to integer arithmetic.

genai-prices 0.2.3 prices a call as follows (``ModelPrice.calc_price``):

* Every priced unit gets a *leaf* count: its reported count minus the leaf
  counts of every priced unit that is part of it (a unit is part of another
  when its dimensions are a superset). So with input, cache-read and
  cache-write rates, the input leaf is ``input - cache_read - cache_write``.
  A sub-count without its own rate stays in its parent and pays the parent
  rate. A negative leaf means inconsistent usage and raises ValueError.
* A priced unit that the usage does not report counts 0. The library raises
  ValueError instead when a reported count > 0 is part of that unit, or when
  two reported counts > 0 overlap exactly on it, because it cannot infer the
  count then.
* Each unit costs ``rate * leaf / per``. A tiered rate is chosen by the
  request's total input tokens (``input > tier.start``, the highest tier
  wins) and applies to all tokens of the unit, not only those above the tier.
  The ``requests`` unit counts 1 per call.

Leaf counts are linear in the reported counts, and so is the cost once the
tier is known. Rates are scaled to integers with a common power of ten, so a
call costs a few int multiply-adds and one Decimal construction. The result is
never rounded, so it equals the library's Decimal sum whenever that sum fits
the default 28-digit context, which it does for any real token count.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, TypeAlias

from dexcost.pricing.usage import INPUT_TOKENS_INDEX

# Context wide enough that multiplying an integer by a power of ten never rounds.
_EXACT: Final = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
_REQUESTS_KEY: Final = "requests"
# 10**-k for k < MAX_SCALE. Rates in genai-prices have at most a handful of
# decimals, so a scale beyond this means corrupt data and compiling fails.
MAX_SCALE: Final = 64
_NEGATIVE_POWERS_OF_TEN: Final = tuple(Decimal(1).scaleb(-k) for k in range(MAX_SCALE))


class PriceSetError(ValueError):
    """A price set that cannot be compiled, e.g. a rate per unit that is not a power of ten."""


@dataclass(frozen=True, slots=True)
class Tiered:
    """Rate that switches for the whole request once input tokens exceed a tier start."""

    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...]
    """(start, rate) pairs in ascending start order; input > start selects the rate."""


Rate: TypeAlias = Decimal | Tiered


@dataclass(frozen=True, slots=True)
class PricedUnit:
    """One priced usage unit: USD `rate` per `per` counts of `usage_key`."""

    usage_key: str
    price_key: str
    per: int
    dimensions: Mapping[str, str]
    rate: Rate


# Reported usage: library usage key -> (index in the counts tuple, dimensions).
ReportedUnits = Mapping[str, tuple[int, Mapping[str, str]]]

# Sparse integer vector over the counts tuple: ((count index, coefficient), ...).
_Vector = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class PriceSet:
    """Compiled prices of one model under one time condition and one price context.

    The cost is linear in the counts once the tier is known, so each tier band
    stores one weight per count: the sum over units of (integer rate x the
    count's coefficient in that unit's leaf). Rates are integers in units of
    ``10**-scale`` USD per count.
    """

    units: tuple[PricedUnit, ...]
    """Priced units in the library's order, for inspection (e.g. rate lint tests)."""
    billable_by_tokens: bool
    """False when the model is billed only in units a TokenUsage cannot report
    (characters, audio hours, pages), so a cost from tokens would be wrong."""
    bands: tuple[tuple[int, int, _Vector], ...]
    """(tier start, constant, weights), highest start first. A band applies when
    input tokens exceed its start; the last band has start -1 and always applies.
    The constant is the part of the cost that no count changes (a per-request fee)."""
    leaf_checks: tuple[_Vector, ...]
    """Leaf counts that can go negative; the library raises ValueError when one does."""
    conflicts: tuple[tuple[int, ...], ...]
    """Count index groups that, when all > 0, make an unreported priced unit uninferable."""
    scale: int

    def rate_for(self, price_key: str) -> Rate | None:
        for unit in self.units:
            if unit.price_key == price_key:
                return unit.rate
        return None

    def cost(self, counts: tuple[int, ...]) -> Decimal | None:
        """Return the exact USD cost of `counts`, or None where genai-prices raises ValueError."""
        for group in self.conflicts:
            if all(counts[index] > 0 for index in group):
                return None
        for check in self.leaf_checks:
            leaf = 0
            for index, coefficient in check:
                leaf += coefficient * counts[index]
            if leaf < 0:
                return None

        input_tokens = counts[INPUT_TOKENS_INDEX]
        band = self.bands[-1]
        for band in self.bands:
            if input_tokens > band[0]:
                break
        _, total, weights = band
        for index, weight in weights:
            total += weight * counts[index]
        if total.__class__ is not int:
            return None  # a non-int count slipped through and would make the result inexact

        scale = self.scale
        while scale and total % 10 == 0:
            total //= 10
            scale -= 1
        return _EXACT.multiply(total, _NEGATIVE_POWERS_OF_TEN[scale])


def build_price_set(units: Sequence[PricedUnit], reported: ReportedUnits) -> PriceSet:
    """Compile resolved prices into a PriceSet; raises PriceSetError if it cannot be exact."""
    leaves = _leaf_counts(units, reported)
    counted = [unit for unit in units if leaves[unit.usage_key] != (0, ())]
    scale = _common_scale(counted)
    starts = {start for unit in counted for start in _tier_starts(unit.rate)}
    bands = tuple(
        (start, *_band(counted, leaves, start + 1, scale))
        for start in sorted(starts | {-1}, reverse=True)
    )
    return PriceSet(
        units=tuple(units),
        billable_by_tokens=_billable_by_tokens(units, leaves),
        bands=bands,
        leaf_checks=tuple(vector for _, vector in leaves.values() if any(c < 0 for _, c in vector)),
        conflicts=_inference_conflicts(units, reported),
        scale=scale,
    )


def is_part_of(part: Mapping[str, str], whole: Mapping[str, str]) -> bool:
    """Return whether a unit with dimensions `part` is contained in one with `whole`."""
    return whole.items() <= part.items()


_Linear = tuple[int, _Vector]


def _leaf_counts(units: Sequence[PricedUnit], reported: ReportedUnits) -> dict[str, _Linear]:
    """Express each unit's leaf count as constant + sum(coefficient * counts[index])."""
    leaves: dict[str, _Linear] = {}
    counted = [unit for unit in units if unit.usage_key != _REQUESTS_KEY]
    # Most specific units first, so every part's leaf exists before its whole's.
    counted.sort(key=lambda unit: (-len(unit.dimensions), unit.usage_key))
    for unit in counted:
        coefficients: dict[int, int] = {}
        if unit.usage_key in reported:
            coefficients[reported[unit.usage_key][0]] = 1
        for part in counted:
            if part is not unit and is_part_of(part.dimensions, unit.dimensions):
                for index, coefficient in leaves[part.usage_key][1]:
                    coefficients[index] = coefficients.get(index, 0) - coefficient
        leaves[unit.usage_key] = (
            0,
            tuple(sorted((index, c) for index, c in coefficients.items() if c != 0)),
        )
    for unit in units:
        if unit.usage_key == _REQUESTS_KEY:
            leaves[unit.usage_key] = (1, ())
    return leaves


def _inference_conflicts(
    units: Sequence[PricedUnit], reported: ReportedUnits
) -> tuple[tuple[int, ...], ...]:
    """List count-index groups that make an unreported priced unit impossible to infer."""
    groups: list[tuple[int, ...]] = []
    ordered_reported = sorted(reported.items())
    for unit in units:
        if unit.usage_key == _REQUESTS_KEY or unit.usage_key in reported:
            continue
        for key, (index, dimensions) in ordered_reported:
            if key != unit.usage_key and is_part_of(dimensions, unit.dimensions):
                groups.append((index,))
        for position, (_, (left_index, left)) in enumerate(ordered_reported):
            for _, (right_index, right) in ordered_reported[position + 1 :]:
                if _overlap_is(left, right, unit.dimensions):
                    groups.append((left_index, right_index))
    return tuple(groups)


def _overlap_is(
    left: Mapping[str, str], right: Mapping[str, str], target: Mapping[str, str]
) -> bool:
    """Return whether two units are compatible, unnested and meet exactly at `target`."""
    compatible = all(right.get(key, value) == value for key, value in left.items())
    nested = is_part_of(left, right) or is_part_of(right, left)
    return compatible and not nested and dict(target) == {**left, **right}


def _rate_values(rate: Rate) -> list[Decimal]:
    if isinstance(rate, Tiered):
        return [rate.base, *(price for _, price in rate.tiers)]
    return [rate]


def _per_exponent(unit: PricedUnit) -> int:
    text = str(unit.per)
    if unit.per <= 0 or text.rstrip("0") != "1":
        raise PriceSetError(
            f"cannot price {unit.price_key} exactly: per={unit.per} is not a power of ten"
        )
    return len(text) - 1


def _common_scale(units: Iterable[PricedUnit]) -> int:
    """Return the smallest power of ten that makes every counted per-unit rate an integer."""
    scale = 0
    for unit in units:
        per_exponent = _per_exponent(unit)
        for value in _rate_values(unit.rate):
            exponent = value.as_tuple().exponent
            assert isinstance(exponent, int)  # rates are validated finite
            scale = max(scale, per_exponent - exponent)
    if scale >= MAX_SCALE:
        raise PriceSetError(f"cannot price exactly: a rate needs {scale} decimal places")
    return scale


def _as_scaled_int(value: Decimal, per_exponent: int, scale: int) -> int:
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    coefficient = int("".join(map(str, digits)) or "0")
    shift = exponent - per_exponent + scale
    assert shift >= 0  # `scale` was chosen so that every shift is non-negative
    multiplier: int = 10**shift
    return coefficient * multiplier


def _tier_starts(rate: Rate) -> list[int]:
    return [start for start, _ in rate.tiers] if isinstance(rate, Tiered) else []


def _rate_at(rate: Rate, input_tokens: int) -> Decimal:
    """Return the rate that applies at `input_tokens`, as ``calc_unit_price`` selects it."""
    if not isinstance(rate, Tiered):
        return rate
    for start, price in reversed(rate.tiers):
        if input_tokens > start:
            return price
    return rate.base


def _scaled_rate_at(unit: PricedUnit, input_tokens: int, scale: int) -> int:
    return _as_scaled_int(_rate_at(unit.rate, input_tokens), _per_exponent(unit), scale)


def _band(
    units: Sequence[PricedUnit], leaves: Mapping[str, _Linear], input_tokens: int, scale: int
) -> tuple[int, _Vector]:
    """Return the constant and the per-count weights of the cost at `input_tokens`."""
    constant = 0
    weights: dict[int, int] = {}
    for unit in units:
        rate = _scaled_rate_at(unit, input_tokens, scale)
        unit_constant, coefficients = leaves[unit.usage_key]
        constant += rate * unit_constant
        for index, coefficient in coefficients:
            weights[index] = weights.get(index, 0) + rate * coefficient
    return constant, tuple(sorted((i, weight) for i, weight in weights.items() if weight != 0))


def _billable_by_tokens(units: Sequence[PricedUnit], leaves: Mapping[str, _Linear]) -> bool:
    if not units:
        return True  # a model with no rates is free, e.g. an ":free" OpenRouter route
    return any(leaves[unit.usage_key] != (0, ()) for unit in units)
