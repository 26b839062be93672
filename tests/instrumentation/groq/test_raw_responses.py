from __future__ import annotations

from decimal import Decimal

import groq
import pytest
from tests.instrumentation.groq.fake_groq import FakeGroq, GroqReply, GroqUsage

pytestmark = pytest.mark.usefixtures("dx")

MESSAGES = [{"role": "user", "content": "Reset my password"}]
MODEL = "llama-3.3-70b-versatile"
SMALL = GroqReply(usage=GroqUsage(prompt_tokens=100, completion_tokens=20))
# 100 x $0.59/M + 20 x $0.79/M = $0.000059 + $0.0000158 (llama-3.3-70b-versatile on Groq).
SMALL_COST = Decimal("0.0000748")
# 1,000 x $0.59/M + 500 x $0.79/M.
DEFAULT_COST = Decimal("0.000985")


def test_raw_response_parsed_once_and_priced(client, fake: FakeGroq, llm_events) -> None:
    fake.enqueue(SMALL)
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    assert raw.headers["content-type"] == "application/json"
    completion = raw.parse()
    assert raw.parse() is completion
    assert completion.usage.prompt_tokens == 100
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == SMALL_COST


def test_raw_response_type_is_sdk_own(client) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    assert type(raw) is groq.APIResponse


async def test_async_raw_response_priced(async_client, fake: FakeGroq, llm_events) -> None:
    fake.enqueue(SMALL)
    raw = await async_client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES
    )
    completion = await raw.parse()
    assert completion.usage.completion_tokens == 20
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == SMALL_COST


def test_raw_stream_priced_when_read(client, llm_events) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, stream=True
    )
    list(raw.parse())
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == DEFAULT_COST


def test_streaming_response_priced(client, fake: FakeGroq, llm_events) -> None:
    fake.enqueue(SMALL)
    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=MESSAGES
    ) as response:
        completion = response.parse()
    assert completion.usage.total_tokens == 120
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == SMALL_COST


def test_streaming_response_stream_priced(client, llm_events) -> None:
    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=MESSAGES, stream=True
    ) as response:
        chunks = list(response.parse())
    assert chunks[-1].x_groq.usage.total_tokens == 1500
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == DEFAULT_COST


async def test_async_streaming_response_priced(async_client, llm_events) -> None:
    async with async_client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=MESSAGES, stream=True
    ) as response:
        stream = await response.parse()
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].x_groq.usage.completion_tokens == 500
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == DEFAULT_COST


def test_raw_error_costs_nothing(client, fake: FakeGroq, llm_events) -> None:
    fake.enqueue(GroqReply(status=404))
    with pytest.raises(groq.NotFoundError):
        client.chat.completions.with_raw_response.create(model="llama-9", messages=MESSAGES)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == 0
