from __future__ import annotations

import gc
from decimal import Decimal

import groq
import pytest
from tests.instrumentation.groq.fake_groq import TEXT_PIECES, FakeGroq, FakeGroqServer, GroqReply

pytestmark = pytest.mark.usefixtures("dx")

MESSAGES = [{"role": "user", "content": "Reset my password"}]
MODEL = "llama-3.3-70b-versatile"
# 1,000 x $0.59/M + 500 x $0.79/M (llama-3.3-70b-versatile on Groq).
DEFAULT_COST = Decimal("0.000985")
# The fake's stream: a role chunk, one chunk per text piece, the finishing chunk.
CHUNK_COUNT = len(TEXT_PIECES) + 2


def test_stream_priced_from_x_groq_usage(client, llm_events) -> None:
    for _ in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
        pass
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == DEFAULT_COST
    assert event["attributes"]["dexcost.streamed"] is True


def test_stream_request_sent_unchanged(client, fake: FakeGroq) -> None:
    for _ in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
        pass
    assert "stream_options" not in fake.requests[-1].body


def test_stream_chunks_all_reach_caller(client) -> None:
    chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    assert len(chunks) == CHUNK_COUNT
    assert chunks[-1].x_groq.usage.prompt_tokens == 1000
    assert all(type(chunk) is groq.types.chat.ChatCompletionChunk for chunk in chunks)


def test_stream_returns_sdk_stream(client) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    assert type(stream) is groq.Stream
    stream.close()


def test_requested_usage_chunk_priced_once(client, llm_events) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        stream=True,
        extra_body={"stream_options": {"include_usage": True}},
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 500
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == DEFAULT_COST


def test_stream_without_usage_is_unknown(client, fake: FakeGroq, llm_events) -> None:
    fake.enqueue(GroqReply(usage=None))
    list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    (event,) = llm_events()
    assert event["attributes"]["dexcost.cost_status"] == "usage_unknown"
    assert event["cost_usd"] is None


def test_stream_break_is_one_unknown_event(client, llm_events) -> None:
    with client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True) as stream:
        for _ in stream:
            break
    (event,) = llm_events()
    assert event["attributes"]["dexcost.cost_status"] == "usage_unknown"


def test_stream_close_records_at_once(client, llm_events) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    next(iter(stream))
    stream.close()
    (event,) = llm_events()
    assert event["attributes"]["dexcost.cost_status"] == "usage_unknown"
    stream.close()
    assert len(llm_events()) == 1


def test_stream_garbage_collected_unread(client, llm_events) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    del stream
    gc.collect()
    (event,) = llm_events()
    assert event["attributes"]["dexcost.cost_status"] == "usage_unknown"


def test_stream_break_then_collected_once(client, llm_events) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    for _ in stream:
        break
    del stream
    gc.collect()
    assert len(llm_events()) == 1


def test_stream_error_event_is_unknown(client, fake: FakeGroq, llm_events) -> None:
    fake.enqueue(GroqReply(stream_error=True))
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    with pytest.raises(groq.APIError, match="Service unavailable"):
        list(stream)
    (event,) = llm_events()
    assert event["attributes"]["dexcost.cost_status"] == "usage_unknown"
    assert event["attributes"]["error.type"] == "APIError"


async def test_async_stream_priced(async_client, llm_events) -> None:
    stream = await async_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert len(chunks) == CHUNK_COUNT
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == DEFAULT_COST


async def test_async_stream_close_is_unknown(async_client, llm_events) -> None:
    stream = await async_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    await stream.__anext__()
    await stream.close()
    (event,) = llm_events()
    assert event["attributes"]["dexcost.cost_status"] == "usage_unknown"


async def test_async_stream_break_is_unknown(async_client, llm_events) -> None:
    async with await async_client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True
    ) as stream:
        async for _ in stream:
            break
    (event,) = llm_events()
    assert event["attributes"]["dexcost.cost_status"] == "usage_unknown"


def test_loopback_server_stream_priced(llm_events) -> None:
    with (
        FakeGroqServer() as server,
        groq.Groq(api_key="gsk-test", base_url=server.base_url, max_retries=0) as client,
    ):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
        list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    events = llm_events()
    assert [Decimal(event["cost_usd"]) for event in events] == [DEFAULT_COST] * 2
    assert events[1]["attributes"]["server.address"] == "127.0.0.1"
