"""Wrappers around the Mistral resource methods that make API calls.

The SDK call itself runs outside any guard, so its return value and its exceptions
reach the caller unchanged. dexcost's work before and after it is guarded: an internal
failure is logged and counted, and the caller still gets the SDK's own result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from dexcost import errors, semconv
from dexcost.instrumentation.mistralai.extract import MISTRAL, read_response
from dexcost.instrumentation.mistralai.stream import (
    OBSERVER_ATTRIBUTE,
    StreamObserver,
    arm_stream,
)
from dexcost.llm import LLMCall
from dexcost.runtime import current_runtime


class SDKTypes:
    """SDK classes the wrappers test results against, looked up once at patch time."""

    def __init__(self, error: type[BaseException], stream: type, async_stream: type) -> None:
        self.error = error
        self.stream = stream
        self.async_stream = async_stream

    def billed_nothing(self, exc: BaseException) -> bool:
        """True for an error reply (status 4xx or 5xx): Mistral billed nothing for it.

        A ``MistralError`` with a 2xx status (a reply the SDK could not read) may have
        been billed, so it is not counted as free.
        """
        if not isinstance(exc, self.error):
            return False
        status = getattr(exc, "status_code", None)
        return isinstance(status, int) and status >= 400


def _host(instance: Any) -> str | None:
    configuration = getattr(instance, "sdk_configuration", None)
    details = getattr(configuration, "get_server_details", None)
    server_url = details()[0] if callable(details) else None
    if not isinstance(server_url, str) or "://" not in server_url:
        return None
    host = server_url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
    return host or None


def _start(
    instance: Any, operation: str, kwargs: Mapping[str, Any], *, streaming: bool
) -> LLMCall | None:
    """Create the call record; None when dexcost is not running or failed here."""
    runtime = current_runtime()
    if runtime is None:
        return None
    try:
        attributes: dict[str, str | bool | int | float] = {}
        host = _host(instance)
        if host is not None:
            attributes[semconv.SERVER_ADDRESS] = host
        if streaming:
            attributes[semconv.STREAMED] = True
        model = kwargs.get("model")
        return LLMCall(
            runtime,
            provider=MISTRAL,
            operation=operation,
            request_model=model if isinstance(model, str) and model else None,
            attributes=attributes,
        )
    except Exception:
        errors.log_internal_error("preparing a mistral call")
        return None


def _failed(call: LLMCall, sdk: SDKTypes, exc: BaseException) -> None:
    # An error reply means Mistral rejected the request and billed nothing. Timeouts
    # and dropped connections may have been billed, so they stay usage_unknown.
    try:
        call.finish(error_type=type(exc).__name__, no_charge=sdk.billed_nothing(exc))
    except Exception:
        errors.log_internal_error("recording a failed mistral call")


def _handle(call: LLMCall, sdk: SDKTypes, result: Any) -> None:
    try:
        if isinstance(result, (sdk.stream, sdk.async_stream)):
            observer = StreamObserver(call)
            if not arm_stream(result, observer, is_async=isinstance(result, sdk.async_stream)):
                observer.finish()
            return
        model, usage = read_response(result)
        call.finish(response_model=model, usage=usage)
    except Exception:
        errors.log_internal_error("reading a mistral response")
        if not call.finished:
            try:
                call.finish()
            except Exception:
                errors.log_internal_error("recording a mistral call")


def make_sync_wrapper(sdk: SDKTypes, operation: str, *, streaming: bool) -> Callable[..., Any]:
    """Wrap a sync method: ``complete``, ``stream`` or ``create``."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = _start(instance, operation, kwargs, streaming=streaming)
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            _failed(call, sdk, exc)
            raise
        _handle(call, sdk, result)
        return result

    return wrapper


def make_async_wrapper(sdk: SDKTypes, operation: str, *, streaming: bool) -> Callable[..., Any]:
    """Wrap an async method: ``complete_async``, ``stream_async`` or ``create_async``."""

    async def wrapper(
        wrapped: Callable[..., Awaitable[Any]],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        call = _start(instance, operation, kwargs, streaming=streaming)
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            _failed(call, sdk, exc)
            raise
        _handle(call, sdk, result)
        return result

    return wrapper


def _finish_observer(instance: Any) -> None:
    observer = getattr(instance, OBSERVER_ATTRIBUTE, None)
    if observer is None:
        return
    try:
        observer.finish()
    except Exception:
        errors.log_internal_error("recording a closed mistral stream")


def close_wrapper(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Wrap ``EventStream.close``: a stream closed early is recorded now."""
    _finish_observer(instance)
    return wrapped(*args, **kwargs)


async def async_close_wrapper(
    wrapped: Callable[..., Awaitable[Any]],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Wrap ``EventStreamAsync.close``: a stream closed early is recorded now."""
    _finish_observer(instance)
    return await wrapped(*args, **kwargs)
