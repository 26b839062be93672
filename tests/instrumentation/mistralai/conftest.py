"""Real mistralai clients wired to the fake Mistral API through httpx2 mock transports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mistralai.client import Mistral

import dexcost

from .fake_mistral import FakeMistral

SERVER_URL = "http://mistral.test"


@pytest.fixture
def dx(buffer_path: Path) -> Iterator[dexcost.DexcostConfig]:
    """dexcost initialised in local mode on a temporary buffer, instrumenting mistralai."""
    config = dexcost.init(
        storage="local", buffer_path=str(buffer_path), auto_instrument=["mistralai"]
    )
    yield config
    dexcost.shutdown()


@pytest.fixture
def fake() -> FakeMistral:
    return FakeMistral()


@pytest.fixture
def client(fake: FakeMistral) -> Mistral:
    return Mistral(
        api_key="mistral-test",
        server_url=SERVER_URL,
        client=httpx2.Client(transport=fake.httpx2_transport()),
        async_client=httpx2.AsyncClient(transport=fake.async_httpx2_transport()),
    )


@pytest.fixture
def llm_events(stored: Callable[..., list[dict[str, Any]]]) -> Callable[[], list[dict[str, Any]]]:
    """Return the stored llm_call rows."""
    return lambda: stored("llm_call")
