"""A scriptable stand-in for the Ollama server API, speaking its JSON and NDJSON format.

Endpoints: ``POST /api/chat`` and ``/api/generate`` (one JSON object, or with
``"stream": true`` newline-delimited JSON parts ending with a ``"done": true`` part
that carries ``prompt_eval_count`` and ``eval_count``), ``POST /api/embed`` and the
deprecated ``POST /api/embeddings`` (no token counts). Errors are sent as Ollama
sends them: ``{"error": "..."}`` with an HTTP status, or as an error line in the
middle of a stream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dexcost.demo._fake_api import LoopbackServing, ScriptedAPI
from dexcost.demo._server import WireResponse

JSONObject = dict[str, Any]

TEXT_PIECES = ("Your password ", "has been ", "reset.")
CREATED_AT = "2025-06-02T09:14:07.481635Z"
# Durations in nanoseconds, as Ollama reports them.
TIMINGS: JSONObject = {
    "total_duration": 1_873_402_667,
    "load_duration": 21_507_375,
    "prompt_eval_duration": 96_211_000,
    "eval_duration": 1_751_046_000,
}


@dataclass(frozen=True)
class OllamaReply:
    """One-shot override for the next request, queued with ``enqueue``.

    ``status`` >= 400 sends ``{"error": ...}`` with that status. ``prompt_eval_count``
    or ``eval_count`` set to None leaves that count out. ``stream_error`` sends an
    error line after the first part of a stream. ``done_reason`` replaces ``"stop"``.
    """

    status: int = 200
    prompt_eval_count: int | None = 100
    eval_count: int | None = 1200
    stream_error: bool = False
    done_reason: str = "stop"


@dataclass(frozen=True)
class OllamaRequest:
    """One request as the fake received it: its path and JSON body."""

    path: str
    body: Any


class FakeOllama(ScriptedAPI[OllamaReply, OllamaRequest]):
    """Reply logic shared by the mock transports and the loopback server."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self._init_script(OllamaReply)

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> WireResponse:
        path = target.split("?", 1)[0]
        request = json.loads(body) if body else {}
        with self._lock:
            self._requests.append(OllamaRequest(path, request))
        if method != "POST" or path not in (
            "/api/chat",
            "/api/generate",
            "/api/embed",
            "/api/embeddings",
        ):
            return _json(404, {"error": "404 page not found"})
        reply = self._next_reply()
        model = str(request.get("model"))
        if reply.status >= 400:
            return _json(
                reply.status, {"error": f'model "{model}" not found, try pulling it first'}
            )
        if path == "/api/embeddings":
            return _json(200, {"embedding": [0.5670403838157654, 0.009260174818336964]})
        if path == "/api/embed":
            return _json(200, _embed(model, reply))
        if request.get("stream") is True:
            return _stream(path, model, reply)
        return _json(200, _final_part(path, model, reply, "".join(TEXT_PIECES)))


class FakeOllamaServer(LoopbackServing, FakeOllama):
    """The fake Ollama API served over HTTP on 127.0.0.1."""

    @property
    def host(self) -> str:
        """Host URL to pass to ``ollama.Client(host=...)``."""
        return f"http://127.0.0.1:{self.port}"


def _content(path: str, text: str) -> JSONObject:
    if path == "/api/chat":
        return {"message": {"role": "assistant", "content": text}}
    return {"response": text}


def _final_part(path: str, model: str, reply: OllamaReply, text: str) -> JSONObject:
    part: JSONObject = {
        "model": model,
        "created_at": CREATED_AT,
        **_content(path, text),
        "done": True,
        "done_reason": reply.done_reason,
        **TIMINGS,
    }
    if path == "/api/generate":
        part["context"] = [128006, 882, 128007]
    if reply.prompt_eval_count is not None:
        part["prompt_eval_count"] = reply.prompt_eval_count
    if reply.eval_count is not None:
        part["eval_count"] = reply.eval_count
    return part


def _stream(path: str, model: str, reply: OllamaReply) -> WireResponse:
    parts = [
        {"model": model, "created_at": CREATED_AT, **_content(path, piece), "done": False}
        for piece in TEXT_PIECES
    ]
    if reply.stream_error:
        lines = [parts[0], {"error": "an error was encountered while running the model"}]
    else:
        lines = [*parts, _final_part(path, model, reply, "")]
    frames = tuple(json.dumps(line).encode() + b"\n" for line in lines)
    return WireResponse(200, {"content-type": "application/x-ndjson"}, frames=frames)


def _embed(model: str, reply: OllamaReply) -> JSONObject:
    body: JSONObject = {
        "model": model,
        "embeddings": [[0.010071029, -0.0017594862, 0.05007221]],
        "total_duration": 14_143_917,
        "load_duration": 1_019_500,
    }
    if reply.prompt_eval_count is not None:
        body["prompt_eval_count"] = reply.prompt_eval_count
    return body


def _json(status: int, body: JSONObject) -> WireResponse:
    headers = {"content-type": "application/json; charset=utf-8"}
    return WireResponse(status, headers, json.dumps(body).encode())
