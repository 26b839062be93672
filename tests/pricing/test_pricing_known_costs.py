"""Exact costs of representative calls, worked out by hand from published rates.

Every call passes a fixed timestamp, because genai-prices 0.2.3 dates some
rates (batch and service-tier variants start on 2026-10-12 or 2026-10-14).
"""

from __future__ import annotations

import importlib.metadata
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from dexcost.pricing import TokenUsage, price_llm, register_model_price
from dexcost.semconv import PRICED, UNPRICED

# The price source recorded on spans: the installed genai-prices release.
LIBRARY_SOURCE = f"genai-prices {importlib.metadata.version('genai-prices')}"

WHEN = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)


def cost(
    provider: str,
    model: str,
    usage: TokenUsage,
    *,
    service_tier: str | None = None,
    batch: bool = False,
) -> Decimal | None:
    price = price_llm(
        provider, model, usage, service_tier=service_tier, batch=batch, timestamp=WHEN
    )
    return price.cost_usd


@pytest.mark.parametrize(
    ("input_tokens", "output_tokens", "expected"),
    [(1_200, 300, "0.00036"), (500, 100, "0.000135"), (100, 20, "0.000027")],
)
def test_gpt_4o_mini_prompt_and_completion(
    input_tokens: int, output_tokens: int, expected: str
) -> None:
    usage = TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens)
    assert cost("openai", "gpt-4o-mini", usage) == Decimal(expected)


def test_gpt_4o_mini_reports_source_and_match() -> None:
    price = price_llm("openai", "gpt-4o-mini", TokenUsage(1_200, 300), timestamp=WHEN)
    assert price.status == PRICED
    assert price.source == LIBRARY_SOURCE
    assert price.matched_model == "gpt-4o-mini"


def test_dated_snapshot_uses_its_alias_rate() -> None:
    usage = TokenUsage(input_tokens=1_000, output_tokens=500)
    assert cost("openai", "gpt-4o-2024-11-20", usage) == Decimal("0.0075")


def test_older_snapshot_keeps_its_own_rate() -> None:
    # gpt-4o-2024-05-13 costs $5/$15, not gpt-4o's $2.50/$10: no prefix stripping.
    usage = TokenUsage(input_tokens=1_000, output_tokens=500)
    assert cost("openai", "gpt-4o-2024-05-13", usage) == Decimal("0.0125")


def test_two_tokens_priced_without_rounding() -> None:
    assert cost("openai", "gpt-3.5-turbo", TokenUsage(input_tokens=2)) == Decimal("0.000001")


def test_reasoning_tokens_not_double_counted() -> None:
    # o3-mini: $1.10 in, $4.40 out; the 1,500 reasoning tokens are inside the 2,000 output.
    usage = TokenUsage(input_tokens=1_000, output_tokens=2_000, reasoning_tokens=1_500)
    assert cost("openai", "o3-mini", usage) == Decimal("0.0099")


def test_cached_input_priced_at_cache_rate() -> None:
    # gpt-4o: 86 uncached at $2.50, 17,817 cached at $1.25, 200 out at $10.
    usage = TokenUsage(input_tokens=17_903, output_tokens=200, cache_read_tokens=17_817)
    assert cost("openai", "gpt-4o", usage) == Decimal("0.02448625")


def test_azure_deployment_uses_azure_table() -> None:
    usage = TokenUsage(input_tokens=800, output_tokens=200)
    assert cost("azure.ai.openai", "gpt-4o-2024-08-06", usage) == Decimal("0.004")


def test_anthropic_cache_read_and_write_split() -> None:
    # 1,000 plain at $3, 5,000 read at $0.30, 2,000 written (5 min) at $3.75, 300 out at $15.
    usage = TokenUsage(
        input_tokens=8_000, output_tokens=300, cache_read_tokens=5_000, cache_write_tokens=2_000
    )
    assert cost("anthropic", "claude-sonnet-4-20250514", usage) == Decimal("0.0165")


def test_opus_4_5_agent_turn() -> None:
    usage = TokenUsage(
        input_tokens=10 + 32_435 + 66_360,
        output_tokens=5_120,
        cache_read_tokens=66_360,
        cache_write_tokens=32_435,
    )
    assert cost("anthropic", "claude-opus-4-5-20251101", usage) == Decimal("0.36394875")


def test_one_hour_cache_write_rate() -> None:
    usage = TokenUsage(input_tokens=10_000, cache_write_tokens=10_000, cache_write_1h_tokens=10_000)
    assert cost("anthropic", "claude-sonnet-4-20250514", usage) == Decimal("0.06")  # $6/M


def test_mixed_cache_write_ttls() -> None:
    # 4,000 five-minute writes at $3.75 and 6,000 one-hour writes at $6.
    usage = TokenUsage(input_tokens=10_000, cache_write_tokens=10_000, cache_write_1h_tokens=6_000)
    assert cost("anthropic", "claude-sonnet-4-20250514", usage) == Decimal("0.051")


def test_long_context_tier_applies_to_whole_request() -> None:
    # Over 200k input tokens, claude-sonnet-4-5 costs $6/$22.50 for every token.
    usage = TokenUsage(input_tokens=250_000, output_tokens=1_000)
    assert cost("anthropic", "claude-sonnet-4-5", usage) == Decimal("1.5225")


def test_tier_starts_above_its_threshold() -> None:
    usage = TokenUsage(input_tokens=200_000, output_tokens=1_000)
    assert cost("anthropic", "claude-sonnet-4-5", usage) == Decimal("0.615")  # base $3/$15


def test_batch_halves_anthropic_rates() -> None:
    usage = TokenUsage(
        input_tokens=8_000, output_tokens=300, cache_read_tokens=5_000, cache_write_tokens=2_000
    )
    standard = cost("anthropic", "claude-sonnet-4-5", usage)
    assert standard is not None
    assert cost("anthropic", "claude-sonnet-4-5", usage, batch=True) == standard / 2


def test_batch_stacks_with_long_context_tier() -> None:
    usage = TokenUsage(input_tokens=250_000, output_tokens=1_000)
    expected = Decimal("1.5225") / 2
    assert cost("anthropic", "claude-sonnet-4-5", usage, batch=True) == expected


def test_batch_rate_not_active_before_start_date() -> None:
    usage = TokenUsage(input_tokens=8_000, output_tokens=300)
    before = datetime(2026, 10, 13, 23, 59, tzinfo=timezone.utc)
    price = price_llm("anthropic", "claude-sonnet-4-5", usage, batch=True, timestamp=before)
    assert price.cost_usd == Decimal("0.0285")


def test_gemini_pro_long_context_tier() -> None:
    usage = TokenUsage(input_tokens=250_000, output_tokens=1_000)
    assert cost("gcp.gemini", "gemini-2.5-pro", usage) == Decimal("0.64")  # $2.50/$15


def test_openai_flex_tier_halves_rates() -> None:
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=100_000)
    assert cost("openai", "gpt-5", usage, service_tier="flex") == Decimal("1.125")


def test_openai_priority_tier_rates() -> None:
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=100_000)
    assert cost("openai", "gpt-5", usage, service_tier="priority") == Decimal("4.5")


def test_default_service_tier_uses_standard_rates() -> None:
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=100_000)
    assert cost("openai", "gpt-5", usage, service_tier="default") == Decimal("2.25")


def test_tier_without_rates_unpriced() -> None:
    # Scale Tier is billed from prepaid capacity, not at the standard per-token rates,
    # and the price table has no rates for it: the call is unpriced, not $2.25.
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=100_000)
    price = price_llm("openai", "gpt-5", usage, service_tier="scale", timestamp=WHEN)
    assert price.cost_usd is None
    assert price.status == UNPRICED


def test_openai_batch_keeps_cache_read_rate() -> None:
    # genai-prices 0.2.3 discounts only gpt-4o's input and output in batch mode.
    usage = TokenUsage(input_tokens=1_000_000, cache_read_tokens=1_000_000)
    assert cost("openai", "gpt-4o", usage, batch=True) == Decimal("1.25")


def test_fallback_model_ignores_batch() -> None:
    # Azure borrows gpt-4o from OpenAI's table, and the library skips variants then.
    usage = TokenUsage(input_tokens=800, output_tokens=200)
    assert cost("azure.ai.openai", "gpt-4o-2024-08-06", usage, batch=True) == Decimal("0.004")


def test_deepseek_off_peak_discount() -> None:
    usage = TokenUsage(input_tokens=1_000_000)
    peak = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)
    off_peak = datetime(2026, 11, 2, 17, 0, tzinfo=timezone.utc)
    assert price_llm("deepseek", "deepseek-chat", usage, timestamp=peak).cost_usd == Decimal("0.27")
    assert price_llm("deepseek", "deepseek-chat", usage, timestamp=off_peak).cost_usd == Decimal(
        "0.135"
    )


def test_naive_timestamp_read_as_utc() -> None:
    usage = TokenUsage(input_tokens=1_000_000)
    naive_off_peak = datetime(2026, 11, 2, 17, 0)
    price = price_llm("deepseek", "deepseek-chat", usage, timestamp=naive_off_peak)
    assert price.cost_usd == Decimal("0.135")


def test_unknown_model_unpriced() -> None:
    price = price_llm("openai", "acme-unknown-9", TokenUsage(100, 20), timestamp=WHEN)
    assert price.cost_usd is None
    assert price.status == UNPRICED
    assert price.source == LIBRARY_SOURCE
    assert price.matched_model is None


def test_character_billed_model_unpriced() -> None:
    # tts-1 is billed per input character, which token counts cannot price.
    price = price_llm("openai", "tts-1", TokenUsage(100, 20), timestamp=WHEN)
    assert price.status == UNPRICED
    assert price.matched_model == "tts-1"


def test_free_model_priced_at_zero() -> None:
    price = price_llm("openrouter", "deepseek/deepseek-r1:free", TokenUsage(100, 20))
    assert price.status == PRICED
    assert price.cost_usd == Decimal(0)


def test_local_provider_unpriced() -> None:
    price = price_llm("ollama", "gpt-oss:20b", TokenUsage(100, 20), timestamp=WHEN)
    assert price.status == UNPRICED


def test_unknown_provider_matched_from_model() -> None:
    usage = TokenUsage(input_tokens=8_000, output_tokens=300)
    price = price_llm("acme.gateway", "claude-sonnet-4-20250514", usage, timestamp=WHEN)
    assert price.matched_model == "claude-sonnet-4-0"
    assert price.cost_usd == Decimal("0.0285")


def test_library_provider_id_accepted() -> None:
    usage = TokenUsage(input_tokens=1_000_000)
    price = price_llm("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", usage)
    assert price.status == PRICED


def test_user_price_for_unlisted_model() -> None:
    register_model_price("acme-reasoner", input_per_mtok="1.00", output_per_mtok="2.00")
    usage = TokenUsage(input_tokens=100, output_tokens=1_200, reasoning_tokens=1_000)
    price = price_llm("openai", "acme-reasoner", usage)
    assert price.cost_usd == Decimal("0.0025")
    assert price.source == "user"
