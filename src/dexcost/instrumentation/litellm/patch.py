"""Wrappers around litellm's completion and embedding functions.

litellm routes each request to a provider, sometimes through an SDK that dexcost also
instruments (the ``openai`` SDK for OpenAI and Azure) and otherwise with its own HTTP
code. The wrapper creates its call record first and marks it as the routing call
while litellm works. An instrumented SDK call made inside then records the request
with the usage the SDK reports first-hand, and this wrapper discards its own record.
When no SDK call happened, the wrapper records the request from litellm's response.

The litellm call itself runs outside any guard, so its return value and its
exceptions reach the caller unchanged. dexcost's work before and after it is guarded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from dexcost import errors, semconv
from dexcost.instrumentation.litellm.extract import (
    CHAT,
    hidden_params,
    provider_name,
    read_response,
    strip_provider,
)
from dexcost.instrumentation.litellm.stream import StreamObserver, arm_stream
from dexcost.llm import LLMCall, routing
from dexcost.runtime import Runtime, current_runtime

LITELLM = "litellm"

# Position of ``model`` among the positional arguments of completion() and embedding().
_MODEL_ARGUMENT = 0


class LiteLLMTypes:
    """The litellm facts and classes the wrappers use, looked up once at patch time."""

    def __init__(
        self,
        module: Any,
        status_error: type[BaseException],
        transport_errors: tuple[type[BaseException], ...],
        stream: type,
    ) -> None:
        self.module = module
        # The base class of litellm's exceptions for an error reply from the provider
        # (openai.APIStatusError): the provider billed nothing for those.
        self.status_error = status_error
        # Errors of the connection itself. litellm reports a refused connection as an
        # InternalServerError (status 500) with the real cause chained to it.
        self.transport_errors = transport_errors
        self.stream = stream
        self.provider_names = frozenset(_provider_values(module))

    def is_error_reply(self, exc: BaseException) -> bool:
        """True when ``exc`` is the provider's error reply, not a failed connection."""
        if not isinstance(exc, self.status_error):
            return False
        seen: set[int] = set()
        cause: BaseException | None = exc
        while cause is not None and id(cause) not in seen:
            if isinstance(cause, self.transport_errors):
                return False
            seen.add(id(cause))
            cause = cause.__cause__ or cause.__context__
        return True


def _provider_values(module: Any) -> list[str]:
    names = getattr(module, "provider_list", None) or ()
    values = (getattr(name, "value", name) for name in names)
    return [value for value in values if isinstance(value, str)]


# litellm providers that speak the OpenAI API and send a stream's usage only when the
# request sets stream_options.include_usage.
ASK_FOR_STREAM_USAGE = frozenset({"openai", "azure"})


class CallPlan:
    """The wrapper's decisions before the call: the call record and request changes."""

    __slots__ = ("call", "hide_usage_chunk", "kwargs", "litellm_provider")

    def __init__(
        self,
        call: LLMCall,
        litellm_provider: str | None,
        kwargs: dict[str, Any],
        hide_usage_chunk: bool,
    ) -> None:
        self.call = call
        self.litellm_provider = litellm_provider
        self.kwargs = kwargs
        self.hide_usage_chunk = hide_usage_chunk


def ask_for_stream_usage(kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Ask an OpenAI-style stream to end with a usage chunk unless the caller decided.

    litellm 1.110 sends OpenAI requests through the openai SDK's low-level ``post``,
    which dexcost's openai instrumentation does not see, so the request is changed
    here. An explicit ``include_usage`` (True or False) is the caller's choice and is
    kept. Returns the kwargs to send and whether the added usage chunk must be hidden.
    """
    options = kwargs.get("stream_options")
    if isinstance(options, Mapping):
        if "include_usage" in options:
            return kwargs, False
        new_options = {**options, "include_usage": True}
    elif options is None:
        new_options = {"include_usage": True}
    else:
        return kwargs, False
    return {**kwargs, "stream_options": new_options}, True


def resolve_provider(
    lib: LiteLLMTypes, model: str, kwargs: Mapping[str, Any]
) -> tuple[str | None, str]:
    """Return litellm's provider name for a request and the model name without its prefix.

    An explicit ``custom_llm_provider`` or a known ``"<provider>/"`` prefix settles it.
    Otherwise ``litellm.get_llm_provider`` applies litellm's own rules (bare OpenAI
    model names, ``api_base`` hosts, ...).
    """
    explicit = kwargs.get("custom_llm_provider")
    if isinstance(explicit, str) and explicit:
        return explicit, strip_provider(model, explicit) or model
    prefix, _, rest = model.partition("/")
    if rest and prefix in lib.provider_names:
        return prefix, rest
    api_base = kwargs.get("api_base") or kwargs.get("base_url")
    try:
        bare, provider, _, _ = lib.module.get_llm_provider(
            model=model, api_base=api_base if isinstance(api_base, str) else None
        )
    except Exception:
        # litellm raises the same error from the call itself, which records it.
        return None, model
    return (provider if isinstance(provider, str) else None), (
        bare if isinstance(bare, str) and bare else model
    )


def _plan(
    runtime: Runtime,
    lib: LiteLLMTypes,
    operation: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> CallPlan:
    model = kwargs.get("model")
    if model is None and len(args) > _MODEL_ARGUMENT:
        model = args[_MODEL_ARGUMENT]
    litellm_provider: str | None = None
    request_model: str | None = None
    if isinstance(model, str) and model:
        litellm_provider, request_model = resolve_provider(lib, model, kwargs)
    attributes: dict[str, str | bool | int | float] = {semconv.ROUTED_BY: LITELLM}
    hide_usage_chunk = False
    if kwargs.get("stream") is True:
        attributes[semconv.STREAMED] = True
        if operation == CHAT and litellm_provider in ASK_FOR_STREAM_USAGE:
            kwargs, hide_usage_chunk = ask_for_stream_usage(kwargs)
    call = LLMCall(
        runtime,
        provider=provider_name(litellm_provider) if litellm_provider else LITELLM,
        operation=operation,
        request_model=request_model,
        attributes=attributes,
    )
    return CallPlan(call, litellm_provider, kwargs, hide_usage_chunk)


def _skips(kwargs: Mapping[str, Any]) -> bool:
    # A mock_response never reaches a provider. acompletion=True makes completion()
    # return a coroutine for acompletion(), whose own wrapper records the request.
    return kwargs.get("mock_response") is not None or kwargs.get("acompletion") is True


def _prepare(
    lib: LiteLLMTypes, operation: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> CallPlan | None:
    runtime = current_runtime()
    if runtime is None or _skips(kwargs):
        return None
    try:
        return _plan(runtime, lib, operation, args, kwargs)
    except Exception:
        errors.log_internal_error("preparing a litellm call")
        return None


def record_error(plan: CallPlan, lib: LiteLLMTypes, exc: BaseException) -> None:
    """Record a failed call, unless an instrumented SDK call inside recorded it."""
    if plan.call.delegated:
        plan.call.discard()
        return
    # A status error means the provider replied and rejected the request: nothing
    # was billed. Timeouts and dropped connections may have been billed, so they
    # stay unknown.
    plan.call.finish(error_type=type(exc).__name__, no_charge=lib.is_error_reply(exc))


def _failed(plan: CallPlan, lib: LiteLLMTypes, exc: BaseException) -> None:
    try:
        record_error(plan, lib, exc)
    except Exception:
        errors.log_internal_error("recording a failed litellm call")


def _handle_result(plan: CallPlan, lib: LiteLLMTypes, result: Any) -> None:
    call = plan.call
    if call.delegated:
        call.discard()
        return
    if isinstance(result, lib.stream):
        hide = plan.hide_usage_chunk
        arm_stream(result, StreamObserver(call, plan.litellm_provider, hide_usage_chunk=hide))
        return
    hidden = hidden_params(result)
    if hidden.get("cache_hit") is True:
        # litellm's own response cache returned the reply, so no provider was called.
        call.discard()
        return
    reported = hidden.get("custom_llm_provider")
    if isinstance(reported, str) and reported:
        plan.litellm_provider = reported
        call.provider = provider_name(reported)
    model, usage = read_response(result, plan.litellm_provider)
    call.finish(response_model=model, usage=usage)


def _handled(plan: CallPlan, lib: LiteLLMTypes, result: Any) -> None:
    try:
        _handle_result(plan, lib, result)
    except Exception:
        errors.log_internal_error("reading a litellm response")
        if not plan.call.finished:
            try:
                plan.call.finish()
            except Exception:
                errors.log_internal_error("recording a litellm call")


def make_sync_wrapper(lib: LiteLLMTypes, operation: str) -> Callable[..., Any]:
    """Wrap ``completion`` / ``embedding``."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        plan = _prepare(lib, operation, args, kwargs)
        if plan is None:
            return wrapped(*args, **kwargs)
        try:
            with routing(plan.call):
                result = wrapped(*args, **plan.kwargs)
        except BaseException as exc:
            _failed(plan, lib, exc)
            raise
        _handled(plan, lib, result)
        return result

    return wrapper


def make_async_wrapper(lib: LiteLLMTypes, operation: str) -> Callable[..., Awaitable[Any]]:
    """Wrap ``acompletion`` / ``aembedding``."""

    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        plan = _prepare(lib, operation, args, kwargs)
        if plan is None:
            return await wrapped(*args, **kwargs)
        try:
            with routing(plan.call):
                result = await wrapped(*args, **plan.kwargs)
        except BaseException as exc:
            _failed(plan, lib, exc)
            raise
        _handled(plan, lib, result)
        return result

    return wrapper
