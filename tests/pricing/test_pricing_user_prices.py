"""Prices registered with register_model_price override genai-prices."""

from __future__ import annotations

import importlib.metadata
import sys
from decimal import Decimal

import pytest

from dexcost.pricing import TokenUsage, clear_model_prices, price_llm, register_model_price
from dexcost.semconv import PRICED, UNPRICED

# The price source recorded on spans: the installed genai-prices release.
LIBRARY_SOURCE = f"genai-prices {importlib.metadata.version('genai-prices')}"


def test_user_price_overrides_library() -> None:
    register_model_price("gpt-4o-mini", input_per_mtok="1", output_per_mtok="2")
    price = price_llm("openai", "gpt-4o-mini", TokenUsage(input_tokens=1_000_000))
    assert price.cost_usd == Decimal("1")
    assert price.source == "user"
    assert price.matched_model == "gpt-4o-mini"


def test_provider_specific_price_wins() -> None:
    register_model_price("acme-chat", input_per_mtok="1", output_per_mtok="1")
    register_model_price("acme-chat", provider="groq", input_per_mtok="3", output_per_mtok="3")
    usage = TokenUsage(input_tokens=1_000_000)
    assert price_llm("groq", "acme-chat", usage).cost_usd == Decimal("3")
    assert price_llm("openai", "acme-chat", usage).cost_usd == Decimal("1")


def test_provider_specific_price_stays_with_provider() -> None:
    register_model_price("acme-chat", provider="groq", input_per_mtok="3", output_per_mtok="3")
    price = price_llm("openai", "acme-chat", TokenUsage(input_tokens=1_000_000))
    assert price.status == UNPRICED


def test_cache_rates_apply_to_cached_tokens() -> None:
    register_model_price(
        "acme-cached",
        input_per_mtok="2",
        output_per_mtok="8",
        cache_read_per_mtok="0.5",
        cache_write_per_mtok="2.5",
    )
    usage = TokenUsage(
        input_tokens=1_000_000,
        output_tokens=0,
        cache_read_tokens=600_000,
        cache_write_tokens=300_000,
    )
    # 100k plain at $2, 600k read at $0.50, 300k written at $2.50.
    assert price_llm("openai", "acme-cached", usage).cost_usd == Decimal("1.25")


def test_cached_tokens_without_rate_pay_input_rate() -> None:
    register_model_price("acme-plain", input_per_mtok="2", output_per_mtok="8")
    usage = TokenUsage(input_tokens=1_000_000, cache_read_tokens=600_000)
    assert price_llm("openai", "acme-plain", usage).cost_usd == Decimal("2")


def test_local_model_priced_when_registered() -> None:
    register_model_price("llama3.2", provider="ollama", input_per_mtok="0", output_per_mtok="0")
    price = price_llm("ollama", "llama3.2", TokenUsage(100, 20))
    assert price.status == PRICED
    assert price.cost_usd == Decimal(0)


def test_rates_accept_decimal_and_int() -> None:
    register_model_price("acme-chat", input_per_mtok=Decimal("0.25"), output_per_mtok=1)  # type: ignore[arg-type]
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert price_llm("openai", "acme-chat", usage).cost_usd == Decimal("1.25")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="genai-prices needs Python 3.11")
def test_clear_restores_library_price() -> None:
    register_model_price("gpt-4o-mini", input_per_mtok="1", output_per_mtok="2")
    clear_model_prices()
    price = price_llm("openai", "gpt-4o-mini", TokenUsage(input_tokens=1_000_000))
    assert price.source == LIBRARY_SOURCE


def test_invalid_usage_unpriced_with_user_source() -> None:
    register_model_price(
        "acme-chat", input_per_mtok="1", output_per_mtok="1", cache_read_per_mtok="0.1"
    )
    price = price_llm("openai", "acme-chat", TokenUsage(input_tokens=10, cache_read_tokens=11))
    assert price.status == UNPRICED
    assert price.source == "user"


def test_negative_rate_rejected() -> None:
    with pytest.raises(
        ValueError, match=r"input_per_mtok='-1'.*cannot be negative.*input_per_mtok='0.15'"
    ):
        register_model_price("acme-chat", input_per_mtok="-1", output_per_mtok="1")


def test_non_numeric_rate_rejected() -> None:
    with pytest.raises(
        ValueError, match=r"output_per_mtok='abc'.*not a number.*output_per_mtok='0.15'"
    ):
        register_model_price("acme-chat", input_per_mtok="1", output_per_mtok="abc")


def test_float_rate_rejected() -> None:
    with pytest.raises(ValueError, match=r"cache_read_per_mtok=0.1 \(float\)"):
        register_model_price(
            "acme-chat",
            input_per_mtok="1",
            output_per_mtok="1",
            cache_read_per_mtok=0.1,  # type: ignore[arg-type]
        )


def test_infinite_rate_rejected() -> None:
    with pytest.raises(ValueError, match=r"cache_write_per_mtok='Infinity'.*not a finite number"):
        register_model_price(
            "acme-chat", input_per_mtok="1", output_per_mtok="1", cache_write_per_mtok="Infinity"
        )


def test_empty_model_rejected() -> None:
    with pytest.raises(ValueError, match="invalid model=''"):
        register_model_price("", input_per_mtok="1", output_per_mtok="1")


def test_rejected_registration_keeps_old_price() -> None:
    register_model_price("acme-chat", input_per_mtok="1", output_per_mtok="1")
    with pytest.raises(ValueError):
        register_model_price("acme-chat", input_per_mtok="5", output_per_mtok="-5")
    price = price_llm("openai", "acme-chat", TokenUsage(input_tokens=1_000_000))
    assert price.cost_usd == Decimal("1")
