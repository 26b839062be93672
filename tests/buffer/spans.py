"""Finished spans built the way dexcost builds its event spans, with chosen ids and times."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from dexcost import semconv

RESOURCE = Resource.create({"service.name": "checkout-api"})
SCOPE = InstrumentationScope(semconv.SCOPE_NAME, "0.1.0")
END_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def llm_span(
    span_id: int,
    *,
    trace_id: int = 0x5B8EFFF798038103D269B633813FC60C,
    end_ns: int | None = END_NS,
    cost: str = "0.00036",
) -> ReadableSpan:
    """Return a finished, priced llm_call span."""
    attributes = {
        semconv.EVENT_TYPE: semconv.LLM_CALL,
        semconv.COST_USD: cost,
        semconv.COST_STATUS: semconv.PRICED,
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        semconv.GEN_AI_INPUT_TOKENS: 1200,
        semconv.GEN_AI_OUTPUT_TOKENS: 300,
        semconv.CUSTOMER_ID: "acme",
    }
    return ReadableSpan(
        name="chat gpt-4o-mini",
        context=SpanContext(trace_id, span_id, False, TraceFlags(TraceFlags.SAMPLED)),
        resource=RESOURCE,
        attributes=attributes,
        kind=SpanKind.CLIENT,
        instrumentation_scope=SCOPE,
        start_time=END_NS - 1_000_000 if end_ns is None else end_ns - 1_000_000,
        end_time=end_ns,
    )
