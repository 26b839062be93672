"""Emission of cost events: one span per priced operation on dexcost's own tracer.

Every event span carries its attribution and owning task as attributes. Their values
are fixed on the caller's thread when the operation has finished, so nothing has to
resolve context later. The span itself, with its real start time, is built from those
values either on the caller's thread or, when it goes only to the buffer, on the
buffer's writer thread.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import (
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    get_current_span,
)

from dexcost import errors, semconv
from dexcost.attribution import DexcostContext, hash_customer_id
from dexcost.buffer_schema import row_of
from dexcost.pricing import format_usd

if TYPE_CHECKING:
    from dexcost.runtime import Runtime
    from dexcost.tasks import TrackedTask

AttributeValue = str | bool | int | float


class Tokens(NamedTuple):
    """Token counts an event adds to its task (OTel meaning: input includes cached).

    A named tuple, because one is made per LLM call and it costs about a third of
    a frozen dataclass to create.
    """

    input: int = 0
    output: int = 0
    cached: int = 0
    reasoning: int = 0


NO_TOKENS = Tokens()

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)
_UNSET_CODE = StatusCode.UNSET.value
_ERROR_CODE = StatusCode.ERROR.value

# Cost kinds a task sums separately.
LLM = "llm"
EXTERNAL = "external"
RETRY = "retry"


# An event as emit_event fixed it on the caller's thread: runtime, name, event type,
# attributes, attribution, task id, task type, cost, cost status, pricing source,
# parent span context, start and end time (ns), error type and span kind. A plain
# tuple, because making one costs less than any object with named fields.
PendingEvent = tuple[
    "Runtime",
    str,
    str,
    dict[str, AttributeValue],
    DexcostContext,
    str,
    str,
    Decimal | None,
    str,
    str | None,
    SpanContext,
    int,
    int,
    str | None,
    SpanKind,
]


def attribution_attributes(
    runtime: Runtime, attribution: DexcostContext, attributes: dict[str, AttributeValue]
) -> None:
    """Add the attribution fields to ``attributes``, applying hashing and redaction."""
    if attribution.customer_id is not None:
        customer = attribution.customer_id
        if runtime.config.hash_customer_id:
            customer = hash_customer_id(customer)
        attributes[semconv.CUSTOMER_ID] = customer
    if attribution.project_id is not None:
        attributes[semconv.PROJECT_ID] = attribution.project_id
    if attribution.agent is not None:
        attributes[semconv.AGENT] = attribution.agent
    if attribution.metadata:
        redacted = runtime.redacted_fields
        for key, value in attribution.metadata.items():
            if key not in redacted:
                attributes[semconv.METADATA_PREFIX + key] = value


def make_event(
    runtime: Runtime,
    *,
    name: str,
    event_type: str,
    attributes: dict[str, AttributeValue],
    attribution: DexcostContext,
    task: TrackedTask,
    cost: Decimal | None,
    cost_status: str,
    pricing_source: str | None = None,
    parent: otel_context.Context | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    error_type: str | None = None,
    kind: SpanKind = SpanKind.CLIENT,
) -> PendingEvent:
    """Return the :class:`PendingEvent` of one event, without storing it or adding its cost."""
    if end_ns is None:
        end_ns = time.time_ns()
    return (
        runtime,
        name,
        event_type,
        attributes,
        attribution,
        task.task_id,
        task.task_type,
        cost,
        cost_status,
        pricing_source,
        get_current_span(parent).get_span_context(),
        end_ns if start_ns is None else start_ns,
        end_ns,
        error_type,
        kind,
    )


def emit_event(
    runtime: Runtime,
    *,
    name: str,
    event_type: str,
    attributes: dict[str, AttributeValue],
    attribution: DexcostContext,
    task: TrackedTask,
    cost: Decimal | None,
    cost_status: str,
    cost_kind: str,
    pricing_source: str | None = None,
    tokens: Tokens = NO_TOKENS,
    parent: otel_context.Context | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    error_type: str | None = None,
    kind: SpanKind = SpanKind.CLIENT,
) -> None:
    """Record one event: add its cost and tokens to ``task`` and hand it to storage.

    ``attributes`` contains the operation's own attributes; it becomes the span's and
    the caller must not use it afterwards.

    When the event goes only to the SQLite buffer, its span is built by the buffer's
    writer thread from the values fixed here (see :class:`PendingEvent`), so the
    application's thread pays only for the cost and the hand-over. Otherwise, with a
    console, an export or an in-memory processor reading spans as they end, the span
    is built and ended here.
    """
    event = make_event(
        runtime,
        name=name,
        event_type=event_type,
        attributes=attributes,
        attribution=attribution,
        task=task,
        cost=cost,
        cost_status=cost_status,
        pricing_source=pricing_source,
        parent=parent,
        start_ns=start_ns,
        end_ns=end_ns,
        error_type=error_type,
        kind=kind,
    )
    sink = runtime.event_sink
    if sink is not None:
        sink.on_event(event)
        worker = runtime.sync_worker
        if worker is not None:
            worker.ensure_started()
    else:
        runtime.span_processor.on_end(build_span(event))
    task.add_event(cost, cost_status, cost_kind, tokens)


class DeferredEvent:
    """An event whose cost and task are worked out after the call that made it returned.

    The application's thread keeps only what is its own: its context, the times
    and the reply's status and body. :func:`settle` later turns that into a
    :class:`PendingEvent` and adds the cost to its task, in the order the events were
    recorded, on whichever thread needs it first: the buffer's writer, about to store
    the event, or a thread reading a task's totals. A subclass implements
    :meth:`work_out`.
    """

    __slots__ = ("event", "runtime", "settled")

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.event: PendingEvent | None = None
        self.settled = False

    def work_out(self) -> PendingEvent | None:
        """Return the event to store, after adding its cost to its task; None for none."""
        raise NotImplementedError

    def settle(self) -> None:
        """Work the event out once; called by :func:`settle` under its lock."""
        try:
            self.event = self.work_out()
        except Exception:
            errors.log_internal_error("working out a cost event")
        self.settled = True

    def pending_event(self) -> PendingEvent | None:
        """Return the event to store, settling every event recorded up to this one first."""
        if not self.settled:
            settle()
        return self.event


# Deferred events of every runtime, oldest first. One queue for the process, because a
# task can outlive its runtime (init() called again inside it), and reading it must
# settle the events recorded through the new runtime too.
_unsettled: deque[DeferredEvent] = deque()
# Reentrant, so a task read made while settling (from code that work_out runs) does
# not wait for its own thread. Task ends requested then wait (see end_after_settle).
_settle_lock = threading.RLock()
# About how many bytes of bodies the waiting events keep (updated without a lock).
_unsettled_bytes = 0


def add_unsettled(event: DeferredEvent, held_bytes: int) -> tuple[int, int]:
    """Append ``event`` to the events waiting to be worked out; return their count and bytes."""
    global _unsettled_bytes
    _unsettled.append(event)
    if held_bytes:
        _unsettled_bytes += held_bytes
    return len(_unsettled), _unsettled_bytes


def unsettled_count() -> int:
    return len(_unsettled)


# The thread settling now, and the tasks whose end() it postponed (see end_after_settle).
_settling_thread: int | None = None
_postponed_ends: list[tuple[TrackedTask, str]] = []


def settle() -> None:
    """Work out every deferred event recorded so far, oldest first.

    Each task read calls this first, so its totals include every event recorded
    before the read, wherever it is in the buffer's queue.
    """
    global _unsettled_bytes, _settling_thread
    with _settle_lock:
        outermost = _settling_thread is None
        _settling_thread = threading.get_ident()
        try:
            unsettled = _unsettled
            while unsettled:
                unsettled.popleft().settle()
            _unsettled_bytes = 0
        finally:
            if outermost:
                _settling_thread = None
        ending: list[tuple[TrackedTask, str]] = []
        if outermost:
            ending = _postponed_ends[:]
            _postponed_ends.clear()
    for task, status in ending:
        task.end(status)


def end_after_settle(task: TrackedTask, status: str) -> bool:
    """Postpone ``task.end()`` until this thread has finished settling; True if postponed.

    Working an event out can end a session task (idle, evicted, or started after
    shutdown). Ending one stores its span, which after shutdown takes the buffer's I/O
    lock. The writer takes that lock before the settle lock, so a thread holding the
    settle lock must not wait for it: the task ends once the lock is released.
    """
    if _settling_thread != threading.get_ident():
        return False
    _postponed_ends.append((task, status))
    return True


def _settle_before_fork() -> None:
    """Settle before fork, so parent and child both see every task total up to it.

    Registered when this module is imported, before any buffer processor exists, so it
    runs after their fork hooks have taken their I/O locks: the writer takes that lock
    before this one too.
    """
    try:
        settle()
    except Exception:
        errors.log_internal_error("working out cost events before fork")


def _reset_in_child() -> None:
    global _settle_lock, _unsettled_bytes, _settling_thread
    _settle_lock = threading.RLock()
    _unsettled.clear()
    _unsettled_bytes = 0
    _settling_thread = None
    _postponed_ends.clear()


os.register_at_fork(before=_settle_before_fork, after_in_child=_reset_in_child)


def _complete_attributes(event: PendingEvent) -> dict[str, AttributeValue]:
    """Add the event's cost, task and attribution to its attributes and return them."""
    runtime = event[0]
    attributes = event[3]
    attributes[semconv.EVENT_TYPE] = event[2]
    attributes[semconv.COST_STATUS] = event[8]
    cost = event[7]
    if cost is not None:
        attributes[semconv.COST_USD] = format_usd(cost)
    pricing_source = event[9]
    if pricing_source is not None:
        attributes[semconv.PRICING_SOURCE] = pricing_source
    attributes[semconv.TASK_ID] = event[5]
    attributes[semconv.TASK_TYPE] = event[6]
    attribution_attributes(runtime, event[4], attributes)
    error_type = event[13]
    if error_type is not None:
        attributes[semconv.ERROR_TYPE] = error_type
    return attributes


def build_span(event: PendingEvent) -> ReadableSpan:
    """Build the finished span of ``event``, on whichever thread stores or shows it."""
    runtime = event[0]
    attributes = _complete_attributes(event)
    parent_span = event[10]
    error_type = event[13]
    ids = runtime.id_generator
    parent: SpanContext | None = None
    if parent_span.is_valid:
        parent = parent_span
        trace_id = parent_span.trace_id
    else:
        trace_id = ids.generate_trace_id()
    # The finished span is built directly, not through Tracer.start_span()/end(). It
    # has every field such a span would have, at a fraction of the cost (~3 us
    # instead of ~37 us measured here): no sampler run (dexcost records everything),
    # no attribute re-validation (dexcost built them), no lock.
    return ReadableSpan(
        name=event[1],
        context=SpanContext(trace_id, ids.generate_span_id(), False, _SAMPLED),
        parent=parent,
        resource=runtime.resource,
        attributes=attributes,
        kind=event[14],
        instrumentation_scope=runtime.scope,
        status=_UNSET if error_type is None else Status(StatusCode.ERROR, error_type),
        start_time=event[11],
        end_time=event[12],
    )


def event_to_row(event: PendingEvent, stored_at_ns: int) -> tuple[Any, ...]:
    """Return the buffer row of ``event``: the row its span from build_span would give.

    The writer thread stores most events this way, without making the span object.
    """
    runtime = event[0]
    attributes = _complete_attributes(event)
    parent_span = event[10]
    error_type = event[13]
    ids = runtime.id_generator
    if parent_span.is_valid:
        parent_id: int | None = parent_span.span_id
        trace_id = parent_span.trace_id
    else:
        parent_id = None
        trace_id = ids.generate_trace_id()
    return row_of(
        trace_id,
        ids.generate_span_id(),
        parent_id,
        event[1],
        event[14]._value_,
        event[11],
        event[12],
        _UNSET_CODE if error_type is None else _ERROR_CODE,
        error_type,
        attributes,
        runtime.resource,
        runtime.scope,
        stored_at_ns,
    )


def clean_attributes(values: dict[str, Any]) -> dict[str, AttributeValue]:
    """Keep only values an OTel attribute accepts, converting the rest with ``str``."""
    cleaned: dict[str, AttributeValue] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, (str, bool, int, float)):
            cleaned[key] = value
        else:
            cleaned[key] = str(value)
    return cleaned
