"""price_llm never raises: bad input and library surprises give unpriced results."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from dexcost.pricing import LLMPrice, TokenUsage, price_llm, pricer
from dexcost.semconv import UNPRICED


@pytest.mark.parametrize(
    "usage",
    [
        TokenUsage(input_tokens=-1),
        TokenUsage(input_tokens=None),  # type: ignore[arg-type]
        TokenUsage(input_tokens=1.5),  # type: ignore[arg-type]
        TokenUsage(input_tokens=Decimal("3")),  # type: ignore[arg-type]
        TokenUsage(input_tokens="100"),  # type: ignore[arg-type]
        None,
    ],
)
def test_invalid_usage_unpriced(usage: Any) -> None:
    price = price_llm("openai", "gpt-4o-mini", usage)
    assert price.status == UNPRICED
    assert price.cost_usd is None


def test_cache_read_above_input_unpriced() -> None:
    price = price_llm("openai", "gpt-4o", TokenUsage(input_tokens=10, cache_read_tokens=11))
    assert price.status == UNPRICED
    assert price.matched_model == "gpt-4o"


@pytest.mark.parametrize(
    ("provider", "model"),
    [(None, "gpt-4o-mini"), ("openai", None), ("openai", ""), ("", ""), (42, object())],
)
def test_invalid_names_unpriced(provider: Any, model: Any) -> None:
    assert price_llm(provider, model, TokenUsage(100, 20)).status == UNPRICED


def test_invalid_timestamp_unpriced() -> None:
    price = price_llm("deepseek", "deepseek-chat", TokenUsage(100, 20), timestamp="noon")  # type: ignore[arg-type]
    assert price.status == UNPRICED


def test_compile_failure_unpriced_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_compile(*args: object) -> None:
        raise RuntimeError("library data changed shape")

    monkeypatch.setattr(pricer, "_entries", {})
    monkeypatch.setattr(pricer, "compile_card", broken_compile)
    with caplog.at_level(logging.DEBUG, logger="dexcost.pricing"):
        price = price_llm("openai", "gpt-4o-mini", TokenUsage(100, 20))
    assert price.status == UNPRICED
    assert "library data changed shape" in caplog.text


def test_unknown_model_miss_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pricer, "_entries", {})
    first = price_llm("openai", "acme-unknown-9", TokenUsage(100, 20))
    assert pricer._entries[("openai", "acme-unknown-9")] is first


def test_card_cache_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pricer, "_entries", {})
    monkeypatch.setattr(pricer, "MAX_CACHED_MODELS", 3)
    for index in range(10):
        price_llm("openai", f"acme-unknown-{index}", TokenUsage(100, 20))
    assert len(pricer._entries) <= 3


def test_concurrent_first_calls_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pricer, "_entries", {})
    results: list[LLMPrice] = []
    barrier = threading.Barrier(8)

    def price_once() -> None:
        barrier.wait()
        results.append(price_llm("anthropic", "claude-sonnet-4-5", TokenUsage(250_000, 1_000)))

    threads = [threading.Thread(target=price_once) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {result.cost_usd for result in results} == {Decimal("1.5225")}


def test_priced_result_is_immutable() -> None:
    price = price_llm("openai", "gpt-4o-mini", TokenUsage(100, 20), timestamp=datetime(2026, 11, 2))
    with pytest.raises(AttributeError):
        price.cost_usd = Decimal(0)  # type: ignore[misc]
