"""Observing Cohere chat streams without replacing what the caller gets.

The raw clients' ``chat_stream`` returns a context manager that sends the request on
entry and yields an ``HttpResponse`` whose ``data`` is the event iterator. dexcost
keeps the SDK's context manager and swaps the generator behind it for a
:class:`StreamRequest` that records the call when the request fails, and puts a
watching generator in place of the response's event iterator. The high-level
``chat_stream`` methods iterate that same response, so they are covered too.

The call is priced once the final event arrived (``message-end`` in v2, ``stream-end``
in v1). A stream broken off, closed, failed or dropped before it is recorded as
``usage_unknown``, exactly once.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from dexcost import errors
from dexcost.instrumentation._streams import pass_through, pass_through_async
from dexcost.instrumentation.cohere.extract import is_stream_end, stream_end_usage
from dexcost.llm import LLMCall
from dexcost.pricing import TokenUsage


class StreamObserver:
    """Watch stream events for the final usage and finish the call exactly once."""

    __slots__ = ("__weakref__", "call", "usage")

    def __init__(self, call: LLMCall) -> None:
        self.call = call
        self.usage: TokenUsage | None = None

    def observe(self, event: Any) -> None:
        if is_stream_end(event):
            self.usage = stream_end_usage(event)

    def finish(self, error: BaseException | None = None) -> None:
        """Record the call; later calls do nothing."""
        if self.call.finished:
            return
        try:
            # Cohere names no model in its replies, so none is recorded as the response's.
            self.call.finish(
                usage=self.usage,
                error_type=type(error).__name__ if error is not None else None,
            )
        except Exception:
            errors.log_internal_error("recording a cohere stream")


def arm_response(response: Any, observer: StreamObserver, *, is_async: bool) -> bool:
    """Route the events of the SDK's ``HttpResponse`` through ``observer``.

    Relies on the private ``_data`` attribute behind ``HttpResponse.data``. Returns
    False when it is missing, and the caller records the call as ``usage_unknown``.
    """
    inner = getattr(response, "_data", None)
    if inner is None:
        return False
    if is_async:
        response._data = pass_through_async(inner, observer, "reading a cohere stream event")
    else:
        response._data = pass_through(inner, observer, "reading a cohere stream event")
    # Safety net for a response whose events are never read: the observer holds no
    # reference to the response, so this fires when the response is collected.
    weakref.finalize(response, observer.finish)
    return True


Begin = Callable[[], "StreamHooks | None"]


class StreamHooks:
    """What a :class:`StreamRequest` calls: on failure, on the response, and on exit."""

    __slots__ = ("failed", "observer", "started")

    def __init__(
        self,
        observer: StreamObserver,
        failed: Callable[[BaseException], None],
        started: Callable[[Any], None],
    ) -> None:
        self.observer = observer
        self.failed = failed
        self.started = started


def _finish_quietly(hooks: StreamHooks | None) -> None:
    if hooks is None:
        return
    try:
        hooks.observer.finish()
    except Exception:
        errors.log_internal_error("recording a cohere stream")


class StreamRequest:
    """Stands in for the generator behind the SDK's ``chat_stream`` context manager.

    ``contextlib`` drives it with ``next`` / ``throw`` / ``close``; each is passed to the
    SDK's generator. The first ``next`` sends the request, so the call starts there.
    """

    __slots__ = ("_begin", "_gen", "_hooks", "_started")

    def __init__(self, gen: Any, begin: Begin) -> None:
        self._gen = gen
        self._begin = begin
        self._hooks: StreamHooks | None = None
        self._started = False

    def __iter__(self) -> StreamRequest:
        return self

    def __next__(self) -> Any:
        if self._started:
            try:
                return next(self._gen)
            finally:
                _finish_quietly(self._hooks)
        self._started = True
        self._hooks = self._begin()
        try:
            response = next(self._gen)
        except BaseException as exc:
            if self._hooks is not None and not isinstance(exc, StopIteration):
                self._hooks.failed(exc)
            raise
        if self._hooks is not None:
            self._hooks.started(response)
        return response

    def send(self, value: Any) -> Any:
        if value is None:
            return self.__next__()
        return self._gen.send(value)

    def throw(self, *args: Any) -> Any:
        try:
            return self._gen.throw(*args)
        finally:
            _finish_quietly(self._hooks)

    def close(self) -> None:
        try:
            self._gen.close()
        finally:
            _finish_quietly(self._hooks)


class AsyncStreamRequest:
    """The async counterpart of :class:`StreamRequest`, for ``asynccontextmanager``."""

    __slots__ = ("_begin", "_gen", "_hooks", "_started")

    def __init__(self, gen: Any, begin: Begin) -> None:
        self._gen = gen
        self._begin = begin
        self._hooks: StreamHooks | None = None
        self._started = False

    def __aiter__(self) -> AsyncStreamRequest:
        return self

    async def __anext__(self) -> Any:
        if self._started:
            try:
                return await self._gen.__anext__()
            finally:
                _finish_quietly(self._hooks)
        self._started = True
        self._hooks = self._begin()
        try:
            response = await self._gen.__anext__()
        except BaseException as exc:
            if self._hooks is not None and not isinstance(exc, StopAsyncIteration):
                self._hooks.failed(exc)
            raise
        if self._hooks is not None:
            self._hooks.started(response)
        return response

    async def asend(self, value: Any) -> Any:
        if value is None:
            return await self.__anext__()
        return await self._gen.asend(value)

    async def athrow(self, *args: Any) -> Any:
        try:
            return await self._gen.athrow(*args)
        finally:
            _finish_quietly(self._hooks)

    async def aclose(self) -> None:
        try:
            await self._gen.aclose()
        finally:
            _finish_quietly(self._hooks)
