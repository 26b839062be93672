"""Wrappers around ``Client._request`` and ``AsyncClient._request`` of the ollama SDK.

Every API method of a client (``chat``, ``generate``, ``embed``, ``embeddings``) sends
its request through ``_request(cls, method, path, json=..., stream=...)``, so one patch
per client class covers them all, including the module-level ``ollama.chat`` and its
siblings. Those are methods bound to a default client when ollama is imported, and a
patch of ``Client.chat`` would never reach them.

The SDK call runs outside any guard, so its return value and its exceptions reach the
caller unchanged. A streamed call returns dexcost's generator around the SDK's one
(see ``stream.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dexcost import errors, semconv
from dexcost.instrumentation.ollama.extract import (
    OPERATIONS,
    PROVIDER,
    read_usage,
    response_model,
)
from dexcost.instrumentation.ollama.stream import (
    StreamObserver,
    observe_async_stream,
    observe_stream,
    record_error,
)
from dexcost.llm import LLMCall
from dexcost.runtime import Runtime, current_runtime


def _operation(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str | None:
    # args are (response class, HTTP method, path) as the SDK passes them.
    path = args[2] if len(args) > 2 else kwargs.get("url")
    return OPERATIONS.get(path) if isinstance(path, str) else None


def _server_host(instance: Any) -> str | None:
    host = getattr(getattr(getattr(instance, "_client", None), "base_url", None), "host", None)
    return host if isinstance(host, str) and host else None


def _start_call(
    runtime: Runtime, operation: str, instance: Any, kwargs: Mapping[str, Any]
) -> LLMCall:
    body = kwargs.get("json")
    model = body.get("model") if isinstance(body, Mapping) else None
    attributes: dict[str, str | bool | int | float] = {}
    host = _server_host(instance)
    if host is not None:
        attributes[semconv.SERVER_ADDRESS] = host
    if kwargs.get("stream") is True:
        attributes[semconv.STREAMED] = True
    return LLMCall(
        runtime,
        provider=PROVIDER,
        operation=operation,
        request_model=model if isinstance(model, str) and model else None,
        attributes=attributes,
    )


def _record_response(call: LLMCall, response: Any) -> None:
    call.finish(response_model=response_model(response), usage=read_usage(response))


def _finish_unknown(call: LLMCall) -> None:
    """After an internal failure, record the call as usage_unknown rather than lose it."""
    if call.finished:
        return
    try:
        call.finish()
    except Exception:
        errors.log_internal_error("recording an ollama call")


def _prepare(args: tuple[Any, ...], instance: Any, kwargs: dict[str, Any]) -> LLMCall | None:
    runtime = current_runtime()
    if runtime is None:
        return None
    try:
        operation = _operation(args, kwargs)
        if operation is None:
            return None
        return _start_call(runtime, operation, instance, kwargs)
    except Exception:
        errors.log_internal_error("preparing an ollama call")
        return None


def _record_failure(call: LLMCall, exc: BaseException, response_error: type[BaseException]) -> None:
    try:
        record_error(call, exc, response_error)
    except Exception:
        errors.log_internal_error("recording a failed ollama call")


def make_sync_wrapper(response_error: type[BaseException]) -> Callable[..., Any]:
    """Build the wrapper of ``Client._request``, given ``ollama.ResponseError``."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = _prepare(args, instance, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            _record_failure(call, exc, response_error)
            raise
        try:
            if kwargs.get("stream") is True and hasattr(result, "__next__"):
                return observe_stream(result, StreamObserver(call, response_error))
            _record_response(call, result)
        except Exception:
            errors.log_internal_error("reading an ollama response")
            _finish_unknown(call)
        return result

    return wrapper


def make_async_wrapper(response_error: type[BaseException]) -> Callable[..., Any]:
    """Build the wrapper of ``AsyncClient._request``."""

    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = _prepare(args, instance, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            _record_failure(call, exc, response_error)
            raise
        try:
            if kwargs.get("stream") is True and hasattr(result, "__anext__"):
                return observe_async_stream(result, StreamObserver(call, response_error))
            _record_response(call, result)
        except Exception:
            errors.log_internal_error("reading an ollama response")
            _finish_unknown(call)
        return result

    return wrapper
