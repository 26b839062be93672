"""Development mode output: each cost event and each finished task, printed as it ends."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.util.types import Attributes

from dexcost import errors, semconv

_PRINTED_EVENTS = (semconv.LLM_CALL, semconv.EXTERNAL_COST, semconv.RETRY_MARKER)


def printable(text: str) -> str:
    """Return ``text`` with control characters escaped (``\\n``, ``\\x1b``).

    Ids, names and models come from user code and API responses. Printed raw, an escape
    sequence could clear the terminal or a newline could forge a dexcost line.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def _usd(value: object) -> str:
    return f"${value}" if value is not None else "cost unknown"


def _attribution(attributes: Attributes) -> str:
    assert attributes is not None
    parts = []
    for label, key in (
        ("customer", semconv.CUSTOMER_ID),
        ("project", semconv.PROJECT_ID),
        ("agent", semconv.AGENT),
    ):
        value = attributes.get(key)
        if value is not None:
            parts.append(f"{label}={value}")
    return " ".join(parts)


def format_event(attributes: Attributes) -> str:
    """Render one cost event span as a single line."""
    assert attributes is not None
    event_type = attributes.get(semconv.EVENT_TYPE)
    status = attributes.get(semconv.COST_STATUS)
    cost = _usd(attributes.get(semconv.COST_USD))
    if status not in (semconv.PRICED, semconv.PROVIDER_REPORTED):
        cost = f"{cost} ({status})"
    if event_type == semconv.LLM_CALL:
        model = attributes.get(semconv.GEN_AI_RESPONSE_MODEL) or attributes.get(
            semconv.GEN_AI_REQUEST_MODEL
        )
        what = f"{attributes.get(semconv.GEN_AI_PROVIDER_NAME)} {model}"
        if semconv.GEN_AI_INPUT_TOKENS in attributes:
            what += (
                f"  in={attributes.get(semconv.GEN_AI_INPUT_TOKENS)}"
                f" out={attributes.get(semconv.GEN_AI_OUTPUT_TOKENS)}"
            )
            cached = attributes.get(semconv.GEN_AI_CACHE_READ_TOKENS)
            if cached:
                what += f" cached={cached}"
        error = attributes.get(semconv.ERROR_TYPE)
        if error:
            what += f"  error={error}"
    else:
        what = str(attributes.get(semconv.SERVICE, ""))
        units = attributes.get(semconv.UNITS)
        if units is not None:
            what += f"  {units} {attributes.get(semconv.UNIT, 'units')}"
    parts = [f"[dexcost] {event_type:<13} {what}", cost, _attribution(attributes)]
    parts.append(f"task={attributes.get(semconv.TASK_TYPE)}")
    return printable("  ".join(part for part in parts if part))


def format_task(attributes: Attributes) -> str:
    """Render a finished task span with its totals."""
    assert attributes is not None
    kind = "session task" if attributes.get(semconv.TASK_AUTO) else "task"
    task_type = attributes.get(semconv.TASK_TYPE)
    status = attributes.get(semconv.TASK_STATUS)
    total = _usd(attributes.get(semconv.TASK_COST_USD))
    headline = f"[dexcost] {kind} {task_type} {status}: total {total}"
    attribution = _attribution(attributes)
    lines = [
        f"{headline}  {attribution}" if attribution else headline,
        f"[dexcost]   task id {attributes.get(semconv.TASK_ID)}",
        f"[dexcost]   llm {_usd(attributes.get(semconv.TASK_LLM_COST_USD))}"
        f" · external {_usd(attributes.get(semconv.TASK_EXTERNAL_COST_USD))}"
        f" · retries {_usd(attributes.get(semconv.TASK_RETRY_COST_USD))}"
        f" · {attributes.get(semconv.TASK_EVENT_COUNT)} events"
        f" ({attributes.get(semconv.TASK_UNPRICED_COUNT)} without a price"
        f"{_still_running(attributes)})"
        f" · tokens in={attributes.get(semconv.TASK_INPUT_TOKENS)}"
        f" out={attributes.get(semconv.TASK_OUTPUT_TOKENS)}"
        f" cached={attributes.get(semconv.TASK_CACHED_TOKENS)}",
    ]
    return "\n".join(printable(line) for line in lines)


def _still_running(attributes: Attributes) -> str:
    open_calls = (attributes or {}).get(semconv.TASK_OPEN_CALLS)
    if not isinstance(open_calls, int) or not open_calls:
        return ""
    return f", {open_calls} of them still running at the end"


class ConsoleSpanPrinter(SpanProcessor):
    """Print dexcost spans as they end; used only in development mode."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        try:
            attributes = span.attributes
            if attributes is None:
                return
            event_type = attributes.get(semconv.EVENT_TYPE)
            if event_type == semconv.TASK:
                if attributes.get(semconv.TASK_AUTO) and not attributes.get(
                    semconv.TASK_EVENT_COUNT
                ):
                    return
                text = format_task(attributes)
            elif event_type in _PRINTED_EVENTS:
                text = format_event(attributes)
            else:
                return
            stream = self._stream if self._stream is not None else sys.stderr
            with self._lock:
                print(text, file=stream, flush=True)
        except Exception:
            errors.log_internal_error("printing a cost event")
