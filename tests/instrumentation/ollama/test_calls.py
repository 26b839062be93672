from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest
import wrapt
from tests.instrumentation.ollama.conftest import HOST
from tests.instrumentation.ollama.fake_ollama import FakeOllama, FakeOllamaServer, OllamaReply

import dexcost

pytestmark = pytest.mark.usefixtures("dx")

MESSAGES = [{"role": "user", "content": "Reset my password"}]
MODEL = "llama3.2"
# A registered price of $1.00/M input and $2.00/M output tokens, and the fake's
# default counts of 100 prompt and 1,200 eval tokens:
# 100 x $1.00/M + 1,200 x $2.00/M = $0.0001 + $0.0024.
REGISTERED_COST = Decimal("0.0025")


def _register_price() -> None:
    dexcost.register_model_price(
        MODEL, provider="ollama", input_per_mtok="1.00", output_per_mtok="2.00"
    )


def test_chat_unpriced_with_tokens(client, llm_events) -> None:
    client.chat(model=MODEL, messages=MESSAGES)
    event = llm_events()[0]
    assert event["attributes"]["dexcost.cost_status"] == "unpriced"
    assert event["cost_usd"] is None
    assert event["attributes"]["gen_ai.usage.input_tokens"] == 100
    assert event["attributes"]["gen_ai.usage.output_tokens"] == 1200


def test_chat_event_attributes(client, llm_events) -> None:
    client.chat(model=MODEL, messages=MESSAGES)
    attributes = llm_events()[0]["attributes"]
    assert attributes["gen_ai.provider.name"] == "ollama"
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == MODEL
    assert attributes["gen_ai.response.model"] == MODEL
    assert attributes["server.address"] == "127.0.0.1"


def test_chat_priced_once_registered(client, llm_events) -> None:
    _register_price()
    client.chat(model=MODEL, messages=MESSAGES)
    event = llm_events()[0]
    assert Decimal(event["cost_usd"]) == REGISTERED_COST
    assert event["attributes"]["dexcost.cost_status"] == "priced"


def test_price_for_other_provider_ignored(client, llm_events) -> None:
    dexcost.register_model_price(MODEL, provider="groq", input_per_mtok="1", output_per_mtok="2")
    client.chat(model=MODEL, messages=MESSAGES)
    assert llm_events()[0]["attributes"]["dexcost.cost_status"] == "unpriced"


def test_chat_returns_sdk_object(client, buffer_path: Path) -> None:
    # A spy under dexcost's wrapper stores what the SDK's own _request returns.
    dexcost.shutdown()
    returned: list[Any] = []
    original = ollama.Client.__dict__["_request"]

    def spy_request(self: ollama.Client, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        returned.append(result)
        return result

    ollama.Client._request = spy_request  # type: ignore[method-assign]
    try:
        dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["ollama"])
        assert isinstance(ollama.Client.__dict__["_request"], wrapt.FunctionWrapper)
        response = client.chat(model=MODEL, messages=MESSAGES)
    finally:
        dexcost.shutdown()
        ollama.Client._request = original  # type: ignore[method-assign]
    assert response is returned[0]
    assert type(response) is ollama.ChatResponse


def test_generate_priced_as_completion(client, llm_events) -> None:
    _register_price()
    response = client.generate(model=MODEL, prompt="Reset my password")
    assert type(response) is ollama.GenerateResponse
    event = llm_events()[0]
    assert event["attributes"]["gen_ai.operation.name"] == "text_completion"
    assert Decimal(event["cost_usd"]) == REGISTERED_COST


def test_model_load_records_no_tokens(client, fake: FakeOllama, llm_events) -> None:
    fake.enqueue(OllamaReply(prompt_eval_count=None, eval_count=None, done_reason="load"))
    client.generate(model=MODEL)
    event = llm_events()[0]
    assert event["attributes"]["gen_ai.usage.input_tokens"] == 0
    assert event["attributes"]["gen_ai.usage.output_tokens"] == 0


def test_embed_records_prompt_tokens(client, fake: FakeOllama, llm_events) -> None:
    fake.enqueue(OllamaReply(prompt_eval_count=8))
    dexcost.register_model_price(
        "all-minilm", provider="ollama", input_per_mtok="0.50", output_per_mtok="0"
    )
    response = client.embed(model="all-minilm", input="Reset my password")
    assert type(response) is ollama.EmbedResponse
    event = llm_events()[0]
    assert event["attributes"]["gen_ai.operation.name"] == "embeddings"
    assert event["attributes"]["gen_ai.usage.input_tokens"] == 8
    # 8 x $0.50/M = $0.000004.
    assert Decimal(event["cost_usd"]) == Decimal("0.000004")


def test_deprecated_embeddings_usage_unknown(client, llm_events) -> None:
    response = client.embeddings(model="all-minilm", prompt="Reset my password")
    assert type(response) is ollama.EmbeddingsResponse
    event = llm_events()[0]
    # /api/embeddings reports no token counts.
    assert event["attributes"]["dexcost.cost_status"] == "usage_unknown"
    assert event["attributes"]["gen_ai.operation.name"] == "embeddings"


def test_missing_prompt_count_is_unknown(client, fake: FakeOllama, llm_events) -> None:
    _register_price()
    fake.enqueue(OllamaReply(prompt_eval_count=None))
    client.chat(model=MODEL, messages=MESSAGES)
    event = llm_events()[0]
    assert event["attributes"]["dexcost.cost_status"] == "usage_unknown"
    assert event["cost_usd"] is None


def test_management_calls_not_recorded(client, fake: FakeOllama, llm_events) -> None:
    with pytest.raises(ollama.ResponseError):
        client.show(MODEL)
    assert fake.requests[-1].path == "/api/show"
    assert llm_events() == []


def test_model_not_found_costs_nothing(client, fake: FakeOllama, llm_events) -> None:
    fake.enqueue(OllamaReply(status=404))
    with pytest.raises(ollama.ResponseError) as raised:
        client.chat(model="llama9", messages=MESSAGES)
    assert raised.value.status_code == 404
    assert raised.value.error == 'model "llama9" not found, try pulling it first'
    event = llm_events()[0]
    assert Decimal(event["cost_usd"]) == 0
    assert event["attributes"]["error.type"] == "ResponseError"


def test_connection_error_is_usage_unknown(llm_events) -> None:
    def reject_connection(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = ollama.Client(host=HOST, transport=httpx.MockTransport(reject_connection))
    with pytest.raises(ConnectionError):
        client.chat(model=MODEL, messages=MESSAGES)
    event = llm_events()[0]
    assert event["attributes"]["dexcost.cost_status"] == "usage_unknown"
    assert event["attributes"]["error.type"] == "ConnectionError"


def test_module_level_chat_recorded(
    fake: FakeOllama, monkeypatch: pytest.MonkeyPatch, llm_events
) -> None:
    # ollama.chat is bound to a default client made at import. Its HTTP client is
    # pointed at the fake instead of the default 127.0.0.1:11434.
    default_client = ollama.chat.__self__
    monkeypatch.setattr(
        default_client, "_client", httpx.Client(base_url=HOST, transport=fake.httpx_transport())
    )
    _register_price()
    ollama.chat(model=MODEL, messages=MESSAGES)
    ollama.generate(model=MODEL, prompt="Reset my password")
    events = llm_events()
    assert [Decimal(event["cost_usd"]) for event in events] == [REGISTERED_COST] * 2


async def test_async_chat_priced(async_client, llm_events) -> None:
    _register_price()
    response = await async_client.chat(model=MODEL, messages=MESSAGES)
    assert type(response) is ollama.ChatResponse
    event = llm_events()[0]
    assert Decimal(event["cost_usd"]) == REGISTERED_COST


async def test_async_generate_and_embed(async_client, llm_events) -> None:
    await async_client.generate(model=MODEL, prompt="Reset my password")
    await async_client.embed(model="all-minilm", input=["a", "b"])
    await async_client.embeddings(model="all-minilm", prompt="a")
    operations = [event["attributes"]["gen_ai.operation.name"] for event in llm_events()]
    assert operations == ["text_completion", "embeddings", "embeddings"]


async def test_async_error_costs_nothing(async_client, fake: FakeOllama, llm_events) -> None:
    fake.enqueue(OllamaReply(status=404))
    with pytest.raises(ollama.ResponseError):
        await async_client.chat(model="llama9", messages=MESSAGES)
    event = llm_events()[0]
    assert Decimal(event["cost_usd"]) == 0
    assert event["attributes"]["error.type"] == "ResponseError"


def test_loopback_server_chat_priced(llm_events) -> None:
    _register_price()
    with FakeOllamaServer() as server:
        client = ollama.Client(host=server.host)
        client.chat(model=MODEL, messages=MESSAGES)
        list(client.chat(model=MODEL, messages=MESSAGES, stream=True))
        client.close()
    events = llm_events()
    assert [Decimal(event["cost_usd"]) for event in events] == [REGISTERED_COST] * 2
