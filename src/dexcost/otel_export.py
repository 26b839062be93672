"""A copy of every cost span for the application's own tracing backend (``export_to_otel``).

dexcost records its spans on a private TracerProvider, so the application's sampler
and exporters never see them. With ``export_to_otel=True`` the
:class:`HostExportProcessor` sits on that private provider and, for each cost event
and each task started with ``dexcost.task()``, starts and ends a second span on the
global provider through the public tracing API. That copy carries the same name,
kind, times, status and attributes as the stored span, so it never contains anything
the buffer does not. Its parent is the application's span that was current when the
call started, or the copy of the enclosing task, so it lands in the same trace.

The copy follows the application's pipeline and its sampling: a trace the
application's sampler drops has no copy, but the stored span is unaffected.
Without a provider set by the application, nothing is exported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, StatusCode, Tracer

from dexcost import errors, semconv
from dexcost._version import __version__

logger = logging.getLogger(__name__)

# The instrumentation scope of the copies. The span processor that prices other
# instrumentations' gen_ai spans skips it, and collector gateways drop it, so a call is
# never priced twice.
EXPORT_SCOPE_NAME = semconv.EXPORT_SCOPE_NAME


_host_failures = 0


def _host_call(action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the application's provider or span; return None if its own processors raise.

    The application's span processors run inside start_span() and end(). An error
    there is the application's, not dexcost's, so it is logged as such: the first one
    as a warning, the rest at debug level.
    """
    global _host_failures
    try:
        return action(*args, **kwargs)
    except Exception as error:
        _host_failures += 1
        level = logging.WARNING if _host_failures == 1 else logging.DEBUG
        logger.log(
            level,
            "the application's tracer provider raised while taking dexcost's copy of a "
            "cost span (export_to_otel); the cost itself is stored: %r",
            error,
        )
        return None


class HostExportProcessor(SpanProcessor):
    """Copy dexcost's finished spans to the global tracer provider; errors are logged."""

    def __init__(self, own_provider: trace.TracerProvider) -> None:
        self._own_provider = own_provider
        # The global provider the tracer below was taken from, and that tracer (None
        # when there is nothing to export to).
        self._host_provider: trace.TracerProvider | None = None
        self._tracer: Tracer | None = None
        # Copies of the task spans still open, by the span id of dexcost's own span.
        # Events of a task are children of its copy, as they are of its span. A task
        # started while there was no provider has a NonRecordingSpan of the span it
        # started in instead, so its events still get a parent the backend receives.
        # Ending that stand-in does nothing.
        self._open_tasks: dict[int, trace.Span] = {}

    # --- SpanProcessor ---

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        try:
            self._start_task_copy(span, parent_context)
        except Exception:
            errors.log_internal_error("copying a task span to the application's tracer provider")

    def on_end(self, span: ReadableSpan) -> None:
        try:
            attributes = span.attributes or {}
            if attributes.get(semconv.EVENT_TYPE) == semconv.TASK:
                self._end_task_copy(span)
            else:
                self._copy_event(span)
        except Exception:
            errors.log_internal_error("copying a cost span to the application's tracer provider")

    def shutdown(self) -> None:
        # Task copies stay open: a task started before shutdown() can still end, and
        # its copy is ended with it.
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        # The copies belong to the application's provider now, which flushes them.
        return True

    # --- copies ---

    def _start_task_copy(self, span: Span, parent_context: otel_context.Context | None) -> None:
        attributes = span.attributes or {}
        # A session task spans many unrelated requests, so it has no copy. Its events
        # are parented to the application's spans instead.
        if attributes.get(semconv.EVENT_TYPE) != semconv.TASK or attributes.get(semconv.TASK_AUTO):
            return
        context = parent_context if parent_context is not None else otel_context.get_current()
        parent_copy = self._open_tasks.get(
            trace.get_current_span(context).get_span_context().span_id
        )
        if parent_copy is not None:
            # A sub-task: its span's parent is dexcost's span of the enclosing task.
            context = trace.set_span_in_context(parent_copy, context)
        tracer = self._host_tracer()
        if tracer is None:
            parent = trace.get_current_span(context).get_span_context()
            self._open_tasks[span.context.span_id] = NonRecordingSpan(parent)
            return
        copy = _host_call(
            tracer.start_span,
            span.name,
            context=context,
            kind=span.kind,
            attributes=attributes,
            start_time=span.start_time,
        )
        if copy is not None:
            self._open_tasks[span.context.span_id] = copy

    def _end_task_copy(self, span: ReadableSpan) -> None:
        if span.context is None:
            return
        copy = self._open_tasks.pop(span.context.span_id, None)
        if copy is None:
            return
        # The totals are written when the task ends.
        copy.set_attributes(span.attributes or {})
        if span.status.status_code is StatusCode.ERROR:
            copy.set_status(span.status)
        _host_call(copy.end, end_time=span.end_time)

    def _copy_event(self, span: ReadableSpan) -> None:
        tracer = self._host_tracer()
        if tracer is None:
            return
        copy = _host_call(
            tracer.start_span,
            span.name,
            context=self._event_parent(span.parent),
            kind=span.kind,
            attributes=span.attributes,
            start_time=span.start_time,
        )
        if copy is None:
            return
        if span.status.status_code is StatusCode.ERROR:
            copy.set_status(span.status)
        _host_call(copy.end, end_time=span.end_time)

    def _event_parent(self, parent: SpanContext | None) -> otel_context.Context:
        """Return the context to start an event's copy in: never the current one.

        An event may be recorded on another thread than the call's (a stream read
        elsewhere), where the current context belongs to something else.
        """
        if parent is None or not parent.is_valid:
            return otel_context.Context()
        task_copy = self._open_tasks.get(parent.span_id)
        if task_copy is not None:
            return trace.set_span_in_context(task_copy, otel_context.Context())
        return trace.set_span_in_context(NonRecordingSpan(parent), otel_context.Context())

    def _host_tracer(self) -> Tracer | None:
        """Return the tracer of the global provider, or None when there is none to use.

        Read at every copy, because the application may set its provider after
        ``dexcost.init()``. The tracer is taken again only when the provider changed.
        """
        provider = trace.get_tracer_provider()
        if provider is not self._host_provider:
            self._tracer = self._tracer_of(provider)
            self._host_provider = provider
        return self._tracer

    def _tracer_of(self, provider: trace.TracerProvider) -> Tracer | None:
        if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
            # No provider is set yet, so nothing would record the copies.
            return None
        if provider is self._own_provider:
            # dexcost's provider made global by hand: each copy would be stored, then
            # reach this processor and be copied again, without end.
            logger.debug("export_to_otel skipped: the global tracer provider is dexcost's own")
            return None
        tracer = provider.get_tracer(EXPORT_SCOPE_NAME, __version__)
        own_processor = getattr(self._own_provider, "_active_span_processor", None)
        if own_processor is not None and getattr(tracer, "span_processor", None) is own_processor:
            # A wrapper around dexcost's own provider, the same loop as above.
            logger.debug("export_to_otel skipped: the global tracer provider wraps dexcost's own")
            return None
        return tracer
