"""Wrappers around the google-genai ``Models`` / ``AsyncModels`` per-request methods.

The public ``generate_content`` can send several requests for one call (automatic
function calling, continuation hops) and returns only the last response, so dexcost
wraps the private methods each public one calls once per HTTP request:
``_generate_content``, ``_generate_content_stream`` and ``_embed_content``. Every
request is then priced on its own usage, which the tiered Gemini prices need: the
>200k-token tier applies per request.

The SDK call itself runs outside any guard, so its return value and its exceptions
reach the caller unchanged. dexcost's work before and after it is guarded: an internal
failure is logged and counted, and the caller still gets the SDK's own result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from dexcost import errors, semconv
from dexcost.instrumentation.google_genai.extract import (
    EMBEDDINGS,
    GEMINI,
    GENERATE_CONTENT,
    VERTEX_AI,
    model_name,
    read_content_response,
    read_embed_response,
)
from dexcost.instrumentation.google_genai.stream import (
    AsyncObservedStream,
    ObservedStream,
    StreamObserver,
)
from dexcost.llm import LLMCall
from dexcost.runtime import current_runtime

Wrapper = Callable[..., Any]


def _request_model(value: Any) -> str | None:
    # Vertex AI accepts resource names such as publishers/google/models/gemini-2.5-flash.
    if isinstance(value, str) and "/models/" in value:
        value = value.rsplit("/models/", 1)[1]
    return model_name(value)


def _client_facts(instance: Any) -> tuple[str, str | None]:
    """Return the provider name and server host of the SDK's API client."""
    api_client = getattr(instance, "_api_client", None)
    provider = VERTEX_AI if getattr(api_client, "vertexai", False) is True else GEMINI
    base_url = getattr(getattr(api_client, "_http_options", None), "base_url", None)
    host = urlsplit(base_url).hostname if isinstance(base_url, str) else None
    return provider, host or None


def _start(
    instance: Any, kwargs: Mapping[str, Any], operation: str, *, streaming: bool
) -> LLMCall | None:
    runtime = current_runtime()
    if runtime is None:
        return None
    try:
        provider, host = _client_facts(instance)
        attributes: dict[str, str | bool | int | float] = {}
        if host is not None:
            attributes[semconv.SERVER_ADDRESS] = host
        if streaming:
            attributes[semconv.STREAMED] = True
        return LLMCall(
            runtime,
            provider=provider,
            operation=operation,
            request_model=_request_model(kwargs.get("model")),
            attributes=attributes,
        )
    except Exception:
        errors.log_internal_error("preparing a google-genai call")
        return None


def _failed(call: LLMCall, api_error: type[BaseException], exc: BaseException) -> None:
    # An APIError means the API returned an error status and billed nothing.
    # Timeouts and dropped connections may have been billed, so they stay unknown.
    try:
        call.finish(error_type=type(exc).__name__, no_charge=isinstance(exc, api_error))
    except Exception:
        errors.log_internal_error("recording a failed google-genai call")


def _record(call: LLMCall, operation: str, result: Any) -> None:
    try:
        if operation == EMBEDDINGS:
            call.finish(usage=read_embed_response(result))
        else:
            model, usage = read_content_response(result)
            call.finish(response_model=model, usage=usage)
    except Exception:
        errors.log_internal_error("reading a google-genai response")
        if not call.finished:
            call.finish()


def make_sync_wrapper(api_error: type[BaseException], operation: str) -> Wrapper:
    """Wrap ``Models._generate_content`` / ``Models._embed_content``."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = _start(instance, kwargs, operation, streaming=False)
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            _failed(call, api_error, exc)
            raise
        _record(call, operation, result)
        return result

    return wrapper


def make_async_wrapper(api_error: type[BaseException], operation: str) -> Wrapper:
    """Wrap ``AsyncModels._generate_content`` / ``AsyncModels._embed_content``."""

    async def wrapper(
        wrapped: Callable[..., Awaitable[Any]],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        call = _start(instance, kwargs, operation, streaming=False)
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            _failed(call, api_error, exc)
            raise
        _record(call, operation, result)
        return result

    return wrapper


def make_sync_stream_wrapper(api_error: type[BaseException]) -> Wrapper:
    """Wrap ``Models._generate_content_stream``, a generator sending its request on first next()."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        call = _start(instance, kwargs, GENERATE_CONTENT, streaming=True)
        inner = wrapped(*args, **kwargs)
        if call is None:
            return inner
        try:
            return ObservedStream(inner, StreamObserver(call, api_error, started=False))
        except Exception:
            errors.log_internal_error("preparing a google-genai stream")
            return inner

    return wrapper


def make_async_stream_wrapper(api_error: type[BaseException]) -> Wrapper:
    """Wrap ``AsyncModels._generate_content_stream``, which sends its request before returning."""

    async def wrapper(
        wrapped: Callable[..., Awaitable[Any]],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        call = _start(instance, kwargs, GENERATE_CONTENT, streaming=True)
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            inner = await wrapped(*args, **kwargs)
        except BaseException as exc:
            _failed(call, api_error, exc)
            raise
        try:
            return AsyncObservedStream(inner, StreamObserver(call, api_error, started=True))
        except Exception:
            errors.log_internal_error("preparing a google-genai stream")
            if not call.finished:
                call.finish()
            return inner

    return wrapper
