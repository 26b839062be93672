"""A compiled card that disagrees with the installed genai-prices is not used."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace

import pytest
from genai_prices.types import ModelInfo

from dexcost.pricing import TokenUsage, price_llm
from dexcost.pricing.pricer import clear_cache


@pytest.fixture(autouse=True)
def _fresh_cards() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


def test_matching_card_is_priced() -> None:
    price = price_llm("openai", "gpt-4o-mini", TokenUsage(input_tokens=1_200, output_tokens=300))
    assert price.cost_usd == Decimal("0.00036")


def test_disagreeing_library_makes_model_unpriced(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def other_arithmetic(self, usage, provider, **kwargs):  # type: ignore[no-untyped-def]
        return SimpleNamespace(total_price=Decimal("123.45"))

    monkeypatch.setattr(ModelInfo, "calc_price", other_arithmetic)
    with caplog.at_level(logging.WARNING, logger="dexcost.pricing"):
        price = price_llm("openai", "gpt-4o-mini", TokenUsage(input_tokens=1_200, output_tokens=300))
    assert price.status == "unpriced"
    assert price.cost_usd is None
    assert price.matched_model == "gpt-4o-mini"
    assert "disagrees with genai-prices" in caplog.text
