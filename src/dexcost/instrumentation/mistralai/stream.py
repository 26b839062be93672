"""Observing Mistral streams without replacing them.

The caller gets the SDK's own ``EventStream`` / ``EventStreamAsync``. dexcost swaps the
stream's ``generator`` (which its ``__next__`` / ``__anext__`` read) for one that
watches each event and passes it through, and the patched ``close`` methods (see
``patch.py``) tell the observer when a stream is closed early. The last chunk of a
Mistral stream carries ``usage``; a stream closed, broken off, failed or dropped
before it is recorded once as ``usage_unknown``.
"""

from __future__ import annotations

import weakref
from typing import Any

from dexcost import errors
from dexcost.instrumentation._fields import field
from dexcost.instrumentation._streams import pass_through, pass_through_async
from dexcost.instrumentation.mistralai.extract import usage_from_mistral
from dexcost.llm import LLMCall
from dexcost.pricing import TokenUsage

# Attribute set on an observed stream so the patched close() can find its observer.
OBSERVER_ATTRIBUTE = "_dexcost_observer"


class StreamObserver:
    """Collect model and usage from stream events and finish the call exactly once."""

    __slots__ = ("__weakref__", "call", "model", "usage")

    def __init__(self, call: LLMCall) -> None:
        self.call = call
        self.model: str | None = None
        self.usage: TokenUsage | None = None

    def observe(self, event: Any) -> None:
        # Each event wraps one chunk in ``data``.
        chunk = field(event, "data")
        model = field(chunk, "model")
        if self.model is None and isinstance(model, str) and model:
            self.model = model
        usage = field(chunk, "usage")
        if usage is not None:
            self.usage = usage_from_mistral(usage)

    def finish(self, error: BaseException | None = None) -> None:
        """Record the call; later calls do nothing."""
        if self.call.finished:
            return
        try:
            self.call.finish(
                response_model=self.model,
                usage=self.usage,
                error_type=type(error).__name__ if error is not None else None,
            )
        except Exception:
            errors.log_internal_error("recording a mistral stream")


def arm_stream(stream: Any, observer: StreamObserver, *, is_async: bool) -> bool:
    """Route ``stream``'s events through ``observer``; False if the stream is not observable."""
    inner = getattr(stream, "generator", None)
    if inner is None or getattr(stream, OBSERVER_ATTRIBUTE, None) is not None:
        return False
    if is_async:
        stream.generator = pass_through_async(inner, observer, "reading a mistral stream event")
    else:
        stream.generator = pass_through(inner, observer, "reading a mistral stream event")
    setattr(stream, OBSERVER_ATTRIBUTE, observer)
    # Safety net for a stream dropped unread: the observer holds no reference to the
    # stream, so this fires when the stream is collected.
    weakref.finalize(stream, observer.finish)
    return True
