"""Recording one LLM call: what every provider instrumentation hands its results to.

An :class:`LLMCall` is created when the SDK call starts, on the caller's thread, so it
captures the parent span, the attribution and the task in effect there. It is finished
exactly once, possibly later and on another thread (a stream consumed elsewhere), and
then prices the usage and emits the ``llm_call`` event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context

from dexcost import errors, semconv
from dexcost.attribution import DexcostContext, current_attribution
from dexcost.events import LLM, NO_TOKENS, RETRY, AttributeValue, Tokens, emit_event
from dexcost.pricing import TokenUsage, price_llm
from dexcost.pricing.user_prices import find_user_card
from dexcost.runtime import current_runtime
from dexcost.tasks import TrackedTask, resolve_task

if TYPE_CHECKING:
    from dexcost.retry import RetryHeuristicEngine
    from dexcost.runtime import Runtime

_ZERO = Decimal(0)
# Bound on the price of one LLM call. A full 1M-token context on the dearest listed
# models costs a few hundred dollars, so a larger figure comes from a corrupt usage
# report (or a test value), not from a bill.
MAX_LLM_CALL_USD = Decimal(10_000)
logger = logging.getLogger(__name__)
# The call of a routing library (litellm) in progress in this context. An SDK call that
# starts inside it takes over the recording, so one request is priced once, with the
# usage the SDK reports first-hand. Kept in the OpenTelemetry context, so it follows the
# call into the worker threads dexcost carries context into.
_ROUTING_CALL_KEY = otel_context.create_key("dexcost-routing-llm-call")
# The SDK call in progress in this context. The HTTP capture skips requests sent while
# it is unfinished, so the HTTP request an SDK call makes is never priced a second time.
_SDK_CALL_KEY = otel_context.create_key("dexcost-sdk-llm-call")
# Makes finish() exactly-once when a stream's close and its last item race on two
# threads. One shared lock: uncontended, it is cheaper than a lock per call.
_FINISH_LOCK = threading.Lock()
# Called with the context of every SDK call dexcost starts recording. Set only while
# dexcost prices other instrumentations' GenAI spans, which then skip the spans around
# the call.
_call_observer: Callable[[otel_context.Context], None] | None = None


class LLMCall:
    """One LLM request in flight; :meth:`finish` records it exactly once."""

    __slots__ = (
        "_finished",
        "attributes",
        "attribution",
        "delegated",
        "operation",
        "parent",
        "provider",
        "request_model",
        "runtime",
        "start_ns",
        "task",
    )

    def __init__(
        self,
        runtime: Runtime,
        *,
        provider: str,
        operation: str,
        request_model: str | None,
        attributes: dict[str, AttributeValue] | None = None,
        task: TrackedTask | None = None,
        attribution: DexcostContext | None = None,
    ) -> None:
        self.start_ns = time.time_ns()
        self.runtime = runtime
        self.provider = provider
        self.operation = operation
        self.request_model = request_model
        self.attributes = attributes if attributes is not None else {}
        self.delegated = False
        current = otel_context.get_current()
        observer = _call_observer
        if observer is not None:
            observer(current)
        routing = current.get(_ROUTING_CALL_KEY)
        if isinstance(routing, LLMCall):
            # This call records the request; the routing library's call must not.
            routing.delegated = True
            via = routing.attributes.get(semconv.ROUTED_BY)
            if isinstance(via, str):
                self.attributes[semconv.ROUTED_BY] = via
        self.attribution = attribution if attribution is not None else current_attribution(current)
        self.task = task if task is not None else resolve_task(runtime, current, self.attribution)
        self.parent: otel_context.Context | None = self.task.event_parent(current)
        self._finished = False
        self.task.call_started()
        # Left attached like set_context(): the SDK's request runs after this returns,
        # and finish() may run later on another thread, where a detach would fail.
        otel_context.attach(otel_context.set_value(_SDK_CALL_KEY, self, current))

    @property
    def finished(self) -> bool:
        return self._finished

    def discard(self) -> None:
        """Finish without recording: an SDK call inside this one recorded the request."""
        with _FINISH_LOCK:
            if self._finished:
                return
            self._finished = True
        self.parent = None
        self.task.call_ended()

    def finish(
        self,
        *,
        response_model: str | None = None,
        usage: TokenUsage | None = None,
        reported_cost: Decimal | None = None,
        error_type: str | None = None,
        no_charge: bool = False,
        service_tier: str | None = None,
        unit_cost: tuple[Decimal | None, str | None] | None = None,
        batch: bool = False,
    ) -> None:
        """Price and record the call; only the first call has an effect.

        - ``usage`` given: priced from the price table (at the batch rate when ``batch``),
          or ``reported_cost`` when the provider reported what it charged.
        - ``unit_cost`` given: a call billed per unit other than tokens (a rerank search
          unit), already priced by the instrumentation as ``(cost, pricing source)``;
          a cost of None records the call as ``unpriced``.
        - ``usage`` None and ``no_charge``: the provider replied with an error and billed
          nothing, so the event costs $0.
        - ``usage`` None otherwise: ``usage_unknown``, with no cost (never $0).
        """
        with _FINISH_LOCK:
            if self._finished:
                return
            self._finished = True
        self.task.call_ended()
        # Outside a task the parent is the context the call started in, and that context
        # contains the thread's previous call (the "SDK call in progress" value). Kept
        # after the call ends, it would keep every earlier call of the thread alive.
        parent = self.parent
        self.parent = None

        attributes = self.attributes
        attributes[semconv.GEN_AI_PROVIDER_NAME] = self.provider
        attributes[semconv.GEN_AI_OPERATION_NAME] = self.operation
        if self.request_model:
            attributes[semconv.GEN_AI_REQUEST_MODEL] = self.request_model
        if response_model:
            attributes[semconv.GEN_AI_RESPONSE_MODEL] = response_model
        if service_tier:
            attributes[semconv.GEN_AI_SERVICE_TIER] = service_tier

        cost: Decimal | None
        source: str | None = None
        tokens = NO_TOKENS
        if usage is not None:
            _usage_attributes(usage, attributes)
            tokens = Tokens(
                input=usage.input_tokens,
                output=usage.output_tokens,
                cached=usage.cache_read_tokens,
                reasoning=usage.reasoning_tokens,
            )
            if reported_cost is not None:
                cost, status, source = reported_cost, semconv.PROVIDER_REPORTED, "provider"
            else:
                price = price_llm(
                    self.provider,
                    self._priced_model(response_model),
                    usage,
                    service_tier=service_tier,
                    batch=batch,
                )
                cost, status, source = price.cost_usd, price.status, price.source
            if cost is not None and cost >= MAX_LLM_CALL_USD:
                # Keep the tokens, and leave the amount out of every total.
                logger.warning(
                    "dexcost recorded a call to %s model %s as unpriced: its usage would "
                    "cost %s USD, which is not plausible for one call",
                    self.provider,
                    response_model or self.request_model,
                    cost,
                )
                cost, status = None, semconv.UNPRICED
        elif unit_cost is not None:
            cost, source = unit_cost
            status = semconv.PRICED if cost is not None else semconv.UNPRICED
        elif no_charge:
            cost, status = _ZERO, semconv.PRICED
        else:
            cost, status = None, semconv.USAGE_UNKNOWN

        # After a re-init the new runtime stores the event; after shutdown the old one
        # still does, so a stream that ends late is not lost.
        runtime = current_runtime() or self.runtime
        cost_kind = LLM
        engine = runtime.retry_engine
        if engine is not None:
            try:
                if self._is_retry(engine, response_model, usage, error_type, attributes):
                    cost_kind = RETRY
            except Exception:
                errors.log_internal_error("scoring a call as a retry")
        emit_event(
            runtime,
            name=f"{self.operation} {self.request_model or response_model or 'unknown'}",
            event_type=semconv.LLM_CALL,
            attributes=attributes,
            attribution=self.attribution,
            task=self.task,
            cost=cost,
            cost_status=status,
            cost_kind=cost_kind,
            pricing_source=source,
            tokens=tokens,
            parent=parent,
            start_ns=self.start_ns,
            error_type=error_type,
        )

    def _priced_model(self, response_model: str | None) -> str:
        """Return the model to price: the response's, or the request's if only it has a user price.

        OpenAI responds to ``gpt-4o-mini`` with ``gpt-4o-mini-2024-07-18``. A price the user
        registered for the name they send must still apply.
        """
        requested = self.request_model
        if not response_model:
            return requested or ""
        only_request_has_user_price = (
            requested is not None
            and requested != response_model
            and find_user_card(self.provider, response_model) is None
            and find_user_card(self.provider, requested) is not None
        )
        return requested if only_request_has_user_price and requested else response_model

    def _is_retry(
        self,
        engine: RetryHeuristicEngine,
        response_model: str | None,
        usage: TokenUsage | None,
        error_type: str | None,
        attributes: dict[str, AttributeValue],
    ) -> bool:
        """Feed the retry engine and flag this call when it is a probable retry."""
        model = self.request_model or response_model or ""
        if error_type is not None and usage is None:
            engine.record_failure(self.task.task_id, model, error_type)
            return False
        if usage is None or error_type is not None:
            return False
        confidence = engine.score(self.task.task_id, model)
        if confidence is None:
            return False
        attributes[semconv.RETRY_IS_RETRY] = True
        attributes[semconv.RETRY_CONFIDENCE] = confidence
        return True


def observe_calls(observer: Callable[[otel_context.Context], None] | None) -> None:
    """Set the function called with the context of each SDK call dexcost starts recording.

    None removes it.
    """
    global _call_observer
    _call_observer = observer


def sdk_call_in_progress(ctx: otel_context.Context) -> bool:
    """Tell whether an instrumented LLM SDK call started in ``ctx`` has not finished yet."""
    call = ctx.get(_SDK_CALL_KEY)
    return isinstance(call, LLMCall) and not call._finished


@contextmanager
def routing(call: LLMCall) -> Iterator[None]:
    """Mark ``call`` as a routing library's call while the library sends the request.

    An :class:`LLMCall` created inside (an instrumented SDK doing the actual request)
    sets ``call.delegated``. The routing instrumentation then calls ``call.discard()``
    instead of recording the request a second time.
    """
    token = otel_context.attach(otel_context.set_value(_ROUTING_CALL_KEY, call))
    try:
        yield
    finally:
        otel_context.detach(token)


def _usage_attributes(usage: TokenUsage, attributes: dict[str, AttributeValue]) -> None:
    attributes[semconv.GEN_AI_INPUT_TOKENS] = usage.input_tokens
    attributes[semconv.GEN_AI_OUTPUT_TOKENS] = usage.output_tokens
    if usage.cache_read_tokens:
        attributes[semconv.GEN_AI_CACHE_READ_TOKENS] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        attributes[semconv.GEN_AI_CACHE_CREATION_TOKENS] = usage.cache_write_tokens
    if usage.reasoning_tokens:
        attributes[semconv.GEN_AI_REASONING_TOKENS] = usage.reasoning_tokens
    if usage.input_audio_tokens:
        attributes[semconv.GEN_AI_AUDIO_INPUT_TOKENS] = usage.input_audio_tokens
    if usage.output_audio_tokens:
        attributes[semconv.GEN_AI_AUDIO_OUTPUT_TOKENS] = usage.output_audio_tokens
