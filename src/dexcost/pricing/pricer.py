"""Per-call pricing: a rate card lookup plus integer arithmetic.

``genai_prices.calc_price`` costs 100-300 µs per call (timeit, genai-prices
0.2.3, 2-core development VM), several times dexcost's whole per-call budget
of 40 µs. So each (provider, model) pair is resolved with the library once,
compiled into a RateCard and cached, misses included. Later calls only select
a price set and multiply-add the counts.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Final

from dexcost.pricing.card_compiler import compile_card
from dexcost.pricing.library import (
    UNAVAILABLE_SOURCE,
    Library,
    load_failed,
    pricing_version,
    wait_for_library,
)
from dexcost.pricing.llm_price import LLMPrice, priced, unpriced
from dexcost.pricing.price_set import PriceSet
from dexcost.pricing.providers import find_model
from dexcost.pricing.rate_card import RateCard
from dexcost.pricing.supplement import find_supplement
from dexcost.pricing.usage import TokenUsage, usage_counts
from dexcost.pricing.user_prices import find_user_card

logger = logging.getLogger("dexcost.pricing")

# Bound on cached (provider, model) pairs. Model names come from API
# responses, so a faulty caller could produce endless distinct names. The
# cache is emptied and rebuilt when it reaches this size.
MAX_CACHED_MODELS: Final = 4096

# Value: a compiled card, or the unpriced result to return for that pair.
_entries: dict[tuple[str, str], RateCard | LLMPrice] = {}
_compile_lock = threading.Lock()


def price_llm(
    provider: str,
    model: str,
    usage: TokenUsage,
    *,
    service_tier: str | None = None,
    batch: bool = False,
    timestamp: datetime | None = None,
) -> LLMPrice:
    """Return the exact USD cost of one LLM call; never raises an Exception.

    `provider` is the OpenTelemetry ``gen_ai.provider.name``. `service_tier`
    (e.g. OpenAI's ``"flex"`` or ``"priority"``) and `batch` select discounted
    or premium rates where the model has them. `timestamp` is the request time
    (default: now), which matters for dated price changes and off-peak hours.
    Unknown models, invalid usage and any internal error give an unpriced result.
    """
    try:
        entry = lookup_card(provider, model)
        if isinstance(entry, LLMPrice):
            return entry
        return _price_with_card(entry, usage, service_tier, batch, timestamp)
    except Exception:  # an error here must not fail the instrumented LLM call
        logger.debug("pricing %s model %r failed", provider, model, exc_info=True)
        return unpriced(pricing_version())


def lookup_card(provider: str, model: str) -> RateCard | LLMPrice:
    """Return the card that prices ``model``, or the unpriced result when none does."""
    card = find_user_card(provider, model)
    if card is not None:
        return card
    entry = _entries.get((provider, model))
    if entry is None:
        entry = _load_entry(provider, model)
    return entry


def _price_with_card(
    card: RateCard,
    usage: TokenUsage,
    service_tier: str | None,
    batch: bool,
    timestamp: datetime | None,
) -> LLMPrice:
    counts = usage_counts(usage)
    if counts is None:
        logger.debug(
            "unpriced %s: token counts must be non-negative ints: %r", card.matched_model, usage
        )
        return unpriced(card.source, card.matched_model)

    if service_tier is not None and not card.prices_tier(service_tier):
        logger.debug("unpriced %s: no rates for service tier %r", card.matched_model, service_tier)
        return unpriced(card.source, card.matched_model)

    price_set = card.select(service_tier, batch, timestamp)
    if not isinstance(price_set, PriceSet):
        logger.debug("unpriced %s: invalid price table: %s", card.matched_model, price_set)
        return unpriced(card.source, card.matched_model)
    if not price_set.billable_by_tokens:
        logger.debug("unpriced %s: billed in units other than tokens", card.matched_model)
        return unpriced(card.source, card.matched_model)

    cost = price_set.cost(counts)
    if cost is None:
        logger.debug(
            "unpriced %s: token sub-counts exceed their totals: %r", card.matched_model, usage
        )
        return unpriced(card.source, card.matched_model)
    return priced(cost, card.source, card.matched_model)


def _load_entry(provider: str, model: str) -> RateCard | LLMPrice:
    library = wait_for_library()
    if library is None:
        if load_failed():
            return unpriced(UNAVAILABLE_SOURCE)
        logger.debug("unpriced %s model %r: genai-prices is still loading", provider, model)
        return unpriced(pricing_version())  # not cached: the next call may find it loaded

    with _compile_lock:
        entry = _entries.get((provider, model))
        if entry is None:
            entry = _compile_entry(library, provider, model)
            if len(_entries) >= MAX_CACHED_MODELS:
                _entries.clear()
            _entries[(provider, model)] = entry
    return entry


def _compile_entry(library: Library, provider: str, model: str) -> RateCard | LLMPrice:
    try:
        found = find_model(library, provider, model)
        if found is None:
            logger.debug("unpriced %s model %r: not in %s", provider, model, library.source)
            return unpriced(library.source)
        provider_info, model_info = found
        supplement = find_supplement(provider_info.id, model)
        card = compile_card(library, provider_info, model_info, supplement)
    except Exception:  # a library or data surprise must not break pricing of other models
        logger.debug("compiling prices of %s model %r failed", provider, model, exc_info=True)
        return unpriced(library.source)
    if not _agrees_with_library(card, *found):
        return unpriced(library.source, card.matched_model)
    return card


# Token counts for the compile-time check: odd values, below every long-context tier.
_CHECK_USAGE = TokenUsage(input_tokens=123_457, output_tokens=6_791)


def _agrees_with_library(card: RateCard, provider: object, model: object) -> bool:
    """Check a new card against the library's own calculation for one sample call.

    The card compiler follows the arithmetic of the genai-prices releases dexcost is
    tested with. If a newer release prices differently, the model is recorded unpriced
    (with a warning) rather than with a number that may be wrong.
    """
    from genai_prices import Usage

    when = datetime.now(tz=timezone.utc)
    ours = _price_with_card(card, _CHECK_USAGE, None, False, when)
    if ours.cost_usd is None:
        return True
    try:
        theirs = model.calc_price(  # type: ignore[attr-defined]
            Usage(input_tokens=_CHECK_USAGE.input_tokens, output_tokens=_CHECK_USAGE.output_tokens),
            provider,
            genai_request_timestamp=when,
        ).total_price
    except Exception:
        logger.debug("genai-prices could not price the check call", exc_info=True)
        return True
    if theirs == ours.cost_usd:
        return True
    logger.warning(
        "dexcost's compiled price of %s (%s) disagrees with %s (%s vs %s for %d input and %d "
        "output tokens), so its calls are recorded unpriced. Install a genai-prices release "
        "this dexcost version supports.",
        card.matched_model,
        getattr(provider, "id", provider),
        card.source,
        ours.cost_usd,
        theirs,
        _CHECK_USAGE.input_tokens,
        _CHECK_USAGE.output_tokens,
    )
    return False


def clear_cache() -> None:
    """Drop compiled cards, e.g. after genai-prices data changed in this process."""
    with _compile_lock:
        _entries.clear()
