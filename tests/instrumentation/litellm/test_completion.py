"""litellm.completion / acompletion / embedding record each request once, at list price."""

from __future__ import annotations

import anthropic
import litellm
import pytest
from litellm import completion as completion_imported_early

from dexcost import semconv
from dexcost.demo.fake_anthropic import AnthropicUsage, FakeAnthropicServer
from dexcost.demo.fake_openai import FakeOpenAIServer, FakeReply, FakeUsage

from .conftest import LITELLM_WARNING_FILTERS, MESSAGES, anthropic_kwargs, openai_kwargs

pytestmark = LITELLM_WARNING_FILTERS

# claude-sonnet-4 list prices per million tokens: $3 input, $0.30 cache read,
# $3.75 cache write (5 minutes), $15 output.
# 200 x 3 + 5,000 x 0.30 + 1,000 x 3.75 + 300 x 15 = 10,350 per million = $0.01035.
SONNET_CACHED_COST = "0.01035"
# gpt-4o-mini: $0.15 input, $0.60 output per million tokens.
# 1,200 x 0.15 + 300 x 0.60 = 360 per million = $0.00036.
MINI_COST = "0.00036"
# text-embedding-3-small: $0.02 per million input tokens. 1,200 x 0.02 = $0.000024.
EMBEDDING_COST = "0.000024"


def test_completion_anthropic_cached_costs_exact(dx, anthropic_api, llm_events) -> None:
    litellm.completion(**anthropic_kwargs(anthropic_api))

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == SONNET_CACHED_COST


def test_completion_anthropic_counts_inclusive_input(dx, anthropic_api, llm_events) -> None:
    litellm.completion(**anthropic_kwargs(anthropic_api))

    attributes = llm_events()[0]["attributes"]
    # litellm's prompt_tokens already contains 200 + 5,000 + 1,000.
    assert attributes[semconv.GEN_AI_INPUT_TOKENS] == 6_200
    assert attributes[semconv.GEN_AI_CACHE_READ_TOKENS] == 5_000
    assert attributes[semconv.GEN_AI_CACHE_CREATION_TOKENS] == 1_000


def test_completion_anthropic_names_provider_and_model(dx, anthropic_api, llm_events) -> None:
    litellm.completion(**anthropic_kwargs(anthropic_api))

    attributes = llm_events()[0]["attributes"]
    assert attributes[semconv.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert attributes[semconv.GEN_AI_REQUEST_MODEL] == "claude-sonnet-4-20250514"
    assert attributes[semconv.GEN_AI_RESPONSE_MODEL] == "claude-sonnet-4-20250514"
    assert attributes[semconv.ROUTED_BY] == "litellm"


def test_anthropic_sdk_same_reply_costs_same(dx_all, anthropic_api, llm_events) -> None:
    with anthropic.Anthropic(
        api_key="sk-ant-test", base_url=anthropic_api.base_url, max_retries=0
    ) as client:
        client.messages.create(model="claude-sonnet-4-20250514", max_tokens=64, messages=MESSAGES)

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == SONNET_CACHED_COST


def test_completion_anthropic_with_sdks_instrumented_once(
    dx_all, anthropic_api, llm_events
) -> None:
    litellm.completion(**anthropic_kwargs(anthropic_api))

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == SONNET_CACHED_COST


def test_completion_openai_with_sdk_instrumented_once(dx_all, openai_api, llm_events) -> None:
    litellm.completion(**openai_kwargs(openai_api))

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == MINI_COST
    assert rows[0]["attributes"][semconv.ROUTED_BY] == "litellm"


def test_completion_openai_litellm_only_once(dx, openai_api, llm_events) -> None:
    litellm.completion(**openai_kwargs(openai_api))

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == MINI_COST
    assert rows[0]["attributes"][semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini-2024-07-18"


def test_completion_returns_litellm_response(dx, openai_api) -> None:
    response = litellm.completion(**openai_kwargs(openai_api))

    assert isinstance(response, litellm.ModelResponse)
    assert response.usage.prompt_tokens == 1_200


def test_completion_positional_model_is_read(dx, openai_api, llm_events) -> None:
    kwargs = openai_kwargs(openai_api)
    model = kwargs.pop("model")
    litellm.completion(model, **kwargs)

    assert llm_events()[0]["attributes"][semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"


def test_completion_imported_before_init_recorded(dx, openai_api, llm_events) -> None:
    # This module bound the name when it was imported, before dexcost.init().
    completion_imported_early(**openai_kwargs(openai_api))

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == MINI_COST


async def test_acompletion_anthropic_cached_costs_exact(dx, anthropic_api, llm_events) -> None:
    await litellm.acompletion(**anthropic_kwargs(anthropic_api))

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == SONNET_CACHED_COST


async def test_acompletion_openai_with_sdk_once(dx_all, openai_api, llm_events) -> None:
    await litellm.acompletion(**openai_kwargs(openai_api))

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == MINI_COST


async def test_completion_async_flag_recorded_once(dx, openai_api, llm_events) -> None:
    await litellm.completion(**openai_kwargs(openai_api), acompletion=True)

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == MINI_COST


def test_completion_unknown_model_unpriced_keeps_tokens(dx, openai_api, llm_events) -> None:
    openai_api.enqueue(FakeReply(model="house-model-7"))
    litellm.completion(**openai_kwargs(openai_api, model="openai/house-model-7"))

    attributes = llm_events()[0]["attributes"]
    assert attributes[semconv.COST_STATUS] == semconv.UNPRICED
    assert attributes[semconv.GEN_AI_INPUT_TOKENS] == 1_200
    assert attributes[semconv.GEN_AI_OUTPUT_TOKENS] == 300


def test_completion_mock_response_not_recorded(dx, llm_events) -> None:
    litellm.completion(model="openai/gpt-4o-mini", messages=MESSAGES, mock_response="Done.")

    assert llm_events() == []


def test_completion_without_init_not_recorded(openai_api, stored) -> None:
    response = litellm.completion(**openai_kwargs(openai_api))

    assert response.usage.completion_tokens == 300


def test_embedding_openai_litellm_only_costs_exact(dx, openai_api, llm_events) -> None:
    litellm.embedding(
        model="openai/text-embedding-3-small",
        input=["reset", "password"],
        api_base=openai_api.base_url,
        api_key="sk-test",
    )

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == EMBEDDING_COST
    assert rows[0]["attributes"][semconv.GEN_AI_OPERATION_NAME] == "embeddings"


def test_embedding_through_openai_sdk_recorded_once(dx_all, openai_api, llm_events) -> None:
    # With encoding_format litellm calls the SDK's embeddings.create, which the
    # openai instrumentation records; the litellm record is then dropped.
    litellm.embedding(
        model="openai/text-embedding-3-small",
        input=["reset"],
        encoding_format="float",
        api_base=openai_api.base_url,
        api_key="sk-test",
    )

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.SERVER_ADDRESS] == "127.0.0.1"
    assert rows[0]["attributes"][semconv.ROUTED_BY] == "litellm"


async def test_aembedding_openai_costs_exact(dx, openai_api, llm_events) -> None:
    await litellm.aembedding(
        model="openai/text-embedding-3-small",
        input=["reset"],
        api_base=openai_api.base_url,
        api_key="sk-test",
    )

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == EMBEDDING_COST


def test_router_completion_recorded_once(dx, openai_api, llm_events) -> None:
    router = litellm.Router(
        model_list=[
            {
                "model_name": "support-bot",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_base": openai_api.base_url,
                    "api_key": "sk-test",
                },
            }
        ]
    )
    router.completion(model="support-bot", messages=MESSAGES)

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == MINI_COST


async def test_router_acompletion_recorded_once(dx, anthropic_api, llm_events) -> None:
    router = litellm.Router(
        model_list=[
            {
                "model_name": "support-bot",
                "litellm_params": {
                    "model": "anthropic/claude-sonnet-4-20250514",
                    "api_base": anthropic_api.base_url,
                    "api_key": "sk-ant-test",
                },
            }
        ]
    )
    await router.acompletion(model="support-bot", messages=MESSAGES, max_tokens=64)

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == SONNET_CACHED_COST


@pytest.mark.parametrize(
    ("usage", "cost"),
    [
        # 2,000 x 0.15 + 0 = 300 per million.
        (FakeUsage(prompt_tokens=2_000, completion_tokens=0), "0.0003"),
        # 0 + 1,000 x 0.60 = 600 per million.
        (FakeUsage(prompt_tokens=0, completion_tokens=1_000), "0.0006"),
    ],
)
def test_completion_openai_cost_follows_usage(
    dx, openai_api: FakeOpenAIServer, llm_events, usage, cost
) -> None:
    openai_api.enqueue(FakeReply(usage=usage))
    litellm.completion(**openai_kwargs(openai_api))

    assert llm_events()[0]["attributes"][semconv.COST_USD] == cost


def test_completion_anthropic_without_cache_costs(
    dx, anthropic_api: FakeAnthropicServer, llm_events
) -> None:
    anthropic_api.usage = AnthropicUsage(input_tokens=1_000, output_tokens=100)
    litellm.completion(**anthropic_kwargs(anthropic_api))

    # 1,000 x 3 + 100 x 15 = 4,500 per million = $0.0045.
    assert llm_events()[0]["attributes"][semconv.COST_USD] == "0.0045"
