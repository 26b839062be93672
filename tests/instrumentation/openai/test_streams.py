from __future__ import annotations

import gc
from decimal import Decimal

import openai
import pytest

import dexcost
from dexcost.demo.fake_openai import FakeOpenAI, FakeReply, FakeUsage

pytestmark = pytest.mark.usefixtures("dx")

MESSAGES = [{"role": "user", "content": "Reset my password"}]


def test_stream_without_options_priced(client, llm_events) -> None:
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    for _ in stream:
        pass
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.00036")


def test_stream_usage_requested_for_caller(client, fake: FakeOpenAI) -> None:
    for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True):
        pass
    assert fake.requests[-1].body["stream_options"] == {"include_usage": True}


def test_added_usage_chunk_hidden(client) -> None:
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    chunks = list(stream)
    assert all(chunk.choices for chunk in chunks)
    assert chunks[0].choices[0].index == 0


def test_requested_usage_chunk_kept(client, llm_events) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == 1200
    assert Decimal(llm_events()[0]["cost_usd"]) == Decimal("0.00036")


def test_caller_options_not_mutated(client) -> None:
    options: dict[str, bool] = {}
    for _ in client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options=options
    ):
        pass
    assert options == {}


def test_usage_declined_is_usage_unknown(client, fake: FakeOpenAI, llm_events) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": False}
    )
    list(stream)
    assert fake.requests[-1].body["stream_options"] == {"include_usage": False}
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"
    assert event["cost_usd"] is None


def test_consumed_stream_priced_500_100(client, fake: FakeOpenAI, llm_events) -> None:
    fake.enqueue(FakeReply(usage=FakeUsage(prompt_tokens=500, completion_tokens=100)))
    with client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as stream:
        for _ in stream:
            pass
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.000135")


def test_break_inside_with_is_one_unknown_event(client, llm_events) -> None:
    with client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as stream:
        for _ in stream:
            break
    events = llm_events()
    assert len(events) == 1
    assert events[0]["cost_status"] == "usage_unknown"
    assert events[0]["cost_usd"] is None


def test_close_after_first_chunk_is_one_unknown_event(client, llm_events) -> None:
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    next(iter(stream))
    stream.close()
    stream.close()
    events = llm_events()
    assert len(events) == 1
    assert events[0]["cost_status"] == "usage_unknown"


def test_abandoned_stream_recorded_on_collection(client, llm_events) -> None:
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    next(stream)
    del stream
    gc.collect()
    events = llm_events()
    assert len(events) == 1
    assert events[0]["cost_status"] == "usage_unknown"


def test_unread_stream_recorded_on_collection(client, llm_events) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    gc.collect()
    assert len(llm_events()) == 1


def test_stream_returns_sdk_stream(client) -> None:
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert type(stream) is openai.Stream
    stream.close()


def test_stream_helper_priced(client, llm_events) -> None:
    with client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        for _ in stream:
            pass
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.00036")


def test_streamed_event_marked(client, llm_events) -> None:
    list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert llm_events()[0]["attributes"]["dexcost.streamed"] is True


async def test_async_stream_priced(async_client, llm_events) -> None:
    stream = await async_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.choices for chunk in chunks)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.00036")


async def test_async_break_inside_with_is_unknown(async_client, llm_events) -> None:
    async with await async_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as stream:
        async for _ in stream:
            break
    events = llm_events()
    assert len(events) == 1
    assert events[0]["cost_status"] == "usage_unknown"


async def test_async_close_early_is_unknown(async_client, llm_events) -> None:
    stream = await async_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    await stream.__anext__()
    await stream.close()
    events = llm_events()
    assert len(events) == 1
    assert events[0]["cost_status"] == "usage_unknown"


async def test_async_consumed_priced_500_100(async_client, fake: FakeOpenAI, llm_events) -> None:
    fake.enqueue(FakeReply(usage=FakeUsage(prompt_tokens=500, completion_tokens=100)))
    stream = await async_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    async for _ in stream:
        pass
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.000135")


def test_responses_stream_priced(client, llm_events) -> None:
    stream = client.responses.create(model="gpt-4o-mini", input="Reset my password", stream=True)
    types = [event.type for event in stream]
    assert types[-1] == "response.completed"
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.00036")


def test_responses_stream_closed_early_unknown(client, llm_events) -> None:
    stream = client.responses.create(model="gpt-4o-mini", input="Reset my password", stream=True)
    next(iter(stream))
    stream.close()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


async def test_async_responses_stream_priced(async_client, llm_events) -> None:
    stream = await async_client.responses.create(
        model="gpt-4o-mini", input="Reset my password", stream=True
    )
    async for _ in stream:
        pass
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.00036")


def test_stream_open_at_task_end_counted(client, stored) -> None:
    # A stream left unread is recorded when it is collected, after its task ended, so
    # the task's totals cannot include it. They count it as unpriced instead of showing an exact $0.
    with dexcost.task("abandon_break"):
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        next(stream)
    del stream
    gc.collect()
    (task,) = stored("task")
    assert task["attributes"]["dexcost.task.open_calls"] == 1
    assert task["attributes"]["dexcost.task.unpriced_count"] == 1
    assert task["attributes"]["dexcost.task.event_count"] == 0


def test_finished_stream_leaves_no_open_call(client, stored) -> None:
    with dexcost.task("read_all"):
        for _ in client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        ):
            pass
    (task,) = stored("task")
    assert task["attributes"]["dexcost.task.open_calls"] == 0
    assert task["attributes"]["dexcost.task.unpriced_count"] == 0
    assert Decimal(task["attributes"]["dexcost.task.cost_usd"]) == Decimal("0.00036")
