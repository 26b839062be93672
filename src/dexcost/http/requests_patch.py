"""Capture of ``requests``: the wrapper of ``Session.send``.

Every requests call (``requests.get``, a ``Session``, an adapter of the app's own)
goes through ``Session.send`` with a prepared request, once per redirect hop.
Tested with requests 2.34; ``Session.send`` has had this signature since 1.0.
"""

from __future__ import annotations

import importlib
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
    split_url,
)
from dexcost.instrumentation.registry import Instrumentor


class RequestsCapture(Instrumentor):
    """Patch ``requests.Session.send``; undone by ``uninstrument``."""

    def _patch(self, module: ModuleType) -> None:
        del module
        sessions = importlib.import_module("requests.sessions")
        self._wrap(sessions.Session, "send", send_wrapper)


def _plan(request: Any) -> Plan | None:
    try:
        host, path = split_url(request.url)
        return plan(request.method or "GET", host, path)
    except Exception:
        errors.log_internal_error("matching a requests call")
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
        step="recording a requests call",
        failed_step="recording a failed requests call",
    )


def _record(matched: Plan, request: Any, response: Any, streamed: bool) -> None:
    status = response.status_code
    response_json = None
    # A streamed body belongs to the caller, who may read it only once. Any other
    # body was read by send() and is cached, so reading .content costs nothing.
    if matched.wants_response_body(status) and not streamed:
        response_json = decode_json(response.content)
    request_json = None
    if matched.wants_request_body() and isinstance(request.body, (bytes, str)):
        request_json = decode_json(request.body)
    matched.record_response(
        status, headers=response.headers, response_json=response_json, request_json=request_json
    )
