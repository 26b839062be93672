"""OpenAI-compatible providers reached with the openai SDK and a base_url."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest

from dexcost.demo.fake_openai import FakeOpenAI, FakeReply, FakeUsage
from dexcost.instrumentation.openai.providers import provider_for

pytestmark = pytest.mark.usefixtures("dx")

MESSAGES = [{"role": "user", "content": "Reset my password"}]


@pytest.mark.parametrize(
    ("host", "port", "provider"),
    [
        ("api.openai.com", None, "openai"),
        ("api.groq.com", None, "groq"),
        ("openrouter.ai", None, "openrouter"),
        ("eu.openrouter.ai", None, "openrouter"),
        ("API.DEEPSEEK.COM", None, "deepseek"),
        ("localhost", 11434, "ollama"),
        ("notopenrouter.ai", None, "openai"),
        (None, None, "openai"),
    ],
)
def test_provider_from_host(host: str | None, port: int | None, provider: str) -> None:
    assert provider_for(host, port) == provider


def _client(fake: FakeOpenAI, base_url: str, make_http_client) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    return openai.OpenAI(
        api_key="sk-test",
        base_url=base_url,
        http_client=make_http_client(fake, asynchronous=False),
        max_retries=0,
    )


def test_groq_priced_at_groq_rates(fake: FakeOpenAI, make_http_client, llm_events) -> None:
    fake.enqueue(
        FakeReply(
            model="llama-3.3-70b-versatile",
            usage=FakeUsage(prompt_tokens=1_000_000, completion_tokens=1_000_000),
        )
    )
    with _client(fake, "https://api.groq.com/v1", make_http_client) as client:
        client.chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES)
    (event,) = llm_events()
    assert event["provider"] == "groq"
    # Groq list prices: $0.59 input and $0.79 output per million tokens.
    assert Decimal(event["cost_usd"]) == Decimal("1.38")


def _openrouter_body(cost: object) -> dict:  # type: ignore[type-arg]
    return {
        "id": "gen-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "anthropic/claude-sonnet-4",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 1_000,
            "completion_tokens": 100,
            "total_tokens": 1_100,
            "cost": cost,
        },
    }


def test_openrouter_reported_cost_wins(fake: FakeOpenAI, make_http_client, llm_events) -> None:
    fake.enqueue(FakeReply(body=_openrouter_body(0.004512)))
    with _client(fake, "https://openrouter.ai/v1", make_http_client) as client:
        client.chat.completions.create(model="anthropic/claude-sonnet-4", messages=MESSAGES)
    (event,) = llm_events()
    assert event["cost_status"] == "provider_reported"
    assert Decimal(event["cost_usd"]) == Decimal("0.004512")


def test_openrouter_without_cost_uses_prices(
    fake: FakeOpenAI, make_http_client, llm_events
) -> None:
    fake.enqueue(FakeReply(body=_openrouter_body(None)))
    with _client(fake, "https://openrouter.ai/v1", make_http_client) as client:
        client.chat.completions.create(model="anthropic/claude-sonnet-4", messages=MESSAGES)
    (event,) = llm_events()
    assert event["cost_status"] == "priced"


def _xai_body(usage_extra: dict) -> dict:  # type: ignore[type-arg]
    return {
        "id": "chatcmpl-x1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "grok-4",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 1_000, "completion_tokens": 100, "total_tokens": 1_100}
        | usage_extra,
    }


def test_xai_reported_ticks_win(fake: FakeOpenAI, make_http_client, llm_events) -> None:
    # xAI bills 37,756,000 ticks here; 10**10 ticks are one dollar, so $0.0037756.
    fake.enqueue(FakeReply(body=_xai_body({"cost_in_usd_ticks": 37_756_000})))
    with _client(fake, "https://api.x.ai/v1", make_http_client) as client:
        client.chat.completions.create(model="grok-4", messages=MESSAGES)
    (event,) = llm_events()
    assert event["provider"] == "x_ai"
    assert event["cost_status"] == "provider_reported"
    assert Decimal(event["cost_usd"]) == Decimal("0.0037756")


@pytest.mark.parametrize("ticks", [None, -5, 1.5, "12", True])
def test_xai_invalid_ticks_use_prices(
    ticks: object, fake: FakeOpenAI, make_http_client, llm_events
) -> None:
    fake.enqueue(FakeReply(body=_xai_body({"cost_in_usd_ticks": ticks})))
    with _client(fake, "https://api.x.ai/v1", make_http_client) as client:
        client.chat.completions.create(model="grok-4", messages=MESSAGES)
    (event,) = llm_events()
    assert event["cost_status"] != "provider_reported"


def test_ollama_unpriced_with_tokens(fake: FakeOpenAI, make_http_client, llm_events) -> None:
    fake.enqueue(FakeReply(model="llama3.2"))
    with _client(fake, "http://localhost:11434/v1", make_http_client) as client:
        client.chat.completions.create(model="llama3.2", messages=MESSAGES)
    (event,) = llm_events()
    assert event["provider"] == "ollama"
    assert event["cost_status"] == "unpriced"
    assert event["input_tokens"] == 1200
