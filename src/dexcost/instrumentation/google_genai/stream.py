"""Observing google-genai content streams without changing what they yield.

The SDK's per-request stream methods return an iterator of
``GenerateContentResponse`` chunks: a generator that sends the request on its first
``next()`` (sync), or an async generator returned once the response headers arrived
(async). dexcost hands the SDK an iterator object that yields the same chunks and
notes the model and ``usage_metadata`` of each.

Every chunk may carry ``usage_metadata``; only the last one has the final output
counts. The call is therefore priced only when the stream ends normally, from the
last usage seen. A stream closed, broken off or dropped before its end is recorded
as ``usage_unknown``, because its output was billed but never reported. A sync
stream never started sent no request and records nothing. Whatever happens, the call
is recorded once.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

from dexcost import errors
from dexcost.instrumentation.google_genai.extract import read_content_response
from dexcost.llm import LLMCall
from dexcost.pricing import TokenUsage


class StreamObserver:
    """Collect model and usage from stream chunks and finish the call exactly once."""

    __slots__ = ("__weakref__", "api_error", "call", "chunks", "model", "started", "usage")

    def __init__(self, call: LLMCall, api_error: type[BaseException], *, started: bool) -> None:
        self.call = call
        self.api_error = api_error
        self.started = started
        self.chunks = 0
        self.model: str | None = None
        self.usage: TokenUsage | None = None

    def observe(self, chunk: Any) -> None:
        self.chunks += 1
        model, usage = read_content_response(chunk)
        if model is not None:
            self.model = model
        if usage is not None:
            self.usage = usage

    def finish_complete(self) -> None:
        """Record a stream that ended normally, priced from the last usage seen."""
        self._finish(usage=self.usage)

    def finish_error(self, error: BaseException) -> None:
        # An API error before any chunk means the request was rejected and not billed.
        rejected = isinstance(error, self.api_error) and self.chunks == 0
        self._finish(error_type=type(error).__name__, no_charge=rejected)

    def abandon(self) -> None:
        """Record a closed or dropped stream as usage_unknown, unless it sent no request."""
        if self.started:
            self._finish()

    def _finish(
        self,
        *,
        usage: TokenUsage | None = None,
        error_type: str | None = None,
        no_charge: bool = False,
    ) -> None:
        if self.call.finished:
            return
        try:
            self.call.finish(
                response_model=self.model, usage=usage, error_type=error_type, no_charge=no_charge
            )
        except Exception:
            errors.log_internal_error("recording a google-genai stream")


def _observe(observer: StreamObserver, chunk: Any) -> None:
    try:
        observer.observe(chunk)
    except Exception:
        errors.log_internal_error("reading a google-genai stream chunk")


class ObservedStream:
    """A sync iterator over the SDK's chunks that reports them to a StreamObserver."""

    __slots__ = ("__weakref__", "_inner", "_observer")

    def __init__(self, inner: Iterator[Any], observer: StreamObserver) -> None:
        self._inner = inner
        self._observer = observer
        # Safety net for a stream dropped before its end; holds no reference to self.
        weakref.finalize(self, observer.abandon)

    def __iter__(self) -> ObservedStream:
        return self

    def __next__(self) -> Any:
        self._observer.started = True
        try:
            chunk = next(self._inner)
        except StopIteration:
            self._observer.finish_complete()
            raise
        except BaseException as exc:
            self._observer.finish_error(exc)
            raise
        _observe(self._observer, chunk)
        return chunk

    def close(self) -> None:
        """Close the SDK's stream; a stream not at its end is recorded as usage_unknown."""
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            self._observer.abandon()


class AsyncObservedStream:
    """An async iterator over the SDK's chunks that reports them to a StreamObserver."""

    __slots__ = ("__weakref__", "_inner", "_observer")

    def __init__(self, inner: AsyncIterator[Any], observer: StreamObserver) -> None:
        self._inner = inner
        self._observer = observer
        weakref.finalize(self, observer.abandon)

    def __aiter__(self) -> AsyncObservedStream:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self._inner.__anext__()
        except StopAsyncIteration:
            self._observer.finish_complete()
            raise
        except BaseException as exc:
            self._observer.finish_error(exc)
            raise
        _observe(self._observer, chunk)
        return chunk

    async def aclose(self) -> None:
        """Close the SDK's stream; a stream not at its end is recorded as usage_unknown."""
        try:
            aclose = getattr(self._inner, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            self._observer.abandon()
