"""The plain-function wrappers the HTTP capture puts on client methods.

``Instrumentor._wrap(..., method=True)`` replaces a method with a plain function
instead of a wrapt proxy. It must behave like the proxy: show the original, pass
calls through once turned off, be found again under another library's wrapper, and
leave coroutine functions to wrapt.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextvars import ContextVar
from types import ModuleType
from typing import Any

import httpx
import requests
import wrapt

from dexcost.instrumentation.registry import Instrumentor, find_gate


class Service:
    def call(self, value: int, *, scale: int = 1) -> int:
        """Return value times scale."""
        return value * scale

    async def call_async(self, value: int) -> int:
        return value


ORIGINAL_CALL = vars(Service)["call"]
ORIGINAL_CALL_ASYNC = vars(Service)["call_async"]


def _recording(seen: list[str], tag: str) -> Callable[..., Any]:
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.append(tag)
        return wrapped(*args, **kwargs)

    return wrapper


class ServiceCapture(Instrumentor):
    def __init__(self, seen: list[str]) -> None:
        super().__init__()
        self.seen = seen

    def _patch(self, module: ModuleType) -> None:
        self._wrap(Service, "call", _recording(self.seen, "dexcost"), method=True)
        self._wrap(Service, "call_async", _recording(self.seen, "dexcost"), method=True)


def _restore() -> None:
    Service.call = ORIGINAL_CALL  # type: ignore[method-assign]
    Service.call_async = ORIGINAL_CALL_ASYNC  # type: ignore[method-assign]


def test_method_wrapper_shows_original() -> None:
    capture = ServiceCapture([])
    capture.instrument(inspect.getmodule(Service))  # type: ignore[arg-type]
    try:
        wrapped = vars(Service)["call"]
        assert inspect.isfunction(wrapped)
        assert wrapped.__name__ == "call"
        assert wrapped.__doc__ == "Return value times scale."
        assert wrapped.__wrapped__ is ORIGINAL_CALL
    finally:
        capture.uninstrument()
        _restore()


def test_method_wrapper_passes_arguments() -> None:
    seen: list[str] = []
    capture = ServiceCapture(seen)
    capture.instrument(inspect.getmodule(Service))  # type: ignore[arg-type]
    try:
        result = Service().call(3, scale=2)
    finally:
        capture.uninstrument()
        _restore()

    assert result == 6
    assert seen == ["dexcost"]


def test_uninstrument_restores_original_method() -> None:
    capture = ServiceCapture([])
    capture.instrument(inspect.getmodule(Service))  # type: ignore[arg-type]
    capture.uninstrument()

    assert vars(Service)["call"] is ORIGINAL_CALL


def test_coroutine_method_keeps_wrapt_proxy() -> None:
    capture = ServiceCapture([])
    capture.instrument(inspect.getmodule(Service))  # type: ignore[arg-type]
    try:
        assert isinstance(vars(Service)["call_async"], wrapt.FunctionWrapper)
        assert inspect.iscoroutinefunction(Service.call_async)
    finally:
        capture.uninstrument()
        _restore()


def test_method_wrapper_reenabled_under_later_wrapper() -> None:
    seen: list[str] = []
    capture = ServiceCapture(seen)
    capture.instrument(inspect.getmodule(Service))  # type: ignore[arg-type]
    wrapt.wrap_function_wrapper(Service, "call", _recording(seen, "app"))
    try:
        capture.uninstrument()
        Service().call(1)
        assert seen == ["app"]

        capture.instrument(inspect.getmodule(Service))  # type: ignore[arg-type]
        Service().call(1)
        assert seen == ["app", "app", "dexcost"]
        assert find_gate(vars(Service)["call"]) is not None
    finally:
        capture.uninstrument()
        _restore()


def test_method_wrapper_goes_inside_earlier_wrapper() -> None:
    seen: list[str] = []
    wrapt.wrap_function_wrapper(Service, "call", _recording(seen, "app"))
    capture = ServiceCapture(seen)
    capture.instrument(inspect.getmodule(Service))  # type: ignore[arg-type]
    try:
        Service().call(1)
        assert seen == ["app", "dexcost"]
        assert inspect.isfunction(vars(Service)["call"].__wrapped__)
        capture.uninstrument()
        assert vars(Service)["call"].__wrapped__ is ORIGINAL_CALL
    finally:
        capture.uninstrument()
        _restore()


def test_http_clients_sync_send_are_plain_functions(dx: Any) -> None:
    assert inspect.isfunction(vars(requests.Session)["send"])
    assert inspect.isfunction(vars(httpx.Client)["send"])
    assert inspect.iscoroutinefunction(httpx.AsyncClient.send)


def test_method_wrapper_skips_while_marked() -> None:
    skipping: ContextVar[bool] = ContextVar("skipping", default=False)
    seen: list[str] = []

    class SkippingCapture(Instrumentor):
        def _patch(self, module: ModuleType) -> None:
            self._wrap(Service, "call", _recording(seen, "dexcost"), method=True, unless=skipping)

    capture = SkippingCapture()
    capture.instrument(inspect.getmodule(Service))  # type: ignore[arg-type]
    try:
        token = skipping.set(True)
        try:
            skipped = Service().call(2, scale=3)
        finally:
            skipping.reset(token)
        Service().call(1)
    finally:
        capture.uninstrument()
        _restore()

    assert skipped == 6
    assert seen == ["dexcost"]


def test_requests_wrapt_form_prices_request(dx: Any, api: Any, costs: Any) -> None:
    """send_wrapper, used where Session.send is not a plain function, prices like it."""
    from decimal import Decimal

    from dexcost.http.requests_patch import send_wrapper

    from .fake_paid_api import FIXED_COST

    session = requests.Session()
    original = vars(requests.Session)["send"].__wrapped__
    prepared = session.prepare_request(requests.Request("GET", api.base_url + "/fixed/a"))

    def wrapped(request: Any, **kwargs: Any) -> Any:
        return original(session, request, **kwargs)

    response = send_wrapper(wrapped, session, (prepared,), {"timeout": 5})
    assert response.status_code == 200
    (event,) = costs()
    assert Decimal(event["cost_usd"]) == FIXED_COST


def test_urlopen_replacement_keeps_signature(dx: Any) -> None:
    from urllib3.connectionpool import HTTPConnectionPool

    installed = vars(HTTPConnectionPool)["urlopen"]
    original = installed.__wrapped__
    assert find_gate(installed) is not None
    assert installed.__code__.co_varnames[:15] == original.__code__.co_varnames[:15]
    assert installed.__defaults__ == original.__defaults__


def test_urlopen_extra_keywords_reach_response(dx: Any, api: Any, costs: Any) -> None:
    """Keywords urlopen passes on to the response still arrive, and the call is priced."""
    from decimal import Decimal

    import urllib3

    from .fake_paid_api import FIXED_COST

    pool = urllib3.HTTPConnectionPool("127.0.0.1", int(api.base_url.rsplit(":", 1)[1]))
    response = pool.urlopen("GET", "/fixed/a", enforce_content_length=False)
    assert response.status == 200
    assert response.enforce_content_length is False
    (event,) = costs()
    assert Decimal(event["cost_usd"]) == FIXED_COST


def test_urlopen_other_signature_gets_generic_wrapper() -> None:
    from dexcost.http.urllib3_patch import urlopen_function

    def urlopen(self: Any, method: str, url: str, body: Any = None, **response_kw: Any) -> Any:
        return None

    assert urlopen_function(urlopen, object()) is None  # type: ignore[arg-type]
