"""Cohere chat streams: v2 server-sent events and v1 JSON lines, sync and async.

Expected costs: command-a-03-2025 at $2.50 / $10.00 per million billed input / output
tokens; command-r-08-2024 at $0.15 / $0.60.
"""

from __future__ import annotations

import asyncio
import gc
import types
from decimal import Decimal

import pytest
from cohere.core.api_error import ApiError

from .fake_cohere import CohereReply, FakeCohere

pytestmark = pytest.mark.usefixtures("dx")

MESSAGES = [{"role": "user", "content": "Reset my password"}]
COMMAND_A = "command-a-03-2025"
# 1,000 billed input tokens at $2.50/M + 300 billed output tokens at $10/M.
COMMAND_A_COST = Decimal("0.0055")
# 1,000 billed input tokens at $0.15/M + 300 billed output tokens at $0.60/M.
COMMAND_R_COST = Decimal("0.00033")


def test_v2_stream_read_fully_priced(client_v2, llm_events) -> None:
    events = list(client_v2.chat_stream(model=COMMAND_A, messages=MESSAGES))
    assert events[-1].type == "message-end"
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == COMMAND_A_COST
    assert event["attributes"]["dexcost.streamed"] is True


def test_v2_stream_passes_text_through(client_v2) -> None:
    stream = client_v2.chat_stream(model=COMMAND_A, messages=MESSAGES)
    text = "".join(e.delta.message.content.text for e in stream if e.type == "content-delta")
    assert text == "Your password has been reset."


def test_v2_stream_returns_sdk_generator(client_v2, fake: FakeCohere, llm_events) -> None:
    stream = client_v2.chat_stream(model=COMMAND_A, messages=MESSAGES)
    assert isinstance(stream, types.GeneratorType)
    stream.close()
    assert fake.requests == []
    assert llm_events() == []


async def test_async_v2_stream_priced(async_client_v2, llm_events) -> None:
    async for _ in async_client_v2.chat_stream(model=COMMAND_A, messages=MESSAGES):
        pass
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == COMMAND_A_COST


def test_v1_stream_priced_from_stream_end(client_v1, llm_events) -> None:
    events = list(client_v1.chat_stream(model="command-r-08-2024", message="Reset"))
    assert events[-1].event_type == "stream-end"
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == COMMAND_R_COST


async def test_async_v1_stream_priced(async_client_v1, llm_events) -> None:
    async for _ in async_client_v1.chat_stream(model="command-r-08-2024", message="Reset"):
        pass
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == COMMAND_R_COST


def test_v2_stream_break_then_close_unknown(client_v2, llm_events) -> None:
    stream = client_v2.chat_stream(model=COMMAND_A, messages=MESSAGES)
    for _ in stream:
        break
    stream.close()
    stream.close()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"
    assert event["cost_usd"] is None


def test_v2_stream_dropped_midway_unknown(client_v2, llm_events) -> None:
    stream = client_v2.chat_stream(model=COMMAND_A, messages=MESSAGES)
    next(stream)
    del stream
    gc.collect()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_v1_stream_break_unknown(client_v1, llm_events) -> None:
    for _ in client_v1.chat_stream(model="command-r-08-2024", message="Reset"):
        break
    gc.collect()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


async def test_async_v2_stream_closed_early_unknown(async_client_v2, llm_events) -> None:
    stream = async_client_v2.chat_stream(model=COMMAND_A, messages=MESSAGES)
    async for _ in stream:
        break
    await stream.aclose()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


async def test_async_v2_stream_dropped_unknown(async_client_v2, llm_events) -> None:
    stream = async_client_v2.chat_stream(model=COMMAND_A, messages=MESSAGES)
    await stream.__anext__()
    del stream
    gc.collect()
    # The event loop closes a collected async generator in a task of its own.
    await asyncio.sleep(0.05)
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_stream_cut_before_end_unknown(client_v2, fake: FakeCohere, llm_events) -> None:
    fake.enqueue(CohereReply(end_event=False))
    list(client_v2.chat_stream(model=COMMAND_A, messages=MESSAGES))
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_stream_error_reply_free(client_v2, fake: FakeCohere, llm_events) -> None:
    fake.enqueue(CohereReply(status=400))
    with pytest.raises(ApiError):
        list(client_v2.chat_stream(model=COMMAND_A, messages=MESSAGES))
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == 0
    assert event["attributes"]["error.type"] == "BadRequestError"


def test_raw_stream_read_priced(client_v2, llm_events) -> None:
    with client_v2.with_raw_response.chat_stream(model=COMMAND_A, messages=MESSAGES) as response:
        assert response.status_code == 200
        items = list(response.data)
    assert items[-1].type == "message-end"
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == COMMAND_A_COST


def test_raw_stream_left_unread_unknown(client_v2, llm_events) -> None:
    with client_v2.with_raw_response.chat_stream(model=COMMAND_A, messages=MESSAGES):
        pass
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_raw_stream_unentered_records_nothing(client_v2, fake, llm_events) -> None:
    client_v2.with_raw_response.chat_stream(model=COMMAND_A, messages=MESSAGES)
    gc.collect()
    assert fake.requests == []
    assert llm_events() == []


async def test_async_raw_stream_read_priced(async_client_v2, llm_events) -> None:
    raw = async_client_v2.with_raw_response
    async with raw.chat_stream(model=COMMAND_A, messages=MESSAGES) as response:
        async for _ in response.data:
            pass
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == COMMAND_A_COST


def test_exception_inside_raw_stream_unchanged(client_v2, llm_events) -> None:
    with (
        pytest.raises(KeyError, match="caller"),
        client_v2.with_raw_response.chat_stream(model=COMMAND_A, messages=MESSAGES) as response,
    ):
        next(iter(response.data))
        raise KeyError("caller")
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_stream_closed_after_read_records_once(client_v2, llm_events) -> None:
    stream = client_v2.chat_stream(model=COMMAND_A, messages=MESSAGES)
    list(stream)
    stream.close()
    gc.collect()
    (event,) = llm_events()
    assert event["cost_status"] == "priced"
