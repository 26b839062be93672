"""litellm streams are priced once when they end and usage_unknown when left early."""

from __future__ import annotations

import gc

import litellm
import pytest

from dexcost import semconv
from dexcost.demo.fake_anthropic import FakeAnthropicReply
from dexcost.demo.fake_openai import FakeReply

from .conftest import LITELLM_WARNING_FILTERS, anthropic_kwargs, openai_kwargs

pytestmark = LITELLM_WARNING_FILTERS

# claude-sonnet-4: 200 x 3 + 5,000 x 0.30 + 1,000 x 3.75 + 300 x 15 per million.
SONNET_CACHED_COST = "0.01035"
# gpt-4o-mini: 1,200 x 0.15 + 300 x 0.60 per million.
MINI_COST = "0.00036"


def test_stream_anthropic_read_fully_costs_exact(dx, anthropic_api, llm_events) -> None:
    for _chunk in litellm.completion(**anthropic_kwargs(anthropic_api), stream=True):
        pass

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == SONNET_CACHED_COST
    assert rows[0]["attributes"][semconv.STREAMED] is True


def test_stream_anthropic_keeps_final_output_count(dx, anthropic_api, llm_events) -> None:
    # The first event reports 1 output token; the last one reports the final 300.
    for _chunk in litellm.completion(**anthropic_kwargs(anthropic_api), stream=True):
        pass

    assert llm_events()[0]["attributes"][semconv.GEN_AI_OUTPUT_TOKENS] == 300


def test_stream_returns_litellm_wrapper(dx, anthropic_api) -> None:
    stream = litellm.completion(**anthropic_kwargs(anthropic_api), stream=True)

    assert type(stream).__name__ == "CustomStreamWrapper"
    stream.close()


def test_stream_break_and_close_usage_unknown(dx, anthropic_api, llm_events) -> None:
    stream = litellm.completion(**anthropic_kwargs(anthropic_api), stream=True)
    for _chunk in stream:
        break
    stream.close()

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_STATUS] == semconv.USAGE_UNKNOWN


def test_stream_context_exit_early_usage_unknown(dx, anthropic_api, llm_events) -> None:
    with litellm.completion(**anthropic_kwargs(anthropic_api), stream=True) as stream:
        next(stream)

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_STATUS] == semconv.USAGE_UNKNOWN


def test_stream_dropped_unread_usage_unknown(dx, anthropic_api, llm_events) -> None:
    litellm.completion(**anthropic_kwargs(anthropic_api), stream=True)
    gc.collect()

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_STATUS] == semconv.USAGE_UNKNOWN


def test_stream_close_after_end_records_once(dx, anthropic_api, llm_events) -> None:
    stream = litellm.completion(**anthropic_kwargs(anthropic_api), stream=True)
    for _chunk in stream:
        pass
    stream.close()
    del stream
    gc.collect()

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == SONNET_CACHED_COST


def test_stream_openai_usage_chunk_hidden(dx, openai_api, llm_events) -> None:
    chunks = list(litellm.completion(**openai_kwargs(openai_api), stream=True))

    assert all(chunk.choices for chunk in chunks)
    assert llm_events()[0]["attributes"][semconv.COST_USD] == MINI_COST


def test_stream_openai_asks_for_usage(dx, openai_api) -> None:
    list(litellm.completion(**openai_kwargs(openai_api), stream=True))

    assert openai_api.requests[-1].body["stream_options"] == {"include_usage": True}


def test_stream_openai_caller_usage_chunk_kept(dx, openai_api, llm_events) -> None:
    options = {"include_usage": True}
    chunks = list(
        litellm.completion(**openai_kwargs(openai_api, stream_options=options), stream=True)
    )

    assert chunks[-1].usage.prompt_tokens == 1_200
    assert llm_events()[0]["attributes"][semconv.COST_USD] == MINI_COST


def test_stream_openai_caller_opt_out_kept(dx, openai_api, llm_events) -> None:
    options = {"include_usage": False}
    list(litellm.completion(**openai_kwargs(openai_api, stream_options=options), stream=True))

    assert llm_events()[0]["attributes"][semconv.COST_STATUS] == semconv.USAGE_UNKNOWN


def test_stream_openai_with_sdk_instrumented_once(dx_all, openai_api, llm_events) -> None:
    list(litellm.completion(**openai_kwargs(openai_api), stream=True))

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == MINI_COST


def test_stream_without_usage_is_usage_unknown(dx, openai_api, llm_events) -> None:
    openai_api.enqueue(FakeReply(usage=None))
    list(litellm.completion(**openai_kwargs(openai_api), stream=True))

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_STATUS] == semconv.USAGE_UNKNOWN


async def test_astream_anthropic_read_fully_costs_exact(dx, anthropic_api, llm_events) -> None:
    stream = await litellm.acompletion(**anthropic_kwargs(anthropic_api), stream=True)
    async for _chunk in stream:
        pass

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == SONNET_CACHED_COST


async def test_astream_aclose_early_usage_unknown(dx, anthropic_api, llm_events) -> None:
    stream = await litellm.acompletion(**anthropic_kwargs(anthropic_api), stream=True)
    await stream.__anext__()
    await stream.aclose()

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_STATUS] == semconv.USAGE_UNKNOWN


async def test_astream_openai_usage_chunk_hidden(dx, openai_api, llm_events) -> None:
    stream = await litellm.acompletion(**openai_kwargs(openai_api), stream=True)
    chunks = [chunk async for chunk in stream]

    assert all(chunk.choices for chunk in chunks)
    assert llm_events()[0]["attributes"][semconv.COST_USD] == MINI_COST


def test_stream_rejected_request_costs_nothing(dx, anthropic_api, llm_events) -> None:
    anthropic_api.enqueue(FakeAnthropicReply(status=400))
    with pytest.raises(litellm.BadRequestError):
        litellm.completion(**anthropic_kwargs(anthropic_api), stream=True)

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == "0"
