"""A scriptable stand-in for the Anthropic Messages API, for tests and demos.

``FakeAnthropic`` contains the reply logic and its state and is reachable without
a socket through ``httpx`` / ``httpx2`` mock transports. ``FakeAnthropicServer``
serves the same logic over real HTTP on 127.0.0.1, so the unmodified
``anthropic`` SDK (0.x and 1.x on ``httpx``, 2.x on ``httpx2``) can talk to it::

    fake = FakeAnthropic(usage=AnthropicUsage(input_tokens=1000, output_tokens=300))
    client = anthropic.Anthropic(
        api_key="test", base_url="http://fake.test", http_client=httpx2.Client(
            transport=fake.httpx2_transport()))
    client.messages.create(model="claude-sonnet-4", max_tokens=64, messages=[...])
    assert fake.requests[-1].body["model"] == "claude-sonnet-4"

Endpoints: ``POST /v1/messages`` (a JSON message, or a server-sent event stream
when the request has ``"stream": true``) and ``POST /v1/messages/count_tokens``.
Errors have the API's body shape,
``{"type": "error", "error": {"type": ..., "message": ...}}``.

Usage follows the API: ``input_tokens`` EXCLUDES the tokens read from or written
to the prompt cache, which are ``cache_read_input_tokens`` and
``cache_creation_input_tokens``. A stream sends the input and cache counts in
``message_start`` and the final counts, with ``output_tokens``, in
``message_delta``. ``httpx`` and ``httpx2`` are imported only when a mock
transport is requested.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from dexcost.demo._fake_api import LoopbackServing, ScriptedAPI
from dexcost.demo._server import WireResponse

if TYPE_CHECKING:
    pass

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_TEXT",
    "DEFAULT_USAGE",
    "AnthropicUsage",
    "FakeAnthropic",
    "FakeAnthropicReply",
    "FakeAnthropicServer",
    "RecordedRequest",
    "WireResponse",
    "error_body",
]

JSONObject = dict[str, Any]

DEFAULT_TEXT = "Thanks for reaching out! I have reset your password, so you can sign in again."

# Request model -> model named in the reply. The real API replies to an alias
# with the dated snapshot that served it. Unknown models are echoed unchanged.
DEFAULT_MODELS: Mapping[str, str] = {
    "claude-sonnet-4": "claude-sonnet-4-20250514",
    "claude-sonnet-4-0": "claude-sonnet-4-20250514",
    "claude-opus-4-5": "claude-opus-4-5-20251101",
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
}

# Error type the API names for each status code.
_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class AnthropicUsage:
    """Token counts of one reply, as the API reports them.

    ``input_tokens`` does not include the cache counts. ``cache_creation_1h_input_tokens``
    is the part of ``cache_creation_input_tokens`` written with the 1-hour TTL.
    """

    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0

    def __post_init__(self) -> None:
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
            "cache_creation_1h_input_tokens",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.cache_creation_1h_input_tokens > self.cache_creation_input_tokens:
            raise ValueError(
                "cache_creation_1h_input_tokens must not exceed cache_creation_input_tokens"
            )

    def to_json(self, *, output_tokens: int | None = None) -> JSONObject:
        """Build the ``usage`` object of a message, optionally with another output count."""
        five_minutes = self.cache_creation_input_tokens - self.cache_creation_1h_input_tokens
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": five_minutes,
                "ephemeral_1h_input_tokens": self.cache_creation_1h_input_tokens,
            },
            "output_tokens": self.output_tokens if output_tokens is None else output_tokens,
            "service_tier": "standard",
        }


DEFAULT_USAGE = AnthropicUsage(input_tokens=100, output_tokens=20)


@dataclass(frozen=True)
class FakeAnthropicReply:
    """One-shot override for the next ``/v1/messages`` request, queued by ``enqueue``.

    ``status`` >= 400 sends an Anthropic error body (or ``body`` if given).
    ``body`` replaces the generated JSON whatever the status. ``chunks`` are the
    text pieces of a stream; a non-streamed reply joins them. ``headers`` are
    added to the reply's HTTP headers.
    """

    status: int = 200
    body: JSONObject | None = None
    usage: AnthropicUsage | None = None
    model: str | None = None
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


def error_body(message: str, *, error_type: str = "invalid_request_error") -> JSONObject:
    """Build the API's error body."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


class FakeAnthropic(ScriptedAPI[FakeAnthropicReply, RecordedRequest]):
    """Reply logic and state of the fake API, shared by every transport.

    ``usage`` applies to every reply not overridden by a queued one, ``models``
    maps request model to reply model, and ``text`` is split into
    ``chunk_count`` stream pieces. The reply queue and the request log are
    guarded by a lock, so concurrent requests are safe.
    """

    def __init__(
        self,
        *,
        usage: AnthropicUsage = DEFAULT_USAGE,
        models: Mapping[str, str] | None = None,
        text: str = DEFAULT_TEXT,
        chunk_count: int = 3,
    ) -> None:
        self.usage = usage
        self.models: dict[str, str] = dict(DEFAULT_MODELS if models is None else models)
        self.text = text
        self.chunk_count = chunk_count
        self._init_script(FakeAnthropicReply)

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> WireResponse:
        """Record one HTTP request and build its reply (``target`` includes the query)."""
        parts = urlsplit(target)
        lowered = {name.lower(): value for name, value in headers.items()}
        parsed, parse_error = _parse_json(body)
        with self._lock:
            self._requests.append(
                RecordedRequest(method, parts.path, dict(parse_qsl(parts.query)), lowered, parsed)
            )
        path = parts.path.rstrip("/")
        if method != "POST" or path not in ("/v1/messages", "/v1/messages/count_tokens"):
            return _error(404, f"Not found: {method} {parts.path}", "not_found_error")
        if "x-api-key" not in lowered and "authorization" not in lowered:
            return _error(401, "x-api-key header is required", "authentication_error")
        if parse_error is not None:
            return _error(400, f"Could not parse the JSON body: {parse_error}")
        invalid = _validate(parsed, count_only=path.endswith("count_tokens"))
        if invalid is not None:
            return invalid
        if path.endswith("count_tokens"):
            return _json(200, {"input_tokens": _count_input(parsed)}, {})

        reply = self._next_reply()
        if reply.body is not None or reply.status >= 400:
            error_type = _ERROR_TYPES.get(reply.status, "api_error")
            scripted = error_body(
                f"Error {reply.status} scripted by the fake server.", error_type=error_type
            )
            return _json(
                reply.status, reply.body if reply.body is not None else scripted, reply.headers
            )
        model = reply.model or self.models.get(parsed["model"], parsed["model"])
        usage = reply.usage or self.usage
        pieces = (
            list(reply.chunks) if reply.chunks is not None else _split(self.text, self.chunk_count)
        )
        message_id = f"msg_{secrets.token_hex(12)}"
        if parsed.get("stream"):
            frames = [_sse(event) for event in stream_events(message_id, model, usage, pieces)]
            return WireResponse(
                200,
                {**_headers("text/event-stream; charset=utf-8"), **reply.headers},
                frames=tuple(frames),
            )
        return _json(200, message(message_id, model, usage, "".join(pieces)), reply.headers)


class FakeAnthropicServer(LoopbackServing, FakeAnthropic):
    """``FakeAnthropic`` served over real HTTP on 127.0.0.1 at a free port.

    Use it as a context manager, or call ``start()`` and ``stop()``, and point
    ``anthropic.Anthropic(base_url=server.base_url)`` at it.
    """

    @property
    def base_url(self) -> str:
        """``base_url`` for ``anthropic.Anthropic``: ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._http.port}"


def message(message_id: str, model: str, usage: AnthropicUsage, text: str) -> JSONObject:
    """Build a complete ``message`` object, as a non-streamed reply sends it."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage.to_json(),
    }


def stream_events(
    message_id: str, model: str, usage: AnthropicUsage, pieces: Sequence[str]
) -> list[JSONObject]:
    """List the events of a streamed reply, in the order the API sends them."""
    start = {
        **message(message_id, model, usage, ""),
        "content": [],
        "stop_reason": None,
        # The API reports a provisional output count here and the final one at the end.
        "usage": usage.to_json(output_tokens=min(usage.output_tokens, 1)),
    }
    final_usage = usage.to_json()
    del final_usage["cache_creation"], final_usage["service_tier"]
    return [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        *(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            }
            for piece in pieces
        ),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": final_usage,
        },
        {"type": "message_stop"},
    ]


def _validate(request: JSONObject, *, count_only: bool) -> WireResponse | None:
    if not isinstance(request.get("model"), str):
        return _error(400, "model: Field required")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return _error(400, "messages: at least one message is required")
    if not count_only:
        max_tokens = request.get("max_tokens")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            return _error(400, "max_tokens: Field required")
    return None


def _count_input(request: JSONObject) -> int:
    # A stand-in count: about one token per four characters of the request.
    return max(1, len(json.dumps(request.get("messages"))) // 4)


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


def _headers(content_type: str) -> dict[str, str]:
    return {"content-type": content_type, "request-id": f"req_{secrets.token_hex(12)}"}


def _json(status: int, body: JSONObject, extra_headers: Mapping[str, str]) -> WireResponse:
    headers = {**_headers("application/json"), **extra_headers}
    return WireResponse(status, headers, (json.dumps(body) + "\n").encode())


def _error(status: int, message: str, error_type: str = "invalid_request_error") -> WireResponse:
    return _json(status, error_body(message, error_type=error_type), {})


def _sse(event: JSONObject) -> bytes:
    data = json.dumps(event, separators=(",", ":"))
    return f"event: {event['type']}\ndata: {data}\n\n".encode()
