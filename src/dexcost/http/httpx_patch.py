"""Capture of ``httpx`` and ``httpx2``: the wrappers of ``Client.send`` and ``AsyncClient.send``.

Both libraries share one API, so one wrapper serves both. ``send`` handles redirects
and authentication inside, so each call is one captured request. Tested with httpx
0.29 and httpx2 2.16; ``send`` has had this signature since httpx 0.18.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from dexcost import errors
from dexcost.http.capture import (
    Plan,
    decode_json,
    in_capture,
    plan,
    send_captured,
    send_captured_async,
)
from dexcost.instrumentation.registry import Instrumentor


class HttpxCapture(Instrumentor):
    """Patch ``Client.send`` and ``AsyncClient.send`` of httpx or httpx2."""

    def _patch(self, module: ModuleType) -> None:
        self._wrap(module.Client, "send", send_wrapper)
        self._wrap(module.AsyncClient, "send", async_send_wrapper)


def _plan(request: Any) -> Plan | None:
    try:
        url = request.url
        return plan(request.method, url.host, lambda: url.path)
    except Exception:
        errors.log_internal_error("matching an httpx call")
        return None


def send_wrapper(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if in_capture():
        return wrapped(*args, **kwargs)
    request = args[0] if args else kwargs.get("request")
    matched = _plan(request)
    if matched is None:
        return wrapped(*args, **kwargs)
    streamed = bool(kwargs.get("stream"))
    return send_captured(
        wrapped,
        args,
        kwargs,
        record=lambda response: _record(matched, request, response, streamed),
        record_failure=matched.record_failure,
        step="recording an httpx call",
        failed_step="recording a failed httpx call",
    )


def async_send_wrapper(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if in_capture():
        return wrapped(*args, **kwargs)
    request = args[0] if args else kwargs.get("request")
    matched = _plan(request)
    if matched is None:
        return wrapped(*args, **kwargs)
    streamed = bool(kwargs.get("stream"))
    return send_captured_async(
        wrapped,
        args,
        kwargs,
        record=lambda response: _record(matched, request, response, streamed),
        record_failure=matched.record_failure,
        step="recording an httpx call",
        failed_step="recording a failed httpx call",
    )


def _record(matched: Plan, request: Any, response: Any, streamed: bool) -> None:
    status = response.status_code
    response_json = None
    # send() reads the body unless asked to stream it; a streamed body is the
    # caller's to read, so it is never touched here.
    if matched.wants_response_body(status) and not streamed:
        response_json = decode_json(_read_body(response))
    request_json = None
    if matched.wants_request_body():
        request_json = decode_json(_read_body(request))
    matched.record_response(
        status, headers=response.headers, response_json=response_json, request_json=request_json
    )


def _read_body(message: Any) -> bytes | None:
    """Return the body of a request or response already in memory, else None."""
    try:
        content = message.content
    except Exception:
        # ResponseNotRead / RequestNotRead: a stream, which only its owner may read.
        return None
    return content if isinstance(content, bytes) else None
