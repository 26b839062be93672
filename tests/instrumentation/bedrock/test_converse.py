"""Converse through a real boto3 client against the fake Bedrock API.

Expected costs are AWS Bedrock on-demand list prices per million tokens (the same
numbers genai-prices 0.2.5 has for provider ``aws``):
- Claude Sonnet 4 (any profile): $3 input, $15 output, $0.30 cache read, $3.75
  cache write (5 minutes).
- Claude Sonnet 4.5, global profile: $3 input, $15 output, $0.30 cache read, $3.75
  cache write (5 minutes), $6 cache write (1 hour).
- Amazon Nova Pro: $0.80 input, $3.20 output. Nova Lite: $0.06 input, $0.24 output.
- Meta Llama 3.3 70B Instruct: $0.72 input, $0.72 output.
"""

from __future__ import annotations

import socket
from decimal import Decimal

import botocore.exceptions
import pytest

from .conftest import make_client
from .fake_bedrock import BedrockReply, BedrockUsage

pytestmark = pytest.mark.usefixtures("dx")

MESSAGES = [{"role": "user", "content": [{"text": "Reset my password"}]}]
SONNET_4 = "anthropic.claude-sonnet-4-20250514-v1:0"
# Bedrock's counts: input 1,000 without the cache tokens, 2,000 written, 5,000 read.
CACHED = BedrockUsage(input=1_000, output=300, cache_read=5_000, cache_write=2_000)
# 1,000 x $3 + 2,000 x $3.75 + 5,000 x $0.30 + 300 x $15, per million tokens.
CACHED_SONNET_4_COST = Decimal("0.0165")


def test_converse_cached_usage_priced_exactly(client, fake, llm_events) -> None:
    fake.enqueue(BedrockReply(usage=CACHED))
    client.converse(modelId=SONNET_4, messages=MESSAGES)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == CACHED_SONNET_4_COST


def test_converse_input_tokens_include_cache(client, fake, llm_events) -> None:
    fake.enqueue(BedrockReply(usage=CACHED))
    client.converse(modelId=SONNET_4, messages=MESSAGES)
    attributes = llm_events()[0]["attributes"]
    assert attributes["gen_ai.usage.input_tokens"] == 8_000
    assert attributes["gen_ai.usage.output_tokens"] == 300
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 5_000
    assert attributes["gen_ai.usage.cache_creation.input_tokens"] == 2_000


def test_converse_event_names_provider_and_model(client, llm_events) -> None:
    client.converse(modelId=SONNET_4, messages=MESSAGES)
    attributes = llm_events()[0]["attributes"]
    assert attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == SONNET_4
    assert attributes["server.address"] == "127.0.0.1"


def test_converse_returns_sdk_response(client, fake) -> None:
    response = client.converse(modelId=SONNET_4, messages=MESSAGES)
    assert response["output"]["message"]["content"] == [{"text": "Hello there"}]
    assert response["usage"]["inputTokens"] == 1_000
    assert fake.requests[0].model_id == SONNET_4
    assert fake.requests[0].body["messages"] == MESSAGES


def test_converse_one_hour_cache_writes_priced(client, fake, llm_events) -> None:
    usage = BedrockUsage(
        input=1_000, output=300, cache_read=5_000, cache_write=2_000, cache_write_1h=1_000
    )
    fake.enqueue(BedrockReply(usage=usage))
    client.converse(modelId="global.anthropic.claude-sonnet-4-5-20250929-v1:0", messages=MESSAGES)
    (event,) = llm_events()
    # 1,000 x $3 + 1,000 x $3.75 + 1,000 x $6 + 5,000 x $0.30 + 300 x $15 per million.
    assert Decimal(event["cost_usd"]) == Decimal("0.01875")


@pytest.mark.parametrize("prefix", ["us.", "eu.", "apac.", "global."])
def test_converse_profile_ids_priced(client, fake, llm_events, prefix: str) -> None:
    model_id = prefix + SONNET_4
    fake.enqueue(BedrockReply(usage=CACHED))
    client.converse(modelId=model_id, messages=MESSAGES)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == CACHED_SONNET_4_COST
    assert event["attributes"]["gen_ai.request.model"] == model_id


@pytest.mark.parametrize(
    "arn",
    [
        f"arn:aws:bedrock:us-east-1::foundation-model/{SONNET_4}",
        f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{SONNET_4}",
    ],
)
def test_converse_model_arn_priced(client, fake, llm_events, arn: str) -> None:
    fake.enqueue(BedrockReply(usage=CACHED))
    client.converse(modelId=arn, messages=MESSAGES)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == CACHED_SONNET_4_COST
    assert event["attributes"]["gen_ai.request.model"] == arn
    assert fake.requests[0].model_id == arn


@pytest.mark.parametrize(
    ("model_id", "cost"),
    [
        # 1,000 x $0.80 + 300 x $3.20 per million.
        ("amazon.nova-pro-v1:0", Decimal("0.00176")),
        # 1,000 x $0.06 + 300 x $0.24 per million.
        ("us.amazon.nova-lite-v1:0", Decimal("0.000132")),
        # 1,300 x $0.72 per million.
        ("meta.llama3-3-70b-instruct-v1:0", Decimal("0.000936")),
        ("us.meta.llama3-3-70b-instruct-v1:0", Decimal("0.000936")),
    ],
)
def test_converse_model_families_priced(client, llm_events, model_id: str, cost: Decimal) -> None:
    client.converse(modelId=model_id, messages=MESSAGES)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == cost


def test_converse_unknown_model_unpriced_keeps_tokens(client, llm_events) -> None:
    client.converse(modelId="acme.unreleased-model-v1:0", messages=MESSAGES)
    (event,) = llm_events()
    assert event["cost_status"] == "unpriced"
    assert event["cost_usd"] is None
    assert event["attributes"]["gen_ai.usage.input_tokens"] == 1_000


def test_converse_application_profile_unpriced(client, llm_events) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"
    client.converse(modelId=arn, messages=MESSAGES)
    (event,) = llm_events()
    assert event["cost_status"] == "unpriced"
    assert event["attributes"]["gen_ai.usage.output_tokens"] == 300


def test_converse_without_usage_unknown(client, fake, llm_events) -> None:
    fake.enqueue(BedrockReply(omit_usage=True))
    client.converse(modelId=SONNET_4, messages=MESSAGES)
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"
    assert event["cost_usd"] is None


def test_converse_service_tier_recorded(client, fake, llm_events) -> None:
    fake.enqueue(BedrockReply(service_tier="priority"))
    client.converse(modelId=SONNET_4, messages=MESSAGES)
    (event,) = llm_events()
    assert event["attributes"]["openai.response.service_tier"] == "priority"
    # The price table has no Bedrock priority rates, and priority bills above standard.
    assert event["cost_status"] == "unpriced"
    assert event["input_tokens"] > 0


@pytest.mark.parametrize(
    ("status", "code"), [(400, "ValidationException"), (500, "InternalServerException")]
)
def test_converse_api_error_costs_nothing(client, fake, llm_events, status, code) -> None:
    fake.enqueue(BedrockReply(status=status, error_code=code))
    with pytest.raises(client.exceptions.ClientError) as raised:
        client.converse(modelId=SONNET_4, messages=MESSAGES)
    assert type(raised.value) is getattr(client.exceptions, code)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == 0
    assert event["cost_status"] == "priced"
    assert event["attributes"]["error.type"] == code


def test_converse_invalid_parameter_costs_nothing(client, llm_events) -> None:
    with pytest.raises(botocore.exceptions.ParamValidationError):
        client.converse(modelId=SONNET_4, messages="not a list")
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == 0


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_converse_connection_refused_unknown(llm_events) -> None:
    client = make_client(f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        client.converse(modelId=SONNET_4, messages=MESSAGES)
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"
    assert event["attributes"]["error.type"] == "EndpointConnectionError"


def test_converse_read_timeout_unknown(fake, llm_events) -> None:
    client = make_client(fake.endpoint_url, read_timeout=0.2)
    fake.enqueue(BedrockReply(delay_seconds=1.0))
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        client.converse(modelId=SONNET_4, messages=MESSAGES)
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"
    assert event["attributes"]["error.type"] == "ReadTimeoutError"
