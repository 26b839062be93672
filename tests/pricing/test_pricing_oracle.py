"""The compiled fast path must price every call exactly as genai_prices.calc_price does."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import genai_prices
import pytest
from genai_prices.types import ModelPrice, PriceCalculation
from hypothesis import given, settings
from hypothesis import strategies as st

from dexcost.pricing import TokenUsage, price_llm
from dexcost.pricing.library import Library
from dexcost.pricing.providers import LIBRARY_PROVIDER_IDS
from dexcost.pricing.rate_card import STANDARD_TIERS
from dexcost.pricing.usage import LIBRARY_USAGE_KEYS

# Price keys of the units a TokenUsage can feed, plus the per-request fee.
TOKEN_PRICE_KEYS = frozenset(
    {
        "input_mtok",
        "output_mtok",
        "cache_read_mtok",
        "cache_write_mtok",
        "cache_write_1h_mtok",
        "output_reasoning_mtok",
        "input_audio_mtok",
        "cache_audio_read_mtok",
        "output_audio_mtok",
        "requests_kcount",
    }
)


def library_usage(usage: TokenUsage) -> genai_prices.Usage:
    """Convert a TokenUsage to the library's Usage, reporting every count (zeros too)."""
    return genai_prices.Usage(
        **{library_key: getattr(usage, field) for field, library_key in LIBRARY_USAGE_KEYS}
    )


def price_context(service_tier: str | None, batch: bool) -> dict[str, str] | None:
    context = {}
    if service_tier is not None:
        context["service_tier"] = service_tier
    if batch:
        context["processing"] = "batch"
    return context or None


def library_calculation(
    provider_id: str | None,
    model: str,
    usage: TokenUsage,
    *,
    timestamp: datetime,
    service_tier: str | None = None,
    batch: bool = False,
) -> PriceCalculation | None:
    """Price a call with ``genai_prices.calc_price``; None where the library raises."""
    try:
        return genai_prices.calc_price(
            library_usage(usage),
            model,
            provider_id=provider_id,
            genai_request_timestamp=timestamp,
            price_context=price_context(service_tier, batch),
        )
    except (LookupError, ValueError):
        return None


def billable_by_tokens(model_price: ModelPrice) -> bool:
    """Return whether token usage can price this model (free models count as billable)."""
    keys = {key for key, value in vars(model_price).items() if value is not None}
    return not keys or bool(keys & TOKEN_PRICE_KEYS)


def expected_cost(
    provider_id: str | None,
    model: str,
    usage: TokenUsage,
    *,
    timestamp: datetime,
    service_tier: str | None = None,
    batch: bool = False,
) -> Decimal | None:
    """Return the cost dexcost must report: the library's, or None when unpriced."""
    calculation = library_calculation(
        provider_id, model, usage, timestamp=timestamp, service_tier=service_tier, batch=batch
    )
    if calculation is None or not billable_by_tokens(calculation.model_price):
        return None
    if service_tier is not None and not tier_has_rates(calculation, service_tier):
        # The library falls back to the standard rates for a tier it has no rates for;
        # dexcost records such a call unpriced, because the provider bills it otherwise.
        return None
    return calculation.total_price


def tier_has_rates(calculation: PriceCalculation, service_tier: str) -> bool:
    """Return whether the library has rates of their own for ``service_tier``."""
    if service_tier in STANDARD_TIERS:
        return True
    provider, model = calculation.provider, calculation.model
    if not any(model is candidate for candidate in provider.models):
        return False  # variants apply only to the provider's own models
    variants = model.price_variants or ()
    return any(variant.when.get("service_tier") == service_tier for variant in variants)


WHEN = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)

# (OpenTelemetry provider name, model): tiers, 1-hour cache writes, batch,
# service tiers, audio, dated prices, off-peak hours and provider fallback.
MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("openai", "gpt-5"),
    ("openai", "o3"),
    ("openai", "o3-mini"),
    ("openai", "gpt-5.6-luna"),
    ("openai", "gpt-4o-audio-preview"),
    ("openai", "gpt-realtime"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-opus-4-5-20251101"),
    ("anthropic", "claude-sonnet-4-6"),
    ("anthropic", "claude-3-5-haiku-latest"),
    ("gcp.gemini", "gemini-2.5-pro"),
    ("gcp.gemini", "gemini-2.5-flash"),
    ("gcp.vertex_ai", "gemini-3.6-flash"),
    ("gcp.vertex_ai", "claude-opus-4-6"),
    ("deepseek", "deepseek-chat"),
    ("deepseek", "deepseek-v4-flash"),
    ("mistral_ai", "mistral-large-4"),
    ("azure.ai.openai", "gpt-4o"),
    ("aws.bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
    ("x_ai", "grok-4.20"),
]

SERVICE_TIERS = [None, "default", "flex", "priority", "fast", "scale"]

timestamps = st.datetimes(
    min_value=datetime(2024, 1, 1),
    max_value=datetime(2028, 12, 31),
    timezones=st.sampled_from(
        [
            None,
            timezone.utc,
            timezone(timedelta(hours=-8)),
            timezone(timedelta(hours=5, minutes=30)),
        ]
    ),
)
counts = st.integers(min_value=0, max_value=400_000)


@st.composite
def consistent_usage(draw: st.DrawFn) -> TokenUsage:
    """Build usage from disjoint parts, so every sub-count fits inside its total."""
    text_uncached, text_cached, audio_uncached, audio_cached = (draw(counts) for _ in range(4))
    write_5m, write_1h = draw(counts), draw(counts)
    text_out, reasoning, audio_out = draw(counts), draw(counts), draw(counts)
    input_parts = (text_uncached, text_cached, audio_uncached, audio_cached, write_5m, write_1h)
    return TokenUsage(
        input_tokens=sum(input_parts),
        output_tokens=text_out + reasoning + audio_out,
        cache_read_tokens=text_cached + audio_cached,
        cache_write_tokens=write_5m + write_1h,
        cache_write_1h_tokens=write_1h,
        reasoning_tokens=reasoning,
        input_audio_tokens=audio_uncached + audio_cached,
        cache_audio_read_tokens=audio_cached,
        output_audio_tokens=audio_out,
    )


any_usage = st.builds(
    TokenUsage,
    input_tokens=counts,
    output_tokens=counts,
    cache_read_tokens=counts,
    cache_write_tokens=counts,
    cache_write_1h_tokens=counts,
    reasoning_tokens=counts,
    input_audio_tokens=counts,
    cache_audio_read_tokens=counts,
    output_audio_tokens=counts,
)


def library_provider(provider: str) -> str:
    return LIBRARY_PROVIDER_IDS[provider]


def test_models_under_test_exist() -> None:
    for provider, model in MODELS:
        price = price_llm(provider, model, TokenUsage(1_000, 100), timestamp=WHEN)
        assert price.matched_model is not None, (provider, model)


@settings(max_examples=400, deadline=None, database=None)
@given(
    model=st.sampled_from(MODELS),
    usage=consistent_usage(),
    service_tier=st.sampled_from(SERVICE_TIERS),
    batch=st.booleans(),
    timestamp=timestamps,
)
def test_fast_path_equals_library(
    model: tuple[str, str],
    usage: TokenUsage,
    service_tier: str | None,
    batch: bool,
    timestamp: datetime,
) -> None:
    provider, model_name = model
    price = price_llm(
        provider, model_name, usage, service_tier=service_tier, batch=batch, timestamp=timestamp
    )
    expected = expected_cost(
        library_provider(provider),
        model_name,
        usage,
        timestamp=timestamp,
        service_tier=service_tier,
        batch=batch,
    )
    assert price.cost_usd == expected


@settings(max_examples=300, deadline=None, database=None)
@given(model=st.sampled_from(MODELS), usage=any_usage, timestamp=timestamps)
def test_inconsistent_usage_unpriced_like_library(
    model: tuple[str, str], usage: TokenUsage, timestamp: datetime
) -> None:
    # Independent counts often break "sub-count <= total"; the library raises
    # ValueError for exactly the combinations that its priced units expose.
    provider, model_name = model
    price = price_llm(provider, model_name, usage, timestamp=timestamp)
    expected = expected_cost(library_provider(provider), model_name, usage, timestamp=timestamp)
    assert price.cost_usd == expected


SWEEP_PROVIDERS = [
    "openai",
    "anthropic",
    "gcp.vertex_ai",
    "aws.bedrock",
    "azure.ai.openai",
    "mistral_ai",
    "groq",
    "deepseek",
    "x_ai",
    "cohere",
]
SWEEP_USAGES = [
    TokenUsage(
        input_tokens=3_217,
        output_tokens=911,
        cache_read_tokens=1_024,
        cache_write_tokens=512,
        cache_write_1h_tokens=128,
        reasoning_tokens=300,
        input_audio_tokens=64,
        cache_audio_read_tokens=32,
    ),
    TokenUsage(input_tokens=250_123, output_tokens=4_321, cache_read_tokens=40_000),
]


def sweep_cases(library: Library) -> list[tuple[str, str]]:
    snapshot = library.get_snapshot()
    by_id = {provider.id: provider for provider in snapshot.providers}
    return [
        (otel_name, model.id)
        for otel_name in SWEEP_PROVIDERS
        for model in by_id[LIBRARY_PROVIDER_IDS[otel_name]].models
    ]


def test_every_major_model_equals_library(library: Library) -> None:
    cases = sweep_cases(library)
    assert len(cases) > 400
    mismatches: list[tuple[str, str, int, bool, Decimal | None, Decimal | None]] = []
    for provider, model in cases:
        for usage_index, usage in enumerate(SWEEP_USAGES):
            for batch in (False, True):
                price = price_llm(provider, model, usage, batch=batch, timestamp=WHEN)
                expected = expected_cost(
                    LIBRARY_PROVIDER_IDS[provider], model, usage, timestamp=WHEN, batch=batch
                )
                if price.cost_usd != expected:
                    mismatches.append(
                        (provider, model, usage_index, batch, price.cost_usd, expected)
                    )
    assert mismatches == []


@pytest.mark.parametrize("provider", SWEEP_PROVIDERS)
def test_sweep_prices_most_models(library: Library, provider: str) -> None:
    # Guards the sweep against passing only because both sides return None.
    cases = [case for case in sweep_cases(library) if case[0] == provider]
    priced = [
        model
        for _, model in cases
        if price_llm(provider, model, SWEEP_USAGES[0], timestamp=WHEN).cost_usd is not None
    ]
    assert len(priced) >= len(cases) // 2
