"""The usage chunk dexcost requests is read from the raw event and kept from the SDK."""

from __future__ import annotations

import pytest

from dexcost.instrumentation.openai.stream import StreamObserver


class _Call:
    finished = False
    provider = "openai"


@pytest.fixture
def observer() -> StreamObserver:
    return StreamObserver(_Call(), "chat", hide_usage_chunk=True)  # type: ignore[arg-type]


USAGE_CHUNK = (
    '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini-2024-07-18",'
    '"service_tier":"default","choices":[],'
    '"usage":{"prompt_tokens":1200,"completion_tokens":300,"total_tokens":1500}}'
)


def test_usage_chunk_taken(observer: StreamObserver) -> None:
    assert observer.take_usage_event(USAGE_CHUNK) is True
    assert observer.usage is not None
    assert observer.usage.input_tokens == 1200
    assert observer.usage.output_tokens == 300
    assert observer.model == "gpt-4o-mini-2024-07-18"
    assert observer.tier == "default"


def test_spaced_usage_chunk_taken(observer: StreamObserver) -> None:
    spaced = '{"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 1}}'
    assert observer.take_usage_event(spaced) is True


@pytest.mark.parametrize(
    "data",
    [
        '{"choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}',
        '{"choices": [{"index": 0}], "usage": null}',
        '{"choices":[{"index":0,"delta":{}}]}',
        '{"choices":[{"index":0}],"usage":{"prompt_tokens":1,"completion_tokens":1}}',
        '{"choices":[],"usage":{"prompt_tokens":-1,"completion_tokens":1}}',
        "[DONE]",
    ],
)
def test_other_events_left_to_sdk(observer: StreamObserver, data: str) -> None:
    assert observer.take_usage_event(data) is False


def test_openrouter_stream_cost_taken() -> None:
    class _OpenRouterCall(_Call):
        provider = "openrouter"

    observer = StreamObserver(_OpenRouterCall(), "chat", hide_usage_chunk=True)  # type: ignore[arg-type]
    chunk = '{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":2,"cost":0.0000123}}'
    assert observer.take_usage_event(chunk) is True
    assert str(observer.reported_cost) == "0.0000123"


def test_other_provider_cost_ignored(observer: StreamObserver) -> None:
    chunk = '{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":2,"cost":5}}'
    assert observer.take_usage_event(chunk) is True
    assert observer.reported_cost is None
