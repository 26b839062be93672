"""Real google-genai clients wired to the fake Gemini API through httpx2 mock transports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from google import genai
from google.genai import types

import dexcost
from dexcost.demo.fake_gemini import FakeGemini, GeminiUsage


def make_client(fake: FakeGemini) -> genai.Client:
    """A Gemini API client whose every request goes to ``fake``, never to a network."""
    return genai.Client(
        api_key="gemini-test-key",
        http_options=types.HttpOptions(
            base_url="http://fake.test",
            httpx_client=httpx2.Client(transport=fake.httpx2_transport()),
            httpx_async_client=httpx2.AsyncClient(transport=fake.async_httpx2_transport()),
        ),
    )


@pytest.fixture
def dx(buffer_path: Path) -> Iterator[dexcost.DexcostConfig]:
    """dexcost initialised in local mode on a temporary buffer, instrumenting google-genai."""
    config = dexcost.init(
        storage="local", buffer_path=str(buffer_path), auto_instrument=["google_genai"]
    )
    yield config
    dexcost.shutdown()


@pytest.fixture
def fake() -> FakeGemini:
    return FakeGemini(usage=GeminiUsage(prompt_tokens=1_000, candidates_tokens=500))


@pytest.fixture
def client(fake: FakeGemini) -> genai.Client:
    return make_client(fake)


@pytest.fixture
def llm_events(stored: Callable[..., list[dict[str, Any]]]) -> Callable[[], list[dict[str, Any]]]:
    """Return the stored llm_call rows."""
    return lambda: stored("llm_call")
