from __future__ import annotations

import asyncio
import gc
from decimal import Decimal

import httpx
import ollama
import pytest
from tests.instrumentation.ollama.conftest import HOST
from tests.instrumentation.ollama.fake_ollama import TEXT_PIECES, FakeOllama, OllamaReply

import dexcost

pytestmark = pytest.mark.usefixtures("dx")

MESSAGES = [{"role": "user", "content": "Reset my password"}]
MODEL = "llama3.2"
# 100 x $1.00/M + 1,200 x $2.00/M with the price registered below.
REGISTERED_COST = Decimal("0.0025")
# The fake's stream: one part per text piece, then the done part.
PART_COUNT = len(TEXT_PIECES) + 1


@pytest.fixture(autouse=True)
def _registered_price() -> None:
    dexcost.register_model_price(
        MODEL, provider="ollama", input_per_mtok="1.00", output_per_mtok="2.00"
    )


def test_chat_stream_priced_from_done_part(client, llm_events) -> None:
    parts = list(client.chat(model=MODEL, messages=MESSAGES, stream=True))
    assert parts[-1].done is True
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == REGISTERED_COST
    assert event["attributes"]["dexcost.streamed"] is True


def test_stream_parts_all_reach_caller(client) -> None:
    parts = list(client.chat(model=MODEL, messages=MESSAGES, stream=True))
    assert len(parts) == PART_COUNT
    assert all(type(part) is ollama.ChatResponse for part in parts)
    assert "".join(part.message.content for part in parts) == "".join(TEXT_PIECES)


def test_generate_stream_priced(client, llm_events) -> None:
    parts = list(client.generate(model=MODEL, prompt="Reset my password", stream=True))
    assert type(parts[0]) is ollama.GenerateResponse
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == REGISTERED_COST


def test_stream_recorded_at_done_part(client, llm_events) -> None:
    stream = client.chat(model=MODEL, messages=MESSAGES, stream=True)
    parts = [next(stream) for _ in range(PART_COUNT)]
    assert parts[-1].done is True
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == REGISTERED_COST
    stream.close()
    assert len(llm_events()) == 1


def test_stream_break_is_one_unknown_event(client, llm_events) -> None:
    for _ in client.chat(model=MODEL, messages=MESSAGES, stream=True):
        break
    gc.collect()
    (event,) = llm_events()
    assert event["attributes"]["dexcost.cost_status"] == "usage_unknown"
    assert event["cost_usd"] is None


def test_stream_close_records_at_once(client, llm_events) -> None:
    stream = client.chat(model=MODEL, messages=MESSAGES, stream=True)
    next(stream)
    stream.close()
    (event,) = llm_events()
    assert event["attributes"]["dexcost.cost_status"] == "usage_unknown"
    del stream
    gc.collect()
    assert len(llm_events()) == 1


def test_stream_collected_midway_is_unknown(client, llm_events) -> None:
    stream = client.chat(model=MODEL, messages=MESSAGES, stream=True)
    next(stream)
    del stream
    gc.collect()
    (event,) = llm_events()
    assert event["attributes"]["dexcost.cost_status"] == "usage_unknown"


def test_stream_never_iterated_sends_nothing(client, fake: FakeOllama, llm_events) -> None:
    stream = client.chat(model=MODEL, messages=MESSAGES, stream=True)
    del stream
    gc.collect()
    assert fake.requests == []
    assert llm_events() == []


def test_stream_rejected_costs_nothing(client, fake: FakeOllama, llm_events) -> None:
    fake.enqueue(OllamaReply(status=404))
    stream = client.chat(model="llama9", messages=MESSAGES, stream=True)
    with pytest.raises(ollama.ResponseError) as raised:
        next(stream)
    assert raised.value.status_code == 404
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == 0
    assert event["attributes"]["error.type"] == "ResponseError"


def test_stream_error_line_is_unknown(client, fake: FakeOllama, llm_events) -> None:
    fake.enqueue(OllamaReply(stream_error=True))
    stream = client.chat(model=MODEL, messages=MESSAGES, stream=True)
    with pytest.raises(ollama.ResponseError, match="error was encountered"):
        list(stream)
    (event,) = llm_events()
    assert event["attributes"]["dexcost.cost_status"] == "usage_unknown"
    assert event["attributes"]["error.type"] == "ResponseError"


def test_stream_connection_error_is_unknown(llm_events) -> None:
    def reject_connection(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = ollama.Client(host=HOST, transport=httpx.MockTransport(reject_connection))
    # A stream connects on its first item, outside the SDK's ConnectionError translation.
    with pytest.raises(httpx.ConnectError):
        list(client.chat(model=MODEL, messages=MESSAGES, stream=True))
    (event,) = llm_events()
    assert event["attributes"]["dexcost.cost_status"] == "usage_unknown"
    assert event["attributes"]["error.type"] == "ConnectError"


async def test_async_stream_priced(async_client, llm_events) -> None:
    stream = await async_client.chat(model=MODEL, messages=MESSAGES, stream=True)
    parts = [part async for part in stream]
    assert len(parts) == PART_COUNT
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == REGISTERED_COST


async def test_async_generate_stream_priced(async_client, llm_events) -> None:
    stream = await async_client.generate(model=MODEL, prompt="Reset my password", stream=True)
    parts = [part async for part in stream]
    assert type(parts[-1]) is ollama.GenerateResponse
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == REGISTERED_COST


async def test_async_stream_aclose_is_unknown(async_client, llm_events) -> None:
    stream = await async_client.chat(model=MODEL, messages=MESSAGES, stream=True)
    await stream.__anext__()
    await stream.aclose()
    (event,) = llm_events()
    assert event["attributes"]["dexcost.cost_status"] == "usage_unknown"


async def test_async_stream_break_is_unknown(async_client, llm_events) -> None:
    stream = await async_client.chat(model=MODEL, messages=MESSAGES, stream=True)
    async for _ in stream:
        break
    await stream.aclose()
    (event,) = llm_events()
    assert event["attributes"]["dexcost.cost_status"] == "usage_unknown"


async def test_async_stream_rejected_costs_nothing(
    async_client, fake: FakeOllama, llm_events
) -> None:
    fake.enqueue(OllamaReply(status=404))
    stream = await async_client.chat(model="llama9", messages=MESSAGES, stream=True)
    with pytest.raises(ollama.ResponseError):
        await stream.__anext__()
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == 0


async def test_async_stream_collected_midway(async_client, llm_events) -> None:
    stream = await async_client.chat(model=MODEL, messages=MESSAGES, stream=True)
    await stream.__anext__()
    del stream
    gc.collect()
    # asyncio closes a collected async generator in a task on the running loop.
    for _ in range(3):
        await asyncio.sleep(0)
    (event,) = llm_events()
    assert event["attributes"]["dexcost.cost_status"] == "usage_unknown"
