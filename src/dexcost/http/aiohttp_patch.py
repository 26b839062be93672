"""Capture of ``aiohttp``: the wrapper of ``ClientSession._request``.

Every client request of aiohttp (``session.get``, ``session.request``, ``aiohttp.request``)
is sent by ``ClientSession._request``, which returns the response before its body is
read. For an entry whose unit count is in the JSON body, the count is therefore read
when the caller reads the body (``read``, ``json`` or ``text``, all of which go
through ``ClientResponse.read``). A response released, closed or garbage-collected
without its body read is recorded ``usage_unknown``; dexcost never reads it itself.
Tested with aiohttp 3.14; ``_request`` has taken ``method`` and ``str_or_url`` first
since 3.0.
"""

from __future__ import annotations

import importlib
import threading
import weakref
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any, Final

from dexcost import errors
from dexcost.http.capture import (
    IN_CAPTURE,
    Plan,
    decode_json,
    guarded,
    lookup,
    send_captured_async,
    split_url,
)
from dexcost.instrumentation.registry import Instrumentor

_STEPS: Final = ("recording an aiohttp call", "recording a failed aiohttp call")


class AiohttpCapture(Instrumentor):
    """Patch ``ClientSession._request`` and the body-reading end of ``ClientResponse``."""

    def _patch(self, module: ModuleType) -> None:
        del module
        client = importlib.import_module("aiohttp.client")
        reqrep = importlib.import_module("aiohttp.client_reqrep")
        self._wrap(client.ClientSession, "_request", request_wrapper)
        self._wrap(reqrep.ClientResponse, "read", read_wrapper)
        self._wrap(reqrep.ClientResponse, "release", release_wrapper)
        self._wrap(reqrep.ClientResponse, "close", release_wrapper)


class _Pending:
    """A response whose unit count waits for the caller to read the body."""

    __slots__ = ("_done", "_lock", "finalizer", "headers", "matched", "request_json", "status")

    def __init__(self, matched: Plan, status: int, headers: Any, request_json: Any) -> None:
        self.matched = matched
        self.status = status
        self.headers = headers
        self.request_json = request_json
        self.finalizer: weakref.finalize[Any, Any] | None = None
        self._done = False
        self._lock = threading.Lock()

    def record(self, body: bytes | None) -> None:
        """Record once, with the body if it was read; may run on the collector's thread."""
        with self._lock:
            if self._done:
                return
            self._done = True
        if self.finalizer is not None:
            self.finalizer.detach()
        self.matched.record_response(
            self.status,
            headers=self.headers,
            response_body=body,
            request_json=self.request_json,
        )


# Responses whose body has not been read yet; weak so dexcost never keeps one alive.
_pending: weakref.WeakKeyDictionary[Any, _Pending] = weakref.WeakKeyDictionary()


def _plan(session: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Plan | None:
    try:
        method = args[0] if args else kwargs.get("method")
        url = args[1] if len(args) > 1 else kwargs.get("str_or_url")
        if not isinstance(method, str):
            return None
        if isinstance(url, str):
            name, path = split_url(url)
            if name is not None:
                host = lookup(name)
                return None if host is None else host.plan(method, path)
        # A yarl URL, or a path relative to the session's base_url.
        full = session._build_url(url)
        host = lookup(full.host)
        return None if host is None else host.plan(method, full.path)
    except Exception:
        errors.log_internal_error("matching an aiohttp call")
        return None


def request_wrapper(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if IN_CAPTURE.get():
        return wrapped(*args, **kwargs)
    matched = _plan(instance, args, kwargs)
    if matched is None:
        return wrapped(*args, **kwargs)
    matched.sent = kwargs
    return send_captured_async(
        wrapped, args, kwargs, matched, _record, _STEPS, record_failure=_record_error
    )


def _record_error(matched: Plan, exc: BaseException) -> None:
    # raise_for_status=True turns an error reply into ClientResponseError after the
    # reply arrived, so it is a failed response, not a failed connection.
    status = getattr(exc, "status", None)
    if type(status) is int and status >= 400:
        matched.record_response(status)
    else:
        matched.record_failure(exc)


def _request_json(kwargs: dict[str, Any]) -> Any:
    document = kwargs.get("json")
    if document is not None:
        return document
    data = kwargs.get("data")
    return decode_json(data) if isinstance(data, (bytes, str)) else None


def _record(matched: Plan, response: Any) -> None:
    status = response.status
    request_json = _request_json(matched.sent) if matched.wants_request_body() else None
    if not matched.wants_response_body(status):
        matched.record_response(status, headers=response.headers, request_json=request_json)
        return
    pending = _Pending(matched, status, response.headers, request_json)
    body = response._body
    if isinstance(body, bytes):
        pending.record(body)
        return
    pending.finalizer = weakref.finalize(response, pending.record, None)
    _pending[response] = pending


def _take_pending(response: Any) -> _Pending | None:
    if not _pending:
        return None
    return _pending.pop(response, None)


def read_wrapper(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if not _pending:
        return wrapped(*args, **kwargs)
    return _read_async(instance, wrapped, args, kwargs)


async def _read_async(
    response: Any,
    wrapped: Callable[..., Coroutine[Any, Any, Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    body = await wrapped(*args, **kwargs)
    guarded("reading an aiohttp body", lambda: _finish_pending(response))
    return body


def _finish_pending(response: Any) -> None:
    pending = _take_pending(response)
    if pending is not None:
        body = response._body
        pending.record(body if isinstance(body, bytes) else None)


def release_wrapper(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if _pending:
        guarded("releasing an aiohttp response", lambda: _finish_pending(instance))
    return wrapped(*args, **kwargs)
