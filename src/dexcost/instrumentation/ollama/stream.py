"""Observing Ollama streams.

The ollama SDK streams through a plain generator, which offers no hook for an early
close or an error. dexcost therefore hands the caller a generator of its own that
passes every part of the SDK's generator through unchanged (the same objects), and
closes the SDK's generator when it is closed itself.

The call is recorded exactly once. It gets its usage as soon as the last part
(``done: true``) arrives. It is recorded as usage_unknown when the stream fails, is
closed early, is left by ``break`` or is garbage-collected before that part. The SDK
sends its request only when the stream is first iterated, so a stream never iterated
sent nothing and records nothing.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

from dexcost import errors
from dexcost.instrumentation.ollama.extract import read_usage, response_model
from dexcost.llm import LLMCall


class StreamObserver:
    """Collect the model and usage of one stream and finish its call exactly once."""

    __slots__ = ("call", "model", "no_charge_error", "started")

    def __init__(self, call: LLMCall, no_charge_error: type[BaseException]) -> None:
        self.call = call
        # An error of this type with an HTTP status >= 400 means the server rejected
        # the request, so nothing ran.
        self.no_charge_error = no_charge_error
        self.model: str | None = None
        self.started = False

    def observe(self, part: Any) -> None:
        model = response_model(part)
        if model is not None:
            self.model = model
        if getattr(part, "done", None) is True:
            self.call.finish(response_model=self.model, usage=read_usage(part))

    def fail(self, error: BaseException) -> None:
        try:
            record_error(self.call, error, self.no_charge_error, response_model=self.model)
        except Exception:
            errors.log_internal_error("recording a failed ollama stream")

    def finish(self) -> None:
        """Record the call as usage_unknown unless its last part was already read."""
        if self.call.finished:
            return
        try:
            self.call.finish(response_model=self.model)
        except Exception:
            errors.log_internal_error("recording an ollama stream")

    def abandon(self) -> None:
        """Handle the stream's garbage collection: drop the call if no request was sent."""
        if self.started:
            self.finish()
        else:
            self.call.discard()


def record_error(
    call: LLMCall,
    error: BaseException,
    no_charge_error: type[BaseException],
    *,
    response_model: str | None = None,
) -> None:
    """Record a failed call: $0 when the server rejected the request, else usage_unknown.

    A ``ResponseError`` raised from an ``{"error": ...}`` line in the middle of a stream
    has no HTTP status (-1), so the work done before it stays unknown. Connection
    errors and timeouts may also have reached the model, so they stay unknown too.
    """
    status = getattr(error, "status_code", None)
    rejected = isinstance(error, no_charge_error) and isinstance(status, int) and status >= 400
    call.finish(response_model=response_model, error_type=type(error).__name__, no_charge=rejected)


def _observe(observer: StreamObserver, part: Any) -> None:
    try:
        observer.observe(part)
    except Exception:
        errors.log_internal_error("reading an ollama stream part")


def _observe_sync(parts: Iterator[Any], observer: StreamObserver) -> Iterator[Any]:
    observer.started = True
    try:
        for part in parts:
            _observe(observer, part)
            yield part
    except GeneratorExit:
        raise
    except BaseException as exc:
        observer.fail(exc)
        raise
    finally:
        observer.finish()
        close = getattr(parts, "close", None)
        if close is not None:
            close()


async def _observe_async(parts: AsyncIterator[Any], observer: StreamObserver) -> AsyncIterator[Any]:
    observer.started = True
    try:
        async for part in parts:
            _observe(observer, part)
            yield part
    except GeneratorExit:
        raise
    except BaseException as exc:
        observer.fail(exc)
        raise
    finally:
        observer.finish()
        aclose = getattr(parts, "aclose", None)
        if aclose is not None:
            await aclose()


def observe_stream(parts: Iterator[Any], observer: StreamObserver) -> Iterator[Any]:
    """Return a generator that yields ``parts`` and records the call through ``observer``."""
    stream = _observe_sync(parts, observer)
    # A generator never started runs no finally block when collected; this covers it.
    weakref.finalize(stream, observer.abandon)
    return stream


def observe_async_stream(parts: AsyncIterator[Any], observer: StreamObserver) -> AsyncIterator[Any]:
    """Return an async generator that yields ``parts`` and records the call."""
    stream = _observe_async(parts, observer)
    weakref.finalize(stream, observer.abandon)
    return stream
