"""Mistral streams: chat and FIM, sync and async, read fully or left early.

Expected costs: mistral-large-2411 at $2 / $6 per million input / output tokens.
"""

from __future__ import annotations

import gc
from decimal import Decimal

import pytest
from mistralai.client import Mistral
from mistralai.client.errors import SDKError
from mistralai.client.utils.eventstreaming import EventStream, EventStreamAsync

from .fake_mistral import FakeMistral, MistralReply

pytestmark = pytest.mark.usefixtures("dx")

MESSAGES = [{"role": "user", "content": "Reset my password"}]
LARGE = "mistral-large-2411"
# 1,000 input tokens at $2/M + 300 output tokens at $6/M.
LARGE_COST = Decimal("0.0038")


def test_stream_read_fully_priced(client: Mistral, llm_events) -> None:
    stream = client.chat.stream(model=LARGE, messages=MESSAGES)
    assert isinstance(stream, EventStream)
    events = list(stream)
    assert events[-1].data.usage.completion_tokens == 300
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == LARGE_COST
    assert event["attributes"]["dexcost.streamed"] is True


def test_stream_passes_text_through(client: Mistral) -> None:
    stream = client.chat.stream(model=LARGE, messages=MESSAGES)
    text = "".join(e.data.choices[0].delta.content for e in stream)
    assert text == "Your password has been reset."


async def test_async_stream_read_fully_priced(client: Mistral, llm_events) -> None:
    stream = await client.chat.stream_async(model=LARGE, messages=MESSAGES)
    assert isinstance(stream, EventStreamAsync)
    async for _ in stream:
        pass
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == LARGE_COST


def test_fim_stream_priced(client: Mistral, llm_events) -> None:
    for _ in client.fim.stream(model="codestral-2501", prompt="def reset("):
        pass
    (event,) = llm_events()
    # 1,000 input tokens at $0.30/M + 300 output tokens at $0.90/M.
    assert Decimal(event["cost_usd"]) == Decimal("0.00057")


async def test_fim_stream_async_priced(client: Mistral, llm_events) -> None:
    async for _ in await client.fim.stream_async(model="codestral-2501", prompt="def reset("):
        pass
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.00057")


def test_parse_stream_recorded_once(client: Mistral, llm_events) -> None:
    from pydantic import BaseModel

    class Reply(BaseModel):
        answer: str

    list(client.chat.parse_stream(response_format=Reply, model=LARGE, messages=MESSAGES))
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == LARGE_COST


def test_stream_closed_early_unknown(client: Mistral, llm_events) -> None:
    stream = client.chat.stream(model=LARGE, messages=MESSAGES)
    next(stream)
    stream.close()
    stream.close()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"
    assert event["cost_usd"] is None


def test_break_inside_with_unknown(client: Mistral, llm_events) -> None:
    with client.chat.stream(model=LARGE, messages=MESSAGES) as stream:
        for _ in stream:
            break
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_stream_dropped_unread_unknown(client: Mistral, llm_events) -> None:
    client.chat.stream(model=LARGE, messages=MESSAGES)
    gc.collect()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


async def test_async_stream_closed_early_unknown(client: Mistral, llm_events) -> None:
    stream = await client.chat.stream_async(model=LARGE, messages=MESSAGES)
    async for _ in stream:
        break
    await stream.close()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


async def test_async_with_break_unknown(client: Mistral, llm_events) -> None:
    async with await client.chat.stream_async(model=LARGE, messages=MESSAGES) as stream:
        async for _ in stream:
            break
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_stream_without_usage_unknown(client: Mistral, fake: FakeMistral, llm_events) -> None:
    fake.enqueue(MistralReply(usage_chunk=False))
    list(client.chat.stream(model=LARGE, messages=MESSAGES))
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_stream_closed_after_read_records_once(client: Mistral, llm_events) -> None:
    stream = client.chat.stream(model=LARGE, messages=MESSAGES)
    list(stream)
    stream.close()
    gc.collect()
    (event,) = llm_events()
    assert event["cost_status"] == "priced"


def test_stream_error_reply_free(client: Mistral, fake: FakeMistral, llm_events) -> None:
    fake.enqueue(MistralReply(status=400))
    with pytest.raises(SDKError):
        client.chat.stream(model=LARGE, messages=MESSAGES)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == 0
