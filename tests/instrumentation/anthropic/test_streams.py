from __future__ import annotations

import gc
from decimal import Decimal

import anthropic
import pytest

from dexcost.demo.fake_anthropic import AnthropicUsage, FakeAnthropic, FakeAnthropicReply

# anthropic 0.x warns that this dated model retires in June 2026. The tests keep it
# because its prices are the ones the expected costs are computed from.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:The model 'claude-sonnet-4-20250514' is deprecated:DeprecationWarning"
    ),
    pytest.mark.usefixtures("dx"),
]


MESSAGES = [{"role": "user", "content": "Reset my password"}]
SONNET = "claude-sonnet-4-20250514"
CACHED = AnthropicUsage(
    input_tokens=1_000,
    cache_read_input_tokens=5_000,
    cache_creation_input_tokens=2_000,
    output_tokens=300,
)


def test_stream_fully_read_priced(client, fake: FakeAnthropic, llm_events) -> None:
    fake.enqueue(FakeAnthropicReply(usage=CACHED))
    stream = client.messages.create(model=SONNET, max_tokens=64, messages=MESSAGES, stream=True)
    assert isinstance(stream, anthropic.Stream)
    events = list(stream)
    assert events[0].type == "message_start"
    assert events[-1].type == "message_stop"
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.0165")
    assert event["attributes"]["gen_ai.usage.output_tokens"] == 300
    assert event["attributes"]["gen_ai.usage.input_tokens"] == 8_000


def test_stream_text_passes_through(client, fake) -> None:
    fake.enqueue(FakeAnthropicReply(chunks=["Hello ", "there"]))
    stream = client.messages.create(model=SONNET, max_tokens=64, messages=MESSAGES, stream=True)
    text = "".join(e.delta.text for e in stream if e.type == "content_block_delta")
    assert text == "Hello there"


async def test_async_stream_fully_read_priced(async_client, fake, llm_events) -> None:
    fake.enqueue(FakeAnthropicReply(usage=CACHED))
    stream = await async_client.messages.create(
        model=SONNET, max_tokens=64, messages=MESSAGES, stream=True
    )
    assert isinstance(stream, anthropic.AsyncStream)
    async for _ in stream:
        pass
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.0165")


def test_stream_closed_early_unknown(client, llm_events) -> None:
    stream = client.messages.create(model=SONNET, max_tokens=64, messages=MESSAGES, stream=True)
    for _ in stream:
        break
    stream.close()
    stream.close()
    gc.collect()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"
    assert event["cost_usd"] is None


def test_break_inside_with_unknown(client, llm_events) -> None:
    with client.messages.create(
        model=SONNET, max_tokens=64, messages=MESSAGES, stream=True
    ) as stream:
        for _ in stream:
            break
    gc.collect()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


async def test_async_stream_closed_early_unknown(async_client, llm_events) -> None:
    stream = await async_client.messages.create(
        model=SONNET, max_tokens=64, messages=MESSAGES, stream=True
    )
    async for _ in stream:
        break
    await stream.close()
    gc.collect()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_stream_dropped_unread_unknown(client, llm_events) -> None:
    client.messages.create(model=SONNET, max_tokens=64, messages=MESSAGES, stream=True)
    gc.collect()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_stream_closed_after_read_records_once(client, llm_events) -> None:
    stream = client.messages.create(model=SONNET, max_tokens=64, messages=MESSAGES, stream=True)
    list(stream)
    stream.close()
    gc.collect()
    (event,) = llm_events()
    assert event["cost_status"] == "priced"


def test_stream_helper_priced(client, fake, llm_events) -> None:
    fake.enqueue(FakeAnthropicReply(usage=CACHED))
    with client.messages.stream(model=SONNET, max_tokens=64, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("Thanks")
    assert final.usage.output_tokens == 300
    gc.collect()
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.0165")
    assert event["attributes"]["dexcost.streamed"] is True


def test_stream_helper_closed_early_unknown(client, llm_events) -> None:
    with client.messages.stream(model=SONNET, max_tokens=64, messages=MESSAGES) as stream:
        for _ in stream:
            break
    gc.collect()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_stream_helper_unentered_records_nothing(client, fake, llm_events) -> None:
    client.messages.stream(model=SONNET, max_tokens=64, messages=MESSAGES)
    gc.collect()
    assert fake.requests == []
    assert llm_events() == []


def test_stream_helper_bad_request_is_free(client, fake, llm_events) -> None:
    fake.enqueue(FakeAnthropicReply(status=400))
    with (
        pytest.raises(anthropic.BadRequestError),
        client.messages.stream(model=SONNET, max_tokens=64, messages=MESSAGES),
    ):
        pass
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == 0


async def test_async_stream_helper_priced(async_client, fake, llm_events) -> None:
    fake.enqueue(FakeAnthropicReply(usage=CACHED))
    async with async_client.messages.stream(
        model=SONNET, max_tokens=64, messages=MESSAGES
    ) as stream:
        final = await stream.get_final_message()
    assert final.usage.cache_read_input_tokens == 5_000
    gc.collect()
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.0165")


async def test_async_stream_helper_closed_early(async_client, llm_events) -> None:
    async with async_client.messages.stream(
        model=SONNET, max_tokens=64, messages=MESSAGES
    ) as stream:
        async for _ in stream:
            break
    gc.collect()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_raw_response_stream_priced(client, fake, llm_events) -> None:
    fake.enqueue(FakeAnthropicReply(usage=CACHED))
    raw = client.messages.with_raw_response.create(
        model=SONNET, max_tokens=64, messages=MESSAGES, stream=True
    )
    for _ in raw.parse():
        pass
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.0165")
