"""Failed litellm calls: error replies cost $0, lost connections stay usage_unknown."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import litellm
import pytest

from dexcost import semconv
from dexcost.demo.fake_anthropic import FakeAnthropicReply, FakeAnthropicServer
from dexcost.demo.fake_openai import FakeReply

from .conftest import LITELLM_WARNING_FILTERS, anthropic_kwargs, openai_kwargs

pytestmark = LITELLM_WARNING_FILTERS


def test_error_bad_request_costs_nothing(dx, anthropic_api, llm_events) -> None:
    anthropic_api.enqueue(FakeAnthropicReply(status=400))
    with pytest.raises(litellm.BadRequestError):
        litellm.completion(**anthropic_kwargs(anthropic_api))

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == "0"
    assert rows[0]["attributes"][semconv.COST_STATUS] == semconv.PRICED


def test_error_type_is_recorded(dx, anthropic_api, llm_events) -> None:
    anthropic_api.enqueue(FakeAnthropicReply(status=400))
    with pytest.raises(litellm.BadRequestError):
        litellm.completion(**anthropic_kwargs(anthropic_api))

    assert llm_events()[0]["attributes"][semconv.ERROR_TYPE] == "BadRequestError"


def test_error_reaches_caller_unchanged(dx, openai_api) -> None:
    openai_api.enqueue(FakeReply(status=401))
    with pytest.raises(litellm.AuthenticationError) as caught:
        litellm.completion(**openai_kwargs(openai_api))

    assert caught.value.status_code == 401


def test_error_server_reply_costs_nothing(dx, openai_api, llm_events) -> None:
    openai_api.enqueue(FakeReply(status=500))
    with pytest.raises(litellm.InternalServerError):
        litellm.completion(**openai_kwargs(openai_api), max_retries=0)

    assert llm_events()[0]["attributes"][semconv.COST_USD] == "0"


def test_error_with_sdk_instrumented_once(dx_all, openai_api, llm_events) -> None:
    openai_api.enqueue(FakeReply(status=400))
    with pytest.raises(litellm.BadRequestError):
        litellm.completion(**openai_kwargs(openai_api))

    assert len(llm_events()) == 1


def test_error_refused_connection_usage_unknown(dx, closed_port, llm_events) -> None:
    # litellm reports a refused connection as InternalServerError (status 500).
    with pytest.raises(litellm.InternalServerError):
        litellm.completion(
            model="anthropic/claude-sonnet-4-20250514",
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=64,
            api_base=f"http://127.0.0.1:{closed_port}",
            api_key="sk-ant-test",
        )

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_STATUS] == semconv.USAGE_UNKNOWN


def test_error_openai_refused_usage_unknown(dx, closed_port, llm_events) -> None:
    with pytest.raises(litellm.InternalServerError):
        litellm.completion(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "Hi"}],
            api_base=f"http://127.0.0.1:{closed_port}/v1",
            api_key="sk-test",
            max_retries=0,
        )

    assert llm_events()[0]["attributes"][semconv.COST_STATUS] == semconv.USAGE_UNKNOWN


class SlowAnthropic(FakeAnthropicServer):
    """The fake Anthropic API, replying to each request after half a second."""

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Any:
        time.sleep(0.5)
        return super().handle(method, target, headers, body)


def test_error_timeout_usage_unknown(dx, llm_events) -> None:
    with SlowAnthropic() as slow, pytest.raises(litellm.Timeout):
        litellm.completion(**anthropic_kwargs(slow), timeout=0.1)

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_STATUS] == semconv.USAGE_UNKNOWN


async def test_error_async_bad_request_costs_nothing(dx, anthropic_api, llm_events) -> None:
    anthropic_api.enqueue(FakeAnthropicReply(status=400))
    with pytest.raises(litellm.BadRequestError):
        await litellm.acompletion(**anthropic_kwargs(anthropic_api))

    assert llm_events()[0]["attributes"][semconv.COST_USD] == "0"


def test_error_unknown_provider_costs_nothing(dx, llm_events) -> None:
    with pytest.raises(litellm.BadRequestError):
        litellm.completion(
            model="no-such-provider-model-x", messages=[{"role": "user", "content": "Hi"}]
        )

    rows = llm_events()
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.GEN_AI_PROVIDER_NAME] == "litellm"
