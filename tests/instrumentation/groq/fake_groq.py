"""A scriptable stand-in for the Groq API, speaking its JSON and SSE wire format.

Endpoints: ``POST /openai/v1/chat/completions`` (JSON, or a server-sent event
stream when the request has ``"stream": true``) and ``POST /openai/v1/embeddings``.
As the Groq API does, a chat stream's first chunk carries ``x_groq.id``, its last
chunk carries the usage in ``x_groq.usage`` whatever the request asked, and a
request with ``stream_options.include_usage`` also gets an OpenAI-style usage chunk
with no choices before ``data: [DONE]``. Usage objects contain Groq's timing fields
(``queue_time``, ``prompt_time``, ...), which the SDK models as extra fields.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dexcost.demo._fake_api import LoopbackServing, ScriptedAPI
from dexcost.demo._server import WireResponse

JSONObject = dict[str, Any]

CHAT_PATH = "/openai/v1/chat/completions"
EMBEDDINGS_PATH = "/openai/v1/embeddings"
TEXT_PIECES = ("Your password ", "has been ", "reset.")


@dataclass(frozen=True)
class GroqUsage:
    """Token counts of one reply; ``prompt_tokens`` includes ``cached_tokens``."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass(frozen=True)
class GroqReply:
    """One-shot override for the next request, queued with ``enqueue``.

    ``status`` >= 400 sends a Groq error body. ``usage=None`` leaves the usage out
    of the reply (and out of the stream's last chunk). ``stream_error`` ends a
    stream after its first chunk with an SSE error event, as Groq does when a
    generation fails midway. ``model`` replaces the model named in the reply.
    """

    status: int = 200
    usage: GroqUsage | None = field(default_factory=lambda: GroqUsage(1000, 500))
    model: str | None = None
    stream_error: bool = False
    error_code: str = "model_not_found"


@dataclass(frozen=True)
class GroqRequest:
    """One request as the fake received it: its path, lower-case headers and JSON body."""

    path: str
    headers: dict[str, str]
    body: Any


class FakeGroq(ScriptedAPI[GroqReply, GroqRequest]):
    """Reply logic shared by the mock transports and the loopback server."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._init_script(GroqReply)

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> WireResponse:
        path = target.split("?", 1)[0]
        request_body = json.loads(body) if body else None
        with self._lock:
            self._requests.append(
                GroqRequest(path, {k.lower(): v for k, v in headers.items()}, request_body)
            )
        if method != "POST" or path not in (CHAT_PATH, EMBEDDINGS_PATH):
            return _json(404, _error_body("Unknown request URL", "unknown_url"))
        reply = self._next_reply()
        model = reply.model or str(request_body.get("model"))
        if reply.status >= 400:
            message = f"The model `{model}` does not exist or you do not have access to it."
            return _json(reply.status, _error_body(message, reply.error_code))
        if path == EMBEDDINGS_PATH:
            return _json(200, _embeddings(model, reply.usage))
        if request_body.get("stream") is True:
            options = request_body.get("stream_options") or {}
            return _stream(model, reply, include_usage=options.get("include_usage") is True)
        return _json(200, _completion(model, reply.usage))


class FakeGroqServer(LoopbackServing, FakeGroq):
    """The fake Groq API served over HTTP on 127.0.0.1."""

    @property
    def base_url(self) -> str:
        """Base URL to pass to ``groq.Groq(base_url=...)``."""
        return f"http://127.0.0.1:{self.port}"


def _usage(usage: GroqUsage) -> JSONObject:
    body: JSONObject = {
        "queue_time": 0.0172,
        "prompt_tokens": usage.prompt_tokens,
        "prompt_time": 0.0031,
        "completion_tokens": usage.completion_tokens,
        "completion_time": 0.0846,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "total_time": 0.0877,
    }
    if usage.cached_tokens is not None:
        body["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        body["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return body


def _completion(model: str, usage: GroqUsage | None) -> JSONObject:
    body: JSONObject = {
        "id": f"chatcmpl-{secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(TEXT_PIECES)},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "system_fingerprint": "fp_3f3b593e33",
        "x_groq": {"id": f"req_{secrets.token_hex(13)}"},
        "service_tier": "on_demand",
    }
    if usage is not None:
        body["usage"] = _usage(usage)
    return body


def _stream(model: str, reply: GroqReply, *, include_usage: bool) -> WireResponse:
    completion_id = f"chatcmpl-{secrets.token_hex(12)}"
    created = int(time.time())

    def chunk(choices: list[JSONObject], **extra: Any) -> JSONObject:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_3f3b593e33",
            "choices": choices,
            **extra,
        }

    def delta(content: dict[str, str], finish_reason: str | None = None) -> list[JSONObject]:
        return [{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish_reason}]

    events: list[JSONObject] = [
        chunk(
            delta({"role": "assistant", "content": ""}),
            x_groq={"id": f"req_{secrets.token_hex(13)}"},
        )
    ]
    if reply.stream_error:
        frames = [
            _sse(events[0]),
            _sse(
                {"error": {"message": "Service unavailable", "type": "internal_server_error"}},
                event="error",
            ),
        ]
        return _stream_response(frames)
    events.extend(chunk(delta({"content": piece})) for piece in TEXT_PIECES)
    x_groq: JSONObject = {"id": f"req_{secrets.token_hex(13)}"}
    if reply.usage is not None:
        x_groq["usage"] = _usage(reply.usage)
    events.append(chunk(delta({}, "stop"), x_groq=x_groq))
    if include_usage and reply.usage is not None:
        events.append(chunk([], usage=_usage(reply.usage)))
    frames = [_sse(event) for event in events]
    frames.append(b"data: [DONE]\n\n")
    return _stream_response(frames)


def _embeddings(model: str, usage: GroqUsage | None) -> JSONObject:
    body: JSONObject = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.0123, -0.0456, 0.0789]}],
        "model": model,
    }
    if usage is not None:
        body["usage"] = {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens}
    return body


def _error_body(message: str, code: str) -> JSONObject:
    return {"error": {"message": message, "type": "invalid_request_error", "code": code}}


def _json(status: int, body: JSONObject) -> WireResponse:
    headers = {"content-type": "application/json", "x-request-id": f"req_{secrets.token_hex(13)}"}
    return WireResponse(status, headers, json.dumps(body).encode())


def _sse(payload: JSONObject, *, event: str | None = None) -> bytes:
    data = json.dumps(payload, separators=(",", ":"))
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {data}\n\n".encode()


def _stream_response(frames: Sequence[bytes]) -> WireResponse:
    headers = {"content-type": "text/event-stream", "x-request-id": f"req_{secrets.token_hex(13)}"}
    return WireResponse(200, headers, frames=tuple(frames))
