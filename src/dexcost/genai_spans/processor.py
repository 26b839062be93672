"""The span processor that prices other instrumentations' GenAI spans, each call once.

It sits on the application's own TracerProvider. ``on_start`` keeps, for every span
still open, the context it started in and its parent's id: a few dict operations, so
the span's attribution and task are read on the thread that started it even when the
span ends elsewhere. ``on_end`` returns at once for spans without GenAI attributes.

A GenAI span is priced only when nothing else accounts for the same request. It is
skipped when:

1. its scope is ``dexcost`` (dexcost's own spans) or ``dexcost.export`` (their copies
   on the host's provider);
2. it is not one model request (``invoke_agent``, ``invoke_workflow``, ``create_agent``,
   ``execute_tool``, OpenLLMetry's workflow/task/agent/tool spans ...);
3. a GenAI span below it ended first, or one above it was already priced: an agent or
   framework span that sums or repeats its children's usage;
4. a span with the same ``gen_ai.response.id`` ended first. Two instrumentations can
   trace one request side by side: OpenLLMetry's anthropic span is a sibling of the
   anthropic SDK's own span, not its parent;
5. dexcost's own SDK patch recorded a call inside it, or it started inside such a call
   (the wrappers of both libraries nest, in whichever order they were applied);
6. it comes from an SDK dexcost is patching in this process, known by the
   instrumentation's scope or else by the provider name. Points 3 to 5 already catch
   every nested case. This one covers a call whose context was lost between threads,
   because one recorded call and one priced span would otherwise both count.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import (
    NonRecordingSpan,
    StatusCode,
    get_current_span,
    set_span_in_context,
)

from dexcost import errors, semconv
from dexcost.attribution import current_attribution
from dexcost.genai_spans.read import SpanCall, is_genai, is_model_request, read_call
from dexcost.llm import LLMCall, sdk_call_in_progress
from dexcost.runtime import Runtime, current_runtime, instrumented_libraries
from dexcost.tasks import resolve_task

if TYPE_CHECKING:
    from dexcost.events import AttributeValue

logger = logging.getLogger(__name__)

# Attribute naming the instrumentation scope of the span an event was priced from.
PRICED_FROM_SCOPE: Final = "dexcost.genai_span.scope"

# Open spans kept at most: a span that never ends must not grow memory without bound.
MAX_OPEN_SPANS: Final = 50_000
# Ids of recently priced spans (a child that ends after its parent is not priced too),
# and of recently seen responses (a request traced twice side by side counts once).
MAX_PRICED_SPANS: Final = 4_096
MAX_RESPONSES: Final = 4_096
RESPONSE_ID: Final = "gen_ai.response.id"
# Ancestors walked at most, against a cycle of ids.
MAX_DEPTH: Final = 64

# Instrumentation scopes that wrap one SDK -> dexcost's name for that SDK.
_SCOPE_SDKS: Final = {
    "opentelemetry.instrumentation.openai_v2": "openai",
    "opentelemetry.instrumentation.openai.v1": "openai",
    "opentelemetry.instrumentation.openai.v0": "openai",
    "opentelemetry.instrumentation.openai": "openai",
    "opentelemetry.instrumentation.anthropic": "anthropic",
    "com.anthropic.sdk.python": "anthropic",
    "opentelemetry.instrumentation.google_genai": "google_genai",
    "opentelemetry.instrumentation.bedrock": "bedrock",
    "opentelemetry.instrumentation.botocore": "bedrock",
    "opentelemetry.instrumentation.cohere": "cohere",
    "opentelemetry.instrumentation.mistralai": "mistralai",
    "opentelemetry.instrumentation.groq": "groq",
    "opentelemetry.instrumentation.ollama": "ollama",
    "opentelemetry.instrumentation.litellm": "litellm",
}
# Provider names -> the SDK dexcost patches for them, for scopes that cover many SDKs.
_PROVIDER_SDKS: Final = {
    "openai": "openai",
    "azure.ai.openai": "openai",
    "anthropic": "anthropic",
    "aws.bedrock": "bedrock",
    "gcp.gemini": "google_genai",
    "gcp.gen_ai": "google_genai",
    "gcp.vertex_ai": "google_genai",
    "cohere": "cohere",
    "mistral_ai": "mistralai",
    "groq": "groq",
    "ollama": "ollama",
    "litellm": "litellm",
}


class _Open:
    """The state ``on_start`` keeps about one span until it ends."""

    __slots__ = ("context", "covered", "inside_call", "parent_id")

    def __init__(self, context: otel_context.Context, parent_id: int, inside_call: bool) -> None:
        self.context = context
        self.parent_id = parent_id
        self.inside_call = inside_call
        # Set when a recorded call or another GenAI span is below this span.
        self.covered = False


class GenAISpanPricer(SpanProcessor):
    """Record one dexcost LLM event per foreign GenAI span no other record covers."""

    def __init__(self) -> None:
        self.active = False
        self._open: dict[int, _Open] = {}
        self._priced: dict[int, None] = {}
        self._responses: dict[str, None] = {}
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Stop recording and forget open spans (the SDK cannot detach a processor)."""
        self.active = False
        with self._lock:
            self._open.clear()
            self._priced.clear()
            self._responses.clear()

    # --- SpanProcessor ---

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        if not self.active:
            return
        try:
            ctx = parent_context if parent_context is not None else otel_context.get_current()
            parent = span.parent
            record = _Open(ctx, parent.span_id if parent is not None else 0, False)
            record.inside_call = sdk_call_in_progress(ctx)
            spans = self._open
            if len(spans) >= MAX_OPEN_SPANS:
                with self._lock:
                    if spans:
                        del spans[next(iter(spans))]
            spans[span.context.span_id] = record
        except Exception:
            errors.log_internal_error("noting a span that started")

    def on_end(self, span: ReadableSpan) -> None:
        if not self.active:
            return
        try:
            self._on_end(span)
        except Exception:
            errors.log_internal_error("pricing a GenAI span of another instrumentation")

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    # --- the LLMCall hook ---

    def call_started(self, current: otel_context.Context) -> None:
        """Mark the spans around an SDK call dexcost is about to record as covered."""
        if not self.active:
            return
        try:
            span_id = get_current_span(current).get_span_context().span_id
            self._cover(span_id)
        except Exception:
            errors.log_internal_error("marking the spans around a recorded call")

    # --- internals ---

    def _on_end(self, span: ReadableSpan) -> None:
        context = span.context
        record = self._open.pop(context.span_id, None) if context is not None else None
        scope = span.instrumentation_scope
        scope_name = scope.name if scope is not None else ""
        attributes = _attributes_of(span)
        if (
            scope_name in (semconv.SCOPE_NAME, semconv.EXPORT_SCOPE_NAME)
            or not attributes
            or not is_genai(attributes)
        ):
            return

        parent_id = record.parent_id if record is not None else 0
        # Children end before their parents: whatever this span is, its ancestors now
        # contain a GenAI span and are not priced on top of it.
        self._cover(parent_id)
        if not is_model_request(attributes):
            return

        if record is None:
            # Started before dexcost attached, or pushed out of the table: where it
            # started (and what recorded it) is unknown, so it is not priced.
            logger.debug(
                "dexcost skipped GenAI span %r: it started before dexcost saw it", span.name
            )
            return

        if self._response_seen(attributes.get(RESPONSE_ID)):
            return
        if record.covered or record.inside_call or self._ancestor_priced(parent_id):
            return
        call = read_call(attributes, scope_name)
        if self._patched_elsewhere(scope_name, call.provider):
            return

        runtime = current_runtime()
        if runtime is None or context is None:
            return
        self._remember_priced(context.span_id)
        _record(runtime, span, record.context, call, scope_name)

    def _cover(self, span_id: int) -> None:
        spans = self._open
        for _ in range(MAX_DEPTH):
            record = spans.get(span_id)
            if record is None or record.covered:
                return
            record.covered = True
            span_id = record.parent_id

    def _ancestor_priced(self, span_id: int) -> bool:
        priced = self._priced
        spans = self._open
        for _ in range(MAX_DEPTH):
            if not span_id:
                return False
            if span_id in priced:
                return True
            record = spans.get(span_id)
            if record is None:
                return False
            span_id = record.parent_id
        return False

    def _response_seen(self, response_id: object) -> bool:
        """Tell whether a span of the same response ended before; remember this one."""
        if not isinstance(response_id, str) or not response_id:
            return False
        with self._lock:
            responses = self._responses
            if response_id in responses:
                return True
            responses[response_id] = None
            if len(responses) > MAX_RESPONSES:
                del responses[next(iter(responses))]
        return False

    def _remember_priced(self, span_id: int) -> None:
        with self._lock:
            priced = self._priced
            priced[span_id] = None
            if len(priced) > MAX_PRICED_SPANS:
                del priced[next(iter(priced))]

    @staticmethod
    def _patched_elsewhere(scope_name: str, provider: str) -> bool:
        sdk = _SCOPE_SDKS.get(scope_name) or _PROVIDER_SDKS.get(provider)
        return sdk is not None and sdk in instrumented_libraries()


def _attributes_of(span: ReadableSpan) -> Mapping[str, object]:
    """Return the span's attributes, as the plain dict inside them when it can be reached.

    ``ReadableSpan.attributes`` is a read-only view of a ``BoundedAttributes`` whose
    lookups run in Python: about 1 us each, and ``on_end`` makes several for every
    span the application ends. The dict behind it (private names, present since the
    SDK's first releases) takes tens of nanoseconds per lookup. Only read, never changed.
    """
    inner = getattr(getattr(span, "_attributes", None), "_dict", None)
    if isinstance(inner, dict):
        return inner
    return span.attributes or {}


class _SpanCall(LLMCall):
    """A call known only from another instrumentation's span; never made current."""

    __slots__ = ()

    def __init__(
        self,
        runtime: Runtime,
        span: ReadableSpan,
        started_in: otel_context.Context,
        call: SpanCall,
        attributes: dict[str, AttributeValue],
    ) -> None:
        # LLMCall.__init__ is not called: it would mark an SDK call as in progress
        # in the ending thread's context. The same fields are set from the span.
        self.start_ns = span.start_time or 0
        self.runtime = runtime
        self.provider = call.provider
        self.operation = call.operation
        self.request_model = call.request_model
        self.attributes = attributes
        self.delegated = False
        self.attribution = current_attribution(started_in)
        self.task = resolve_task(runtime, started_in, self.attribution)
        # Outside a task the event is a child of the span it was priced from.
        span_context = span.get_span_context()
        in_span = started_in
        if span_context is not None:
            in_span = set_span_in_context(NonRecordingSpan(span_context), started_in)
        self.parent = self.task.event_parent(in_span)
        self._finished = False


def _record(
    runtime: Runtime,
    span: ReadableSpan,
    started_in: otel_context.Context,
    call: SpanCall,
    scope_name: str,
) -> None:
    attributes: dict[str, AttributeValue] = {PRICED_FROM_SCOPE: scope_name}
    recorded = _SpanCall(runtime, span, started_in, call, attributes)
    error_type = None
    if span.status.status_code is StatusCode.ERROR:
        error = _attributes_of(span).get(semconv.ERROR_TYPE)
        error_type = str(error) if error else "error"
    failed_reply = call.http_status is not None and call.http_status >= 400
    recorded.finish(
        response_model=call.response_model,
        usage=call.usage,
        error_type=error_type,
        no_charge=call.usage is None and failed_reply,
        service_tier=call.service_tier,
    )
