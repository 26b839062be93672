from __future__ import annotations

import gc
from decimal import Decimal

import openai
import pytest

from dexcost.demo.fake_openai import FakeOpenAI, FakeOpenAIServer, FakeReply, FakeUsage

pytestmark = pytest.mark.usefixtures("dx")

MESSAGES = [{"role": "user", "content": "Reset my password"}]
SMALL = FakeReply(usage=FakeUsage(prompt_tokens=100, completion_tokens=20))


def test_raw_response_untouched_and_priced(client, fake: FakeOpenAI, llm_events) -> None:
    fake.enqueue(SMALL)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.headers["content-type"].startswith("application/json")
    completion = raw.parse()
    assert completion.usage.prompt_tokens == 100
    assert raw.parse() is completion
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.000027")


def test_raw_response_type_is_sdk_own(client) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert type(raw).__module__ == "openai._legacy_response"


async def test_async_raw_response_priced(async_client, fake: FakeOpenAI, llm_events) -> None:
    fake.enqueue(SMALL)
    raw = await async_client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    assert raw.parse().usage.completion_tokens == 20
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.000027")


def test_streaming_response_priced(client, fake: FakeOpenAI, llm_events) -> None:
    fake.enqueue(SMALL)
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    ) as response:
        assert response.headers["content-type"].startswith("application/json")
        completion = response.parse()
    assert completion.usage.total_tokens == 120
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.000027")


async def test_async_streaming_response_priced(async_client, fake: FakeOpenAI, llm_events) -> None:
    fake.enqueue(SMALL)
    async with async_client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    ) as response:
        completion = await response.parse()
    assert completion.usage.prompt_tokens == 100
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.000027")


def test_raw_stream_priced_and_chunk_hidden(client, llm_events) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    chunks = list(raw.parse())
    assert all(chunk.choices for chunk in chunks)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.00036")


def test_streaming_response_lines_untouched(client, fake: FakeOpenAI, llm_events) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    # Raw SSE readers get exactly what they asked for: no usage was requested for them,
    # so the call is recorded as usage_unknown once the response is collected.
    del response
    gc.collect()
    assert "stream_options" not in fake.requests[-1].body
    assert lines[-1] == "data: [DONE]"
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_responses_api_priced(client, llm_events) -> None:
    response = client.responses.create(model="gpt-4o-mini", input="Reset my password")
    assert response.usage.input_tokens == 1200
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.00036")


async def test_async_responses_api_priced(async_client, llm_events) -> None:
    await async_client.responses.create(model="gpt-4o-mini", input="Reset my password")
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.00036")


def test_responses_cached_and_reasoning(client, fake: FakeOpenAI, llm_events) -> None:
    fake.enqueue(
        FakeReply(
            model="gpt-4o-2024-08-06",
            usage=FakeUsage(
                prompt_tokens=17_903, completion_tokens=200, cached_tokens=17_817, reasoning_tokens=50
            ),
        )
    )
    client.responses.create(model="gpt-4o", input="Reset my password")
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.02448625")
    assert event["attributes"]["gen_ai.usage.reasoning.output_tokens"] == 50


def test_embeddings_priced(client, fake: FakeOpenAI, llm_events) -> None:
    fake.enqueue(FakeReply(usage=FakeUsage(prompt_tokens=1_000, completion_tokens=0)))
    client.embeddings.create(model="text-embedding-3-small", input="Reset my password")
    (event,) = llm_events()
    # text-embedding-3-small: $0.02 per million input tokens.
    assert Decimal(event["cost_usd"]) == Decimal("0.00002")
    assert event["attributes"]["gen_ai.operation.name"] == "embeddings"


async def test_async_embeddings_priced(async_client, llm_events) -> None:
    await async_client.embeddings.create(model="text-embedding-3-small", input="x")
    (event,) = llm_events()
    assert event["cost_status"] == "priced"


def test_azure_priced_by_response_model(llm_events) -> None:
    with FakeOpenAIServer(usage=FakeUsage(prompt_tokens=800, completion_tokens=200)) as server:
        with openai.AzureOpenAI(
            api_key="azure-test",
            azure_endpoint=server.azure_endpoint,
            api_version="2024-10-21",
            max_retries=0,
        ) as client:
            stream = client.chat.completions.create(
                model="support-gpt4o", messages=MESSAGES, stream=True
            )
            for _ in stream:
                pass
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.004")
    assert event["attributes"]["gen_ai.provider.name"] == "azure.ai.openai"
    assert event["attributes"]["dexcost.azure.deployment"] == "support-gpt4o"
    assert event["model"] == "gpt-4o-2024-08-06"


def test_loopback_server_chat_and_stream(llm_events) -> None:
    with FakeOpenAIServer(usage=FakeUsage(prompt_tokens=1200, completion_tokens=300)) as server:
        with openai.OpenAI(api_key="sk-test", base_url=server.base_url, max_retries=0) as client:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            list(
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
            )
    events = llm_events()
    assert [Decimal(event["cost_usd"]) for event in events] == [Decimal("0.00036")] * 2
    assert events[0]["attributes"]["server.address"] == "127.0.0.1"


def test_connection_error_is_usage_unknown(llm_events) -> None:
    with (
        openai.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1", max_retries=0) as client,
        pytest.raises(openai.APIConnectionError),
    ):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"
    assert event["attributes"]["error.type"] == "APIConnectionError"
