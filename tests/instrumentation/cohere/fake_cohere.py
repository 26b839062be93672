"""A scriptable stand-in for the Cohere v1 and v2 APIs, served through httpx mock transports.

Endpoints: ``POST /v2/chat`` (JSON, or server-sent events with ``"stream": true``),
``POST /v1/chat`` (JSON, or one JSON object per line when streamed), and
``POST /v1|v2/embed`` and ``/v1|v2/rerank`` (JSON). Each reply reports both
``tokens`` and ``billed_units``; ``tokens`` is larger, as the real API's is when
Cohere adds template tokens it does not bill.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dexcost.demo._fake_api import ScriptedAPI
from dexcost.demo._server import WireResponse

JSONObject = dict[str, Any]
# Tokens Cohere processes but does not bill, added to the reported ``tokens``.
UNBILLED_INPUT = 250
UNBILLED_OUTPUT = 3


@dataclass(frozen=True)
class CohereReply:
    """One-shot override for the next request, queued by ``enqueue``.

    ``status`` >= 400 sends an error body. ``body`` replaces the generated JSON.
    ``end_event`` False cuts a stream before its final event. ``units`` replaces the
    whole ``billed_units`` object.
    """

    status: int = 200
    body: JSONObject | None = None
    input_tokens: int = 1000
    output_tokens: int = 300
    search_units: int = 1
    units: JSONObject | None = None
    end_event: bool = True
    chunks: Sequence[str] = ("Your password ", "has been reset.")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    body: Any


class FakeCohere(ScriptedAPI[CohereReply, RecordedRequest]):
    """Reply logic of the fake API; the reply queue and request log are thread-safe."""

    def __init__(self) -> None:
        self._init_script(CohereReply)

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> WireResponse:
        request = json.loads(body) if body else None
        path = target.split("?", 1)[0]
        with self._lock:
            self._requests.append(RecordedRequest(method, path, request))
        reply = self._next_reply()
        if reply.status >= 400:
            return _json(reply.status, reply.body or {"message": "invalid request: model"})
        if reply.body is not None:
            return _json(reply.status, reply.body)
        version, _, endpoint = path.strip("/").partition("/")
        streamed = isinstance(request, dict) and request.get("stream") is True
        if endpoint == "chat" and version == "v2":
            return _v2_stream(reply) if streamed else _json(200, _v2_chat(reply))
        if endpoint == "chat":
            return _v1_stream(reply) if streamed else _json(200, _v1_chat(reply))
        if endpoint == "embed":
            return _json(200, _embed(reply, request, version))
        if endpoint == "rerank":
            return _json(200, _rerank(reply, request))
        return _json(404, {"message": f"no route for {path}"})


def _json(status: int, body: JSONObject) -> WireResponse:
    return WireResponse(status, {"content-type": "application/json"}, json.dumps(body).encode())


def _billed(reply: CohereReply) -> JSONObject:
    if reply.units is not None:
        return reply.units
    return {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens}


def _tokens(reply: CohereReply) -> JSONObject:
    return {
        "input_tokens": reply.input_tokens + UNBILLED_INPUT,
        "output_tokens": reply.output_tokens + UNBILLED_OUTPUT,
    }


def _usage(reply: CohereReply) -> JSONObject:
    return {"billed_units": _billed(reply), "tokens": _tokens(reply), "cached_tokens": 0}


def _meta(reply: CohereReply, units: JSONObject, version: str = "2") -> JSONObject:
    return {"api_version": {"version": version}, "billed_units": units}


def _v2_chat(reply: CohereReply) -> JSONObject:
    text = "".join(reply.chunks)
    return {
        "id": "c0a8f6e1-5d7b-4f0e-9d2a-2b8c1e4f7a90",
        "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
        "usage": _usage(reply),
    }


def _sse(event_type: str, data: JSONObject) -> bytes:
    return f"event: {event_type}\ndata: {json.dumps(data)}\n\n".encode()


def _v2_stream(reply: CohereReply) -> WireResponse:
    message = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": []}
    frames = [
        _sse(
            "message-start",
            {"id": "5e1b", "type": "message-start", "delta": {"message": message}},
        ),
        _sse(
            "content-start",
            {
                "type": "content-start",
                "index": 0,
                "delta": {"message": {"content": {"type": "text", "text": ""}}},
            },
        ),
    ]
    for chunk in reply.chunks:
        delta = {"message": {"content": {"text": chunk}}}
        frames.append(_sse("content-delta", {"type": "content-delta", "index": 0, "delta": delta}))
    frames.append(_sse("content-end", {"type": "content-end", "index": 0}))
    if reply.end_event:
        end = {"finish_reason": "COMPLETE", "usage": _usage(reply)}
        frames.append(_sse("message-end", {"type": "message-end", "delta": end}))
    return WireResponse(200, {"content-type": "text/event-stream"}, frames=tuple(frames))


def _v1_chat(reply: CohereReply) -> JSONObject:
    text = "".join(reply.chunks)
    return {
        "response_id": "9a3e",
        "text": text,
        "generation_id": "41c7",
        "chat_history": [
            {"role": "USER", "message": "Reset my password"},
            {"role": "CHATBOT", "message": text},
        ],
        "finish_reason": "COMPLETE",
        "meta": {**_meta(reply, _billed(reply), "1"), "tokens": _tokens(reply)},
    }


def _v1_stream(reply: CohereReply) -> WireResponse:
    lines: list[JSONObject] = [
        {"is_finished": False, "event_type": "stream-start", "generation_id": "41c7"}
    ]
    lines += [
        {"is_finished": False, "event_type": "text-generation", "text": chunk}
        for chunk in reply.chunks
    ]
    if reply.end_event:
        lines.append(
            {
                "is_finished": True,
                "event_type": "stream-end",
                "finish_reason": "COMPLETE",
                "response": _v1_chat(reply),
            }
        )
    frames = tuple((json.dumps(line) + "\n").encode() for line in lines)
    return WireResponse(200, {"content-type": "application/stream+json"}, frames=frames)


def _embed(reply: CohereReply, request: Any, version: str) -> JSONObject:
    texts = list(request.get("texts") or []) if isinstance(request, dict) else []
    vectors = [[0.25, -0.5, 0.125] for _ in texts]
    units = reply.units if reply.units is not None else {"input_tokens": reply.input_tokens}
    body: JSONObject = {"id": "e7d2", "texts": texts, "meta": _meta(reply, units)}
    if version == "v2" or (isinstance(request, dict) and request.get("embedding_types")):
        body["response_type"] = "embeddings_by_type"
        body["embeddings"] = {"float": vectors}
    else:
        body["response_type"] = "embeddings_floats"
        body["embeddings"] = vectors
    return body


def _rerank(reply: CohereReply, request: Any) -> JSONObject:
    documents = request.get("documents") if isinstance(request, dict) else None
    count = len(documents) if isinstance(documents, list) else 0
    results = [{"index": i, "relevance_score": 1.0 / (i + 1)} for i in range(count)]
    units = reply.units if reply.units is not None else {"search_units": reply.search_units}
    return {"id": "r1f0", "results": results, "meta": _meta(reply, units)}
