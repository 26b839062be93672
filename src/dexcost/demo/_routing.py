"""Routing, request checks and reply envelopes of the fake OpenAI API.

The checks reject what the real API rejects and what an instrumentation
patch is most likely to get wrong, so a test gets the failure the caller
would get in production.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dexcost.demo._payloads import JSONObject, error_body
from dexcost.demo._server import WireResponse

# Path prefixes: /v1 (OpenAI), /openai/deployments/{name} (Azure, per
# deployment), /openai and /openai/v1 (Azure endpoints outside deployments).
ROUTE_PATTERN = re.compile(
    r"^/(?:v1|openai(?:/v1)?|openai/deployments/(?P<deployment>[^/]+))"
    r"/(?P<endpoint>chat/completions|responses|embeddings)/?$"
)


@dataclass(frozen=True)
class Route:
    """Endpoint a request path names, and whether it came in the Azure shape."""

    endpoint: str
    azure: bool
    deployment: str | None


def match_route(path: str) -> Route | None:
    match = ROUTE_PATTERN.match(path)
    if match is None:
        return None
    return Route(
        endpoint=match["endpoint"],
        azure=path.startswith("/openai/"),
        deployment=match["deployment"],
    )


def parse_json(body: bytes) -> tuple[Any, str | None]:
    """Return the parsed body and, if it is not a JSON object, why not."""
    try:
        parsed = json.loads(body) if body else None
    except ValueError as exc:
        return None, str(exc)
    if not isinstance(parsed, dict):
        return parsed, "the body must be a JSON object"
    return parsed, None


def validate(route: Route, request: JSONObject) -> WireResponse | None:
    """Return the API's 400 reply for a malformed request body, or None if it is valid."""
    if not route.azure and not isinstance(request.get("model"), str):
        return error_response(400, "you must provide a model parameter", param="model")
    if route.endpoint == "chat/completions":
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            return error_response(400, "'messages' must be a non-empty array.", param="messages")
    if route.endpoint == "embeddings":
        inputs = request.get("input")
        if not isinstance(inputs, (str, list)) or not inputs:
            message = "'input' must be a non-empty string or array."
            return error_response(400, message, param="input")
    # An instrumentation that adds include_usage to a non-streamed call breaks
    # the caller's request, because the real API rejects it the same way.
    if (
        route.endpoint == "chat/completions"
        and request.get("stream_options") is not None
        and not request.get("stream")
    ):
        return error_response(
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is true.",
            param="stream_options",
        )
    return None


def embedding_inputs(inputs: str | list[Any]) -> list[str]:
    """Name one text per embedding: a string or a token list embeds once."""
    if isinstance(inputs, str) or all(isinstance(item, int) for item in inputs):
        return [json.dumps(inputs)]
    return [json.dumps(item) for item in inputs]


def scripted_error(status: int) -> JSONObject:
    """Build the error body for a ``FakeReply`` that gives a status but no body."""
    if status == 429:
        return error_body(
            "Rate limit reached (scripted by the fake server).",
            error_type="requests",
            code="rate_limit_exceeded",
        )
    error_type = "server_error" if status >= 500 else "invalid_request_error"
    return error_body(f"Error {status} scripted by the fake server.", error_type=error_type)


def error_response(status: int, message: str, *, param: str | None = None) -> WireResponse:
    return json_response(status, error_body(message, param=param), {})


def _base_headers(content_type: str) -> dict[str, str]:
    return {
        "content-type": content_type,
        "x-request-id": f"req_{secrets.token_hex(16)}",
        "openai-processing-ms": "1",
        "openai-version": "2020-10-01",
    }


def json_response(status: int, body: JSONObject, extra_headers: Mapping[str, str]) -> WireResponse:
    headers = {**_base_headers("application/json"), **extra_headers}
    return WireResponse(status, headers, (json.dumps(body, indent=2) + "\n").encode())


def stream_response(frames: list[bytes], extra_headers: Mapping[str, str]) -> WireResponse:
    headers = {**_base_headers("text/event-stream; charset=utf-8"), **extra_headers}
    return WireResponse(200, headers, frames=tuple(frames))
