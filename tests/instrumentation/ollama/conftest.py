"""Real ollama clients wired to the fake Ollama API through httpx mock transports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ollama
import pytest
from tests.instrumentation.ollama.fake_ollama import FakeOllama

import dexcost
from dexcost.pricing import clear_model_prices

# The mock transport handles every request in-process, so this address is never
# connected to.
HOST = "http://127.0.0.1:8"


@pytest.fixture
def dx(buffer_path: Path) -> Iterator[dexcost.DexcostConfig]:
    """dexcost initialised in local mode on a temporary buffer, instrumenting ollama."""
    config = dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["ollama"])
    yield config
    dexcost.shutdown()


@pytest.fixture(autouse=True)
def _no_registered_prices() -> Iterator[None]:
    """Start and end each test with no user-registered price."""
    clear_model_prices()
    yield
    clear_model_prices()


@pytest.fixture
def fake() -> FakeOllama:
    return FakeOllama()


@pytest.fixture
def client(fake: FakeOllama) -> Iterator[ollama.Client]:
    # The ollama client passes unknown keyword arguments on to httpx.Client.
    with ollama.Client(host=HOST, transport=fake.httpx_transport()) as sdk_client:
        yield sdk_client


@pytest.fixture
def async_client(fake: FakeOllama) -> ollama.AsyncClient:
    return ollama.AsyncClient(host=HOST, transport=fake.async_httpx_transport())


@pytest.fixture
def llm_events(stored: Callable[..., list[dict[str, Any]]]) -> Callable[[], list[dict[str, Any]]]:
    """Return the stored llm_call rows."""
    return lambda: stored("llm_call")
