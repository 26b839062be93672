"""Real anthropic clients wired to the fake Anthropic API through a mock transport."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

import dexcost
from dexcost.demo.fake_anthropic import AnthropicUsage, FakeAnthropic
from dexcost.instrumentation.registry import parse_version

# anthropic 2.x is built on httpx2; earlier releases on httpx.
USES_HTTPX2 = parse_version(anthropic.__version__) >= (2,)


def http_client(fake: FakeAnthropic, *, asynchronous: bool) -> Any:
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
def dx(buffer_path: Path) -> Iterator[dexcost.DexcostConfig]:
    """dexcost initialised in local mode on a temporary buffer, instrumenting anthropic."""
    config = dexcost.init(
        storage="local", buffer_path=str(buffer_path), auto_instrument=["anthropic"]
    )
    yield config
    dexcost.shutdown()


@pytest.fixture
def fake() -> FakeAnthropic:
    return FakeAnthropic(usage=AnthropicUsage(input_tokens=1000, output_tokens=300))


@pytest.fixture
def client(fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        api_key="sk-ant-test",
        base_url="http://fake.test",
        http_client=http_client(fake, asynchronous=False),
        max_retries=0,
    ) as sdk_client:
        yield sdk_client


@pytest.fixture
def async_client(fake: FakeAnthropic) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key="sk-ant-test",
        base_url="http://fake.test",
        http_client=http_client(fake, asynchronous=True),
        max_retries=0,
    )


@pytest.fixture
def llm_events(stored: Callable[..., list[dict[str, Any]]]) -> Callable[[], list[dict[str, Any]]]:
    """Return the stored llm_call rows."""
    return lambda: stored("llm_call")
