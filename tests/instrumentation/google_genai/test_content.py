from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest
from google.genai import errors, types

from dexcost.demo.fake_gemini import FakeGemini, FakeGeminiReply, GeminiUsage
from dexcost.instrumentation.google_genai.patch import _client_facts
from dexcost.pricing import TokenUsage, price_llm

pytestmark = pytest.mark.usefixtures("dx")

FLASH = "gemini-2.5-flash"
PRO = "gemini-2.5-pro"


@pytest.mark.parametrize(
    ("model", "usage", "tokens", "cost"),
    [
        # 1,000 input at $0.30/M + 500 output at $2.50/M.
        (FLASH, GeminiUsage(1_000, 500), TokenUsage(1_000, 500), Decimal("0.00155")),
        # Over 200k prompt tokens the whole request uses the higher tier: $2.50/M in and
        # $15/M out.
        (PRO, GeminiUsage(250_000, 1_000), TokenUsage(250_000, 1_000), Decimal("0.64")),
        # 400 of the 1,000 prompt tokens read from the cache at $0.03/M; 300 answer and
        # 200 thinking tokens, all at the $2.50/M output rate.
        (
            FLASH,
            GeminiUsage(1_000, 300, cached_tokens=400, thoughts_tokens=200),
            TokenUsage(1_000, 500, cache_read_tokens=400, reasoning_tokens=200),
            Decimal("0.001442"),
        ),
    ],
)
def test_generate_content_priced_exactly(
    client, fake: FakeGemini, llm_events, model, usage, tokens, cost
) -> None:
    assert price_llm("gcp.gemini", model, tokens).cost_usd == cost
    fake.enqueue(FakeGeminiReply(usage=usage))
    response = client.models.generate_content(model=model, contents="Reset my password")
    assert response.text
    (event,) = llm_events()
    assert event["cost_status"] == "priced"
    assert Decimal(event["cost_usd"]) == cost
    attributes = event["attributes"]
    assert attributes["gen_ai.provider.name"] == "gcp.gemini"
    assert attributes["gen_ai.operation.name"] == "generate_content"
    assert attributes["gen_ai.usage.input_tokens"] == tokens.input_tokens
    assert attributes["gen_ai.usage.output_tokens"] == tokens.output_tokens
    assert attributes.get("gen_ai.usage.cache_read.input_tokens", 0) == tokens.cache_read_tokens
    assert attributes["server.address"] == "fake.test"


def test_audio_prompt_priced_at_audio_rate(client, fake, llm_events) -> None:
    # gemini-2.5-flash: text input $0.30, audio input $1.00, output $2.50 per million.
    # 600 text * 0.30 + 400 audio * 1.00 + 300 output * 2.50 = 1,330 per million.
    fake.enqueue(FakeGeminiReply(usage=GeminiUsage(1_000, 300, audio_prompt_tokens=400)))
    client.models.generate_content(model=FLASH, contents="Transcribe this call")

    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.00133")
    assert event["input_tokens"] == 1_000


def test_cached_and_reasoning_attributes(client, fake, llm_events) -> None:
    usage = GeminiUsage(1_000, 300, cached_tokens=400, thoughts_tokens=200)
    fake.enqueue(FakeGeminiReply(usage=usage))
    client.models.generate_content(model=FLASH, contents="hi")
    (event,) = llm_events()
    assert (event["input_tokens"], event["output_tokens"]) == (1_000, 500)
    assert event["cache_read_tokens"] == 400
    assert event["reasoning_tokens"] == 200
    assert event["attributes"]["gen_ai.usage.reasoning.output_tokens"] == 200


def test_response_model_version_used(client, fake, llm_events) -> None:
    fake.enqueue(FakeGeminiReply(model_version=FLASH))
    client.models.generate_content(model="models/gemini-flash-latest", contents="hi")
    (event,) = llm_events()
    assert event["attributes"]["gen_ai.request.model"] == "gemini-flash-latest"
    assert event["attributes"]["gen_ai.response.model"] == FLASH
    assert Decimal(event["cost_usd"]) == Decimal("0.00155")


def test_request_model_without_prefix_when_no_model_version(client, fake, llm_events) -> None:
    fake.enqueue(FakeGeminiReply(model_version=""))
    client.models.generate_content(model=f"models/{FLASH}", contents="hi")
    (event,) = llm_events()
    assert event["attributes"]["gen_ai.request.model"] == FLASH
    assert "gen_ai.response.model" not in event["attributes"]
    assert Decimal(event["cost_usd"]) == Decimal("0.00155")


def test_missing_usage_is_unknown(client, fake, llm_events) -> None:
    fake.enqueue(FakeGeminiReply(omit_usage=True))
    client.models.generate_content(model=FLASH, contents="hi")
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"
    assert event["cost_usd"] is None


async def test_async_generate_content_priced(client, llm_events) -> None:
    response = await client.aio.models.generate_content(model=FLASH, contents="hi")
    assert response.text
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.00155")


def test_api_error_reraised_with_one_free_event(client, fake, llm_events) -> None:
    fake.enqueue(FakeGeminiReply(status=400))
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model=FLASH, contents="hi")
    assert type(raised.value) is errors.ClientError
    assert raised.value.code == 400
    assert "scripted by the fake" in str(raised.value)
    (event,) = llm_events()
    assert event["cost_status"] == "priced"
    assert Decimal(event["cost_usd"]) == 0
    assert event["attributes"]["error.type"] == "ClientError"


async def test_async_api_error_reraised_with_one_free_event(client, fake, llm_events) -> None:
    fake.enqueue(FakeGeminiReply(status=400))
    with pytest.raises(errors.ClientError):
        await client.aio.models.generate_content(model=FLASH, contents="hi")
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == 0


def test_chat_session_priced(client, llm_events) -> None:
    chat = client.chats.create(model=FLASH)
    chat.send_message("hi")
    chat.send_message("again")
    events = llm_events()
    assert len(events) == 2
    assert all(Decimal(event["cost_usd"]) == Decimal("0.00155") for event in events)


def test_embed_content_priced_from_usage(client, fake, llm_events) -> None:
    fake.embed_usage = GeminiUsage(prompt_tokens=1_000)
    # 1,000 input tokens at $0.15/M.
    assert price_llm("gcp.gemini", "gemini-embedding-001", TokenUsage(1_000)).cost_usd == Decimal(
        "0.00015"
    )
    result = client.models.embed_content(model="gemini-embedding-001", contents=["a", "b"])
    assert len(result.embeddings) == 2
    (event,) = llm_events()
    assert event["attributes"]["gen_ai.operation.name"] == "embeddings"
    assert Decimal(event["cost_usd"]) == Decimal("0.00015")


async def test_async_embed_content_without_usage_unknown(client, llm_events) -> None:
    await client.aio.models.embed_content(model="gemini-embedding-001", contents="a")
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


def test_vertex_client_provider() -> None:
    vertex = SimpleNamespace(
        _api_client=SimpleNamespace(
            vertexai=True,
            _http_options=SimpleNamespace(base_url="https://us-central1-aiplatform.example/"),
        )
    )
    assert _client_facts(vertex) == ("gcp.vertex_ai", "us-central1-aiplatform.example")
    gemini = SimpleNamespace(_api_client=SimpleNamespace(vertexai=None, _http_options=None))
    assert _client_facts(gemini) == ("gcp.gemini", None)


def test_each_automatic_function_calling_request_priced(client, fake, llm_events) -> None:
    """generate_content sends two requests here; each one is an event of its own."""

    def get_weather(city: str) -> str:
        """Return the weather in a city."""
        return "sunny"

    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    fake.enqueue(
        FakeGeminiReply(
            body={
                "candidates": [{"content": {"role": "model", "parts": [call]}, "index": 0}],
                "usageMetadata": {"promptTokenCount": 2_000, "candidatesTokenCount": 100},
                "modelVersion": FLASH,
            }
        ),
        FakeGeminiReply(),
    )
    response = client.models.generate_content(
        model=FLASH,
        contents="Weather in Paris?",
        config=types.GenerateContentConfig(tools=[get_weather]),
    )
    assert response.text
    first, second = llm_events()
    # 2,000 in at $0.30/M + 100 out at $2.50/M; then 1,000 in + 500 out.
    assert Decimal(first["cost_usd"]) == Decimal("0.00085")
    assert Decimal(second["cost_usd"]) == Decimal("0.00155")
