"""The fake OpenAI API, driven by the real ``openai`` SDK with no dexcost involved.

Each SDK call here parses the fake's replies with the SDK's own types and
stream decoders, so a passing test shows the fake speaks the wire format the
installed SDK expects. The ``backend`` fixture runs a test once over real
HTTP and once per mock transport the installed SDK accepts: openai 1.x takes
only ``httpx`` clients, openai 3.x takes ``httpx2`` clients and still accepts
``httpx`` ones.
"""

from __future__ import annotations

import base64
import importlib
import importlib.util
import json
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest

from dexcost.demo._payloads import split_text
from dexcost.demo.fake_openai import (
    DEFAULT_TEXT,
    FakeOpenAI,
    FakeOpenAIServer,
    FakeReply,
    FakeUsage,
    error_body,
)

MESSAGES = [{"role": "user", "content": "I cannot sign in."}]

# No traffic leaves the process on the mock transports; the URL is only
# parsed. It names loopback so that a transport mix-up cannot reach a host.
MOCK_BASE = "http://127.0.0.1:9"
API_VERSION = "2024-10-21"

SDK_USES_HTTPX2 = hasattr(openai, "DefaultHttpx2Client")


@dataclass
class Backend:
    """One way to reach a ``FakeOpenAI``: its name, the fake, and client factories."""

    name: str
    fake: FakeOpenAI
    _clients: list[Any] = field(default_factory=list)

    def client(self, **options: Any) -> openai.OpenAI:
        """Build an ``openai.OpenAI`` client; it is closed after the test."""
        client = openai.OpenAI(
            api_key="test-key",
            base_url=self._root() + "/v1",
            http_client=self._http_client(asynchronous=False),
            **options,
        )
        self._clients.append(client)
        return client

    def async_client(self, **options: Any) -> openai.AsyncOpenAI:
        """Build an ``openai.AsyncOpenAI`` client; the test must close it."""
        return openai.AsyncOpenAI(
            api_key="test-key",
            base_url=self._root() + "/v1",
            http_client=self._http_client(asynchronous=True),
            **options,
        )

    def azure_client(self, **options: Any) -> openai.AzureOpenAI:
        """Build an ``openai.AzureOpenAI`` client; it is closed after the test."""
        client = openai.AzureOpenAI(
            api_key="test-key",
            azure_endpoint=self._root(),
            api_version=API_VERSION,
            http_client=self._http_client(asynchronous=False),
            **options,
        )
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def _root(self) -> str:
        if isinstance(self.fake, FakeOpenAIServer):
            return self.fake.url
        return MOCK_BASE

    def _http_client(self, *, asynchronous: bool) -> Any:
        if self.name == "http":
            return None
        module = importlib.import_module(self.name.removesuffix("_mock"))
        if self.name == "httpx_mock":
            transport = (
                self.fake.async_httpx_transport() if asynchronous else self.fake.httpx_transport()
            )
        else:
            transport = (
                self.fake.async_httpx2_transport() if asynchronous else self.fake.httpx2_transport()
            )
        client_class = module.AsyncClient if asynchronous else module.Client
        return client_class(transport=transport)


def _backend_params() -> list[Any]:
    httpx2_missing = not SDK_USES_HTTPX2 or importlib.util.find_spec("httpx2") is None
    return [
        "http",
        "httpx_mock",
        pytest.param(
            "httpx2_mock",
            marks=pytest.mark.skipif(
                httpx2_missing, reason="the installed openai SDK does not run on httpx2"
            ),
        ),
    ]


@pytest.fixture(params=_backend_params())
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    name: str = request.param
    if name == "http":
        with FakeOpenAIServer() as server:
            chosen = Backend(name, server)
            yield chosen
            chosen.close()
        return
    chosen = Backend(name, FakeOpenAI())
    yield chosen
    chosen.close()


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as running:
        yield running


def _fields_sent(model: Any) -> set[str]:
    """Names of the fields that were present in the JSON the SDK parsed."""
    return set(model.model_fields_set)


# Chat completions


def test_chat_completion_plain(backend: Backend) -> None:
    client = backend.client()

    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini-2024-07-18"
    assert completion.choices[0].message.content == DEFAULT_TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 100
    assert completion.usage.completion_tokens == 20
    assert completion.usage.total_tokens == 120
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    assert completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 0


def test_chat_stream_without_usage(backend: Backend) -> None:
    client = backend.client()

    chunks = list(
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    )

    # role chunk, three text chunks, finish chunk; no usage chunk
    assert len(chunks) == 5
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert all(chunk.choices for chunk in chunks)
    assert all("usage" not in _fields_sent(chunk) for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == DEFAULT_TEXT
    assert "stream_options" not in backend.fake.requests[-1].body


def test_chat_stream_with_usage(backend: Backend) -> None:
    client = backend.client()

    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    *content_chunks, usage_chunk = chunks
    assert len(content_chunks) == 5
    assert all("usage" in _fields_sent(chunk) for chunk in content_chunks)
    assert all(chunk.usage is None for chunk in content_chunks)
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.prompt_tokens == 100
    assert usage_chunk.usage.completion_tokens == 20
    assert usage_chunk.model == "gpt-4o-mini-2024-07-18"
    assert backend.fake.requests[-1].body["stream_options"] == {"include_usage": True}


def test_chat_stream_scripted_chunks(backend: Backend) -> None:
    client = backend.client()
    backend.fake.enqueue(FakeReply(chunks=["Hel", "lo", "!"], model="gpt-4o-mini-custom"))

    chunks = list(
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    )

    pieces = [chunk.choices[0].delta.content for chunk in chunks[1:-1]]
    assert pieces == ["Hel", "lo", "!"]
    assert {chunk.model for chunk in chunks} == {"gpt-4o-mini-custom"}


def test_chat_scripted_usage(backend: Backend) -> None:
    client = backend.client()
    usage = FakeUsage(prompt_tokens=1200, completion_tokens=300, cached_tokens=1024)
    backend.fake.enqueue(FakeReply(usage=usage))

    scripted = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    default = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert scripted.model == "gpt-4o-2024-08-06"
    assert scripted.usage is not None
    assert scripted.usage.prompt_tokens == 1200
    assert scripted.usage.completion_tokens == 300
    assert scripted.usage.total_tokens == 1500
    assert scripted.usage.prompt_tokens_details is not None
    assert scripted.usage.prompt_tokens_details.cached_tokens == 1024
    assert default.usage is not None
    assert default.usage.prompt_tokens == 100


def test_chat_usage_null_and_extra_field(backend: Backend) -> None:
    client = backend.client()
    backend.fake.enqueue(FakeReply(usage=None))

    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert completion.usage is None
    assert "usage" in _fields_sent(completion)
    assert completion.model_extra is not None
    assert "x_fake_unexpected_field" in completion.model_extra


def test_chat_stream_usage_null(backend: Backend) -> None:
    client = backend.client()
    backend.fake.enqueue(FakeReply(usage=None))

    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert len(chunks) == 5
    assert all(chunk.usage is None for chunk in chunks)
    assert chunks[-1].model_extra is not None
    assert "x_fake_unexpected_field" in chunks[-1].model_extra


def test_chat_several_choices(backend: Backend) -> None:
    client = backend.client()

    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, n=2)

    assert [choice.index for choice in completion.choices] == [0, 1]


def test_unknown_model_echoed(backend: Backend) -> None:
    client = backend.client()

    completion = client.chat.completions.create(model="my-finetune", messages=MESSAGES)

    assert completion.model == "my-finetune"


# Errors


def test_scripted_400_raises_bad_request(backend: Backend) -> None:
    client = backend.client()
    body = error_body("Invalid 'messages': empty.", param="messages", code="invalid_value")
    backend.fake.enqueue(FakeReply(status=400, body=body))

    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert caught.value.status_code == 400
    assert caught.value.body == body["error"]
    assert caught.value.code == "invalid_value"
    assert caught.value.param == "messages"
    assert "Invalid 'messages': empty." in caught.value.message
    assert backend.fake.pending_replies == 0


def test_scripted_status_without_body(backend: Backend) -> None:
    client = backend.client(max_retries=0)
    backend.fake.enqueue(FakeReply(status=429), FakeReply(status=503))

    with pytest.raises(openai.RateLimitError) as rate_limited:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with pytest.raises(openai.InternalServerError) as unavailable:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert rate_limited.value.code == "rate_limit_exceeded"
    assert unavailable.value.status_code == 503
    assert unavailable.value.type == "server_error"


def test_error_stream_request(backend: Backend) -> None:
    client = backend.client()
    backend.fake.enqueue(FakeReply(status=400))

    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)


def test_stream_options_without_stream(backend: Backend) -> None:
    client = backend.client()
    backend.fake.enqueue(FakeReply(model="kept-for-next-request"))

    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream_options={"include_usage": True}
        )

    assert caught.value.param == "stream_options"
    assert backend.fake.pending_replies == 1


def test_reply_after_error_is_default(backend: Backend) -> None:
    client = backend.client()
    backend.fake.enqueue(FakeReply(status=400))

    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert completion.choices[0].message.content == DEFAULT_TEXT


# Responses API


def test_responses_plain(backend: Backend) -> None:
    client = backend.client()
    usage = FakeUsage(
        prompt_tokens=500, completion_tokens=80, cached_tokens=200, reasoning_tokens=50
    )
    backend.fake.enqueue(FakeReply(usage=usage))

    response = client.responses.create(model="o4-mini", input="Summarise the ticket.")

    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == "o4-mini-2025-04-16"
    assert response.output_text == DEFAULT_TEXT
    assert response.usage is not None
    assert response.usage.input_tokens == 500
    assert response.usage.input_tokens_details.cached_tokens == 200
    assert response.usage.output_tokens == 80
    assert response.usage.output_tokens_details.reasoning_tokens == 50
    assert response.usage.total_tokens == 580
    assert backend.fake.requests[-1].path == "/v1/responses"


def test_responses_stream_events(backend: Backend) -> None:
    client = backend.client()

    events = list(client.responses.create(model="gpt-4o-mini", input="Hi", stream=True))

    types = [event.type for event in events]
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert events[0].response.usage is None
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert deltas == DEFAULT_TEXT
    completed = events[-1].response
    assert completed.usage is not None
    assert completed.usage.input_tokens == 100
    assert completed.usage.output_tokens == 20
    assert completed.output_text == DEFAULT_TEXT


def test_responses_stream_helper(backend: Backend) -> None:
    client = backend.client()

    with client.responses.stream(model="gpt-4o-mini", input="Hi") as stream:
        for _event in stream:
            pass
        final = stream.get_final_response()

    assert final.output_text == DEFAULT_TEXT
    assert final.usage is not None
    assert final.usage.total_tokens == 120


# Embeddings


def test_embeddings_float(backend: Backend) -> None:
    client = backend.client()

    result = client.embeddings.create(
        model="text-embedding-3-small", input=["first", "second"], encoding_format="float"
    )

    assert result.object == "list"
    assert result.model == "text-embedding-3-small"
    assert [item.index for item in result.data] == [0, 1]
    assert all(len(item.embedding) == 8 for item in result.data)
    assert result.data[0].embedding != result.data[1].embedding
    assert result.usage.prompt_tokens == 100
    assert result.usage.total_tokens == 100


def test_embeddings_base64_matches_float(backend: Backend) -> None:
    client = backend.client()

    as_floats = client.embeddings.create(
        model="text-embedding-3-small", input="same text", encoding_format="float"
    )
    # openai 1.x requests base64 by default and decodes it before returning.
    default = client.embeddings.create(model="text-embedding-3-small", input="same text")

    assert default.data[0].embedding == as_floats.data[0].embedding


def test_embeddings_dimensions(backend: Backend) -> None:
    client = backend.client()

    result = client.embeddings.create(
        model="text-embedding-3-large", input="x", dimensions=4, encoding_format="float"
    )

    assert len(result.data[0].embedding) == 4


def test_embeddings_base64_wire_format() -> None:
    fake = FakeOpenAI()
    body = json.dumps(
        {"model": "text-embedding-3-small", "input": "x", "encoding_format": "base64"}
    ).encode()

    wire = fake.handle("POST", "/v1/embeddings", {"Authorization": "Bearer k"}, body)

    encoded = json.loads(wire.body)["data"][0]["embedding"]
    vector = struct.unpack("<8f", base64.b64decode(encoded))
    assert all(-1.0 <= value <= 1.0 for value in vector)


# Azure OpenAI


def test_azure_chat_completion(backend: Backend) -> None:
    client = backend.azure_client()

    completion = client.chat.completions.create(model="support-bot", messages=MESSAGES)

    request = backend.fake.requests[-1]
    assert completion.model == "gpt-4o-2024-08-06"
    assert completion.choices[0].message.content == DEFAULT_TEXT
    assert completion.usage is not None
    assert completion.usage.total_tokens == 120
    assert request.path == "/openai/deployments/support-bot/chat/completions"
    assert request.query == {"api-version": API_VERSION}
    assert request.headers["api-key"] == "test-key"


def test_azure_stream_with_usage(backend: Backend) -> None:
    client = backend.azure_client()

    chunks = list(
        client.chat.completions.create(
            model="support-bot",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    filter_chunk, *content_chunks, usage_chunk = chunks
    assert filter_chunk.choices == []
    assert filter_chunk.model == ""
    assert filter_chunk.usage is None
    assert {chunk.model for chunk in content_chunks} == {"gpt-4o-2024-08-06"}
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == 20


def test_azure_scripted_model(backend: Backend) -> None:
    client = backend.azure_client()
    backend.fake.enqueue(FakeReply(model="gpt-4o-mini-2024-07-18"))

    completion = client.chat.completions.create(model="cheap-bot", messages=MESSAGES)

    assert completion.model == "gpt-4o-mini-2024-07-18"


def test_azure_embeddings(backend: Backend) -> None:
    client = backend.azure_client()

    result = client.embeddings.create(model="embedder", input="x", encoding_format="float")

    assert backend.fake.requests[-1].path == "/openai/deployments/embedder/embeddings"
    assert len(result.data[0].embedding) == 8


# Async clients


async def test_async_chat_stream(backend: Backend) -> None:
    async with backend.async_client() as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]

    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 120
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == DEFAULT_TEXT


async def test_async_responses(backend: Backend) -> None:
    async with backend.async_client() as client:
        response = await client.responses.create(model="gpt-4o-mini", input="Hi")
        stream = await client.responses.create(model="gpt-4o-mini", input="Hi", stream=True)
        events = [event async for event in stream]

    assert response.output_text == DEFAULT_TEXT
    assert events[-1].type == "response.completed"
    assert events[-1].response.usage is not None


# Request log


def test_requests_recorded(backend: Backend) -> None:
    client = backend.client()

    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True).close()
    client.embeddings.create(model="text-embedding-3-small", input="x")

    chat, embeddings = backend.fake.requests
    assert chat.method == "POST"
    assert chat.path == "/v1/chat/completions"
    assert chat.body["model"] == "gpt-4o-mini"
    assert chat.body["messages"] == MESSAGES
    assert chat.body["stream"] is True
    assert chat.headers["authorization"] == "Bearer test-key"
    assert embeddings.path == "/v1/embeddings"


def test_reset_clears_state(backend: Backend) -> None:
    client = backend.client()
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    backend.fake.enqueue(FakeReply(status=400))

    backend.fake.reset()

    assert backend.fake.requests == []
    assert backend.fake.pending_replies == 0


# The HTTP server itself


def test_server_concurrent_replies(server: FakeOpenAIServer) -> None:
    models = [f"model-{index}" for index in range(16)]
    server.enqueue(*(FakeReply(model=model) for model in models))

    def call(_: int) -> str:
        with openai.OpenAI(base_url=server.base_url, api_key="k") as client:
            return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).model

    with ThreadPoolExecutor(max_workers=8) as pool:
        returned = list(pool.map(call, range(16)))

    assert sorted(returned) == sorted(models)
    assert len(server.requests) == 16


def test_server_streams_incrementally(server: FakeOpenAIServer) -> None:
    request = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    headers = {"Authorization": "Bearer k"}

    with (
        httpx.Client() as http,
        http.stream(
            "POST", f"{server.base_url}/chat/completions", json=request, headers=headers
        ) as response,
    ):
        frames = [line for line in response.iter_lines() if line]

    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["transfer-encoding"] == "chunked"
    assert frames[-1] == "data: [DONE]"
    assert all(frame.startswith("data: {") for frame in frames[:-1])


def test_server_error_shapes(server: FakeOpenAIServer) -> None:
    chat = {"model": "gpt-4o-mini", "messages": MESSAGES}
    cases = [
        ("/v1/unknown", {"Authorization": "Bearer k"}, chat, 404),
        ("/v1/chat/completions", {}, chat, 401),
        ("/v1/chat/completions", {"Authorization": "Bearer k"}, {"messages": MESSAGES}, 400),
        ("/openai/deployments/bot/chat/completions", {"api-key": "k"}, chat, 400),
    ]

    with httpx.Client() as http:
        for path, headers, body, status in cases:
            response = http.post(f"{server.url}{path}", json=body, headers=headers)
            assert response.status_code == status, path
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}, path
            assert error["type"] == "invalid_request_error", path


def test_server_invalid_json(server: FakeOpenAIServer) -> None:
    with httpx.Client() as http:
        response = http.post(
            f"{server.base_url}/chat/completions",
            content=b"{not json",
            headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
        )

    assert response.status_code == 400
    assert server.requests[-1].body is None


def test_server_lifecycle() -> None:
    server = FakeOpenAIServer()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url

    server.start()
    port = server.port
    assert server.base_url == f"http://127.0.0.1:{port}/v1"
    with pytest.raises(RuntimeError, match="already running"):
        server.start()
    server.stop()
    server.stop()


def test_server_stop_ends_idle_connections() -> None:
    server = FakeOpenAIServer().start()
    client = openai.OpenAI(base_url=server.base_url, api_key="k")
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    # The client keeps its connection open, so its handler thread waits for
    # the next request until stop() cuts the connection.
    handlers = [
        thread
        for thread in threading.enumerate()
        if "process_request_thread" in thread.name and thread.is_alive()
    ]

    server.stop()
    for thread in handlers:
        thread.join(timeout=5)
    still_running = [thread.name for thread in handlers if thread.is_alive()]
    client.close()

    assert handlers
    assert still_running == []


# Plain values


def test_usage_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError, match="cached_tokens"):
        FakeUsage(prompt_tokens=10, completion_tokens=5, cached_tokens=11)
    with pytest.raises(ValueError, match="reasoning_tokens"):
        FakeUsage(prompt_tokens=10, completion_tokens=5, reasoning_tokens=6)
    with pytest.raises(ValueError, match="prompt_tokens"):
        FakeUsage(prompt_tokens=-1, completion_tokens=5)


@pytest.mark.parametrize(
    ("text", "count"),
    [(DEFAULT_TEXT, 3), (DEFAULT_TEXT, 1), ("two words", 3), ("ab", 5), ("", 3)],
)
def test_split_text_round_trip(text: str, count: int) -> None:
    pieces = split_text(text, count)

    assert "".join(pieces) == text
    assert 1 <= len(pieces) <= count
    assert all(pieces) or text == ""
