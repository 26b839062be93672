"""Non-streaming Cohere calls: chat, embed and rerank, v1 and v2, sync and async.

Expected costs come from Cohere's list prices, per million billed tokens:
command-a-03-2025 $2.50 in / $10.00 out; command-r-08-2024 $0.15 in / $0.60 out;
embed-v4.0 $0.12 in. Rerank: rerank-v3.5 $2.00 per 1,000 search units.
"""

from __future__ import annotations

from decimal import Decimal

import cohere
import httpx
import pytest
from cohere.core.api_error import ApiError

from .fake_cohere import CohereReply, FakeCohere

pytestmark = pytest.mark.usefixtures("dx")

MESSAGES = [{"role": "user", "content": "Reset my password"}]
COMMAND_A = "command-a-03-2025"
COMMAND_R = "command-r-08-2024"
# 1,000 billed input tokens at $2.50/M + 300 billed output tokens at $10/M.
COMMAND_A_COST = Decimal("0.0025") + Decimal("0.003")
# 1,000 billed input tokens at $0.15/M + 300 billed output tokens at $0.60/M.
COMMAND_R_COST = Decimal("0.00015") + Decimal("0.00018")


def test_v2_chat_priced_from_billed_units(client_v2, llm_events) -> None:
    client_v2.chat(model=COMMAND_A, messages=MESSAGES)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == COMMAND_A_COST


def test_v2_chat_records_billed_tokens(client_v2, llm_events) -> None:
    client_v2.chat(model=COMMAND_A, messages=MESSAGES)
    (event,) = llm_events()
    # The reply's "tokens" says 1,250 in / 303 out; only billed_units is charged.
    assert event["attributes"]["gen_ai.usage.input_tokens"] == 1000
    assert event["attributes"]["gen_ai.usage.output_tokens"] == 300


def test_v2_chat_names_provider_and_operation(client_v2, llm_events) -> None:
    client_v2.chat(model=COMMAND_A, messages=MESSAGES)
    (event,) = llm_events()
    assert event["attributes"]["gen_ai.provider.name"] == "cohere"
    assert event["attributes"]["gen_ai.operation.name"] == "chat"
    assert event["attributes"]["server.address"] == "cohere.test"


def test_v2_chat_returns_sdk_response(client_v2) -> None:
    response = client_v2.chat(model=COMMAND_A, messages=MESSAGES)
    assert response.message.content[0].text == "Your password has been reset."


async def test_async_v2_chat_priced(async_client_v2, llm_events) -> None:
    await async_client_v2.chat(model=COMMAND_A, messages=MESSAGES)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == COMMAND_A_COST


def test_v2_raw_response_same_object_priced(client_v2, llm_events) -> None:
    raw = client_v2.with_raw_response
    response = raw.chat(model=COMMAND_A, messages=MESSAGES)
    assert response.status_code == 200
    assert response.data.usage.billed_units.input_tokens == 1000
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == COMMAND_A_COST


async def test_async_v2_raw_response_priced(async_client_v2, llm_events) -> None:
    response = await async_client_v2.with_raw_response.chat(model=COMMAND_A, messages=MESSAGES)
    assert response.status_code == 200
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == COMMAND_A_COST


def test_v1_chat_priced_from_meta(client_v1, llm_events) -> None:
    response = client_v1.chat(model=COMMAND_R, message="Reset my password")
    assert response.text == "Your password has been reset."
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == COMMAND_R_COST


async def test_async_v1_chat_priced(async_client_v1, llm_events) -> None:
    await async_client_v1.chat(model=COMMAND_R, message="Reset my password")
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == COMMAND_R_COST


def test_v1_client_v2_namespace_priced_once(client_v1, llm_events) -> None:
    client_v1.v2.chat(model=COMMAND_A, messages=MESSAGES)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == COMMAND_A_COST


def test_v2_embed_priced_per_input_token(client_v2, fake: FakeCohere, llm_events) -> None:
    fake.enqueue(CohereReply(input_tokens=2_500))
    response = client_v2.embed(
        model="embed-v4.0",
        texts=["a", "b"],
        input_type="search_document",
        embedding_types=["float"],
    )
    assert len(response.embeddings.float_) == 2
    (event,) = llm_events()
    # 2,500 billed input tokens at $0.12/M.
    assert Decimal(event["cost_usd"]) == Decimal("0.0003")
    assert event["attributes"]["gen_ai.operation.name"] == "embeddings"


async def test_async_v2_embed_priced(async_client_v2, llm_events) -> None:
    await async_client_v2.embed(
        model="embed-v4.0", texts=["a"], input_type="search_query", embedding_types=["float"]
    )
    (event,) = llm_events()
    # 1,000 billed input tokens at $0.12/M.
    assert Decimal(event["cost_usd"]) == Decimal("0.00012")


def test_v1_embed_batches_one_event_each(client_v1, fake: FakeCohere, llm_events) -> None:
    # The v1 client sends 96 texts a request, so 100 texts are two requests.
    client_v1.embed(model="embed-v4.0", texts=[f"t{i}" for i in range(100)])
    assert len(fake.requests) == 2
    events = llm_events()
    assert len(events) == 2
    assert all(Decimal(e["cost_usd"]) == Decimal("0.00012") for e in events)


def test_v2_rerank_priced_per_search_unit(client_v2, fake: FakeCohere, llm_events) -> None:
    fake.enqueue(CohereReply(search_units=3))
    client_v2.rerank(model="rerank-v3.5", query="reset", documents=["a", "b"])
    (event,) = llm_events()
    # 3 search units at $2.00 per 1,000.
    assert Decimal(event["cost_usd"]) == Decimal("0.006")
    assert event["cost_status"] == "priced"


def test_v2_rerank_records_search_units(client_v2, fake: FakeCohere, llm_events) -> None:
    fake.enqueue(CohereReply(search_units=3))
    client_v2.rerank(model="rerank-v3.5", query="reset", documents=["a", "b"])
    (event,) = llm_events()
    assert event["attributes"]["dexcost.units"] == 3
    assert event["attributes"]["dexcost.unit"] == "search_unit"
    assert event["attributes"]["gen_ai.operation.name"] == "rerank"


async def test_async_v1_rerank_priced(async_client_v1, llm_events) -> None:
    await async_client_v1.rerank(model="rerank-v3.5", query="reset", documents=["a"])
    (event,) = llm_events()
    # 1 search unit at $2.00 per 1,000.
    assert Decimal(event["cost_usd"]) == Decimal("0.002")


def test_rerank_unknown_model_unpriced_keeps_units(client_v2, fake, llm_events) -> None:
    fake.enqueue(CohereReply(search_units=2))
    client_v2.rerank(model="rerank-custom-ft", query="reset", documents=["a"])
    (event,) = llm_events()
    assert event["cost_status"] == "unpriced"
    assert event["cost_usd"] is None
    assert event["attributes"]["dexcost.units"] == 2
    # A rerank call has no tokens, so none are recorded.
    assert "gen_ai.usage.input_tokens" not in event["attributes"]


def test_rerank_without_search_units_unknown(client_v2, fake: FakeCohere, llm_events) -> None:
    fake.enqueue(CohereReply(units={}))
    client_v2.rerank(model="rerank-v3.5", query="reset", documents=["a"])
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_chat_unknown_model_unpriced_keeps_tokens(client_v2, llm_events) -> None:
    client_v2.chat(model="command-custom-finetune-xyz", messages=MESSAGES)
    (event,) = llm_events()
    assert event["cost_status"] == "unpriced"
    assert event["attributes"]["gen_ai.usage.input_tokens"] == 1000


def test_chat_without_billed_units_unknown(client_v2, fake: FakeCohere, llm_events) -> None:
    body = {"id": "x", "finish_reason": "COMPLETE", "message": {"role": "assistant"}}
    fake.enqueue(CohereReply(body=body))
    client_v2.chat(model=COMMAND_A, messages=MESSAGES)
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_chat_fractional_units_unknown(client_v2, fake: FakeCohere, llm_events) -> None:
    fake.enqueue(CohereReply(units={"input_tokens": 10.5, "output_tokens": 3}))
    client_v2.chat(model=COMMAND_A, messages=MESSAGES)
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


@pytest.mark.parametrize("status", [400, 401, 422, 429, 500])
def test_api_error_free_and_unchanged(client_v2, fake, llm_events, status) -> None:
    fake.enqueue(CohereReply(status=status))
    with pytest.raises(ApiError) as caught:
        client_v2.chat(model=COMMAND_A, messages=MESSAGES)
    assert caught.value.status_code == status
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == 0
    assert event["attributes"]["error.type"] == type(caught.value).__name__


async def test_async_rerank_error_free(async_client_v2, fake, llm_events) -> None:
    fake.enqueue(CohereReply(status=400))
    with pytest.raises(cohere.BadRequestError):
        await async_client_v2.rerank(model="rerank-v3.5", query="q", documents=["a"])
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == 0


def _refusing(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def test_connection_error_usage_unknown(llm_events) -> None:
    client = cohere.ClientV2(
        api_key="co-test",
        base_url="http://cohere.test",
        httpx_client=httpx.Client(transport=httpx.MockTransport(_refusing)),
        max_retries=0,
    )
    with pytest.raises(httpx.ConnectError):
        client.chat(model=COMMAND_A, messages=MESSAGES)
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"
    assert event["attributes"]["error.type"] == "ConnectError"


def test_no_runtime_records_nothing(client_v2, fake, llm_events) -> None:
    import dexcost

    dexcost.shutdown()
    response = client_v2.chat(model=COMMAND_A, messages=MESSAGES)
    assert response.usage.billed_units.output_tokens == 300
    assert len(fake.requests) == 1
