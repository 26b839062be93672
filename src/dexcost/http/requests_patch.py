"""Capture of ``requests``: the wrapper of ``Session.send``.

Every requests call (``requests.get``, a ``Session``, an adapter of the app's own)
goes through ``Session.send`` with a prepared request, once per redirect hop.
Tested with requests 2.34; ``Session.send`` has had this signature since 1.0.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import FunctionType, ModuleType, SimpleNamespace
from typing import Any, Final

from dexcost import errors
from dexcost.http.capture import (
    IN_CAPTURE,
    Plan,
    lookup_url,
    send_captured,
)
from dexcost.instrumentation.registry import Instrumentor

_STEPS: Final = ("recording a requests call", "recording a failed requests call")


class RequestsCapture(Instrumentor):
    """Patch ``requests.Session.send``; undone by ``uninstrument``."""

    def _patch(self, module: ModuleType) -> None:
        del module
        sessions = importlib.import_module("requests.sessions")
        self._wrap(sessions.Session, "send", send_wrapper, method=True, factory=send_function)


def send_function(original: FunctionType, gate: Any) -> Callable[..., Any]:
    """Return the function that replaces ``Session.send``.

    It has ``send``'s own signature, so an unmatched request, the common case, costs
    one function call and no packing of arguments.
    """

    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        if not gate.active or IN_CAPTURE.get():
            return original(self, request, **kwargs)
        try:
            found = lookup_url(request.url)
            matched = None if found is None else found[0].plan(request.method or "GET", found[1])
        except Exception:
            errors.log_internal_error("matching a requests call")
            matched = None
        if matched is None:
            # urllib3 underneath would match the same request again, so the request
            # is marked as handled.
            token = IN_CAPTURE.set(True)
            try:
                return original(self, request, **kwargs)
            finally:
                IN_CAPTURE.reset(token)
        matched.sent = request
        matched.streamed = bool(kwargs.get("stream"))
        return send_captured(original, (self, request), kwargs, matched, _record, _STEPS)

    return send


def send_wrapper(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Wrap ``Session.send`` where wrapt is used: when it is not a plain function."""

    def call(session: Any, request: Any, **rest: Any) -> Any:
        return wrapped(request, **rest)

    return send_function(call, _ACTIVE)(instance, *args, **kwargs)  # type: ignore[arg-type]


# The gate send_function checks, for send_wrapper: wrapt calls it only while active.
_ACTIVE: Final = SimpleNamespace(active=True)


def _record(matched: Plan, response: Any) -> None:
    status = response.status_code
    if matched.rule.fixed_units is not None:
        # A fixed count needs neither headers nor bodies.
        matched.record_response(status)
        return
    response_body = None
    # A streamed body belongs to the caller, who may read it only once. Any other
    # body was read by send() and is cached, so reading .content costs nothing.
    if not matched.streamed and matched.wants_response_body(status):
        content = response.content
        response_body = content if isinstance(content, bytes) else None
    request_body = None
    if matched.rule.reads_request:
        body = matched.sent.body
        if isinstance(body, (bytes, str)):
            request_body = body
    matched.record_response(
        status, headers=response.headers, response_body=response_body, request_body=request_body
    )
