"""Reading litellm usage into dexcost's inclusive TokenUsage, on plain data."""

from __future__ import annotations

import pytest

from dexcost.instrumentation.litellm.extract import (
    merge_stream_usage,
    provider_name,
    strip_provider,
    usage_from_litellm,
)
from dexcost.pricing import TokenUsage

ANTHROPIC_USAGE = {
    "prompt_tokens": 6_200,
    "completion_tokens": 300,
    "prompt_tokens_details": {
        "cached_tokens": 5_000,
        "cache_creation_tokens": 1_000,
        "cache_creation_token_details": {"ephemeral_1h_input_tokens": 400},
    },
    "cache_creation_input_tokens": 1_000,
    "cache_read_input_tokens": 5_000,
}


def test_usage_anthropic_cache_counts_read() -> None:
    usage = usage_from_litellm(ANTHROPIC_USAGE)

    assert usage == TokenUsage(
        input_tokens=6_200,
        output_tokens=300,
        cache_read_tokens=5_000,
        cache_write_tokens=1_000,
        cache_write_1h_tokens=400,
    )


def test_usage_reasoning_and_audio_read() -> None:
    usage = usage_from_litellm(
        {
            "prompt_tokens": 50,
            "completion_tokens": 90,
            "prompt_tokens_details": {"audio_tokens": 10},
            "completion_tokens_details": {"reasoning_tokens": 60, "audio_tokens": 5},
        }
    )

    assert usage == TokenUsage(
        input_tokens=50,
        output_tokens=90,
        reasoning_tokens=60,
        input_audio_tokens=10,
        output_audio_tokens=5,
    )


def test_usage_embedding_has_input_only() -> None:
    assert usage_from_litellm({"prompt_tokens": 12, "total_tokens": 12}) == TokenUsage(
        input_tokens=12
    )


@pytest.mark.parametrize(
    "usage",
    [
        None,
        {"completion_tokens": 5},
        {"prompt_tokens": -1},
        {"prompt_tokens": 2.5},
        {"prompt_tokens": True},
        # Fewer prompt tokens than cache tokens: the cache counts were left out.
        {"prompt_tokens": 200, "cache_read_input_tokens": 5_000},
    ],
)
def test_usage_missing_or_invalid_is_none(usage) -> None:
    assert usage_from_litellm(usage) is None


def test_merge_keeps_largest_of_each_count() -> None:
    first = TokenUsage(input_tokens=6_200, output_tokens=1, cache_read_tokens=5_000)
    last = TokenUsage(input_tokens=0, output_tokens=300)

    assert merge_stream_usage([first, last]) == TokenUsage(
        input_tokens=6_200, output_tokens=300, cache_read_tokens=5_000
    )


def test_merge_nothing_is_none() -> None:
    assert merge_stream_usage([]) is None


@pytest.mark.parametrize(
    ("litellm_name", "otel_name"),
    [
        ("openai", "openai"),
        ("azure", "azure.ai.openai"),
        ("anthropic", "anthropic"),
        ("gemini", "gcp.gemini"),
        ("vertex_ai", "gcp.vertex_ai"),
        ("bedrock", "aws.bedrock"),
        ("cohere_chat", "cohere"),
        ("mistral", "mistral_ai"),
        ("groq", "groq"),
        ("xai", "x_ai"),
        ("ollama_chat", "ollama"),
        ("hosted_vllm", "hosted_vllm"),
    ],
)
def test_provider_name_maps_to_otel(litellm_name, otel_name) -> None:
    assert provider_name(litellm_name) == otel_name


def test_strip_provider_removes_own_prefix() -> None:
    assert strip_provider("anthropic/claude-sonnet-4", "anthropic") == "claude-sonnet-4"


def test_strip_provider_keeps_other_prefix() -> None:
    assert strip_provider("meta-llama/Llama-3-8b", "together_ai") == "meta-llama/Llama-3-8b"
