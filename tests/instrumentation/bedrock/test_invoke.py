"""InvokeModel through a real boto3 client against the fake Bedrock API.

Usage comes from the X-Amzn-Bedrock-*-Token-Count response headers. Rates per
million tokens, AWS Bedrock on-demand list prices: Claude Sonnet 4 $3 input, $15
output, $0.30 cache read, $3.75 cache write; Nova Pro $0.80 / $3.20; Llama 3.3 70B
$0.72 / $0.72; Titan Text Embeddings V2 $0.02 input.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from botocore.response import StreamingBody

from .fake_bedrock import BedrockReply, BedrockUsage

pytestmark = pytest.mark.usefixtures("dx")

SONNET_4 = "anthropic.claude-sonnet-4-20250514-v1:0"
ANTHROPIC_BODY = json.dumps(
    {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Reset my password"}],
    }
)
CACHED = BedrockUsage(input=1_000, output=300, cache_read=5_000, cache_write=2_000)


def test_invoke_anthropic_cached_priced_exactly(client, fake, llm_events) -> None:
    fake.enqueue(BedrockReply(usage=CACHED))
    client.invoke_model(modelId=SONNET_4, body=ANTHROPIC_BODY)
    (event,) = llm_events()
    # 1,000 x $3 + 2,000 x $3.75 + 5,000 x $0.30 + 300 x $15, per million tokens.
    assert Decimal(event["cost_usd"]) == Decimal("0.0165")
    assert event["attributes"]["gen_ai.usage.input_tokens"] == 8_000


def test_invoke_body_left_unread(client, fake) -> None:
    fake.enqueue(BedrockReply(usage=CACHED))
    response = client.invoke_model(modelId=SONNET_4, body=ANTHROPIC_BODY)
    assert isinstance(response["body"], StreamingBody)
    message = json.loads(response["body"].read())
    assert message["content"] == [{"type": "text", "text": "Hello there"}]
    assert message["usage"]["cache_read_input_tokens"] == 5_000


def test_invoke_request_body_sent_unchanged(client, fake) -> None:
    client.invoke_model(modelId=SONNET_4, body=ANTHROPIC_BODY)
    assert fake.requests[0].body == json.loads(ANTHROPIC_BODY)
    assert fake.requests[0].route == "invoke"


def test_invoke_regional_profile_priced(client, llm_events) -> None:
    client.invoke_model(modelId="eu." + SONNET_4, body=ANTHROPIC_BODY)
    (event,) = llm_events()
    # 1,000 x $3 + 300 x $15 per million.
    assert Decimal(event["cost_usd"]) == Decimal("0.0075")
    assert event["attributes"]["gen_ai.request.model"] == "eu." + SONNET_4


@pytest.mark.parametrize(
    ("model_id", "body", "cost"),
    [
        (
            "amazon.nova-pro-v1:0",
            {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]},
            Decimal("0.00176"),  # 1,000 x $0.80 + 300 x $3.20 per million
        ),
        (
            "us.meta.llama3-3-70b-instruct-v1:0",
            {"prompt": "Hi", "max_gen_len": 64},
            Decimal("0.000936"),  # 1,300 x $0.72 per million
        ),
    ],
)
def test_invoke_model_families_priced(client, llm_events, model_id, body, cost) -> None:
    client.invoke_model(modelId=model_id, body=json.dumps(body))
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == cost
    assert event["attributes"]["gen_ai.operation.name"] == "chat"


def test_invoke_embedding_model_priced(client, fake, llm_events) -> None:
    fake.enqueue(BedrockReply(usage=BedrockUsage(input=1_000, output=0)))
    response = client.invoke_model(
        modelId="amazon.titan-embed-text-v2:0", body=json.dumps({"inputText": "Hi"})
    )
    assert json.loads(response["body"].read())["inputTextTokenCount"] == 1_000
    (event,) = llm_events()
    # 1,000 x $0.02 per million.
    assert Decimal(event["cost_usd"]) == Decimal("0.00002")
    assert event["attributes"]["gen_ai.operation.name"] == "embeddings"


def test_invoke_unpriced_embedding_keeps_tokens(client, fake, llm_events) -> None:
    fake.enqueue(BedrockReply(usage=BedrockUsage(input=42, output=0)))
    client.invoke_model(
        modelId="cohere.embed-english-v3", body=json.dumps({"texts": ["Hi"], "input_type": "x"})
    )
    (event,) = llm_events()
    assert event["cost_status"] == "unpriced"
    assert event["attributes"]["gen_ai.usage.input_tokens"] == 42


def test_invoke_without_headers_unknown(client, fake, llm_events) -> None:
    fake.enqueue(BedrockReply(omit_usage=True))
    client.invoke_model(modelId=SONNET_4, body=ANTHROPIC_BODY)
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_invoke_api_error_costs_nothing(client, fake, llm_events) -> None:
    fake.enqueue(BedrockReply(status=429, error_code="ThrottlingException"))
    with pytest.raises(client.exceptions.ThrottlingException):
        client.invoke_model(modelId=SONNET_4, body=ANTHROPIC_BODY)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == 0
    assert event["attributes"]["error.type"] == "ThrottlingException"
