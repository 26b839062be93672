"""Emission of cost events: one span per priced operation on dexcost's own tracer.

Every event span carries its attribution and owning task as attributes, set when the
span starts, so the values are fixed on the caller's thread and the exporter never has
to resolve context later. The span is created when the operation has finished, with
its real start time, so all attributes go in one ``start_span`` call (the cheapest way
to build a span in the OTel SDK).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode

from dexcost import semconv
from dexcost.context import DexcostContext, hash_customer_id
from dexcost.pricing import format_usd

if TYPE_CHECKING:
    from dexcost.runtime import Runtime
    from dexcost.tasks import TrackedTask

AttributeValue = str | bool | int | float


@dataclass(frozen=True, slots=True)
class Tokens:
    """Token counts an event adds to its task (OTel meaning: input includes cached)."""

    input: int = 0
    output: int = 0
    cached: int = 0
    reasoning: int = 0


NO_TOKENS = Tokens()

# Cost kinds a task sums separately.
LLM = "llm"
EXTERNAL = "external"
RETRY = "retry"


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
    """Create and end one event span and add its cost and tokens to ``task``.

    ``attributes`` holds the operation's own attributes and is extended in place.
    """
    attributes[semconv.EVENT_TYPE] = event_type
    attributes[semconv.COST_STATUS] = cost_status
    if cost is not None:
        attributes[semconv.COST_USD] = format_usd(cost)
    if pricing_source is not None:
        attributes[semconv.PRICING_SOURCE] = pricing_source
    attributes[semconv.TASK_ID] = task.task_id
    attributes[semconv.TASK_TYPE] = task.task_type
    attribution_attributes(runtime, attribution, attributes)
    if error_type is not None:
        attributes[semconv.ERROR_TYPE] = error_type

    if end_ns is None:
        end_ns = time.time_ns()
    span = runtime.tracer.start_span(
        name,
        context=parent,
        kind=kind,
        attributes=attributes,
        start_time=start_ns if start_ns is not None else end_ns,
    )
    if error_type is not None:
        span.set_status(Status(StatusCode.ERROR, error_type))
    span.end(end_time=end_ns)
    task.add_event(cost, cost_status, cost_kind, tokens)


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
