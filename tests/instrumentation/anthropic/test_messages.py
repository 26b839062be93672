from __future__ import annotations

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


@pytest.mark.parametrize(
    ("model", "usage", "cost"),
    [
        (
            "claude-sonnet-4-20250514",
            AnthropicUsage(
                input_tokens=1_000,
                cache_read_input_tokens=5_000,
                cache_creation_input_tokens=2_000,
                output_tokens=300,
            ),
            Decimal("0.0165"),
        ),
        (
            "claude-sonnet-4",
            AnthropicUsage(
                input_tokens=200,
                cache_read_input_tokens=5_000,
                cache_creation_input_tokens=1_000,
                output_tokens=300,
            ),
            Decimal("0.01035"),
        ),
        pytest.param(
            "claude-opus-4-5-20251101",
            AnthropicUsage(
                input_tokens=10,
                cache_creation_input_tokens=32_435,
                cache_read_input_tokens=66_360,
                output_tokens=5_120,
            ),
            Decimal("0.36394875"),
            # anthropic 2.x warns that this snapshot is deprecated.
            marks=pytest.mark.filterwarnings("ignore:The model:DeprecationWarning"),
        ),
        # 1,000 1-hour cache writes at $6/M, 1,000 5-minute ones at $3.75/M, 100 input at $3/M.
        (
            "claude-sonnet-4-20250514",
            AnthropicUsage(
                input_tokens=100,
                cache_creation_input_tokens=2_000,
                cache_creation_1h_input_tokens=1_000,
                output_tokens=0,
            ),
            Decimal("0.01005"),
        ),
    ],
)
def test_create_priced_exactly(client, fake: FakeAnthropic, llm_events, model, usage, cost) -> None:
    fake.enqueue(FakeAnthropicReply(usage=usage))
    client.messages.create(model=model, max_tokens=64, messages=MESSAGES)
    (event,) = llm_events()
    assert event["cost_status"] == "priced"
    assert Decimal(event["cost_usd"]) == cost


def test_1h_cache_write_rate(client, fake, llm_events) -> None:
    # One million 1-hour cache writes on sonnet-4 cost $6.
    usage = AnthropicUsage(
        input_tokens=0,
        cache_creation_input_tokens=1_000_000,
        cache_creation_1h_input_tokens=1_000_000,
        output_tokens=0,
    )
    fake.enqueue(FakeAnthropicReply(usage=usage))
    client.messages.create(model="claude-sonnet-4-20250514", max_tokens=64, messages=MESSAGES)
    assert Decimal(llm_events()[0]["cost_usd"]) == Decimal(6)


def test_input_normalised_inclusive(client, fake, llm_events) -> None:
    usage = AnthropicUsage(
        input_tokens=200,
        cache_read_input_tokens=5_000,
        cache_creation_input_tokens=1_000,
        output_tokens=300,
    )
    fake.enqueue(FakeAnthropicReply(usage=usage))
    client.messages.create(model="claude-sonnet-4", max_tokens=64, messages=MESSAGES)
    (event,) = llm_events()
    attributes = event["attributes"]
    assert attributes["gen_ai.provider.name"] == "anthropic"
    assert attributes["gen_ai.request.model"] == "claude-sonnet-4"
    assert attributes["gen_ai.response.model"] == "claude-sonnet-4-20250514"
    assert attributes["gen_ai.usage.input_tokens"] == 6_200
    assert attributes["gen_ai.usage.output_tokens"] == 300
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 5_000
    assert attributes["gen_ai.usage.cache_creation.input_tokens"] == 1_000


def test_caller_gets_sdk_message(client) -> None:
    message = client.messages.create(model="claude-sonnet-4", max_tokens=64, messages=MESSAGES)
    assert isinstance(message, anthropic.types.Message)
    assert message.content[0].text.startswith("Thanks")


async def test_async_create_priced(async_client, llm_events) -> None:
    message = await async_client.messages.create(
        model="claude-sonnet-4-20250514", max_tokens=64, messages=MESSAGES
    )
    assert message.usage.input_tokens == 1000
    (event,) = llm_events()
    # 1,000 input at $3/M + 300 output at $15/M.
    assert Decimal(event["cost_usd"]) == Decimal("0.0075")


def test_bad_request_reraised_and_free(client, fake, llm_events) -> None:
    fake.enqueue(FakeAnthropicReply(status=400))
    with pytest.raises(anthropic.BadRequestError) as raised:
        client.messages.create(model="claude-sonnet-4", max_tokens=64, messages=MESSAGES)
    assert raised.value.body["error"]["type"] == "invalid_request_error"
    (event,) = llm_events()
    assert event["cost_status"] == "priced"
    assert Decimal(event["cost_usd"]) == 0
    assert event["attributes"]["error.type"] == "BadRequestError"


async def test_async_bad_request_reraised_and_free(async_client, fake, llm_events) -> None:
    fake.enqueue(FakeAnthropicReply(status=400))
    with pytest.raises(anthropic.BadRequestError):
        await async_client.messages.create(
            model="claude-sonnet-4", max_tokens=64, messages=MESSAGES
        )
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == 0


def test_count_tokens_records_nothing(client, fake, llm_events) -> None:
    counted = client.messages.count_tokens(model="claude-sonnet-4", messages=MESSAGES)
    assert counted.input_tokens > 0
    assert fake.requests[-1].path == "/v1/messages/count_tokens"
    assert llm_events() == []


async def test_async_count_tokens_records_nothing(async_client, llm_events) -> None:
    await async_client.messages.count_tokens(model="claude-sonnet-4", messages=MESSAGES)
    assert llm_events() == []


def test_with_raw_response_priced(client, llm_events) -> None:
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-20250514", max_tokens=64, messages=MESSAGES
    )
    assert raw.parse().usage.output_tokens == 300
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.0075")


async def test_async_with_raw_response_priced(async_client, llm_events) -> None:
    raw = await async_client.messages.with_raw_response.create(
        model="claude-sonnet-4-20250514", max_tokens=64, messages=MESSAGES
    )
    parsed = raw.parse()
    if not isinstance(parsed, anthropic.types.Message):
        parsed = await parsed
    assert parsed.usage.output_tokens == 300
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.0075")


def test_raw_count_tokens_records_nothing(client, llm_events) -> None:
    client.messages.with_raw_response.count_tokens(model="claude-sonnet-4", messages=MESSAGES)
    assert llm_events() == []


def test_no_event_without_init(client, llm_events) -> None:
    import dexcost

    dexcost.shutdown()
    client.messages.create(model="claude-sonnet-4", max_tokens=64, messages=MESSAGES)
    assert llm_events() == []


@pytest.mark.skipif(
    not hasattr(anthropic.resources.messages.Messages, "parse"),
    reason="messages.parse() arrived in a later anthropic release",
)
def test_parse_priced_once(client, fake, llm_events) -> None:
    from pydantic import BaseModel

    class Answer(BaseModel):
        answer: str

    fake.enqueue(FakeAnthropicReply(chunks=['{"answer": "done"}']))
    parsed = client.messages.parse(
        model="claude-sonnet-4-20250514", max_tokens=64, messages=MESSAGES, output_format=Answer
    )
    assert parsed.parsed_output == Answer(answer="done")
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.0075")
