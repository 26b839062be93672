"""Observing Anthropic streams without replacing them.

The caller gets the SDK's own ``Stream`` / ``AsyncStream`` object (or the SDK's
``MessageStream`` built on it). dexcost swaps the stream's internal event iterator for
a generator that reads each event and passes it through unchanged, and the patched
``close`` methods (see ``patch.py``) tell the observer when a stream is closed early.

Anthropic streams carry usage twice: ``message_start`` has the input and cache counts,
and ``message_delta`` has the final ``output_tokens`` (newer API versions repeat the
input counts there). The call is priced only once ``message_delta`` arrived. A stream
closed, broken off or failed before it is recorded as ``usage_unknown``, because its
output was billed but never reported. Whatever happens, the call is recorded once.
"""

from __future__ import annotations

import weakref
from typing import Any

from dexcost import errors
from dexcost.instrumentation._streams import pass_through, pass_through_async
from dexcost.instrumentation.anthropic.extract import field, raw_counts, usage_from_counts
from dexcost.llm import LLMCall

# Attribute set on an observed stream so the patched close() can find its observer.
OBSERVER_ATTRIBUTE = "_dexcost_observer"


class StreamObserver:
    """Collect model and usage from stream events and finish the call exactly once."""

    __slots__ = ("__weakref__", "call", "counts", "final_seen", "model")

    def __init__(self, call: LLMCall) -> None:
        self.call = call
        self.model: str | None = None
        self.counts: dict[str, Any] = {}
        self.final_seen = False

    def observe(self, event: Any) -> None:
        # Every SDK event model has a type, so field() is needed only for a plain dict.
        event_type = getattr(event, "type", None)
        if event_type is None:
            event_type = field(event, "type")
        if event_type == "message_start":
            message = field(event, "message")
            model = field(message, "model")
            if isinstance(model, str) and model:
                self.model = model
            self.counts.update(raw_counts(field(message, "usage")))
        elif event_type == "message_delta":
            usage = field(event, "usage")
            if usage is not None:
                self.counts.update(raw_counts(usage))
                self.final_seen = True

    def finish(self, error: BaseException | None = None) -> None:
        """Record the call; later calls do nothing."""
        if self.call.finished:
            return
        try:
            usage = usage_from_counts(self.counts) if self.final_seen else None
            self.call.finish(
                response_model=self.model,
                usage=usage,
                error_type=type(error).__name__ if error is not None else None,
            )
        except Exception:
            errors.log_internal_error("recording an anthropic stream")


def arm_stream(stream: Any, observer: StreamObserver, *, is_async: bool) -> bool:
    """Route ``stream``'s events through ``observer``; False if the stream is not observable.

    Relies on the SDK's ``_iterator`` attribute, which ``Stream.__iter__`` and
    ``AsyncStream.__aiter__`` read. In 2.x it is a cached property, so an attribute
    set on the instance takes its place.
    """
    inner = getattr(stream, "_iterator", None)
    if inner is None or getattr(stream, OBSERVER_ATTRIBUTE, None) is not None:
        return False
    if is_async:
        stream._iterator = pass_through_async(inner, observer, "reading an anthropic stream event")
    else:
        stream._iterator = pass_through(inner, observer, "reading an anthropic stream event")
    setattr(stream, OBSERVER_ATTRIBUTE, observer)
    # Safety net for a stream dropped unread: the observer holds no reference to the
    # stream, so this fires when the stream is collected.
    weakref.finalize(stream, observer.finish)
    return True


def observer_of(stream: Any) -> StreamObserver | None:
    observer = getattr(stream, OBSERVER_ATTRIBUTE, None)
    return observer if isinstance(observer, StreamObserver) else None
