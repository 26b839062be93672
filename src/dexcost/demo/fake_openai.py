"""A scriptable stand-in for the OpenAI API, for tests and the offline demo.

``FakeOpenAI`` contains the reply logic and its state and is reachable without a
socket through ``httpx`` / ``httpx2`` mock transports. ``FakeOpenAIServer``
serves the same logic over real HTTP on 127.0.0.1, so the unmodified
``openai`` SDK (1.x on ``httpx``, 3.x on ``httpx2``) can talk to it::

    with FakeOpenAIServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test")
        server.enqueue(FakeReply(usage=FakeUsage(prompt_tokens=1200, completion_tokens=300)))
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        assert server.requests[-1].body["model"] == "gpt-4o-mini"

Endpoints: ``POST /v1/chat/completions``, ``/v1/responses`` and
``/v1/embeddings`` (JSON, or SSE streams when the request has
``"stream": true``), and the Azure OpenAI paths
``/openai/deployments/{deployment}/...?api-version=...``.

Nothing in ``dexcost.demo`` imports the dexcost core, although importing it
runs ``dexcost/__init__.py`` first. ``httpx`` and ``httpx2`` are imported
only when a mock transport is requested.
"""

from __future__ import annotations

import enum
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from dexcost.demo import _payloads
from dexcost.demo._fake_api import LoopbackServing, ScriptedAPI
from dexcost.demo._payloads import FakeUsage, JSONObject, error_body
from dexcost.demo._routing import (
    Route,
    embedding_inputs,
    error_response,
    json_response,
    match_route,
    parse_json,
    scripted_error,
    stream_response,
    validate,
)
from dexcost.demo._server import WireResponse

if TYPE_CHECKING:
    pass

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_TEXT",
    "DEFAULT_USAGE",
    "FakeOpenAI",
    "FakeOpenAIServer",
    "FakeReply",
    "FakeUsage",
    "RecordedRequest",
    "WireResponse",
    "error_body",
]

DEFAULT_USAGE = FakeUsage(prompt_tokens=100, completion_tokens=20)
DEFAULT_TEXT = "Thanks for reaching out! I have reset your password, so you can sign in again."

# Request model -> model named in the reply. The real API replies to an alias
# with the dated snapshot that served it. Unknown models are echoed unchanged.
DEFAULT_MODELS: Mapping[str, str] = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "o4-mini": "o4-mini-2025-04-16",
}


class _Default(enum.Enum):
    """Marker for a ``FakeReply`` field left to the server's defaults."""

    DEFAULT = "DEFAULT"


@dataclass(frozen=True)
class FakeReply:
    """One-shot override for the next recognised request, queued by ``enqueue``.

    ``status`` >= 400 sends an OpenAI error body (or ``body`` if given).
    ``body`` replaces the generated JSON whatever the status. ``usage=None``
    sends ``"usage": null`` (and, in streams, no usage chunk) plus an unknown
    extra field. ``chunks`` are the text pieces of a stream; a non-streamed
    reply joins them. ``headers`` are added to the reply's HTTP headers.
    """

    status: int = 200
    body: JSONObject | None = None
    usage: FakeUsage | _Default | None = _Default.DEFAULT
    model: str | None = None
    chunks: Sequence[str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it.

    ``headers`` has lower-case names. ``body`` is the parsed JSON body, or None
    when the body was empty or not JSON.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class FakeOpenAI(ScriptedAPI[FakeReply, RecordedRequest]):
    """Reply logic and state of the fake API, shared by every transport.

    The settings are plain attributes that a test may change between
    requests: ``usage`` for every reply, ``models`` mapping request model to
    reply model, ``azure_model`` naming the model behind every Azure
    deployment, ``text`` split into ``chunk_count`` stream pieces, and
    ``embedding_dimensions``. With ``azure_content_filter``, Azure replies
    carry content-filter results and Azure streams open with a chunk that has
    no choices and an empty model, as Azure OpenAI sends them. The reply queue
    and the request log are guarded by a lock, so concurrent requests are safe.
    """

    def __init__(
        self,
        *,
        usage: FakeUsage = DEFAULT_USAGE,
        models: Mapping[str, str] | None = None,
        azure_model: str = "gpt-4o-2024-08-06",
        azure_content_filter: bool = True,
        text: str = DEFAULT_TEXT,
        chunk_count: int = 3,
        embedding_dimensions: int = 8,
    ) -> None:
        self.usage = usage
        self.models: dict[str, str] = dict(DEFAULT_MODELS if models is None else models)
        self.azure_model = azure_model
        self.azure_content_filter = azure_content_filter
        self.text = text
        self.chunk_count = chunk_count
        self.embedding_dimensions = embedding_dimensions
        self._init_script(FakeReply)

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> WireResponse:
        """Record one HTTP request and build its reply.

        ``target`` is the path with its query string. Invalid requests get the
        API's error replies and leave the reply queue untouched.
        """
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query))
        lowered = {name.lower(): value for name, value in headers.items()}
        parsed, parse_error = parse_json(body)
        with self._lock:
            self._requests.append(RecordedRequest(method, parts.path, query, lowered, parsed))

        route = match_route(parts.path)
        if method != "POST" or route is None:
            return error_response(404, f"Unknown request URL: {method} {parts.path}.")
        if "authorization" not in lowered and "api-key" not in lowered:
            message = "Missing API key: send an Authorization: Bearer header or an api-key header."
            return error_response(401, message)
        if route.azure and route.deployment is not None and "api-version" not in query:
            return error_response(400, "Missing required query parameter: api-version.")
        if parse_error is not None:
            message = f"We could not parse the JSON body of your request: {parse_error}"
            return error_response(400, message)
        invalid = validate(route, parsed)
        if invalid is not None:
            return invalid

        reply = self._next_reply()
        if reply.body is not None or reply.status >= 400:
            body_to_send = reply.body if reply.body is not None else scripted_error(reply.status)
            return json_response(reply.status, body_to_send, reply.headers)
        return self._build(route, parsed, reply)

    def _build(self, route: Route, request: JSONObject, reply: FakeReply) -> WireResponse:
        settings = _ReplySettings(
            model=self._reply_model(route, request, reply),
            usage=self.usage if isinstance(reply.usage, _Default) else reply.usage,
            pieces=list(reply.chunks) if reply.chunks is not None else self._pieces(),
            created=int(time.time()),
            headers=reply.headers,
        )
        if route.endpoint == "embeddings":
            return self._embeddings(request, settings)
        if route.endpoint == "responses":
            return _responses(request, settings)
        return _chat_completions(request, settings, azure=route.azure and self.azure_content_filter)

    def _embeddings(self, request: JSONObject, settings: _ReplySettings) -> WireResponse:
        body = _payloads.embedding_list(
            model=settings.model,
            inputs=embedding_inputs(request["input"]),
            dimensions=int(request.get("dimensions") or self.embedding_dimensions),
            base64_encoded=request.get("encoding_format") == "base64",
            usage=settings.usage,
        )
        return json_response(200, body, settings.headers)

    def _reply_model(self, route: Route, request: JSONObject, reply: FakeReply) -> str:
        # Azure replies name the model behind the deployment, never the deployment.
        if reply.model is not None:
            return reply.model
        if route.azure:
            return self.azure_model
        requested = str(request["model"])
        return self.models.get(requested, requested)

    def _pieces(self) -> list[str]:
        return _payloads.split_text(self.text, self.chunk_count)


class FakeOpenAIServer(LoopbackServing, FakeOpenAI):
    """``FakeOpenAI`` served over real HTTP on 127.0.0.1 at a free port.

    Use it as a context manager, or call ``start()`` and ``stop()``. Point
    ``openai.OpenAI(base_url=server.base_url)`` or
    ``openai.AzureOpenAI(azure_endpoint=server.azure_endpoint)`` at it.
    """

    @property
    def url(self) -> str:
        """Root URL, such as ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI ``base_url``, such as ``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"

    @property
    def azure_endpoint(self) -> str:
        """``azure_endpoint`` for ``openai.AzureOpenAI``: the root URL."""
        return self.url


@dataclass(frozen=True)
class _ReplySettings:
    """Content of one successful reply, after the queued override is applied."""

    model: str
    usage: FakeUsage | None
    pieces: list[str]
    created: int
    headers: Mapping[str, str]


def _responses(request: JSONObject, settings: _ReplySettings) -> WireResponse:
    common: dict[str, Any] = {
        "response_id": f"resp_{secrets.token_hex(24)}",
        "message_id": f"msg_{secrets.token_hex(24)}",
        "created": settings.created,
        "model": settings.model,
        "request": request,
        "usage": settings.usage,
    }
    if request.get("stream"):
        events = _payloads.response_stream_events(**common, pieces=settings.pieces)
        frames = [_payloads.sse_event_frame(event) for event in events]
        return stream_response(frames, settings.headers)

    body = _payloads.response_object(**common, text="".join(settings.pieces), completed=True)
    return json_response(200, body, settings.headers)


def _chat_completions(
    request: JSONObject, settings: _ReplySettings, *, azure: bool
) -> WireResponse:
    common: dict[str, Any] = {
        "completion_id": f"chatcmpl-{secrets.token_urlsafe(21)}",
        "created": settings.created,
        "model": settings.model,
        "choice_count": int(request.get("n") or 1),
        "usage": settings.usage,
        "azure": azure,
    }
    if request.get("stream"):
        stream_options = request.get("stream_options") or {}
        chunks = _payloads.chat_completion_chunks(
            **common,
            pieces=settings.pieces,
            include_usage=bool(stream_options.get("include_usage")),
        )
        frames = [_payloads.sse_data_frame(chunk) for chunk in chunks]
        return stream_response([*frames, _payloads.sse_data_frame("[DONE]")], settings.headers)

    body = _payloads.chat_completion(**common, text="".join(settings.pieces))
    return json_response(200, body, settings.headers)
