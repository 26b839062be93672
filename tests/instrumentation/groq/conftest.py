"""Real groq clients wired to the fake Groq API through httpx mock transports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import groq
import httpx
import pytest
from tests.instrumentation.groq.fake_groq import FakeGroq

import dexcost

# The mock transport handles every request in-process, so this address is never
# connected to; a loopback address keeps the host out of the provider detection.
BASE_URL = "http://127.0.0.1:8"


@pytest.fixture
def dx(buffer_path: Path) -> Iterator[dexcost.DexcostConfig]:
    """dexcost initialised in local mode on a temporary buffer, instrumenting groq."""
    config = dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["groq"])
    yield config
    dexcost.shutdown()


@pytest.fixture
def fake() -> FakeGroq:
    return FakeGroq()


@pytest.fixture
def client(fake: FakeGroq) -> Iterator[groq.Groq]:
    with groq.Groq(
        api_key="gsk-test",
        base_url=BASE_URL,
        http_client=httpx.Client(transport=fake.httpx_transport()),
        max_retries=0,
    ) as sdk_client:
        yield sdk_client


@pytest.fixture
def async_client(fake: FakeGroq) -> groq.AsyncGroq:
    return groq.AsyncGroq(
        api_key="gsk-test",
        base_url=BASE_URL,
        http_client=httpx.AsyncClient(transport=fake.async_httpx_transport()),
        max_retries=0,
    )


@pytest.fixture
def llm_events(stored: Callable[..., list[dict[str, Any]]]) -> Callable[[], list[dict[str, Any]]]:
    """Return the stored llm_call rows."""
    return lambda: stored("llm_call")
