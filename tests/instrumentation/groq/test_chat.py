from __future__ import annotations

from decimal import Decimal
from typing import Any

import groq
import httpx
import pytest
from tests.instrumentation.groq.conftest import BASE_URL
from tests.instrumentation.groq.fake_groq import FakeGroq, GroqReply, GroqUsage

pytestmark = pytest.mark.usefixtures("dx")

MESSAGES = [{"role": "user", "content": "Reset my password"}]
MODEL = "llama-3.3-70b-versatile"
# llama-3.3-70b-versatile on Groq: $0.59/M input, $0.79/M output.
# 1,000 x $0.59/M + 500 x $0.79/M = $0.00059 + $0.000395.
DEFAULT_COST = Decimal("0.000985")


def test_chat_priced_exactly(client, llm_events) -> None:
    client.chat.completions.create(model=MODEL, messages=MESSAGES)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == DEFAULT_COST


def test_chat_event_attributes(client, llm_events) -> None:
    client.chat.completions.create(model=MODEL, messages=MESSAGES)
    attributes = llm_events()[0]["attributes"]
    assert attributes["gen_ai.provider.name"] == "groq"
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == MODEL
    assert attributes["gen_ai.response.model"] == MODEL
    assert attributes["gen_ai.usage.input_tokens"] == 1000
    assert attributes["gen_ai.usage.output_tokens"] == 500
    assert attributes["dexcost.cost_status"] == "priced"
    assert attributes["server.address"] == "127.0.0.1"


def test_chat_service_tier_recorded(client, llm_events) -> None:
    client.chat.completions.create(model=MODEL, messages=MESSAGES)
    attributes = llm_events()[0]["attributes"]
    assert attributes["openai.response.service_tier"] == "on_demand"


def test_chat_returns_sdk_object(client, monkeypatch: pytest.MonkeyPatch) -> None:
    # The resource binds client.post when first used, so the spy is set before that.
    returned: list[Any] = []
    original_post = groq.Groq.post

    def spy_post(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original_post(self, *args, **kwargs)
        returned.append(result)
        return result

    monkeypatch.setattr(groq.Groq, "post", spy_post)
    response = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert response is returned[0]
    assert type(response) is groq.types.chat.ChatCompletion


def test_instant_model_priced_exactly(client, fake: FakeGroq, llm_events) -> None:
    fake.enqueue(GroqReply(usage=GroqUsage(prompt_tokens=2000, completion_tokens=1000)))
    client.chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES)
    # llama-3.1-8b-instant: 2,000 x $0.05/M + 1,000 x $0.08/M = $0.0001 + $0.00008.
    assert Decimal(llm_events()[0]["cost_usd"]) == Decimal("0.00018")


def test_cached_tokens_priced_at_cache_rate(client, fake: FakeGroq, llm_events) -> None:
    usage = GroqUsage(prompt_tokens=2000, completion_tokens=400, cached_tokens=1500)
    fake.enqueue(GroqReply(usage=usage))
    client.chat.completions.create(model="openai/gpt-oss-120b", messages=MESSAGES)
    event = llm_events()[0]
    # openai/gpt-oss-120b on Groq: $0.15/M input, $0.075/M cached input, $0.60/M output.
    # 500 x $0.15/M + 1,500 x $0.075/M + 400 x $0.60/M = $0.000075 + $0.0001125 + $0.00024.
    assert Decimal(event["cost_usd"]) == Decimal("0.0004275")
    assert event["attributes"]["gen_ai.usage.input_tokens"] == 2000
    assert event["attributes"]["gen_ai.usage.cache_read.input_tokens"] == 1500


def test_reasoning_tokens_not_counted_twice(client, fake: FakeGroq, llm_events) -> None:
    usage = GroqUsage(prompt_tokens=1000, completion_tokens=2000, reasoning_tokens=1200)
    fake.enqueue(GroqReply(usage=usage))
    client.chat.completions.create(model="qwen/qwen3-32b", messages=MESSAGES)
    # qwen/qwen3-32b on Groq: $0.29/M input, $0.59/M output; the 1,200 reasoning
    # tokens are inside the 2,000 output tokens.
    # 1,000 x $0.29/M + 2,000 x $0.59/M = $0.00029 + $0.00118.
    assert Decimal(llm_events()[0]["cost_usd"]) == Decimal("0.00147")


def test_unknown_model_unpriced_with_tokens(client, llm_events) -> None:
    client.chat.completions.create(model="acme-secret-model", messages=MESSAGES)
    event = llm_events()[0]
    assert event["attributes"]["dexcost.cost_status"] == "unpriced"
    assert event["cost_usd"] is None
    assert event["attributes"]["gen_ai.usage.input_tokens"] == 1000
    assert event["attributes"]["gen_ai.usage.output_tokens"] == 500


def test_missing_usage_is_usage_unknown(client, fake: FakeGroq, llm_events) -> None:
    fake.enqueue(GroqReply(usage=None))
    response = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert response.usage is None
    event = llm_events()[0]
    assert event["attributes"]["dexcost.cost_status"] == "usage_unknown"
    assert event["cost_usd"] is None


def test_not_found_error_costs_nothing(client, fake: FakeGroq, llm_events) -> None:
    fake.enqueue(GroqReply(status=404))
    with pytest.raises(groq.NotFoundError) as raised:
        client.chat.completions.create(model="llama-9-unreleased", messages=MESSAGES)
    assert raised.value.status_code == 404
    event = llm_events()[0]
    assert Decimal(event["cost_usd"]) == 0
    assert event["attributes"]["error.type"] == "NotFoundError"


def test_rate_limit_error_costs_nothing(client, fake: FakeGroq, llm_events) -> None:
    fake.enqueue(GroqReply(status=429, error_code="rate_limit_exceeded"))
    with pytest.raises(groq.RateLimitError):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    event = llm_events()[0]
    assert Decimal(event["cost_usd"]) == 0
    assert event["attributes"]["error.type"] == "RateLimitError"


def test_connection_error_is_usage_unknown(llm_events) -> None:
    def reject_connection(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    http_client = httpx.Client(transport=httpx.MockTransport(reject_connection))
    with (
        groq.Groq(
            api_key="gsk-test", base_url=BASE_URL, http_client=http_client, max_retries=0
        ) as client,
        pytest.raises(groq.APIConnectionError),
    ):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    event = llm_events()[0]
    assert event["attributes"]["dexcost.cost_status"] == "usage_unknown"
    assert event["attributes"]["error.type"] == "APIConnectionError"


def test_default_base_url_named_in_event(fake: FakeGroq, llm_events) -> None:
    # No base_url: the client targets api.groq.com, which the mock transport handles.
    http_client = httpx.Client(transport=fake.httpx_transport())
    with groq.Groq(api_key="gsk-test", http_client=http_client, max_retries=0) as client:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    event = llm_events()[0]
    assert event["attributes"]["server.address"] == "api.groq.com"
    assert Decimal(event["cost_usd"]) == DEFAULT_COST


async def test_async_chat_priced(async_client, llm_events) -> None:
    await async_client.chat.completions.create(model=MODEL, messages=MESSAGES)
    event = llm_events()[0]
    assert Decimal(event["cost_usd"]) == DEFAULT_COST
    assert event["attributes"]["gen_ai.provider.name"] == "groq"


async def test_async_error_costs_nothing(async_client, fake: FakeGroq, llm_events) -> None:
    fake.enqueue(GroqReply(status=400, error_code="invalid_request"))
    with pytest.raises(groq.BadRequestError):
        await async_client.chat.completions.create(model=MODEL, messages=MESSAGES)
    event = llm_events()[0]
    assert Decimal(event["cost_usd"]) == 0
    assert event["attributes"]["error.type"] == "BadRequestError"


def test_embeddings_unpriced_with_tokens(client, fake: FakeGroq, llm_events) -> None:
    fake.enqueue(GroqReply(usage=GroqUsage(prompt_tokens=42, completion_tokens=0)))
    response = client.embeddings.create(model="nomic-embed-text-v1_5", input="Reset my password")
    assert response.usage.prompt_tokens == 42
    event = llm_events()[0]
    # genai-prices 0.2.5 lists no Groq embedding model, so the call stays unpriced.
    assert event["attributes"]["dexcost.cost_status"] == "unpriced"
    assert event["attributes"]["gen_ai.operation.name"] == "embeddings"
    assert event["attributes"]["gen_ai.usage.input_tokens"] == 42


async def test_async_embeddings_recorded(async_client, llm_events) -> None:
    await async_client.embeddings.create(model="nomic-embed-text-v1_5", input="Reset my password")
    event = llm_events()[0]
    assert event["attributes"]["gen_ai.usage.input_tokens"] == 1000
    assert event["attributes"]["gen_ai.provider.name"] == "groq"
