"""ConverseStream and InvokeModelWithResponseStream over the AWS event-stream framing.

Rates per million tokens are AWS Bedrock on-demand list prices. Claude Sonnet 4: $3
input, $15 output, $0.30 cache read, $3.75 cache write (5 minutes). The Claude Sonnet
4.5 global profile adds $6 for 1-hour cache writes. Nova Lite: $0.06 input, $0.24
output. Llama 3.3 70B: $0.72 input, $0.72 output.
"""

from __future__ import annotations

import gc
import json
from decimal import Decimal

import botocore.exceptions
import pytest
from botocore.eventstream import EventStream

from .fake_bedrock import BedrockReply, BedrockUsage

pytestmark = pytest.mark.usefixtures("dx")

MESSAGES = [{"role": "user", "content": [{"text": "Reset my password"}]}]
SONNET_4 = "anthropic.claude-sonnet-4-20250514-v1:0"
ANTHROPIC_BODY = json.dumps(
    {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Reset my password"}],
    }
)
CACHED = BedrockUsage(input=1_000, output=300, cache_read=5_000, cache_write=2_000)
# 1,000 x $3 + 2,000 x $3.75 + 5,000 x $0.30 + 300 x $15, per million tokens.
CACHED_SONNET_4_COST = Decimal("0.0165")


def _chunks(stream: EventStream) -> list[dict]:
    return [json.loads(event["chunk"]["bytes"]) for event in stream]


def test_converse_stream_fully_read_priced(client, fake, llm_events) -> None:
    fake.enqueue(BedrockReply(usage=CACHED))
    response = client.converse_stream(modelId="us." + SONNET_4, messages=MESSAGES)
    list(response["stream"])
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == CACHED_SONNET_4_COST
    assert event["attributes"]["gen_ai.usage.input_tokens"] == 8_000
    assert event["attributes"]["dexcost.streamed"] is True


def test_converse_stream_events_pass_through(client) -> None:
    response = client.converse_stream(modelId=SONNET_4, messages=MESSAGES)
    stream = response["stream"]
    assert type(stream) is EventStream
    events = list(stream)
    assert events[0] == {"messageStart": {"role": "assistant"}}
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events[1:3])
    assert text == "Hello there"
    assert events[-1]["metadata"]["usage"]["inputTokens"] == 1_000


def test_converse_stream_nova_priced(client, llm_events) -> None:
    response = client.converse_stream(modelId="us.amazon.nova-lite-v1:0", messages=MESSAGES)
    list(response["stream"])
    (event,) = llm_events()
    # 1,000 x $0.06 + 300 x $0.24 per million.
    assert Decimal(event["cost_usd"]) == Decimal("0.000132")


# botocore itself leaves the socket of an abandoned stream for the garbage collector.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_converse_stream_break_then_drop_unknown(client, llm_events) -> None:
    response = client.converse_stream(modelId=SONNET_4, messages=MESSAGES)
    for _ in response["stream"]:
        break
    del response
    gc.collect()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"
    assert event["cost_usd"] is None


def test_converse_stream_closed_early_unknown(client, llm_events) -> None:
    response = client.converse_stream(modelId=SONNET_4, messages=MESSAGES)
    stream = response["stream"]
    next(iter(stream))
    stream.close()
    stream.close()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_converse_stream_close_after_end_priced(client, llm_events) -> None:
    response = client.converse_stream(modelId=SONNET_4, messages=MESSAGES)
    list(response["stream"])
    response["stream"].close()
    del response
    gc.collect()
    (event,) = llm_events()
    assert event["cost_status"] == "priced"


def test_converse_stream_resumed_after_break_priced(client, llm_events) -> None:
    """An EventStream keeps its position, so reading on after a break still prices it."""
    stream = client.converse_stream(modelId=SONNET_4, messages=MESSAGES)["stream"]
    for _ in stream:
        break
    list(stream)
    (event,) = llm_events()
    # 1,000 x $3 + 300 x $15 per million.
    assert Decimal(event["cost_usd"]) == Decimal("0.0075")


# botocore itself leaves the socket of an abandoned stream for the garbage collector.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_converse_stream_dropped_unread_unknown(client, llm_events) -> None:
    client.converse_stream(modelId=SONNET_4, messages=MESSAGES)
    gc.collect()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_converse_stream_without_metadata_unknown(client, fake, llm_events) -> None:
    fake.enqueue(BedrockReply(omit_usage=True))
    list(client.converse_stream(modelId=SONNET_4, messages=MESSAGES)["stream"])
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_converse_stream_error_event_unknown(client, fake, llm_events) -> None:
    fake.enqueue(BedrockReply(fail_after=1))
    stream = client.converse_stream(modelId=SONNET_4, messages=MESSAGES)["stream"]
    with pytest.raises(botocore.exceptions.EventStreamError) as raised:
        list(stream)
    stream.close()
    assert raised.value.response["Error"]["Code"] == "modelStreamErrorException"
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"
    assert event["attributes"]["error.type"] == "modelStreamErrorException"


def test_converse_stream_api_error_costs_nothing(client, fake, llm_events) -> None:
    fake.enqueue(BedrockReply(status=403, error_code="AccessDeniedException"))
    with pytest.raises(client.exceptions.AccessDeniedException):
        client.converse_stream(modelId=SONNET_4, messages=MESSAGES)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == 0


def test_invoke_stream_anthropic_cached_priced(client, fake, llm_events) -> None:
    fake.enqueue(BedrockReply(usage=CACHED))
    response = client.invoke_model_with_response_stream(modelId=SONNET_4, body=ANTHROPIC_BODY)
    assert type(response["body"]) is EventStream
    chunks = _chunks(response["body"])
    assert chunks[0]["type"] == "message_start"
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == CACHED_SONNET_4_COST
    assert event["attributes"]["gen_ai.usage.input_tokens"] == 8_000


def test_invoke_stream_one_hour_writes_priced(client, fake, llm_events) -> None:
    usage = BedrockUsage(
        input=1_000, output=300, cache_read=5_000, cache_write=2_000, cache_write_1h=1_000
    )
    fake.enqueue(BedrockReply(usage=usage))
    response = client.invoke_model_with_response_stream(
        modelId="global.anthropic.claude-sonnet-4-5-20250929-v1:0", body=ANTHROPIC_BODY
    )
    list(response["body"])
    (event,) = llm_events()
    # 1,000 x $3 + 1,000 x $3.75 + 1,000 x $6 + 5,000 x $0.30 + 300 x $15 per million.
    assert Decimal(event["cost_usd"]) == Decimal("0.01875")


def test_invoke_stream_anthropic_usage_without_metrics(client, fake, llm_events) -> None:
    fake.enqueue(BedrockReply(usage=CACHED, omit_usage=True))
    list(client.invoke_model_with_response_stream(modelId=SONNET_4, body=ANTHROPIC_BODY)["body"])
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == CACHED_SONNET_4_COST


@pytest.mark.parametrize(
    ("model_id", "body", "cost"),
    [
        (
            "us.amazon.nova-lite-v1:0",
            {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]},
            Decimal("0.000132"),  # 1,000 x $0.06 + 300 x $0.24 per million
        ),
        (
            "meta.llama3-3-70b-instruct-v1:0",
            {"prompt": "Hi", "max_gen_len": 64},
            Decimal("0.000936"),  # 1,300 x $0.72 per million
        ),
    ],
)
def test_invoke_stream_model_families_priced(client, llm_events, model_id, body, cost) -> None:
    response = client.invoke_model_with_response_stream(modelId=model_id, body=json.dumps(body))
    chunks = _chunks(response["body"])
    assert "amazon-bedrock-invocationMetrics" in chunks[-1]
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == cost


def test_invoke_stream_llama_without_metrics_unknown(client, fake, llm_events) -> None:
    fake.enqueue(BedrockReply(omit_usage=True))
    body = json.dumps({"prompt": "Hi"})
    list(
        client.invoke_model_with_response_stream(modelId="meta.llama3-3-70b-v1:0", body=body)[
            "body"
        ]
    )
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_invoke_stream_closed_early_unknown(client, llm_events) -> None:
    stream = client.invoke_model_with_response_stream(modelId=SONNET_4, body=ANTHROPIC_BODY)["body"]
    for _ in stream:
        break
    stream.close()
    del stream
    gc.collect()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_invoke_stream_error_event_unknown(client, fake, llm_events) -> None:
    fake.enqueue(BedrockReply(fail_after=2))
    stream = client.invoke_model_with_response_stream(modelId=SONNET_4, body=ANTHROPIC_BODY)
    with pytest.raises(botocore.exceptions.EventStreamError):
        list(stream["body"])
    stream["body"].close()
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"
    assert event["attributes"]["error.type"] == "modelStreamErrorException"
