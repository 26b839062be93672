"""Wrappers around the Cohere raw client methods that make API calls.

Every public method (``chat``, ``chat_stream``, ``embed``, ``rerank``, v1 and v2, sync
and async, and their ``with_raw_response`` forms) sends its request through the raw
client, so the raw classes are the one place each request passes exactly once.

The SDK call itself runs outside any guard, so its return value and its exceptions
reach the caller unchanged. dexcost's work before and after it is guarded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from dexcost import errors, semconv
from dexcost.instrumentation.cohere.extract import (
    COHERE,
    OPERATIONS,
    RERANK,
    billed_units,
    search_units,
    usage_from_billed,
)
from dexcost.instrumentation.cohere.rerank_prices import PRICING_SOURCE, rerank_cost
from dexcost.instrumentation.cohere.stream import (
    AsyncStreamRequest,
    StreamHooks,
    StreamObserver,
    StreamRequest,
    arm_response,
)
from dexcost.llm import LLMCall
from dexcost.runtime import current_runtime

SEARCH_UNIT = "search_unit"


class SDKTypes:
    """SDK classes the wrappers test exceptions against, looked up once at patch time."""

    def __init__(self, api_error: type[BaseException]) -> None:
        self.api_error = api_error

    def billed_nothing(self, exc: BaseException) -> bool:
        """True for an error reply (status 4xx or 5xx): Cohere billed nothing for it."""
        if not isinstance(exc, self.api_error):
            return False
        status = getattr(exc, "status_code", None)
        return isinstance(status, int) and status >= 400


def _host(instance: Any) -> str | None:
    wrapper = getattr(instance, "_client_wrapper", None)
    get_base_url = getattr(wrapper, "get_base_url", None)
    if not callable(get_base_url):
        return None
    base_url = get_base_url()
    if not isinstance(base_url, str) or "://" not in base_url:
        return None
    host = base_url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
    return host or None


def _start(instance: Any, method: str, kwargs: Mapping[str, Any]) -> LLMCall | None:
    """Create the call record; None when dexcost is not running or failed here."""
    runtime = current_runtime()
    if runtime is None:
        return None
    try:
        model = kwargs.get("model")
        attributes: dict[str, str | bool | int | float] = {}
        host = _host(instance)
        if host is not None:
            attributes[semconv.SERVER_ADDRESS] = host
        if method == "chat_stream":
            attributes[semconv.STREAMED] = True
        return LLMCall(
            runtime,
            provider=COHERE,
            operation=OPERATIONS[method],
            # The SDK passes an Ellipsis for an omitted model (v1 chat and embed).
            request_model=model if isinstance(model, str) and model else None,
            attributes=attributes,
        )
    except Exception:
        errors.log_internal_error("preparing a cohere call")
        return None


def _failed(call: LLMCall, sdk: SDKTypes, exc: BaseException) -> None:
    # An error reply means Cohere rejected the request and billed nothing. Timeouts
    # and dropped connections may have been billed, so they stay usage_unknown.
    try:
        call.finish(error_type=type(exc).__name__, no_charge=sdk.billed_nothing(exc))
    except Exception:
        errors.log_internal_error("recording a failed cohere call")


def _record_rerank(call: LLMCall, body: Any) -> None:
    units = search_units(body)
    if units is None:
        call.finish()
        return
    call.attributes[semconv.UNITS] = units
    call.attributes[semconv.UNIT] = SEARCH_UNIT
    cost = rerank_cost(call.request_model, units)
    # A rerank model missing from the table is recorded unpriced, with its units.
    call.finish(unit_cost=(cost, PRICING_SOURCE if cost is not None else None))


def _record(call: LLMCall, response: Any) -> None:
    """Record a finished non-streaming call from the SDK's ``HttpResponse``."""
    try:
        body = getattr(response, "data", None)
        if call.operation == RERANK:
            _record_rerank(call, body)
        else:
            call.finish(usage=usage_from_billed(billed_units(body)))
    except Exception:
        errors.log_internal_error("reading a cohere response")
        _finish_unknown(call)


def _finish_unknown(call: LLMCall) -> None:
    """After an internal failure, record the call as usage_unknown rather than lose it."""
    if call.finished:
        return
    try:
        call.finish()
    except Exception:
        errors.log_internal_error("recording a cohere call")


def make_sync_wrapper(sdk: SDKTypes, method: str) -> Callable[..., Any]:
    """Wrap a sync raw ``chat`` / ``embed`` / ``rerank``."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = _start(instance, method, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as exc:
            _failed(call, sdk, exc)
            raise
        _record(call, response)
        return response

    return wrapper


def make_async_wrapper(sdk: SDKTypes, method: str) -> Callable[..., Any]:
    """Wrap an async raw ``chat`` / ``embed`` / ``rerank``."""

    async def wrapper(
        wrapped: Callable[..., Awaitable[Any]],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        call = _start(instance, method, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as exc:
            _failed(call, sdk, exc)
            raise
        _record(call, response)
        return response

    return wrapper


def _stream_hooks(
    sdk: SDKTypes, instance: Any, kwargs: Mapping[str, Any], *, is_async: bool
) -> StreamHooks | None:
    call = _start(instance, "chat_stream", kwargs)
    if call is None:
        return None
    observer = StreamObserver(call)

    def started(response: Any) -> None:
        try:
            if not arm_response(response, observer, is_async=is_async):
                observer.finish()
        except Exception:
            errors.log_internal_error("watching a cohere stream")
            _finish_unknown(call)

    return StreamHooks(observer, lambda exc: _failed(call, sdk, exc), started)


def make_stream_wrapper(sdk: SDKTypes, *, is_async: bool) -> Callable[..., Any]:
    """Wrap a raw ``chat_stream``: keep the SDK's context manager, watch its request."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        manager = wrapped(*args, **kwargs)
        if current_runtime() is None:
            return manager
        try:
            gen = manager.gen
            manager.gen = (AsyncStreamRequest if is_async else StreamRequest)(
                gen, lambda: _stream_hooks(sdk, instance, kwargs, is_async=is_async)
            )
        except Exception:
            errors.log_internal_error("preparing a cohere stream")
        return manager

    return wrapper
