"""Wrappers around the Anthropic Messages resource methods that make API calls.

The SDK call itself runs outside any guard, so its return value and its exceptions
reach the caller unchanged. dexcost's work before and after it is guarded: an internal
failure is logged and counted, and the caller still gets the SDK's own result.
"""

from __future__ import annotations

import contextlib
import inspect
import weakref
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any

from dexcost import errors, semconv
from dexcost.instrumentation.anthropic.extract import ANTHROPIC, CHAT, read_message
from dexcost.instrumentation.anthropic.stream import StreamObserver, arm_stream
from dexcost.llm import LLMCall
from dexcost.runtime import Runtime, current_runtime

# Header the SDK's with_raw_response and with_streaming_response wrappers add to a
# call's extra_headers ("raw" and "stream" in 2.x). Any value means a raw response.
RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"

# Private (name-mangled) attributes of MessageStreamManager / AsyncMessageStreamManager
# that contain the request ``messages.stream()`` makes on ``__enter__``: a callable
# returning the SDK's Stream, and an awaitable of its AsyncStream.
# NOTE: a release that renames them leaves ``messages.stream()`` calls unrecorded.
SYNC_MANAGER_REQUEST = "_MessageStreamManager__api_request"
ASYNC_MANAGER_REQUEST = "_AsyncMessageStreamManager__api_request"

# Client classes of SDK releases that do not name their provider themselves.
_PROVIDER_BY_CLIENT_NAME = (("Bedrock", "aws.bedrock"), ("Vertex", "gcp.vertex_ai"))


class SDKTypes:
    """SDK classes the wrappers test results against, looked up once at patch time."""

    def __init__(self, module: Any) -> None:
        self.stream = module.Stream
        self.async_stream = module.AsyncStream
        self.status_error = module.APIStatusError
        # Provider and host of each client seen. NOTE: assigning client.base_url after
        # the client's first call is not noticed; server.address keeps the old host.
        self.client_facts: weakref.WeakKeyDictionary[Any, tuple[str, str | None]] = (
            weakref.WeakKeyDictionary()
        )


class CallPlan:
    """The wrapper's decisions before the SDK call: the call record and raw mode."""

    __slots__ = ("call", "raw_mode")

    def __init__(self, call: LLMCall, raw_mode: str | None) -> None:
        self.call = call
        self.raw_mode = raw_mode


def _raw_mode(kwargs: Mapping[str, Any]) -> str | None:
    headers = kwargs.get("extra_headers")
    if isinstance(headers, Mapping):
        value = headers.get(RAW_RESPONSE_HEADER)
        return value if isinstance(value, str) else None
    return None


def _provider_of(client: Any) -> str:
    # anthropic 2.x names the provider of each client class (Bedrock, Vertex, ...).
    named = getattr(type(client), "_gen_ai_provider_name", None)
    if isinstance(named, str) and named:
        return named
    class_name = type(client).__name__
    for marker, provider in _PROVIDER_BY_CLIENT_NAME:
        if marker in class_name:
            return provider
    return ANTHROPIC


def _client_facts(sdk: SDKTypes, client: Any) -> tuple[str, str | None]:
    """Return the provider name and server host of an SDK client, cached per client."""
    try:
        return sdk.client_facts[client]
    except (KeyError, TypeError):
        pass
    host = getattr(getattr(client, "base_url", None), "host", None)
    facts = (_provider_of(client), host if isinstance(host, str) and host else None)
    # A client that is not weak-referenceable is looked at again on its next call.
    with contextlib.suppress(TypeError):
        sdk.client_facts[client] = facts
    return facts


def _plan(
    runtime: Runtime, sdk: SDKTypes, instance: Any, kwargs: Mapping[str, Any], *, streaming: bool
) -> CallPlan:
    attributes: dict[str, str | bool | int | float] = {}
    model = kwargs.get("model")
    provider, host = _client_facts(sdk, getattr(instance, "_client", None))
    if host is not None:
        attributes[semconv.SERVER_ADDRESS] = host
    if streaming:
        attributes[semconv.STREAMED] = True
    call = LLMCall(
        runtime,
        provider=provider,
        operation=CHAT,
        request_model=model if isinstance(model, str) else None,
        attributes=attributes,
    )
    return CallPlan(call, _raw_mode(kwargs))


def _record_error(plan: CallPlan, sdk: SDKTypes, exc: BaseException) -> None:
    # A status error means the API rejected the request, so nothing was
    # billed. Timeouts and dropped connections may have been billed, so they stay unknown.
    plan.call.finish(error_type=type(exc).__name__, no_charge=isinstance(exc, sdk.status_error))


def _record_message(plan: CallPlan, message: Any) -> None:
    model, usage = read_message(message)
    plan.call.finish(response_model=model, usage=usage)


def _handle_parsed(plan: CallPlan, sdk: SDKTypes, parsed: Any) -> None:
    if isinstance(parsed, sdk.stream):
        _arm(plan, parsed, is_async=False)
    elif isinstance(parsed, sdk.async_stream):
        _arm(plan, parsed, is_async=True)
    else:
        _record_message(plan, parsed)


def _handle_result(plan: CallPlan, sdk: SDKTypes, result: Any) -> None:
    """Record a synchronous call's result: a message, a stream or a raw response."""
    if plan.raw_mode is not None and hasattr(result, "http_response"):
        # parse() caches its result, so the caller's own parse() returns the same object
        # without parsing twice; for streams it returns the stream unread.
        _handle_parsed(plan, sdk, result.parse())
    else:
        _handle_parsed(plan, sdk, result)


async def _handle_async_result(plan: CallPlan, sdk: SDKTypes, result: Any) -> None:
    if plan.raw_mode is not None and hasattr(result, "http_response"):
        parsed = result.parse()
        if inspect.isawaitable(parsed):
            parsed = await parsed
        _handle_parsed(plan, sdk, parsed)
    else:
        _handle_parsed(plan, sdk, result)


def _arm(plan: CallPlan, stream: Any, *, is_async: bool) -> None:
    observer = StreamObserver(plan.call)
    if not arm_stream(stream, observer, is_async=is_async):
        observer.finish()


def _finish_unknown(plan: CallPlan | None) -> None:
    """After an internal failure, record the call as usage_unknown rather than lose it."""
    if plan is None or plan.call.finished:
        return
    try:
        plan.call.finish()
    except Exception:
        errors.log_internal_error("recording an anthropic call")


def _prepare(
    sdk: SDKTypes, instance: Any, kwargs: Mapping[str, Any], *, streaming: bool
) -> CallPlan | None:
    runtime = current_runtime()
    if runtime is None:
        return None
    try:
        return _plan(runtime, sdk, instance, kwargs, streaming=streaming)
    except Exception:
        errors.log_internal_error("preparing an anthropic call")
        return None


def _failed(plan: CallPlan | None, sdk: SDKTypes, exc: BaseException) -> None:
    if plan is None:
        return
    try:
        _record_error(plan, sdk, exc)
    except Exception:
        errors.log_internal_error("recording a failed anthropic call")


def _run_sync(
    sdk: SDKTypes,
    instance: Any,
    kwargs: Mapping[str, Any],
    request: Callable[[], Any],
    *,
    streaming: bool,
) -> Any:
    plan = _prepare(sdk, instance, kwargs, streaming=streaming)
    if plan is None:
        return request()
    try:
        result = request()
    except BaseException as exc:
        _failed(plan, sdk, exc)
        raise
    try:
        _handle_result(plan, sdk, result)
    except Exception:
        errors.log_internal_error("reading an anthropic response")
        _finish_unknown(plan)
    return result


async def _run_async(
    sdk: SDKTypes,
    instance: Any,
    kwargs: Mapping[str, Any],
    request: Callable[[], Awaitable[Any]],
    *,
    streaming: bool,
) -> Any:
    plan = _prepare(sdk, instance, kwargs, streaming=streaming)
    if plan is None:
        return await request()
    try:
        result = await request()
    except BaseException as exc:
        _failed(plan, sdk, exc)
        raise
    try:
        await _handle_async_result(plan, sdk, result)
    except Exception:
        errors.log_internal_error("reading an anthropic response")
        _finish_unknown(plan)
    return result


def make_sync_wrapper(sdk: SDKTypes) -> Callable[..., Any]:
    """Wrap ``Messages.create`` / ``.parse``."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        return _run_sync(
            sdk,
            instance,
            kwargs,
            lambda: wrapped(*args, **kwargs),
            streaming=kwargs.get("stream") is True,
        )

    return wrapper


def make_async_wrapper(sdk: SDKTypes) -> Callable[..., Any]:
    """Wrap ``AsyncMessages.create`` / ``.parse``."""

    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        return await _run_async(
            sdk,
            instance,
            kwargs,
            lambda: wrapped(*args, **kwargs),
            streaming=kwargs.get("stream") is True,
        )

    return wrapper


class _ObservedRequest:
    """An awaitable standing in for the async stream manager's request.

    A plain object rather than a coroutine: if the manager is never entered, nothing
    warns about a coroutine never awaited beyond what the SDK's own request does.
    """

    __slots__ = ("instance", "kwargs", "request", "sdk")

    def __init__(
        self, sdk: SDKTypes, instance: Any, kwargs: Mapping[str, Any], request: Awaitable[Any]
    ) -> None:
        self.sdk = sdk
        self.instance = instance
        self.kwargs = kwargs
        self.request = request

    def __await__(self) -> Generator[Any, None, Any]:
        return _run_async(
            self.sdk, self.instance, self.kwargs, lambda: self.request, streaming=True
        ).__await__()


def make_stream_helper_wrapper(sdk: SDKTypes, *, is_async: bool) -> Callable[..., Any]:
    """Wrap ``Messages.stream()`` / ``AsyncMessages.stream()``.

    The helper does not call ``create``: it returns a manager holding a request that
    runs on ``__enter__`` / ``__aenter__``. dexcost replaces that request on the
    manager instance, so the call is recorded when (and if) it is made, and the SDK's
    Stream it returns is observed like one from ``create(stream=True)``.
    """
    attribute = ASYNC_MANAGER_REQUEST if is_async else SYNC_MANAGER_REQUEST

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        manager = wrapped(*args, **kwargs)
        try:
            state = getattr(manager, "__dict__", None)
            request = state.get(attribute) if isinstance(state, dict) else None
            if is_async and inspect.isawaitable(request):
                state[attribute] = _ObservedRequest(sdk, instance, kwargs, request)  # type: ignore[index]
            elif not is_async and callable(request):
                state[attribute] = lambda: _run_sync(  # type: ignore[index]
                    sdk, instance, kwargs, request, streaming=True
                )
        except Exception:
            errors.log_internal_error("preparing an anthropic stream helper")
        return manager

    return wrapper


def close_wrapper(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Wrap ``Stream.close`` / ``AsyncStream.close``: a stream closed early is recorded now."""
    observer = getattr(instance, "_dexcost_observer", None)
    if observer is not None:
        try:
            observer.finish()
        except Exception:
            errors.log_internal_error("recording a closed anthropic stream")
    return wrapped(*args, **kwargs)
