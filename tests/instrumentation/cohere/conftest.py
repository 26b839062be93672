"""Real cohere clients wired to the fake Cohere API through httpx mock transports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cohere
import httpx
import pytest

import dexcost

from .fake_cohere import FakeCohere

BASE_URL = "http://cohere.test"


@pytest.fixture
def dx(buffer_path: Path) -> Iterator[dexcost.DexcostConfig]:
    """dexcost initialised in local mode on a temporary buffer, instrumenting cohere."""
    config = dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["cohere"])
    yield config
    dexcost.shutdown()


@pytest.fixture
def fake() -> FakeCohere:
    return FakeCohere()


def _settings(fake: FakeCohere, *, asynchronous: bool) -> dict[str, Any]:
    transport = fake.async_httpx_transport() if asynchronous else fake.httpx_transport()
    http_client = (
        httpx.AsyncClient(transport=transport)
        if asynchronous
        else httpx.Client(transport=transport)
    )
    return {
        "api_key": "co-test",
        "base_url": BASE_URL,
        "httpx_client": http_client,
        "max_retries": 0,
    }


@pytest.fixture
def client_v2(fake: FakeCohere) -> cohere.ClientV2:
    return cohere.ClientV2(**_settings(fake, asynchronous=False))


@pytest.fixture
def async_client_v2(fake: FakeCohere) -> cohere.AsyncClientV2:
    return cohere.AsyncClientV2(**_settings(fake, asynchronous=True))


@pytest.fixture
def client_v1(fake: FakeCohere) -> cohere.Client:
    return cohere.Client(**_settings(fake, asynchronous=False))


@pytest.fixture
def async_client_v1(fake: FakeCohere) -> cohere.AsyncClient:
    return cohere.AsyncClient(**_settings(fake, asynchronous=True))


@pytest.fixture
def llm_events(stored: Callable[..., list[dict[str, Any]]]) -> Callable[[], list[dict[str, Any]]]:
    """Return the stored llm_call rows."""
    return lambda: stored("llm_call")
