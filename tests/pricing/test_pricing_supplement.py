"""Audio rates the price library lacks come from a small sourced supplement."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from types import MappingProxyType

import pytest

from dexcost.pricing import TokenUsage, price_llm
from dexcost.pricing.card_compiler import compile_card
from dexcost.pricing.library import Library
from dexcost.pricing.providers import find_model
from dexcost.pricing.rate_card import RateCard
from dexcost.pricing.supplement import SUPPLEMENT, SUPPLEMENT_NAME, SupplementEntry

WHEN = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)

# 1,000 input tokens of which 500 audio, 1,000 output tokens of which 800 audio.
AUDIO_USAGE = TokenUsage(
    input_tokens=1_000, output_tokens=1_000, input_audio_tokens=500, output_audio_tokens=800
)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        # Text $2.50 / $10, audio $40 / $80 per million:
        # 500 * 2.5 + 500 * 40 + 200 * 10 + 800 * 80 = 87,250 per million.
        ("gpt-4o-audio-preview-2024-12-17", "0.08725"),
        ("gpt-4o-audio-preview-2025-06-03", "0.08725"),
        # Text $0.15 / $0.60, audio $10 / $20 per million:
        # 500 * 0.15 + 500 * 10 + 200 * 0.6 + 800 * 20 = 21,195 per million.
        ("gpt-4o-mini-audio-preview-2024-12-17", "0.021195"),
    ],
)
def test_audio_tokens_priced_at_audio_rates(model: str, expected: str) -> None:
    price = price_llm("openai", model, AUDIO_USAGE, timestamp=WHEN)

    assert price.cost_usd == Decimal(expected)
    assert price.source is not None
    assert price.source.endswith(f"+ {SUPPLEMENT_NAME}")


def test_text_only_call_keeps_text_rates() -> None:
    usage = TokenUsage(input_tokens=1_000, output_tokens=1_000)
    price = price_llm("openai", "gpt-4o-audio-preview-2024-12-17", usage, timestamp=WHEN)

    # 1,000 * 2.5 + 1,000 * 10 per million.
    assert price.cost_usd == Decimal("0.0125")


def _card(library: Library, model: str, supplement: SupplementEntry | None) -> RateCard:
    found = find_model(library, "openai", model)
    assert found is not None
    return compile_card(library, *found, supplement)


def test_supplement_never_replaces_library_rate(library: Library) -> None:
    # A supplement that names the input rate the library already has must not change it.
    conflicting = SupplementEntry(
        MappingProxyType({"input_mtok": Decimal("999"), "input_audio_mtok": Decimal("40")}),
        "test",
    )
    card = _card(library, "gpt-4o-audio-preview-2024-12-17", conflicting)
    price_set = card.select(None, False, WHEN)

    assert not isinstance(price_set, str)
    assert price_set.rate_for("input_mtok") == Decimal("2.5")
    assert price_set.rate_for("input_audio_mtok") == Decimal("40")


def test_supplement_entries_fill_real_gaps(library: Library) -> None:
    # Each entry must add a rate the library lacks, or it is dead data to delete.
    for (provider_id, model), entry in SUPPLEMENT.items():
        assert provider_id == "openai"
        price_set = _card(library, model, None).select(None, False, WHEN)
        assert not isinstance(price_set, str)
        for price_key in entry.rates:
            assert price_set.rate_for(price_key) is None, (model, price_key)
