"""Rate card: every price set of one model, and the rules that pick one per call.

Selection follows ``ModelInfo.get_prices`` in genai-prices 0.2.3:

* Time conditions are tried from last to first, and the first one that is
  unconditional or active at the request time wins. If none is active, the
  first one applies.
* Price variants (batch processing, OpenAI service tiers) apply only when the
  call has a price context. Every variant whose context values match and whose
  own time condition is active contributes its rates. For a price key, the
  first such variant wins, and keys that no variant sets keep the standard rate.
* Variants are ignored for a model that the provider borrows from another
  provider (Azure serving OpenAI models), because the library ignores them too.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from dexcost.pricing.constraints import Constraint, posix_seconds
from dexcost.pricing.price_set import PriceSet

# Price-context values that a call can carry, as genai-prices names them.
SERVICE_TIER_KEY: Final = "service_tier"
PROCESSING_KEY: Final = "processing"
BATCH_PROCESSING: Final = "batch"

# (time condition index, indexes of the variants that apply, ascending)
PriceSetKey = tuple[int, tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class Variant:
    """Condition under which a price variant applies: a service tier, batch processing, or both."""

    service_tier: str | None
    """Service tier the call must have, or None for any."""
    batch: bool
    """Whether the call must be a batch call."""
    constraint: Constraint | None

    def matches(self, service_tier: str | None, batch: bool) -> bool:
        if self.service_tier is not None and self.service_tier != service_tier:
            return False
        return batch or not self.batch


# Service tiers that name the standard rates (OpenAI "default", Bedrock and Anthropic
# "standard", "auto" when the provider picked the default).
STANDARD_TIERS: Final = frozenset({"default", "standard", "auto", "on_demand"})

# (service tier or None, batch) -> (variant index, its time condition) for each
# variant the context matches. A tier that no variant names behaves like None.
_Candidates = Mapping[tuple[str | None, bool], tuple[tuple[int, Constraint | None], ...]]


@dataclass(frozen=True, slots=True)
class RateCard:
    """Compiled prices of one model at one provider, ready for per-call pricing.

    Where the library would raise ValueError for a price set (an invalid or
    incomplete price table), the card stores the error message in its place.
    """

    matched_model: str
    source: str
    conditions: tuple[Constraint | None, ...]
    variants: tuple[Variant, ...]
    price_sets: Mapping[PriceSetKey, PriceSet | str]
    # Price set for calls without a price context when no time condition
    # exists, so the common call skips reading the clock.
    _fixed: PriceSet | str | None = field(init=False, repr=False, compare=False)
    _candidates: _Candidates = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fixed = None
        if all(condition is None for condition in self.conditions):
            fixed = self.price_sets[(len(self.conditions) - 1, ())]
        object.__setattr__(self, "_fixed", fixed)
        object.__setattr__(self, "_candidates", variant_candidates(self.variants))

    def prices_tier(self, service_tier: str) -> bool:
        """Tell whether the card can price a call in ``service_tier``.

        A tier that names the standard rates always can. Any other tier (flex,
        priority, scale, reserved) needs a variant of its own: its calls are billed at
        other rates, so pricing them at the standard ones would be wrong.
        """
        if service_tier in STANDARD_TIERS:
            return True
        return any(variant.service_tier == service_tier for variant in self.variants)

    def select(
        self, service_tier: str | None, batch: bool, timestamp: datetime | None
    ) -> PriceSet | str:
        """Return the price set for a call, or the reason why there is none."""
        has_context = service_tier is not None or batch
        fixed = self._fixed
        if fixed is not None and not (has_context and self.variants):
            return fixed

        now = time.time() if timestamp is None else posix_seconds(timestamp)
        condition = 0
        for index in range(len(self.conditions) - 1, -1, -1):
            constraint = self.conditions[index]
            if constraint is None or constraint.active(now):
                condition = index
                break

        applied: list[int] = []
        if has_context and self.variants:
            candidates = self._candidates.get((service_tier, batch))
            if candidates is None:
                candidates = self._candidates[(None, batch)]
            for index, constraint in candidates:
                if constraint is None or constraint.active(now):
                    applied.append(index)
        return self.price_sets[(condition, tuple(applied))]


def condition_indexes(conditions: tuple[Constraint | None, ...]) -> range:
    """Return the time condition indexes that `RateCard.select` can return."""
    if any(condition is not None for condition in conditions):
        return range(len(conditions))
    return range(len(conditions) - 1, len(conditions))


def variant_candidates(variants: tuple[Variant, ...]) -> _Candidates:
    """Map each distinguishable (service tier, batch) context to the variants it matches."""
    tiers = sorted({variant.service_tier for variant in variants if variant.service_tier})
    return {
        (service_tier, batch): tuple(
            (index, variant.constraint)
            for index, variant in enumerate(variants)
            if variant.matches(service_tier, batch)
        )
        for service_tier, batch in itertools.product([None, *tiers], [False, True])
    }


def reachable_variant_sets(variants: tuple[Variant, ...]) -> set[tuple[int, ...]]:
    """Return every tuple of variant indexes that `RateCard.select` can apply.

    Of the variants a context matches, the unconditional ones always apply, and
    any subset of the time-conditioned ones can be active at some request time.
    """
    reachable: set[tuple[int, ...]] = {()}
    for candidates in variant_candidates(variants).values():
        always = [index for index, constraint in candidates if constraint is None]
        timed = [index for index, constraint in candidates if constraint is not None]
        for size in range(len(timed) + 1):
            for subset in itertools.combinations(timed, size):
                reachable.add(tuple(sorted([*always, *subset])))
    return reachable
