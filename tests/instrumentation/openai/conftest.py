"""Real openai clients wired to the fake OpenAI API through a mock transport."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from dexcost.demo.fake_openai import FakeOpenAI, FakeUsage
from dexcost.instrumentation.registry import parse_version

# openai 3.x is built on httpx2; 1.x and 2.x on httpx.
USES_HTTPX2 = parse_version(openai.__version__) >= (3,)


def http_client(fake: FakeOpenAI, *, asynchronous: bool) -> Any:
    if USES_HTTPX2:
        import httpx2

        if asynchronous:
            return httpx2.AsyncClient(transport=fake.async_httpx2_transport())
        return httpx2.Client(transport=fake.httpx2_transport())
    import httpx

    if asynchronous:
        return httpx.AsyncClient(transport=fake.async_httpx_transport())
    return httpx.Client(transport=fake.httpx_transport())


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI(usage=FakeUsage(prompt_tokens=1200, completion_tokens=300))


@pytest.fixture
def client(fake: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        api_key="sk-test", base_url="http://fake.test/v1", http_client=http_client(fake, asynchronous=False),
        max_retries=0,
    ) as sdk_client:
        yield sdk_client


@pytest.fixture
def async_client(fake: FakeOpenAI) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="sk-test", base_url="http://fake.test/v1", http_client=http_client(fake, asynchronous=True),
        max_retries=0,
    )


@pytest.fixture
def llm_events(stored: Callable[..., list[dict[str, Any]]]) -> Callable[[], list[dict[str, Any]]]:
    """Return the stored llm_call rows."""
    return lambda: stored("llm_call")


@pytest.fixture
def make_http_client() -> Callable[..., Any]:
    """Return the http client factory, for tests that build their own openai clients."""
    return http_client
