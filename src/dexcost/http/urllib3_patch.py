"""Capture of ``urllib3``: the wrapper of ``HTTPConnectionPool.urlopen``.

Every urllib3 request reaches a connection pool's ``urlopen``, whether sent through a
``PoolManager``, ``urllib3.request()`` or a pool directly; ``HTTPSConnectionPool``
inherits it. Retries and redirects call ``urlopen`` again from inside, and requests
and botocore call it from inside their own captured calls, so a call made while a
capture is in progress is passed through. Tested with urllib3 2.8; ``urlopen`` has
taken ``method`` and ``url`` first since 1.x.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from types import FunctionType, MethodType, ModuleType
from typing import Any, Final

from dexcost import errors
from dexcost.http.capture import (
    IN_CAPTURE,
    Plan,
    lookup,
    lookup_url,
    path_only,
    send_captured,
)
from dexcost.instrumentation.registry import Instrumentor

_STEPS: Final = ("recording a urllib3 call", "recording a failed urllib3 call")


class Urllib3Capture(Instrumentor):
    """Patch ``urllib3.connectionpool.HTTPConnectionPool.urlopen``."""

    def _patch(self, module: ModuleType) -> None:
        del module
        connectionpool = importlib.import_module("urllib3.connectionpool")
        self._wrap(
            connectionpool.HTTPConnectionPool,
            "urlopen",
            urlopen_wrapper,
            method=True,
            unless=IN_CAPTURE,
            factory=urlopen_function,
        )


# The parameters of HTTPConnectionPool.urlopen in urllib3 2.x, in order.
_URLOPEN_PARAMETERS: Final = (
    "self",
    "method",
    "url",
    "body",
    "headers",
    "retries",
    "redirect",
    "assert_same_host",
    "timeout",
    "pool_timeout",
    "release_conn",
    "chunked",
    "body_pos",
    "preload_content",
    "decode_content",
    "response_kw",
)


def urlopen_function(original: FunctionType, gate: Any) -> Callable[..., Any] | None:
    """Return the function that replaces ``urlopen``, or None for another signature.

    It has ``urlopen``'s own parameters and defaults and passes them on by position.
    requests calls ``urlopen`` with eleven keyword arguments, and a wrapper that
    takes ``**kwargs`` packs them into a dict and unpacks them again: about six times
    the instructions of this one. Any other signature (urllib3 1.x) gets the generic
    wrapper.
    """
    parameters = tuple(inspect.signature(original).parameters.values())
    if tuple(parameter.name for parameter in parameters) != _URLOPEN_PARAMETERS:
        return None
    if parameters[-1].kind is not inspect.Parameter.VAR_KEYWORD or any(
        parameter.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD
        for parameter in parameters[:-1]
    ):
        return None

    # The defaults are replaced with the original's below.
    def urlopen(
        self: Any,
        method: Any,
        url: Any,
        body: Any = None,
        headers: Any = None,
        retries: Any = None,
        redirect: Any = True,
        assert_same_host: Any = True,
        timeout: Any = None,
        pool_timeout: Any = None,
        release_conn: Any = None,
        chunked: Any = False,
        body_pos: Any = None,
        preload_content: Any = True,
        decode_content: Any = True,
        **response_kw: Any,
    ) -> Any:
        capture = gate.active and not IN_CAPTURE.get()
        if capture or response_kw:
            arguments = (
                method,
                url,
                body,
                headers,
                retries,
                redirect,
                assert_same_host,
                timeout,
                pool_timeout,
                release_conn,
                chunked,
                body_pos,
                preload_content,
                decode_content,
            )
            if capture:
                return urlopen_wrapper(MethodType(original, self), self, arguments, response_kw)
            return original(self, *arguments, **response_kw)
        # The common pass-through (requests' own calls): by position, no tuple.
        return original(
            self,
            method,
            url,
            body,
            headers,
            retries,
            redirect,
            assert_same_host,
            timeout,
            pool_timeout,
            release_conn,
            chunked,
            body_pos,
            preload_content,
            decode_content,
        )

    urlopen.__defaults__ = original.__defaults__
    return urlopen


def urlopen_wrapper(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if IN_CAPTURE.get():
        return wrapped(*args, **kwargs)
    try:
        matched = _plan(instance, args, kwargs)
    except Exception:
        errors.log_internal_error("matching a urllib3 call")
        matched = None
    if matched is None:
        return wrapped(*args, **kwargs)
    matched.sent = args[2] if len(args) > 2 else kwargs.get("body")
    return send_captured(wrapped, args, kwargs, matched, _record, _STEPS)


def _plan(pool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Plan | None:
    method = args[0] if args else kwargs.get("method")
    url = args[1] if len(args) > 1 else kwargs.get("url")
    if not isinstance(method, str) or not isinstance(url, str):
        return None
    if url.startswith("/"):
        host = lookup(pool.host)
        return None if host is None else host.plan(method, path_only(url))
    # An absolute URL: the request goes through a proxy, and the URL names the
    # real destination.
    found = lookup_url(url)
    return None if found is None else found[0].plan(method, found[1])


def _record(matched: Plan, response: Any) -> None:
    status = response.status
    if matched.rule.fixed_units is not None:
        # A fixed count needs neither headers nor bodies.
        matched.record_response(status)
        return
    response_body = None
    if matched.wants_response_body(status):
        # Only a preloaded body is read (preload_content=True, the default); reading
        # .data of any other response would consume the caller's stream.
        preloaded = getattr(response, "_body", None)
        if isinstance(preloaded, bytes):
            response_body = preloaded
    request_body = None
    body = matched.sent
    if matched.rule.reads_request and isinstance(body, (bytes, str)):
        request_body = body
    matched.record_response(
        status, headers=response.headers, response_body=response_body, request_body=request_body
    )
