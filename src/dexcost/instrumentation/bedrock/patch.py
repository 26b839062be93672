"""The wrapper around botocore's ``BaseClient._make_api_call``.

Every AWS call of every botocore client goes through that one method, so patching it
on the base class also covers clients created before ``dexcost.init()``. Calls other
than the four Bedrock runtime inference operations pass straight through after one
set lookup on the operation name.

The SDK call itself runs outside any guard, so its return value (the parsed response
dict, with botocore's own ``StreamingBody`` or ``EventStream`` in it) and its
exceptions reach the caller unchanged. dexcost's work before and after it is guarded.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from dexcost import errors, semconv
from dexcost.instrumentation.bedrock.extract import (
    BEDROCK,
    CHAT,
    operation_of,
    pricing_model_id,
    response_headers,
    service_tier_of,
    usage_from_converse,
    usage_from_headers,
)
from dexcost.instrumentation.bedrock.stream import (
    ConverseStreamObserver,
    InvokeStreamObserver,
    StreamObserver,
    arm_stream,
)
from dexcost.llm import LLMCall
from dexcost.runtime import current_runtime

# botocore's service name (endpoint prefix) of the Bedrock data-plane client.
SERVICE_NAME = "bedrock-runtime"
CONVERSE = "Converse"
CONVERSE_STREAM = "ConverseStream"
INVOKE_MODEL = "InvokeModel"
INVOKE_STREAM = "InvokeModelWithResponseStream"
OPERATIONS = frozenset({CONVERSE, CONVERSE_STREAM, INVOKE_MODEL, INVOKE_STREAM})
# The response member holding the EventStream of each streaming operation.
STREAM_MEMBERS = {CONVERSE_STREAM: "stream", INVOKE_STREAM: "body"}


class SDKTypes:
    """botocore exception classes the wrapper tests errors against, looked up at patch time."""

    def __init__(self) -> None:
        exceptions = importlib.import_module("botocore.exceptions")
        # The service returned an error status, so nothing was billed. A request that
        # failed validation or signing was never sent, so it was not billed either.
        self.not_billed: tuple[type[BaseException], ...] = (
            exceptions.ClientError,
            exceptions.ParamValidationError,
            exceptions.NoCredentialsError,
        )


class CallPlan:
    """The wrapper's decisions before the SDK call."""

    __slots__ = ("call", "operation", "response_model")

    def __init__(self, call: LLMCall, operation: str, response_model: str | None) -> None:
        self.call = call
        self.operation = operation
        self.response_model = response_model


def _params(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    if len(args) > 1:
        return args[1]
    return kwargs.get("api_params")


def _host(client: Any) -> str | None:
    url = getattr(client.meta, "endpoint_url", None)
    host = urlsplit(url).hostname if isinstance(url, str) else None
    return host or None


def _plan(client: Any, operation: str, params: Any) -> CallPlan | None:
    if client.meta.service_model.service_name != SERVICE_NAME:
        return None
    runtime = current_runtime()
    if runtime is None:
        return None
    model_id = params.get("modelId") if isinstance(params, Mapping) else None
    if not isinstance(model_id, str) or not model_id:
        model_id = None
    priced_as = pricing_model_id(model_id) if model_id is not None else None
    attributes: dict[str, str | bool | int | float] = {}
    host = _host(client)
    if host is not None:
        attributes[semconv.SERVER_ADDRESS] = host
    if operation in STREAM_MEMBERS:
        attributes[semconv.STREAMED] = True
    is_invoke = operation in (INVOKE_MODEL, INVOKE_STREAM)
    call = LLMCall(
        runtime,
        provider=BEDROCK,
        operation=operation_of(priced_as) if is_invoke and priced_as else CHAT,
        request_model=model_id,
        attributes=attributes,
    )
    # The pricer reads the response model first. Only an ARN differs from the id
    # the caller passed, and then the model id inside it is what served the call.
    response_model = priced_as if priced_as != model_id else None
    return CallPlan(call, operation, response_model)


def _prepare(client: Any, operation: str, params: Any) -> CallPlan | None:
    try:
        return _plan(client, operation, params)
    except Exception:
        errors.log_internal_error("preparing a bedrock call")
        return None


def _failed(plan: CallPlan, sdk: SDKTypes, exc: BaseException) -> None:
    # Timeouts and dropped connections may have been billed, so they stay unknown.
    try:
        plan.call.finish(error_type=type(exc).__name__, no_charge=isinstance(exc, sdk.not_billed))
    except Exception:
        errors.log_internal_error("recording a failed bedrock call")


def _arm(plan: CallPlan, response: Mapping[str, Any]) -> None:
    stream = response.get(STREAM_MEMBERS[plan.operation])
    tier = service_tier_of(response.get("serviceTier"))
    observer: StreamObserver
    if plan.operation == CONVERSE_STREAM:
        observer = ConverseStreamObserver(plan.call, plan.response_model, tier)
    else:
        observer = InvokeStreamObserver(plan.call, plan.response_model, tier)
    if not arm_stream(stream, observer):
        observer.finish()


def _handle_result(plan: CallPlan, response: Any) -> None:
    if not isinstance(response, Mapping):
        plan.call.finish(response_model=plan.response_model)
        return
    if plan.operation in STREAM_MEMBERS:
        _arm(plan, response)
        return
    if plan.operation == CONVERSE:
        usage = usage_from_converse(response.get("usage"))
    else:
        # InvokeModel: the headers have the counts, so the body the caller reads
        # (a StreamingBody that can be read once) is never touched.
        usage = usage_from_headers(response_headers(response))
    plan.call.finish(
        response_model=plan.response_model,
        usage=usage,
        service_tier=service_tier_of(response.get("serviceTier")),
    )


def _finish_unknown(plan: CallPlan) -> None:
    """After an internal failure, record the call as usage_unknown rather than lose it."""
    if plan.call.finished:
        return
    try:
        plan.call.finish()
    except Exception:
        errors.log_internal_error("recording a bedrock call")


def make_api_call_wrapper(sdk: SDKTypes) -> Callable[..., Any]:
    """Wrap ``BaseClient._make_api_call(operation_name, api_params)``."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        operation = args[0] if args else kwargs.get("operation_name")
        if operation not in OPERATIONS:
            return wrapped(*args, **kwargs)
        plan = _prepare(instance, operation, _params(args, kwargs))
        if plan is None:
            return wrapped(*args, **kwargs)
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as exc:
            _failed(plan, sdk, exc)
            raise
        try:
            _handle_result(plan, response)
        except Exception:
            errors.log_internal_error("reading a bedrock response")
            _finish_unknown(plan)
        return response

    return wrapper
