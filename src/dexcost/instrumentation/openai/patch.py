"""Wrappers around the OpenAI resource methods that make API calls.

The SDK call itself runs outside any guard, so its return value and its exceptions
reach the caller unchanged. dexcost's work before and after it is guarded: an internal
failure is logged and counted, and the caller still gets the SDK's own result.
"""

from __future__ import annotations

import contextlib
import inspect
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from dexcost import errors, semconv
from dexcost.instrumentation.openai.extract import (
    CHAT,
    OPERATION_NAMES,
    field,
    read_result,
    reported_cost,
)
from dexcost.instrumentation.openai.providers import REPORTS_COST, provider_for
from dexcost.instrumentation.openai.stream import StreamObserver, arm_stream
from dexcost.llm import LLMCall
from dexcost.runtime import Runtime, current_runtime

OPENAI = "openai"
AZURE_OPENAI = "azure.ai.openai"

# Header the SDK's with_raw_response ("true") and with_streaming_response ("stream")
# wrappers add to a call's extra_headers.
RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"


class SDKTypes:
    """SDK classes the wrappers test results against, looked up once at patch time.

    The defaults describe the openai SDK. Another Stainless-generated SDK (groq) passes
    ``provider`` to name the provider of every call, whatever the base URL. It passes
    ``request_stream_usage=False`` when its ``create`` has no ``stream_options`` parameter.
    """

    def __init__(
        self, module: Any, *, provider: str | None = None, request_stream_usage: bool = True
    ) -> None:
        self.provider = provider
        self.request_stream_usage = request_stream_usage
        self.stream = module.Stream
        self.async_stream = module.AsyncStream
        self.status_error = module.APIStatusError
        self.azure_clients: tuple[type, ...] = tuple(
            cls
            for cls in (
                getattr(module, "AzureOpenAI", None),
                getattr(module, "AsyncAzureOpenAI", None),
            )
            if isinstance(cls, type)
        )
        # Provider and host of each client seen. NOTE: assigning client.base_url after
        # the client's first call is not noticed; server.address keeps the old host.
        self.client_facts: weakref.WeakKeyDictionary[Any, tuple[str, str | None]] = (
            weakref.WeakKeyDictionary()
        )


class CallPlan:
    """The wrapper's decisions before the SDK call: the call record and request changes."""

    __slots__ = ("api", "call", "hide_usage_chunk", "kwargs", "raw_mode")

    def __init__(
        self,
        api: str,
        call: LLMCall,
        kwargs: dict[str, Any],
        hide_usage_chunk: bool,
        raw_mode: str | None,
    ) -> None:
        self.api = api
        self.call = call
        self.kwargs = kwargs
        self.hide_usage_chunk = hide_usage_chunk
        self.raw_mode = raw_mode


def _raw_mode(kwargs: Mapping[str, Any]) -> str | None:
    headers = kwargs.get("extra_headers")
    if isinstance(headers, Mapping):
        value = headers.get(RAW_RESPONSE_HEADER)
        return value if isinstance(value, str) else None
    return None


def _client_facts(sdk: SDKTypes, client: Any) -> tuple[str, str | None]:
    """Return the provider name and server host of an SDK client, cached per client."""
    try:
        return sdk.client_facts[client]
    except (KeyError, TypeError):
        pass
    base_url = getattr(client, "base_url", None)
    host = getattr(base_url, "host", None)
    host = host if isinstance(host, str) and host else None
    port = getattr(base_url, "port", None)
    if sdk.provider is not None:
        provider = sdk.provider
    elif sdk.azure_clients and isinstance(client, sdk.azure_clients):
        provider = AZURE_OPENAI
    else:
        provider = provider_for(host, port if isinstance(port, int) else None)
    facts = (provider, host)
    # A client that is not weak-referenceable is looked at again on its next call.
    with contextlib.suppress(TypeError):
        sdk.client_facts[client] = facts
    return facts


def _plan(
    runtime: Runtime, sdk: SDKTypes, api: str, instance: Any, kwargs: dict[str, Any]
) -> CallPlan:
    attributes: dict[str, str | bool | int | float] = {}
    model = kwargs.get("model")
    request_model = model if isinstance(model, str) else None
    provider, host = _client_facts(sdk, getattr(instance, "_client", None))
    if host is not None:
        attributes[semconv.SERVER_ADDRESS] = host
    if provider == AZURE_OPENAI and request_model:
        # On Azure the request's model is the deployment name; the response names the
        # real model, which is the name the price table lists.
        attributes[semconv.AZURE_DEPLOYMENT] = request_model

    raw_mode = _raw_mode(kwargs)
    streaming = kwargs.get("stream") is True
    hide_usage_chunk = False
    if streaming:
        attributes[semconv.STREAMED] = True
        if api == CHAT and raw_mode != "stream" and sdk.request_stream_usage:
            kwargs, hide_usage_chunk = _ask_for_stream_usage(kwargs)

    call = LLMCall(
        runtime,
        provider=provider,
        operation=OPERATION_NAMES[api],
        request_model=request_model,
        attributes=attributes,
    )
    return CallPlan(api, call, kwargs, hide_usage_chunk, raw_mode)


def _ask_for_stream_usage(kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Ask a chat stream to end with a usage chunk unless the caller decided already.

    Without ``stream_options.include_usage`` OpenAI sends no token counts in a stream.
    An explicit ``include_usage`` (True or False) is the caller's choice and is kept.
    Returns the kwargs to send and whether the added usage chunk must be hidden.
    """
    options = kwargs.get("stream_options")
    if isinstance(options, Mapping):
        if "include_usage" in options:
            return kwargs, False
        new_options = {**options, "include_usage": True}
    else:
        new_options = {"include_usage": True}
    return {**kwargs, "stream_options": new_options}, True


def _record_error(plan: CallPlan, sdk: SDKTypes, exc: BaseException) -> None:
    error_type = type(exc).__name__
    # parse() raises after a billed completion when it stopped at the length limit or
    # the content filter; the error carries that completion and its usage.
    completion = getattr(exc, "completion", None)
    if completion is not None:
        model, usage, tier = read_result(plan.api, completion)
        if usage is not None:
            plan.call.finish(
                response_model=model, usage=usage, service_tier=tier, error_type=error_type
            )
            return
    # A status error means the API replied and rejected the request: nothing was
    # billed. Timeouts and dropped connections may have been billed, so they stay unknown.
    plan.call.finish(error_type=error_type, no_charge=isinstance(exc, sdk.status_error))


def _record_parsed(plan: CallPlan, result: Any) -> None:
    model, usage, tier = read_result(plan.api, result)
    reported = None
    if usage is not None and plan.call.provider in REPORTS_COST:
        reported = reported_cost(field(result, "usage"))
    plan.call.finish(response_model=model, usage=usage, service_tier=tier, reported_cost=reported)


def _handle_result(plan: CallPlan, sdk: SDKTypes, result: Any) -> None:
    """Record a synchronous call's result: a parsed model, a stream or a raw response."""
    if isinstance(result, sdk.stream):
        _arm(plan, result, is_async=False)
    elif plan.raw_mode is not None and hasattr(result, "http_response"):
        # parse() caches its result, so the caller's own parse() returns the same object
        # without parsing twice; for streams it returns the stream unread.
        parsed = result.parse()
        _handle_parsed_raw(plan, sdk, parsed)
    else:
        _record_parsed(plan, result)


def _handle_parsed_raw(plan: CallPlan, sdk: SDKTypes, parsed: Any) -> None:
    if isinstance(parsed, sdk.stream):
        _arm(plan, parsed, is_async=False)
    elif isinstance(parsed, sdk.async_stream):
        _arm(plan, parsed, is_async=True)
    else:
        _record_parsed(plan, parsed)


def _arm(plan: CallPlan, stream: Any, *, is_async: bool) -> None:
    observer = StreamObserver(plan.call, plan.api, hide_usage_chunk=plan.hide_usage_chunk)
    if not arm_stream(stream, observer, is_async=is_async):
        observer.finish()


def _finish_unknown(plan: CallPlan | None) -> None:
    """After an internal failure, record the call as usage_unknown rather than lose it."""
    if plan is None or plan.call.finished:
        return
    try:
        plan.call.finish()
    except Exception:
        errors.log_internal_error("recording an openai call")


def make_sync_wrapper(sdk: SDKTypes, api: str) -> Callable[..., Any]:
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        runtime = current_runtime()
        if runtime is None:
            return wrapped(*args, **kwargs)
        plan: CallPlan | None = None
        try:
            plan = _plan(runtime, sdk, api, instance, kwargs)
            kwargs = plan.kwargs
        except Exception:
            errors.log_internal_error("preparing an openai call")
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            if plan is not None:
                try:
                    _record_error(plan, sdk, exc)
                except Exception:
                    errors.log_internal_error("recording a failed openai call")
            raise
        if plan is not None:
            try:
                _handle_result(plan, sdk, result)
            except Exception:
                errors.log_internal_error("reading an openai response")
                _finish_unknown(plan)
        return result

    return wrapper


def make_async_wrapper(sdk: SDKTypes, api: str) -> Callable[..., Any]:
    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        runtime = current_runtime()
        if runtime is None:
            return await wrapped(*args, **kwargs)
        plan: CallPlan | None = None
        try:
            plan = _plan(runtime, sdk, api, instance, kwargs)
            kwargs = plan.kwargs
        except Exception:
            errors.log_internal_error("preparing an openai call")
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            if plan is not None:
                try:
                    _record_error(plan, sdk, exc)
                except Exception:
                    errors.log_internal_error("recording a failed openai call")
            raise
        if plan is not None:
            try:
                await _handle_async_result(plan, sdk, result)
            except Exception:
                errors.log_internal_error("reading an openai response")
                _finish_unknown(plan)
        return result

    return wrapper


async def _handle_async_result(plan: CallPlan, sdk: SDKTypes, result: Any) -> None:
    if isinstance(result, sdk.async_stream):
        _arm(plan, result, is_async=True)
    elif plan.raw_mode is not None and hasattr(result, "http_response"):
        parsed = result.parse()
        if inspect.isawaitable(parsed):
            parsed = await parsed
        _handle_parsed_raw(plan, sdk, parsed)
    else:
        _record_parsed(plan, result)


def close_wrapper(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Wrap ``Stream.close`` / ``AsyncStream.close``: a stream closed early is recorded now."""
    observer = getattr(instance, "_dexcost_observer", None)
    if observer is not None:
        try:
            observer.finish()
        except Exception:
            errors.log_internal_error("recording a closed openai stream")
    return wrapped(*args, **kwargs)
