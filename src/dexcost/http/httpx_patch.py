"""Capture of ``httpx`` and ``httpx2``: the wrappers of ``Client.send`` and ``AsyncClient.send``.

Both libraries share one API, so one wrapper serves both. ``send`` handles redirects
and authentication inside, so each call is one captured request. Tested with httpx
0.29 and httpx2 2.16; ``send`` has had this signature since httpx 0.18.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any, Final

from dexcost import errors
from dexcost.http.capture import (
    IN_CAPTURE,
    Plan,
    lookup,
    send_captured,
    send_captured_async,
)
from dexcost.instrumentation.registry import Instrumentor

_STEPS: Final = ("recording an httpx call", "recording a failed httpx call")


class HttpxCapture(Instrumentor):
    """Patch ``Client.send`` and ``AsyncClient.send`` of httpx or httpx2."""

    def _patch(self, module: ModuleType) -> None:
        self._wrap(module.Client, "send", send_wrapper, method=True)
        self._wrap(module.AsyncClient, "send", async_send_wrapper)


def _plan(request: Any) -> Plan | None:
    try:
        url = request.url
        host = lookup(url.host)
        return None if host is None else host.plan(request.method, url.path)
    except Exception:
        errors.log_internal_error("matching an httpx call")
        return None


def send_wrapper(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if IN_CAPTURE.get():
        return wrapped(*args, **kwargs)
    request = args[0] if args else kwargs.get("request")
    matched = _plan(request)
    if matched is None:
        return wrapped(*args, **kwargs)
    matched.sent = request
    matched.streamed = bool(kwargs.get("stream"))
    return send_captured(wrapped, args, kwargs, matched, _record, _STEPS)


def async_send_wrapper(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if IN_CAPTURE.get():
        return wrapped(*args, **kwargs)
    request = args[0] if args else kwargs.get("request")
    matched = _plan(request)
    if matched is None:
        return wrapped(*args, **kwargs)
    matched.sent = request
    matched.streamed = bool(kwargs.get("stream"))
    return send_captured_async(wrapped, args, kwargs, matched, _record, _STEPS)


def _record(matched: Plan, response: Any) -> None:
    status = response.status_code
    if matched.rule.fixed_units is not None:
        # A fixed count needs neither headers nor bodies.
        matched.record_response(status)
        return
    response_body = None
    # send() reads the body unless asked to stream it; a streamed body is the
    # caller's to read, so it is never touched here.
    if not matched.streamed and matched.wants_response_body(status):
        response_body = _read_body(response)
    request_body = None
    if matched.rule.reads_request:
        request_body = _read_body(matched.sent)
    matched.record_response(
        status, headers=response.headers, response_body=response_body, request_body=request_body
    )


def _read_body(message: Any) -> bytes | None:
    """Return the body of a request or response already in memory, else None."""
    try:
        content = message.content
    except Exception:
        # ResponseNotRead / RequestNotRead: a stream, which only its owner may read.
        return None
    return content if isinstance(content, bytes) else None
