"""A scriptable stand-in for the Gemini API, for tests and demos.

``FakeGemini`` contains the reply logic and its state and is reachable without a
socket through ``httpx`` / ``httpx2`` mock transports. ``FakeGeminiServer`` serves
the same logic over real HTTP on 127.0.0.1. The unmodified ``google-genai`` SDK
talks to either one::

    fake = FakeGemini(usage=GeminiUsage(prompt_tokens=1000, candidates_tokens=500))
    client = genai.Client(api_key="test", http_options=types.HttpOptions(
        base_url="http://fake.test",
        httpx_client=httpx2.Client(transport=fake.httpx2_transport()),
        httpx_async_client=httpx2.AsyncClient(transport=fake.async_httpx2_transport()),
    ))
    client.models.generate_content(model="gemini-2.5-flash", contents="Hi")

Endpoints, under any API version prefix (``/v1beta``, ``/v1``):
``POST .../models/{model}:generateContent`` (a JSON response),
``POST .../models/{model}:streamGenerateContent?alt=sse`` (server-sent events, one
response chunk each), ``POST .../models/{model}:embedContent`` and
``POST .../models/{model}:batchEmbedContents``. Errors have the API's body shape,
``{"error": {"code": ..., "message": ..., "status": ...}}``.

Usage follows the API's ``usageMetadata``: ``promptTokenCount`` INCLUDES the
``cachedContentTokenCount`` tokens, and ``thoughtsTokenCount`` is counted apart from
``candidatesTokenCount``. In a stream, the chunks before the last carry only the
prompt count; the last chunk carries the final counts and ``finishReason``.
``httpx`` and ``httpx2`` are imported only when a mock transport is requested.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from dexcost.demo._fake_api import LoopbackServing, ScriptedAPI
from dexcost.demo._server import WireResponse

if TYPE_CHECKING:
    pass

__all__ = [
    "DEFAULT_TEXT",
    "DEFAULT_USAGE",
    "FakeGemini",
    "FakeGeminiReply",
    "FakeGeminiServer",
    "GeminiUsage",
    "RecordedRequest",
    "WireResponse",
    "error_body",
]

JSONObject = dict[str, Any]

DEFAULT_TEXT = "Thanks for reaching out! I have reset your password, so you can sign in again."
EMBEDDING_SIZE = 8

# Status the API names for each HTTP status code.
_STATUSES: Mapping[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}

_METHODS = ("generateContent", "streamGenerateContent", "embedContent", "batchEmbedContents")


@dataclass(frozen=True)
class GeminiUsage:
    """Token counts of one reply, as the API reports them in ``usageMetadata``.

    ``prompt_tokens`` includes ``cached_tokens`` and ``audio_prompt_tokens``;
    ``thoughts_tokens`` is not part of ``candidates_tokens``.
    """

    prompt_tokens: int
    candidates_tokens: int = 0
    cached_tokens: int = 0
    thoughts_tokens: int = 0
    audio_prompt_tokens: int = 0

    def __post_init__(self) -> None:
        names = (
            "prompt_tokens",
            "candidates_tokens",
            "cached_tokens",
            "thoughts_tokens",
            "audio_prompt_tokens",
        )
        for name in names:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.cached_tokens > self.prompt_tokens:
            raise ValueError("cached_tokens must not exceed prompt_tokens")
        if self.audio_prompt_tokens > self.prompt_tokens:
            raise ValueError("audio_prompt_tokens must not exceed prompt_tokens")

    def to_json(self, *, final: bool = True) -> JSONObject:
        """Build ``usageMetadata``; ``final=False`` gives a stream's early chunk shape."""
        if not final:
            return {"promptTokenCount": self.prompt_tokens, "totalTokenCount": self.prompt_tokens}
        metadata: JSONObject = {
            "promptTokenCount": self.prompt_tokens,
            "candidatesTokenCount": self.candidates_tokens,
            "totalTokenCount": self.prompt_tokens + self.candidates_tokens + self.thoughts_tokens,
        }
        if self.cached_tokens:
            metadata["cachedContentTokenCount"] = self.cached_tokens
        if self.thoughts_tokens:
            metadata["thoughtsTokenCount"] = self.thoughts_tokens
        if self.audio_prompt_tokens:
            text_tokens = self.prompt_tokens - self.audio_prompt_tokens
            metadata["promptTokensDetails"] = [
                {"modality": "TEXT", "tokenCount": text_tokens},
                {"modality": "AUDIO", "tokenCount": self.audio_prompt_tokens},
            ]
        return metadata


DEFAULT_USAGE = GeminiUsage(prompt_tokens=100, candidates_tokens=20)


@dataclass(frozen=True)
class FakeGeminiReply:
    """One-shot override for the next model request, queued by ``enqueue``.

    ``status`` >= 400 sends an API error body (or ``body`` if given). ``body``
    replaces the generated JSON whatever the status. ``usage`` None keeps the fake's
    usage; ``omit_usage`` sends no ``usageMetadata`` at all. ``model_version`` None
    echoes the request model; "" sends no ``modelVersion``. ``chunks`` are the text
    pieces of a stream; a non-streamed reply joins them.
    """

    status: int = 200
    body: JSONObject | None = None
    usage: GeminiUsage | None = None
    omit_usage: bool = False
    model_version: str | None = None
    chunks: Sequence[str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it; ``headers`` has lower-case names."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


def error_body(status: int, message: str) -> JSONObject:
    """Build the API's error body."""
    return {"error": {"code": status, "message": message, "status": _STATUSES.get(status, "")}}


class FakeGemini(ScriptedAPI[FakeGeminiReply, RecordedRequest]):
    """Reply logic and state of the fake API, shared by every transport.

    ``usage`` applies to every reply not overridden by a queued one, and ``text`` is
    split into ``chunk_count`` stream pieces. Embedding replies carry
    ``usageMetadata`` with the ``embed_usage`` prompt count when it is set, and no
    usage otherwise. The reply queue and the request log are guarded by a lock.
    """

    def __init__(
        self,
        *,
        usage: GeminiUsage = DEFAULT_USAGE,
        embed_usage: GeminiUsage | None = None,
        text: str = DEFAULT_TEXT,
        chunk_count: int = 3,
    ) -> None:
        self.usage = usage
        self.embed_usage = embed_usage
        self.text = text
        self.chunk_count = chunk_count
        self._init_script(FakeGeminiReply)

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> WireResponse:
        """Record one HTTP request and build its reply (``target`` includes the query)."""
        parts = urlsplit(target)
        path = unquote(parts.path)
        lowered = {name.lower(): value for name, value in headers.items()}
        parsed, parse_error = _parse_json(body)
        with self._lock:
            self._requests.append(
                RecordedRequest(method, path, dict(parse_qsl(parts.query)), lowered, parsed)
            )
        model, _, api_method = path.rpartition(":")
        marker = model.rfind("/models/")
        if method != "POST" or marker < 0 or api_method not in _METHODS:
            return _error(404, f"Not found: {method} {path}")
        model = model[marker + len("/models/") :]
        if "x-goog-api-key" not in lowered and "authorization" not in lowered:
            return _error(401, "API key not valid. Please pass a valid API key.")
        if parse_error is not None:
            return _error(400, f"Invalid JSON payload received: {parse_error}")

        reply = self._next_reply()
        if reply.body is not None or reply.status >= 400:
            scripted = error_body(reply.status, f"Error {reply.status} scripted by the fake.")
            body_json = reply.body if reply.body is not None else scripted
            return _json(reply.status, body_json, reply.headers)
        if api_method in ("embedContent", "batchEmbedContents"):
            return _json(200, self._embedding(parsed, api_method), reply.headers)
        if not isinstance(parsed.get("contents"), list) or not parsed["contents"]:
            return _error(400, "* GenerateContentRequest.contents: contents is not specified")

        usage = None if reply.omit_usage else (reply.usage or self.usage)
        version = model if reply.model_version is None else reply.model_version
        pieces = (
            list(reply.chunks) if reply.chunks is not None else _split(self.text, self.chunk_count)
        )
        response_id = secrets.token_hex(8)
        if api_method == "streamGenerateContent":
            frames = [_sse(chunk) for chunk in stream_chunks(response_id, version, usage, pieces)]
            return WireResponse(
                200,
                {"content-type": "text/event-stream", **reply.headers},
                frames=tuple(frames),
            )
        return _json(200, response(response_id, version, usage, "".join(pieces)), reply.headers)

    def _embedding(self, request: JSONObject, api_method: str) -> JSONObject:
        vector = {"values": [round(0.1 * (i + 1), 3) for i in range(EMBEDDING_SIZE)]}
        if api_method == "batchEmbedContents":
            requests = request.get("requests")
            count = len(requests) if isinstance(requests, list) else 1
            reply: JSONObject = {"embeddings": [vector] * max(count, 1)}
        else:
            reply = {"embedding": vector}
        if self.embed_usage is not None:
            reply["usageMetadata"] = {
                "promptTokenCount": self.embed_usage.prompt_tokens,
                "totalTokenCount": self.embed_usage.prompt_tokens,
            }
        return reply


class FakeGeminiServer(LoopbackServing, FakeGemini):
    """``FakeGemini`` served over real HTTP on 127.0.0.1 at a free port.

    Use it as a context manager, or call ``start()`` and ``stop()``, and pass
    ``types.HttpOptions(base_url=server.base_url)`` to ``genai.Client``.
    """

    @property
    def base_url(self) -> str:
        """``base_url`` for ``types.HttpOptions``: ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._http.port}"


def response(
    response_id: str, model_version: str, usage: GeminiUsage | None, text: str
) -> JSONObject:
    """Build a complete ``generateContent`` response."""
    return _chunk(response_id, model_version, text, usage, final=True)


def stream_chunks(
    response_id: str, model_version: str, usage: GeminiUsage | None, pieces: Sequence[str]
) -> list[JSONObject]:
    """List the chunks of a streamed reply; only the last one has the final counts."""
    last = len(pieces) - 1
    return [
        _chunk(response_id, model_version, piece, usage, final=index == last)
        for index, piece in enumerate(pieces)
    ]


def _chunk(
    response_id: str, model_version: str, text: str, usage: GeminiUsage | None, *, final: bool
) -> JSONObject:
    candidate: JSONObject = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if final:
        candidate["finishReason"] = "STOP"
    chunk: JSONObject = {"candidates": [candidate], "responseId": response_id}
    if usage is not None:
        chunk["usageMetadata"] = usage.to_json(final=final)
    if model_version:
        chunk["modelVersion"] = model_version
    return chunk


def _split(text: str, count: int) -> list[str]:
    words = text.split(" ")
    count = max(1, min(count, len(words)))
    size = -(-len(words) // count)
    groups = [words[i : i + size] for i in range(0, len(words), size)]
    return [
        " ".join(group) + (" " if index < len(groups) - 1 else "")
        for index, group in enumerate(groups)
    ]


def _parse_json(body: bytes) -> tuple[Any, str | None]:
    try:
        parsed = json.loads(body) if body else None
    except ValueError as exc:
        return None, str(exc)
    if not isinstance(parsed, dict):
        return parsed, "the body must be a JSON object"
    return parsed, None


def _json(status: int, body: JSONObject, extra_headers: Mapping[str, str]) -> WireResponse:
    headers = {"content-type": "application/json; charset=UTF-8", **extra_headers}
    return WireResponse(status, headers, (json.dumps(body) + "\n").encode())


def _error(status: int, message: str) -> WireResponse:
    return _json(status, error_body(status, message), {})


def _sse(chunk: JSONObject) -> bytes:
    return f"data: {json.dumps(chunk, separators=(',', ':'))}\r\n\r\n".encode()
