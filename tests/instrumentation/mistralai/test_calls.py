"""Non-streaming Mistral calls: chat, FIM and embeddings, sync and async.

Expected costs come from Mistral's list prices, per million tokens:
mistral-large-2411 $2 in / $6 out; mistral-small-2506 $0.10 / $0.30;
mistral-small-2603 $0.15 / $0.60 with cached prompt tokens at $0.015 (10% of input);
codestral-2501 $0.30 / $0.90; mistral-embed $0.10 in.
"""

from __future__ import annotations

from decimal import Decimal

import httpx2
import pytest
from mistralai.client import Mistral
from mistralai.client.errors import HTTPValidationError, SDKError
from pydantic import BaseModel

from .fake_mistral import FakeMistral, MistralReply

pytestmark = pytest.mark.usefixtures("dx")

MESSAGES = [{"role": "user", "content": "Reset my password"}]
LARGE = "mistral-large-2411"
# 1,000 input tokens at $2/M + 300 output tokens at $6/M.
LARGE_COST = Decimal("0.002") + Decimal("0.0018")
# 1,000 input tokens at $0.10/M + 300 output tokens at $0.30/M.
SMALL_COST = Decimal("0.0001") + Decimal("0.00009")


def test_chat_complete_priced(client: Mistral, llm_events) -> None:
    client.chat.complete(model=LARGE, messages=MESSAGES)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == LARGE_COST


def test_chat_complete_names_provider(client: Mistral, llm_events) -> None:
    client.chat.complete(model=LARGE, messages=MESSAGES)
    (event,) = llm_events()
    assert event["attributes"]["gen_ai.provider.name"] == "mistral_ai"
    assert event["attributes"]["gen_ai.operation.name"] == "chat"
    assert event["attributes"]["server.address"] == "mistral.test"


def test_chat_complete_returns_sdk_response(client: Mistral) -> None:
    response = client.chat.complete(model=LARGE, messages=MESSAGES)
    assert response.choices[0].message.content == "Your password has been reset."
    assert response.usage.prompt_tokens == 1000


def test_alias_priced_by_served_model(client: Mistral, fake: FakeMistral, llm_events) -> None:
    fake.enqueue(MistralReply(model="mistral-small-2506"))
    client.chat.complete(model="mistral-small-latest", messages=MESSAGES)
    (event,) = llm_events()
    assert event["attributes"]["gen_ai.response.model"] == "mistral-small-2506"
    assert Decimal(event["cost_usd"]) == SMALL_COST


async def test_chat_complete_async_priced(client: Mistral, llm_events) -> None:
    await client.chat.complete_async(model="mistral-small-2506", messages=MESSAGES)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == SMALL_COST


def test_cached_prompt_tokens_discounted(client: Mistral, fake: FakeMistral, llm_events) -> None:
    fake.enqueue(MistralReply(cached_tokens=400))
    client.chat.complete(model="mistral-small-2603", messages=MESSAGES)
    (event,) = llm_events()
    # 600 uncached at $0.15/M + 400 cached at $0.015/M + 300 output at $0.60/M.
    assert Decimal(event["cost_usd"]) == Decimal("0.00009") + Decimal("0.000006") + Decimal(
        "0.00018"
    )
    assert event["attributes"]["gen_ai.usage.input_tokens"] == 1000
    assert event["attributes"]["gen_ai.usage.cache_read.input_tokens"] == 400


class Reply(BaseModel):
    answer: str


def test_chat_parse_recorded_once(client: Mistral, fake: FakeMistral, llm_events) -> None:
    fake.enqueue(MistralReply(chunks=('{"answer": "done"}',)))
    parsed = client.chat.parse(response_format=Reply, model=LARGE, messages=MESSAGES)
    assert parsed.choices[0].message.parsed == Reply(answer="done")
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == LARGE_COST


def test_fim_complete_priced(client: Mistral, llm_events) -> None:
    client.fim.complete(model="codestral-2501", prompt="def reset(", suffix="return ok")
    (event,) = llm_events()
    # 1,000 input tokens at $0.30/M + 300 output tokens at $0.90/M.
    assert Decimal(event["cost_usd"]) == Decimal("0.0003") + Decimal("0.00027")
    assert event["attributes"]["gen_ai.operation.name"] == "text_completion"


async def test_fim_complete_async_priced(client: Mistral, llm_events) -> None:
    await client.fim.complete_async(model="codestral-2501", prompt="def reset(")
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.00057")


def test_embeddings_create_priced(client: Mistral, fake: FakeMistral, llm_events) -> None:
    fake.enqueue(MistralReply(prompt_tokens=2_500))
    response = client.embeddings.create(model="mistral-embed", inputs=["a", "b"])
    assert len(response.data) == 2
    (event,) = llm_events()
    # 2,500 input tokens at $0.10/M.
    assert Decimal(event["cost_usd"]) == Decimal("0.00025")
    assert event["attributes"]["gen_ai.operation.name"] == "embeddings"


async def test_embeddings_create_async_priced(client: Mistral, llm_events) -> None:
    await client.embeddings.create_async(model="mistral-embed", inputs=["a"])
    (event,) = llm_events()
    # 1,000 input tokens at $0.10/M.
    assert Decimal(event["cost_usd"]) == Decimal("0.0001")


@pytest.mark.parametrize(
    ("model", "per_million_in", "per_million_out"),
    [
        (LARGE, Decimal(2), Decimal(6)),
        ("mistral-small-2506", Decimal("0.1"), Decimal("0.3")),
        ("mistral-embed", Decimal("0.1"), Decimal("0.1")),
    ],
)
def test_token_rates_within_list_range(
    client, fake, llm_events, model, per_million_in, per_million_out
) -> None:
    # One million tokens each way shows the per-token rate, so a price stored
    # 1,000 times off would show here.
    fake.enqueue(MistralReply(prompt_tokens=1_000_000, completion_tokens=1_000_000))
    client.chat.complete(model=model, messages=MESSAGES)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == per_million_in + per_million_out


def test_unknown_model_unpriced_keeps_tokens(client: Mistral, llm_events) -> None:
    client.chat.complete(model="ft:open-mistral-7b:acme:20261201", messages=MESSAGES)
    (event,) = llm_events()
    assert event["cost_status"] == "unpriced"
    assert event["attributes"]["gen_ai.usage.input_tokens"] == 1000


def test_missing_usage_unknown(client: Mistral, fake: FakeMistral, llm_events) -> None:
    fake.enqueue(MistralReply(usage={"prompt_tokens": -1, "completion_tokens": 3}))
    client.chat.complete(model=LARGE, messages=MESSAGES)
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500])
def test_sdk_error_free_and_unchanged(client, fake, llm_events, status) -> None:
    fake.enqueue(MistralReply(status=status))
    with pytest.raises(SDKError) as caught:
        client.chat.complete(model=LARGE, messages=MESSAGES)
    assert caught.value.status_code == status
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == 0
    assert event["attributes"]["error.type"] == "SDKError"


async def test_validation_error_async_free(client: Mistral, fake, llm_events) -> None:
    fake.enqueue(MistralReply(status=422))
    with pytest.raises(HTTPValidationError):
        await client.embeddings.create_async(model="mistral-embed", inputs=["a"])
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == 0


def _refusing(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.ConnectError("connection refused", request=request)


def test_connection_error_usage_unknown(llm_events) -> None:
    client = Mistral(
        api_key="mistral-test",
        server_url="http://mistral.test",
        client=httpx2.Client(transport=httpx2.MockTransport(_refusing)),
    )
    with pytest.raises(httpx2.ConnectError):
        client.chat.complete(model=LARGE, messages=MESSAGES)
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"
    assert event["attributes"]["error.type"] == "ConnectError"
