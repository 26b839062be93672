from __future__ import annotations

import asyncio
import gc
from decimal import Decimal

import pytest
from google.genai import errors

from dexcost.demo.fake_gemini import FakeGemini, FakeGeminiReply, GeminiUsage

pytestmark = pytest.mark.usefixtures("dx")

FLASH = "gemini-2.5-flash"
# 1,000 prompt tokens (400 cached), 300 answer and 200 thinking tokens on flash.
CACHED = GeminiUsage(1_000, 300, cached_tokens=400, thoughts_tokens=200)
CACHED_COST = Decimal("0.001442")


def test_stream_fully_read_priced_from_final_chunk(client, fake: FakeGemini, llm_events) -> None:
    fake.enqueue(FakeGeminiReply(usage=CACHED, chunks=["Hello ", "there"]))
    chunks = list(client.models.generate_content_stream(model=FLASH, contents="hi"))
    assert "".join(chunk.text for chunk in chunks) == "Hello there"
    # Only the final chunk has the output counts.
    assert chunks[0].usage_metadata.candidates_token_count is None
    (event,) = llm_events()
    assert event["cost_status"] == "priced"
    assert Decimal(event["cost_usd"]) == CACHED_COST
    assert (event["input_tokens"], event["output_tokens"]) == (1_000, 500)
    assert event["attributes"]["dexcost.streamed"] is True
    assert event["attributes"]["gen_ai.response.model"] == FLASH


async def test_async_stream_fully_read_priced(client, fake, llm_events) -> None:
    fake.enqueue(FakeGeminiReply(usage=CACHED))
    stream = await client.aio.models.generate_content_stream(model=FLASH, contents="hi")
    texts = [chunk.text async for chunk in stream]
    assert len(texts) == 3
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == CACHED_COST


def test_stream_abandoned_early_one_unknown_event(client, llm_events) -> None:
    stream = client.models.generate_content_stream(model=FLASH, contents="hi")
    for _ in stream:
        break
    stream.close()
    del stream
    gc.collect()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"
    assert event["cost_usd"] is None


def test_stream_dropped_after_first_chunk_unknown(client, llm_events) -> None:
    stream = client.models.generate_content_stream(model=FLASH, contents="hi")
    next(stream)
    del stream
    gc.collect()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


async def test_async_stream_abandoned_early_one_unknown_event(client, llm_events) -> None:
    stream = await client.aio.models.generate_content_stream(model=FLASH, contents="hi")
    async for _ in stream:
        break
    await stream.aclose()
    del stream
    # The SDK nests async generators; the event loop closes the inner ones it dropped.
    for _ in range(3):
        gc.collect()
        await asyncio.sleep(0)
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_stream_never_started_sends_nothing_records_nothing(client, fake, llm_events) -> None:
    stream = client.models.generate_content_stream(model=FLASH, contents="hi")
    del stream
    gc.collect()
    assert fake.requests == []
    assert llm_events() == []


def test_stream_api_error_reraised_with_one_free_event(client, fake, llm_events) -> None:
    fake.enqueue(FakeGeminiReply(status=400))
    with pytest.raises(errors.ClientError) as raised:
        list(client.models.generate_content_stream(model=FLASH, contents="hi"))
    assert raised.value.code == 400
    gc.collect()
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == 0
    assert event["attributes"]["error.type"] == "ClientError"


async def test_async_stream_api_error_one_free_event(client, fake, llm_events) -> None:
    fake.enqueue(FakeGeminiReply(status=400))
    # The SDK sends the request when the stream is first read.
    stream = await client.aio.models.generate_content_stream(model=FLASH, contents="hi")
    with pytest.raises(errors.ClientError):
        async for _ in stream:
            pass
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == 0
