"""Assert in your own tests which costs and attribution your code produced.

::

    from decimal import Decimal
    from dexcost.testing import capture_costs

    def test_ticket_cost():
        with capture_costs() as costs:
            my_agent.handle(ticket)
        assert costs.total() == Decimal("0.00036")
        assert costs.by_customer() == {"acme": Decimal("0.00036")}
        assert [event.model for event in costs.llm_calls] == ["gpt-4o-mini-2024-07-18"]

``capture_costs()`` starts dexcost for the block with its events kept in memory: no
buffer file is opened and nothing is uploaded. On exit it stops that runtime and makes
the runtime that was active before the block (if any) active again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from dexcost import runtime, semconv
from dexcost.config import DexcostConfig

__all__ = ["CapturedCosts", "CostEvent", "capture_costs"]

# Event types that carry a cost of their own. A task's cost is the sum of its events.
COST_EVENT_TYPES = (semconv.LLM_CALL, semconv.EXTERNAL_COST, semconv.RETRY_MARKER)

_GROUP_FIELDS = ("customer_id", "project_id", "agent", "task_type", "provider", "model", "service")


@dataclass(frozen=True)
class CostEvent:
    """One event dexcost recorded, with the fields tests assert on.

    ``event_type`` is ``llm_call``, ``external_cost``, ``retry_marker`` or ``task``.
    ``cost_usd`` is None for an event that could not be priced (see ``cost_status``),
    and a task's total for a task. ``model`` is the model the provider reported, else
    the requested one. ``attributes`` contains every span attribute, for anything else.
    """

    event_type: str
    name: str
    cost_usd: Decimal | None
    cost_status: str | None
    provider: str | None
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    reasoning_tokens: int | None
    service: str | None
    customer_id: str | None
    project_id: str | None
    agent: str | None
    task_type: str | None
    task_id: str | None
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)
    attributes: Mapping[str, Any] = field(default_factory=dict, hash=False, repr=False)

    @classmethod
    def from_span(cls, span: ReadableSpan) -> CostEvent:
        """Build the event from a finished dexcost span."""
        attributes = dict(span.attributes or {})
        event_type = str(attributes.get(semconv.EVENT_TYPE, ""))
        cost = attributes.get(semconv.COST_USD)
        if event_type == semconv.TASK:
            cost = attributes.get(semconv.TASK_COST_USD)
        model = attributes.get(semconv.GEN_AI_RESPONSE_MODEL) or attributes.get(
            semconv.GEN_AI_REQUEST_MODEL
        )
        prefix = semconv.METADATA_PREFIX
        metadata = {
            key[len(prefix) :]: str(value)
            for key, value in attributes.items()
            if key.startswith(prefix)
        }
        return cls(
            event_type=event_type,
            name=span.name,
            cost_usd=None if cost is None else Decimal(str(cost)),
            cost_status=_text(attributes.get(semconv.COST_STATUS)),
            provider=_text(attributes.get(semconv.GEN_AI_PROVIDER_NAME)),
            model=_text(model),
            input_tokens=_integer(attributes.get(semconv.GEN_AI_INPUT_TOKENS)),
            output_tokens=_integer(attributes.get(semconv.GEN_AI_OUTPUT_TOKENS)),
            cache_read_tokens=_integer(attributes.get(semconv.GEN_AI_CACHE_READ_TOKENS)),
            reasoning_tokens=_integer(attributes.get(semconv.GEN_AI_REASONING_TOKENS)),
            service=_text(attributes.get(semconv.SERVICE)),
            customer_id=_text(attributes.get(semconv.CUSTOMER_ID)),
            project_id=_text(attributes.get(semconv.PROJECT_ID)),
            agent=_text(attributes.get(semconv.AGENT)),
            task_type=_text(attributes.get(semconv.TASK_TYPE)),
            task_id=_text(attributes.get(semconv.TASK_ID)),
            metadata=MappingProxyType(metadata),
            attributes=MappingProxyType(attributes),
        )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class CapturedCosts(SpanProcessor):
    """Events recorded inside a ``capture_costs()`` block, in the order they ended.

    Task events arrive when their task ends. The automatic session task that holds
    calls made outside any ``dexcost.task()`` ends when the block exits.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[CostEvent] = []

    # --- SpanProcessor ---

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        event = CostEvent.from_span(span)
        with self._lock:
            self._events.append(event)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    # --- what tests read ---

    @property
    def events(self) -> list[CostEvent]:
        """Every event, task events included."""
        with self._lock:
            return list(self._events)

    @property
    def cost_events(self) -> list[CostEvent]:
        """The LLM calls, external costs and retry markers: the events that carry a cost."""
        return [event for event in self.events if event.event_type in COST_EVENT_TYPES]

    @property
    def llm_calls(self) -> list[CostEvent]:
        return self._of_type(semconv.LLM_CALL)

    @property
    def external_costs(self) -> list[CostEvent]:
        return self._of_type(semconv.EXTERNAL_COST)

    @property
    def retries(self) -> list[CostEvent]:
        return self._of_type(semconv.RETRY_MARKER)

    @property
    def tasks(self) -> list[CostEvent]:
        return self._of_type(semconv.TASK)

    @property
    def unpriced(self) -> list[CostEvent]:
        """Cost events recorded without a cost (``cost_status`` gives the reason)."""
        return [event for event in self.cost_events if event.cost_usd is None]

    def total(self) -> Decimal:
        """Return the sum of every cost event's cost. Unpriced events add nothing."""
        return sum((event.cost_usd or Decimal(0) for event in self.cost_events), Decimal(0))

    def by(self, field_name: str) -> dict[str | None, Decimal]:
        """Return the total cost per value of ``field_name`` (e.g. ``"model"``).

        Events without a value are summed under None.
        """
        if field_name not in _GROUP_FIELDS:
            raise ValueError(
                f"cannot group costs by {field_name!r}: invalid field. Pass one of "
                f"{', '.join(_GROUP_FIELDS)}"
            )
        totals: dict[str | None, Decimal] = {}
        for event in self.cost_events:
            key = getattr(event, field_name)
            totals[key] = totals.get(key, Decimal(0)) + (event.cost_usd or Decimal(0))
        return totals

    def by_customer(self) -> dict[str | None, Decimal]:
        return self.by("customer_id")

    def by_project(self) -> dict[str | None, Decimal]:
        return self.by("project_id")

    def by_agent(self) -> dict[str | None, Decimal]:
        return self.by("agent")

    def by_task_type(self) -> dict[str | None, Decimal]:
        return self.by("task_type")

    def clear(self) -> None:
        """Forget the events captured so far."""
        with self._lock:
            self._events.clear()

    def _of_type(self, event_type: str) -> list[CostEvent]:
        return [event for event in self.events if event.event_type == event_type]


@contextmanager
def capture_costs(
    *,
    auto_instrument: Sequence[str] | None = None,
    track_http: bool = True,
    redact_fields: Sequence[str] | None = None,
    hash_customer_id: bool = False,
    enable_retry_heuristics: bool = False,
) -> Iterator[CapturedCosts]:
    """Run the block with dexcost recording into memory and yield what it records.

    The options mean what they mean for ``dexcost.init()``. Rates stored with
    ``dexcost rates`` are not read, since they live in the buffer file. Model prices
    registered in code with ``dexcost.register_model_price()`` apply. A
    ``dexcost.init()`` call inside the block replaces the capture, and events recorded
    after it go to the buffer, not to the captured list.
    """
    config = DexcostConfig(
        storage="local",
        auto_instrument=auto_instrument,  # type: ignore[arg-type]
        track_http=track_http,
        redact_fields=redact_fields,  # type: ignore[arg-type]
        hash_customer_id=hash_customer_id,
        enable_retry_heuristics=enable_retry_heuristics,
    )
    costs = CapturedCosts()
    previous = runtime.swap_in(config, costs)
    try:
        yield costs
    finally:
        runtime.swap_back(previous)
