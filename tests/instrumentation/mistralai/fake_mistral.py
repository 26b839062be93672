"""A scriptable stand-in for the Mistral API, served through httpx2 mock transports.

Endpoints: ``POST /v1/chat/completions`` and ``POST /v1/fim/completions`` (JSON, or
server-sent ``data:`` chunks ending with ``data: [DONE]`` when ``"stream": true``; the
last chunk carries ``usage``) and ``POST /v1/embeddings``. Errors use the API's
``{"object": "error", "message": ..., "type": ..., "code": ...}`` body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dexcost.demo._fake_api import ScriptedAPI
from dexcost.demo._server import WireResponse

JSONObject = dict[str, Any]


@dataclass(frozen=True)
class MistralReply:
    """One-shot override for the next request, queued by ``enqueue``.

    ``status`` >= 400 sends an error body (422 the validation shape). ``usage``
    replaces the whole usage object; ``usage_chunk`` False ends a stream without it.
    ``model`` is the model named in the reply (default: the request's).
    """

    status: int = 200
    prompt_tokens: int = 1000
    completion_tokens: int = 300
    cached_tokens: int | None = None
    usage: JSONObject | None = None
    model: str | None = None
    usage_chunk: bool = True
    chunks: Sequence[str] = ("Your password ", "has been reset.")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    body: Any


class FakeMistral(ScriptedAPI[MistralReply, RecordedRequest]):
    """Reply logic of the fake API; the reply queue and request log are thread-safe."""

    def __init__(self) -> None:
        self._init_script(MistralReply)

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> WireResponse:
        request = json.loads(body) if body else {}
        path = target.split("?", 1)[0]
        with self._lock:
            self._requests.append(RecordedRequest(method, path, request))
        reply = self._next_reply()
        if reply.status >= 400:
            return _error(reply.status)
        model = reply.model or str(request.get("model"))
        if path == "/v1/embeddings":
            return _json(_embeddings(reply, model, request))
        if path not in ("/v1/chat/completions", "/v1/fim/completions"):
            return _error(404)
        if request.get("stream") is True:
            return _stream(reply, model)
        return _json(_completion(reply, model))


def _json(body: JSONObject, status: int = 200) -> WireResponse:
    return WireResponse(status, {"content-type": "application/json"}, json.dumps(body).encode())


def _error(status: int) -> WireResponse:
    if status == 422:
        detail = [{"type": "missing", "loc": ["body", "messages"], "msg": "Field required"}]
        return _json({"detail": detail}, status)
    body = {"object": "error", "message": "Invalid model", "type": "invalid_model", "code": "1500"}
    return _json(body, status)


def _usage(reply: MistralReply) -> JSONObject:
    if reply.usage is not None:
        return reply.usage
    usage: JSONObject = {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }
    if reply.cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}
    return usage


def _completion(reply: MistralReply, model: str) -> JSONObject:
    message = {"role": "assistant", "content": "".join(reply.chunks), "tool_calls": None}
    return {
        "id": "cmpl-3f9a",
        "object": "chat.completion",
        "created": 1764800000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": _usage(reply),
    }


def _chunk(model: str, delta: JSONObject, finish: str | None) -> JSONObject:
    return {
        "id": "cmpl-3f9a",
        "object": "chat.completion.chunk",
        "created": 1764800000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _stream(reply: MistralReply, model: str) -> WireResponse:
    chunks = [_chunk(model, {"role": "assistant", "content": ""}, None)]
    chunks += [_chunk(model, {"content": text}, None) for text in reply.chunks]
    last = _chunk(model, {"content": ""}, "stop")
    if reply.usage_chunk:
        last["usage"] = _usage(reply)
    chunks.append(last)
    frames = [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks]
    frames.append(b"data: [DONE]\n\n")
    return WireResponse(200, {"content-type": "text/event-stream"}, frames=tuple(frames))


def _embeddings(reply: MistralReply, model: str, request: JSONObject) -> WireResponse | JSONObject:
    # The API names the field "input"; the SDK argument is "inputs".
    inputs = request.get("input")
    texts = inputs if isinstance(inputs, list) else [inputs]
    data = [
        {"object": "embedding", "embedding": [0.25, -0.5, 0.125], "index": i}
        for i in range(len(texts))
    ]
    usage = (
        _usage(reply)
        if reply.usage is not None
        else {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": 0,
            "total_tokens": reply.prompt_tokens,
        }
    )
    return {"id": "emb-77c1", "object": "list", "model": model, "data": data, "usage": usage}
