"""Tasks: units of agent work that costs roll up into.

A task is a span on dexcost's tracer, and every cost event recorded inside it is a
child of that span. The active task is stored in the context under a private key. Its span is
deliberately not made the current span, because the application never exports
dexcost's spans. An app span started inside a task must keep the app's own parent,
and the app's sampler must not see dexcost's always-sampled span as that parent.
Costs recorded outside any task go to a long-lived *session task* per attribution
(see :class:`SessionTasks`).
"""

from __future__ import annotations

import functools
import os
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from decimal import Context, Decimal, InvalidOperation
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from dexcost import semconv
from dexcost.attribution import DexcostContext, current_attribution, merged, with_attribution
from dexcost.errors import warn_user
from dexcost.events import (
    EXTERNAL,
    LLM,
    RETRY,
    Tokens,
    attribution_attributes,
    emit_event,
    end_after_settle,
    settle,
)

if TYPE_CHECKING:
    from dexcost.runtime import Runtime

_TASK_KEY = otel_context.create_key("dexcost.task")
_ZERO = Decimal(0)
# Task totals add costs of very different sizes (a 1E-12 token cost to a $1,000 one).
# The default context keeps 28 digits and would round; this one keeps every digit of
# any realistic total.
_SUMS = Context(prec=120)


def _exact_sum(values: Iterable[Decimal]) -> Decimal:
    total = _ZERO
    for value in values:
        total = _SUMS.add(total, value)
    return total


F = TypeVar("F", bound=Callable[..., Any])

# Upper bound on one recorded cost: catches unit mix-ups and absurd input such as
# "1e100000", which would otherwise be stored as a 100 KB number.
MAX_COST_USD = Decimal(1_000_000_000)
MAX_TASK_TYPE_LENGTH = 256

COMPLETED = "completed"
FAILED = "failed"
SESSION_TASK_TYPE = "agent_session"
# A session task with no new event for this long is ended, so its totals are final.
SESSION_IDLE_SECONDS = 300.0


def parse_cost(name: str, value: object) -> Decimal:
    """Convert a user-supplied USD amount to an exact Decimal, rejecting floats' noise early.

    Strings and ints are exact; a float is converted through ``str`` (``0.1`` becomes
    ``Decimal("0.1")``, not the binary value) because users write prices as literals.
    """
    if isinstance(value, bool):
        raise TypeError(f'{name} must be a number or a decimal string like "0.002", got {value!r}')
    try:
        if isinstance(value, Decimal):
            amount = value
        elif isinstance(value, int):
            amount = Decimal(value)
        elif isinstance(value, float):
            amount = Decimal(repr(value))
        elif isinstance(value, str):
            amount = Decimal(value.strip())
        else:
            raise TypeError(
                f'{name} must be a number or a decimal string like "0.002", '
                f"got {type(value).__name__} {value!r}"
            )
    except InvalidOperation:
        raise ValueError(
            f'{name}={value!r} is not a number; pass USD as a decimal string like "0.002"'
        ) from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{name}={value!r} is invalid; pass a finite, non-negative USD amount")
    if amount >= MAX_COST_USD:
        raise ValueError(
            f"{name}={value!r} is not a plausible cost of one operation (limit "
            f"{MAX_COST_USD:,} USD); pass USD, not cents or micro-dollars"
        )
    return amount


class TrackedTask:
    """A running task: its identity, its span and the totals of the events recorded in it."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        task_type: str,
        task_id: str | None,
        attribution: DexcostContext,
        parent_task: TrackedTask | None,
        parent: otel_context.Context | None,
        auto: bool = False,
    ) -> None:
        self.task_id = task_id or str(uuid.uuid4())
        self.task_type = task_type
        self.attribution = attribution
        self.parent_task = parent_task
        self.parent_task_id = parent_task.task_id if parent_task is not None else None
        self.auto = auto
        self.status: str | None = None
        self._runtime = runtime
        # Set by start_task(): the context token to detach on end(), with the thread
        # and asyncio task that attached it, because a token only detaches there.
        self._manual_token: tuple[object, int, object] | None = None
        self._lock = threading.Lock()
        self._costs = {LLM: _ZERO, EXTERNAL: _ZERO, RETRY: _ZERO}
        self._event_count = 0
        self._retry_count = 0
        self._unpriced_count = 0
        self._open_calls = 0
        self._input_tokens = 0
        self._output_tokens = 0
        self._cached_tokens = 0
        self._reasoning_tokens = 0

        attributes: dict[str, str | bool | int | float] = {
            semconv.EVENT_TYPE: semconv.TASK,
            semconv.TASK_ID: self.task_id,
            semconv.TASK_TYPE: task_type,
        }
        if self.parent_task_id is not None:
            attributes[semconv.TASK_PARENT_ID] = self.parent_task_id
        if auto:
            attributes[semconv.TASK_AUTO] = True
        attribution_attributes(runtime, attribution, attributes)
        if parent_task is not None and not parent_task.auto:
            parent = parent_task.span_context
        self.span: Span = runtime.tracer.start_span(
            f"task {task_type}", context=parent, kind=SpanKind.INTERNAL, attributes=attributes
        )
        # The context events of this task are parented to, built once.
        self.span_context: otel_context.Context = trace.set_span_in_context(self.span)

    # --- totals ---

    def add_event(
        self, cost: Decimal | None, cost_status: str, cost_kind: str, tokens: Tokens
    ) -> None:
        """Add one event's cost and tokens to this task and every task it is nested in.

        Called from any thread. A task's totals therefore include its sub-tasks.
        """
        task: TrackedTask | None = self
        while task is not None:
            task._add_own(cost, cost_status, cost_kind, tokens)
            task = task.parent_task

    def _add_own(
        self, cost: Decimal | None, cost_status: str, cost_kind: str, tokens: Tokens
    ) -> None:
        with self._lock:
            self._event_count += 1
            if cost is not None:
                self._costs[cost_kind] = _SUMS.add(self._costs[cost_kind], cost)
            if cost_status in (semconv.UNPRICED, semconv.USAGE_UNKNOWN):
                self._unpriced_count += 1
            if cost_kind == RETRY:
                self._retry_count += 1
            self._input_tokens += tokens.input
            self._output_tokens += tokens.output
            self._cached_tokens += tokens.cached
            self._reasoning_tokens += tokens.reasoning

    def call_started(self) -> None:
        """Count an LLM call in flight in this task and every task it is nested in."""
        task: TrackedTask | None = self
        while task is not None:
            with task._lock:
                task._open_calls += 1
            task = task.parent_task

    def call_ended(self) -> None:
        """Stop counting a call :meth:`call_started` counted."""
        task: TrackedTask | None = self
        while task is not None:
            with task._lock:
                task._open_calls = max(task._open_calls - 1, 0)
            task = task.parent_task

    @property
    def cost_usd(self) -> Decimal:
        """Total cost so far: LLM, external and retry costs."""
        settle()
        with self._lock:
            return _exact_sum(self._costs.values())

    @property
    def event_count(self) -> int:
        settle()
        with self._lock:
            return self._event_count

    def totals(self) -> dict[str, Any]:
        """Return a snapshot of the totals as plain values (Decimals for money)."""
        settle()
        with self._lock:
            return {
                "cost_usd": _exact_sum(self._costs.values()),
                "llm_cost_usd": self._costs[LLM],
                "external_cost_usd": self._costs[EXTERNAL],
                "retry_cost_usd": self._costs[RETRY],
                "event_count": self._event_count,
                "retry_count": self._retry_count,
                "unpriced_count": self._unpriced_count,
                "open_calls": self._open_calls,
                "input_tokens": self._input_tokens,
                "output_tokens": self._output_tokens,
                "cached_tokens": self._cached_tokens,
                "reasoning_tokens": self._reasoning_tokens,
            }

    # --- recording ---

    def record_cost(
        self,
        service: str,
        cost_usd: str | int | float | Decimal,
        *,
        units: float | int | None = None,
        unit: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Record a non-LLM cost (a paid API call, a tool run) as an ``external_cost`` event."""
        if self.status is not None:
            with self._after_end() as session:
                return session.record_cost(
                    service, cost_usd, units=units, unit=unit, metadata=metadata
                )
        if not isinstance(service, str) or not service:
            raise TypeError(
                f"service must be a non-empty string such as 'serpapi', got {service!r}"
            )
        amount = parse_cost("cost_usd", cost_usd)
        attributes: dict[str, str | bool | int | float] = {semconv.SERVICE: service}
        if units is not None:
            if isinstance(units, bool) or not isinstance(units, (int, float)):
                raise TypeError(f"units must be a number, got {units!r}")
            if not 0 <= units < float("inf"):
                raise ValueError(f"units={units!r} is invalid; pass a finite number, 0 or more")
            attributes[semconv.UNITS] = units
        if unit is not None:
            attributes[semconv.UNIT] = str(unit)
        attribution = self._event_attribution()
        if metadata:
            attribution = merged(attribution, metadata=metadata)
        emit_event(
            self._runtime,
            name=f"external_cost {service}",
            event_type=semconv.EXTERNAL_COST,
            attributes=attributes,
            attribution=attribution,
            task=self,
            cost=amount,
            cost_status=semconv.PRICED,
            cost_kind=EXTERNAL,
            pricing_source="user",
            parent=self.event_parent(),
            kind=SpanKind.INTERNAL,
        )

    def record_usage(
        self,
        service: str,
        units: int | float | Decimal | str,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Record ``units`` of a paid service, priced from the rates you registered.

        The price comes from ``dexcost rates --import`` (see the rates docs). A service
        without a rate is recorded ``unpriced`` with its units, never as $0.
        """
        if self.status is not None:
            with self._after_end() as session:
                return session.record_usage(service, units, metadata=metadata)
        from dexcost.rates.registry import price_service_usage

        if not isinstance(service, str) or not service:
            raise TypeError(
                f"service must be a non-empty string such as 'maps.googleapis.com', got {service!r}"
            )
        count = _parse_units(units)
        priced = price_service_usage(service, count)
        attributes: dict[str, str | bool | int | float] = {
            semconv.SERVICE: service,
            semconv.UNITS: int(count) if count == count.to_integral_value() else float(count),
        }
        attribution = self._event_attribution()
        if metadata:
            attribution = merged(attribution, metadata=metadata)
        cost, source = priced if priced is not None else (None, None)
        emit_event(
            self._runtime,
            name=f"external_cost {service}",
            event_type=semconv.EXTERNAL_COST,
            attributes=attributes,
            attribution=attribution,
            task=self,
            cost=cost,
            cost_status=semconv.PRICED if cost is not None else semconv.UNPRICED,
            cost_kind=EXTERNAL,
            pricing_source=source,
            parent=self.event_parent(),
            kind=SpanKind.INTERNAL,
        )

    def record_llm_call(
        self,
        provider: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        *,
        cached_tokens: int = 0,
        reasoning_tokens: int = 0,
        cost_usd: str | int | float | Decimal | None = None,
    ) -> None:
        """Record an LLM call made outside an instrumented SDK, priced like captured calls.

        ``input_tokens`` includes ``cached_tokens`` and ``output_tokens`` includes
        ``reasoning_tokens``, as in the OpenTelemetry GenAI conventions. A given
        ``cost_usd`` is used as the provider-reported cost instead of the price table.
        """
        if self.status is not None:
            with self._after_end() as session:
                return session.record_llm_call(
                    provider,
                    model,
                    input_tokens,
                    output_tokens,
                    cached_tokens=cached_tokens,
                    reasoning_tokens=reasoning_tokens,
                    cost_usd=cost_usd,
                )
        from dexcost.llm import LLMCall
        from dexcost.pricing import TokenUsage

        for name, text in (("provider", provider), ("model", model)):
            if not isinstance(text, str) or not text:
                raise TypeError(
                    f"{name} must be a non-empty string such as 'openai' or 'gpt-4o-mini', "
                    f"got {text!r}"
                )

        for name, value in (
            ("input_tokens", input_tokens),
            ("output_tokens", output_tokens),
            ("cached_tokens", cached_tokens),
            ("reasoning_tokens", reasoning_tokens),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if cached_tokens > input_tokens or reasoning_tokens > output_tokens:
            raise ValueError(
                "cached_tokens must not exceed input_tokens and reasoning_tokens must not "
                "exceed output_tokens: input and output totals include them"
            )
        reported = None if cost_usd is None else parse_cost("cost_usd", cost_usd)
        call = LLMCall(
            self._runtime,
            provider=provider,
            operation="chat",
            request_model=model,
            task=self,
            attribution=self._event_attribution(),
        )
        call.finish(
            response_model=model,
            usage=TokenUsage(
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_read_tokens=cached_tokens,
                reasoning_tokens=reasoning_tokens,
            ),
            reported_cost=reported,
        )

    def mark_retry(
        self,
        reason: str,
        *,
        cost_usd: str | int | float | Decimal | None = None,
    ) -> None:
        """Record that work was repeated, e.g. a call retried after a timeout.

        ``cost_usd`` is the cost of the wasted attempt, and counts as retry cost in the
        task totals. Leave it out when the attempt was recorded as its own event, so
        its cost is not counted twice.
        """
        if self.status is not None:
            with self._after_end() as session:
                return session.mark_retry(reason, cost_usd=cost_usd)
        if not isinstance(reason, str) or not reason:
            raise TypeError(f"reason must be a non-empty string such as 'timeout', got {reason!r}")
        amount = _ZERO if cost_usd is None else parse_cost("cost_usd", cost_usd)
        emit_event(
            self._runtime,
            name=f"retry {reason}",
            event_type=semconv.RETRY_MARKER,
            attributes={semconv.RETRY_IS_RETRY: True, semconv.RETRY_REASON: reason},
            attribution=self._event_attribution(),
            task=self,
            cost=amount,
            cost_status=semconv.PRICED,
            cost_kind=RETRY,
            pricing_source="user",
            parent=self.event_parent(),
            kind=SpanKind.INTERNAL,
        )

    @contextmanager
    def _after_end(self) -> Iterator[TrackedTask]:
        """Give the task that takes a cost recorded on this task after it ended.

        The ended task's stored totals are final, so the cost goes to the session task
        of the same attribution instead, with a warning, and is not lost. The task's
        attribution is current while the cost is recorded.
        """
        warn_user(
            f"dexcost: task {self.task_type!r} ({self.task_id}) already ended with status "
            f"{self.status!r}; this cost is recorded in the session task instead. Record "
            "costs inside the task's block, or before calling end()"
        )
        token = otel_context.attach(with_attribution(self.attribution))
        try:
            yield self._runtime.sessions.for_attribution(self.attribution)
        finally:
            otel_context.detach(token)

    def _event_attribution(self) -> DexcostContext:
        """Return the attribution for an event recorded through this task's methods.

        Inside the task's scope that is the current attribution (it may have been
        refined with set_context); elsewhere, such as another thread, the task's own.
        """
        current = otel_context.get_current()
        if self.auto or otel_context.get_value(_TASK_KEY, current) is self:
            return current_attribution(current)
        return self.attribution

    def event_parent(self, current: otel_context.Context | None = None) -> otel_context.Context:
        """Return the context an event of this task is parented to.

        Events of a task are children of its span. A session task spans many unrelated
        requests, so its events keep the current span (``current``) as parent instead.
        """
        if self.auto:
            return current if current is not None else otel_context.get_current()
        return self.span_context

    # --- lifecycle ---

    def end(self, status: str = COMPLETED) -> None:
        """End the task and write its totals to the task span; later calls do nothing.

        ``status`` is ``"completed"``, ``"failed"`` or another short word of your own
        (``"cancelled"``); ``"failed"`` also marks the span as an error.
        """
        if not isinstance(status, str) or not status:
            raise TypeError(
                f"status must be a non-empty string such as 'completed', got {status!r}"
            )
        if end_after_settle(self, status):
            return
        # Events recorded before this call belong to this task: they are worked out
        # while it is still open.
        settle()
        with self._lock:
            if self.status is not None:
                return
            self.status = status
        self._detach_manual_start()
        totals = self.totals()
        from dexcost.pricing import format_usd

        self.span.set_attributes(
            {
                semconv.TASK_STATUS: status,
                semconv.TASK_COST_USD: format_usd(totals["cost_usd"]),
                semconv.TASK_LLM_COST_USD: format_usd(totals["llm_cost_usd"]),
                semconv.TASK_EXTERNAL_COST_USD: format_usd(totals["external_cost_usd"]),
                semconv.TASK_RETRY_COST_USD: format_usd(totals["retry_cost_usd"]),
                semconv.TASK_EVENT_COUNT: totals["event_count"],
                semconv.TASK_RETRY_COUNT: totals["retry_count"],
                # A call still running has no known cost yet, so the total is not exact.
                semconv.TASK_UNPRICED_COUNT: totals["unpriced_count"] + totals["open_calls"],
                semconv.TASK_OPEN_CALLS: totals["open_calls"],
                semconv.TASK_INPUT_TOKENS: totals["input_tokens"],
                semconv.TASK_OUTPUT_TOKENS: totals["output_tokens"],
                semconv.TASK_CACHED_TOKENS: totals["cached_tokens"],
                semconv.TASK_REASONING_TOKENS: totals["reasoning_tokens"],
            }
        )
        if status == FAILED:
            self.span.set_status(Status(StatusCode.ERROR, "task failed"))
        self.span.end()

    def _detach_manual_start(self) -> None:
        """Restore the context from before :func:`start_task` when ending where it started."""
        started = self._manual_token
        if started is None:
            return
        self._manual_token = None
        token, thread_id, asyncio_task = started
        if threading.get_ident() == thread_id and _current_asyncio_task() is asyncio_task:
            otel_context.detach(token)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (
            f"TrackedTask(task_type={self.task_type!r}, task_id={self.task_id!r}, "
            f"cost_usd={self.cost_usd}, status={self.status!r})"
        )


def current_task(ctx: otel_context.Context | None = None) -> TrackedTask | None:
    """Return the task active in ``ctx`` (the current context by default), if any."""
    value = otel_context.get_value(_TASK_KEY, ctx)
    return value if isinstance(value, TrackedTask) else None


class SessionTasks:
    """Session tasks for costs recorded outside any task, one per attribution.

    A session task groups the calls of one agent and customer, so a process makes one
    task per agent and customer, not one per call. It ends when no event joined it for
    ``idle_seconds`` (checked whenever an event needs a session task), at shutdown, or
    when more than ``max_open`` are open and it is the least recently used. Its next
    event then starts a new one.
    """

    def __init__(
        self,
        runtime: Runtime,
        max_open: int = 1024,
        idle_seconds: float = SESSION_IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._runtime = runtime
        self._max_open = max_open
        self._idle_seconds = idle_seconds
        self._clock = clock
        self._lock = threading.Lock()
        # Least recently used first: (task, time of its last event).
        self._open: OrderedDict[tuple[str | None, ...], tuple[TrackedTask, float]] = OrderedDict()
        weak_self = weakref.ref(self)

        def forget_in_child() -> None:
            sessions = weak_self()
            if sessions is not None:
                sessions._forget_inherited()

        os.register_at_fork(after_in_child=forget_in_child)

    def _forget_inherited(self) -> None:
        """Drop, without ending them, the session tasks a forked child inherited.

        They belong to the parent, which ends and stores them. A child that ended its
        copies too would store each of them a second time, with the same ids and the
        parent's costs up to the fork. The child's own events start new session tasks.
        """
        self._lock = threading.Lock()
        self._open = OrderedDict()

    def for_attribution(self, attribution: DexcostContext) -> TrackedTask:
        # Metadata varies per request, so it does not split session tasks.
        key = (attribution.customer_id, attribution.project_id, attribution.agent)
        now = self._clock()
        ended: list[TrackedTask] = []
        with self._lock:
            self._take_idle(now, ended)
            entry = self._open.get(key)
            # A task ended elsewhere (after shutdown, see Runtime.stopped) is not reused.
            if entry is not None and entry[0].status is None:
                task = entry[0]
                self._open[key] = (task, now)
                self._open.move_to_end(key)
            else:
                task = TrackedTask(
                    self._runtime,
                    task_type=attribution.agent or SESSION_TASK_TYPE,
                    task_id=None,
                    attribution=replace(attribution, metadata=MappingProxyType({})),
                    parent_task=None,
                    parent=otel_context.Context(),
                    auto=True,
                )
                self._open[key] = (task, now)
                if len(self._open) > self._max_open:
                    ended.append(self._open.popitem(last=False)[1][0])
        for old in ended:
            old.end()
        return task

    def end_idle(self) -> int:
        """End the session tasks idle for longer than the idle period; return how many."""
        ended: list[TrackedTask] = []
        with self._lock:
            self._take_idle(self._clock(), ended)
        for task in ended:
            task.end()
        return len(ended)

    def _take_idle(self, now: float, ended: list[TrackedTask]) -> None:
        # The dict is in order of last use, so the idle tasks are at its front.
        while self._open:
            key, (task, last_event) = next(iter(self._open.items()))
            if now - last_event <= self._idle_seconds:
                return
            del self._open[key]
            ended.append(task)

    def end_all(self) -> None:
        with self._lock:
            tasks = [task for task, _ in self._open.values()]
            self._open.clear()
        for task in tasks:
            task.end()


def resolve_task(
    runtime: Runtime, ctx: otel_context.Context, attribution: DexcostContext
) -> TrackedTask:
    """Return the task an event recorded in ``ctx`` belongs to."""
    task = current_task(ctx)
    if task is not None and task.status is None:
        return task
    return runtime.sessions.for_attribution(attribution)


class TaskScope:
    """The object :func:`task` returns: a context manager (sync and async) and a decorator."""

    def __init__(
        self,
        task_type: str,
        *,
        customer_id: str | None,
        project_id: str | None,
        metadata: Mapping[str, str] | None,
        task_id: str | None,
    ) -> None:
        if not isinstance(task_type, str) or not task_type:
            raise TypeError(
                f"task_type must be a non-empty string such as 'support_ticket', got {task_type!r}"
            )
        if len(task_type) > MAX_TASK_TYPE_LENGTH:
            raise ValueError(
                f"task_type is {len(task_type)} characters long; use a short name for the kind "
                f"of work (at most {MAX_TASK_TYPE_LENGTH}) and put details in metadata="
            )
        if task_id is not None and (not isinstance(task_id, str) or not task_id):
            raise TypeError(f"task_id must be a non-empty string, got {task_id!r}")
        self._task_type = task_type
        self._customer_id = customer_id
        self._project_id = project_id
        self._metadata = metadata
        self._task_id = task_id
        self._stack: list[tuple[TrackedTask, object]] = []

    def _start(self) -> TrackedTask:
        tracked, ctx = self._create()
        token = otel_context.attach(ctx)
        self._stack.append((tracked, token))
        return tracked

    def _create(self) -> tuple[TrackedTask, otel_context.Context]:
        """Start a task and return it with the context that makes it the current task."""
        from dexcost.runtime import require_runtime

        runtime = require_runtime()
        parent = otel_context.get_current()
        attribution = merged(
            current_attribution(parent),
            customer_id=self._customer_id,
            project_id=self._project_id,
            metadata=self._metadata,
        )
        parent_task = current_task(parent)
        if parent_task is not None and parent_task.status is not None:
            parent_task = None
        tracked = TrackedTask(
            runtime,
            task_type=self._task_type,
            task_id=self._task_id,
            attribution=attribution,
            parent_task=parent_task,
            parent=parent,
        )
        ctx = otel_context.set_value(_TASK_KEY, tracked, parent)
        return tracked, with_attribution(attribution, ctx)

    def _finish(self, failed: bool) -> None:
        # One scope object may be entered by several asyncio tasks at once (a scope made
        # at module level), so end the entry that is current here, not the last one.
        current = current_task()
        index = len(self._stack) - 1
        for position in range(len(self._stack) - 1, -1, -1):
            if self._stack[position][0] is current:
                index = position
                break
        if not self._stack:
            raise RuntimeError(
                f"dexcost.task({self._task_type!r}) was exited more times than it was "
                "entered; use each with block once per entry"
            )
        tracked, token = self._stack.pop(index)
        otel_context.detach(token)  # type: ignore[arg-type]
        tracked.end(FAILED if failed else COMPLETED)

    def __enter__(self) -> TrackedTask:
        return self._start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._finish(exc_type is not None)

    async def __aenter__(self) -> TrackedTask:
        return self._start()

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._finish(exc_type is not None)

    def __call__(self, func: F) -> F:
        """Run every call of ``func`` in a new task of this type."""
        import inspect  # only decorators need it; it costs ~10 ms at import

        settings = {
            "customer_id": self._customer_id,
            "project_id": self._project_id,
            "metadata": self._metadata,
            "task_id": self._task_id,
        }
        task_type = self._task_type

        if inspect.isasyncgenfunction(func):

            @functools.wraps(func)
            async def async_generator_wrapper(*args: Any, **kwargs: Any) -> Any:
                tracked, ctx = TaskScope(task_type, **settings)._create()  # type: ignore[arg-type]
                async for item in _run_async_generator(func(*args, **kwargs), ctx, tracked):
                    yield item

            return async_generator_wrapper  # type: ignore[return-value]

        if inspect.isgeneratorfunction(func):

            @functools.wraps(func)
            def generator_wrapper(*args: Any, **kwargs: Any) -> Any:
                tracked, ctx = TaskScope(task_type, **settings)._create()  # type: ignore[arg-type]
                return (yield from _run_generator(func(*args, **kwargs), ctx, tracked))

            return generator_wrapper  # type: ignore[return-value]

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with TaskScope(task_type, **settings):  # type: ignore[arg-type]
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with TaskScope(task_type, **settings):  # type: ignore[arg-type]
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def _run_generator(
    generator: Generator[Any, Any, Any], ctx: otel_context.Context, tracked: TrackedTask
) -> Generator[Any, Any, Any]:
    """Drive ``generator`` with its task current only while its own code runs.

    A generator's body runs in the context of the code that resumes it. So the task
    context is attached for each step and detached before yielding, never left behind
    in the caller.
    """
    failed = False
    to_send: Any = None
    to_throw: BaseException | None = None
    try:
        while True:
            token = otel_context.attach(ctx)
            try:
                if to_throw is not None:
                    error, to_throw = to_throw, None
                    item = generator.throw(error)
                else:
                    item = generator.send(to_send)
            except StopIteration as stop:
                return stop.value
            finally:
                otel_context.detach(token)
            try:
                to_send = yield item
            except GeneratorExit:
                generator.close()
                raise
            except BaseException as error:
                to_throw = error
    except GeneratorExit:
        raise
    except BaseException:
        failed = True
        raise
    finally:
        tracked.end(FAILED if failed else COMPLETED)


async def _run_async_generator(
    generator: AsyncGenerator[Any, Any], ctx: otel_context.Context, tracked: TrackedTask
) -> AsyncGenerator[Any, Any]:
    """Drive an async generator like :func:`_run_generator` does a plain one."""
    failed = False
    to_send: Any = None
    to_throw: BaseException | None = None
    try:
        while True:
            token = otel_context.attach(ctx)
            try:
                if to_throw is not None:
                    error, to_throw = to_throw, None
                    item = await generator.athrow(error)
                else:
                    item = await generator.asend(to_send)
            except StopAsyncIteration:
                return
            finally:
                otel_context.detach(token)
            try:
                to_send = yield item
            except GeneratorExit:
                await generator.aclose()
                raise
            except BaseException as error:
                to_throw = error
    except GeneratorExit:
        raise
    except BaseException:
        failed = True
        raise
    finally:
        tracked.end(FAILED if failed else COMPLETED)


def task(
    task_type: str,
    *,
    customer_id: str | None = None,
    project_id: str | None = None,
    metadata: Mapping[str, str] | None = None,
    task_id: str | None = None,
) -> TaskScope:
    """Track a unit of work: ``with dexcost.task("triage") as t:`` or ``@dexcost.task("triage")``.

    Costs recorded inside are attributed to the task and summed on its span when it
    ends. ``customer_id``, ``project_id`` and ``metadata`` override the current
    attribution for the task and everything inside it. An exception marks the task
    ``failed`` and propagates unchanged.
    """
    return TaskScope(
        task_type,
        customer_id=customer_id,
        project_id=project_id,
        metadata=metadata,
        task_id=task_id,
    )


def _parse_units(units: object) -> Decimal:
    """Return ``units`` as an exact Decimal, or raise for a value that is not a count."""
    if isinstance(units, bool) or not isinstance(units, (int, float, Decimal, str)):
        raise TypeError(f"units must be a number such as 3 or '2.5', got {units!r}")
    try:
        # A float goes through its shortest repr, so 2.5 is Decimal("2.5"), not its binary
        # expansion.
        value = Decimal(repr(units)) if isinstance(units, float) else Decimal(units)
    except InvalidOperation:
        raise ValueError(f"units={units!r} is not a number; pass a count such as 3") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"units={units!r} is invalid; pass a finite count of 0 or more")
    return value


def _current_asyncio_task() -> object:
    import asyncio

    try:
        return asyncio.current_task()
    except RuntimeError:  # no running event loop in this thread
        return None


def start_task(
    task_type: str,
    *,
    customer_id: str | None = None,
    project_id: str | None = None,
    metadata: Mapping[str, str] | None = None,
    task_id: str | None = None,
) -> TrackedTask:
    """Start a task without a ``with`` block; end it with ``t.end()`` or ``t.end("failed")``.

    The task becomes the current task of this thread or asyncio task, like a ``with
    dexcost.task(...)`` block that has been entered. ``end()`` in the same thread or
    asyncio task restores the context from before. ``end()`` anywhere else only ends
    the task, so later calls where it started go to the session task.
    """
    scope = TaskScope(
        task_type,
        customer_id=customer_id,
        project_id=project_id,
        metadata=metadata,
        task_id=task_id,
    )
    tracked, ctx = scope._create()
    token = otel_context.attach(ctx)
    tracked._manual_token = (token, threading.get_ident(), _current_asyncio_task())
    return tracked


def _task_for_module_call() -> TrackedTask:
    from dexcost.runtime import require_runtime

    runtime = require_runtime()
    ctx = otel_context.get_current()
    return resolve_task(runtime, ctx, current_attribution(ctx))


def record_cost(
    service: str,
    cost_usd: str | int | float | Decimal,
    *,
    units: float | int | None = None,
    unit: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Record a non-LLM cost in the current task, or the session task outside any task."""
    _task_for_module_call().record_cost(
        service, cost_usd, units=units, unit=unit, metadata=metadata
    )


def record_usage(
    service: str,
    units: int | float | Decimal | str,
    *,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Record usage of a paid service in the current task, or the session task outside one.

    See :meth:`TrackedTask.record_usage`.
    """
    _task_for_module_call().record_usage(service, units, metadata=metadata)


def mark_retry(reason: str, *, cost_usd: str | int | float | Decimal | None = None) -> None:
    """Mark a retry in the current task, or the session task outside any task.

    See :meth:`TrackedTask.mark_retry`.
    """
    _task_for_module_call().mark_retry(reason, cost_usd=cost_usd)


def record_llm_call(
    provider: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    *,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
    cost_usd: str | int | float | Decimal | None = None,
) -> None:
    """Record an LLM call made without an instrumented SDK in the current or session task.

    See :meth:`TrackedTask.record_llm_call` for the token semantics.
    """
    _task_for_module_call().record_llm_call(
        provider,
        model,
        input_tokens,
        output_tokens,
        cached_tokens=cached_tokens,
        reasoning_tokens=reasoning_tokens,
        cost_usd=cost_usd,
    )
