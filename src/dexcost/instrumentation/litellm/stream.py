"""Observing litellm's ``CustomStreamWrapper`` without replacing it.

The caller gets litellm's own stream object. dexcost patches the class's
``__next__``, ``__anext__``, ``close`` and ``aclose``. They do nothing extra for a
stream without an observer, such as a stream litellm uses internally.

Usage comes from the chunks litellm keeps in ``CustomStreamWrapper.chunks``: litellm
stores each chunk there before it strips the usage from what the caller sees (unless
the caller asked for ``stream_options={"include_usage": True}``), so the provider's
counts are read whatever the caller asked for. The call is priced once the stream
ended by itself. A stream closed, broken off, garbage-collected or failed before that
is recorded as ``usage_unknown``, because its output was billed but never reported.
Whatever happens, the call is recorded once.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from dexcost import errors
from dexcost.instrumentation.litellm.extract import (
    field,
    merge_stream_usage,
    strip_provider,
    usage_from_litellm,
)
from dexcost.llm import LLMCall, routing
from dexcost.pricing import TokenUsage

# Attribute set on an observed stream so the patched methods can find its observer.
OBSERVER_ATTRIBUTE = "_dexcost_observer"


class StreamObserver:
    """Follow one litellm stream and finish its call exactly once."""

    __slots__ = (
        "__weakref__",
        "call",
        "hide_usage_chunk",
        "in_next",
        "items",
        "litellm_provider",
        "requested",
    )

    def __init__(
        self, call: LLMCall, litellm_provider: str | None, *, hide_usage_chunk: bool = False
    ) -> None:
        self.call = call
        self.litellm_provider = litellm_provider
        # True when dexcost itself asked for the usage chunk, which the caller's code
        # does not expect (it has no choices, so chunk.choices[0] would fail).
        self.hide_usage_chunk = hide_usage_chunk
        # False while litellm defers the HTTP request to the first __next__ (its
        # make_call providers): a stream dropped before that cost nothing.
        self.requested = True
        # True inside __next__ / __anext__, where litellm closes the stream itself
        # when it ends or fails; the outcome is recorded when that call returns.
        self.in_next = False
        self.items = 0

    def finish_ended(self, stream: Any) -> None:
        """Record a stream that ended by itself, priced from its chunks."""
        if self._handled_elsewhere():
            return
        model, usage = _read_chunks(getattr(stream, "chunks", None) or (), self.litellm_provider)
        self.call.finish(response_model=model, usage=usage)

    def finish_failed(
        self, error: BaseException, is_error_reply: Callable[[BaseException], bool]
    ) -> None:
        """Record a stream whose request or iteration raised ``error``."""
        if self._handled_elsewhere():
            return
        # An error reply before the first chunk is the provider's rejection of the
        # request; after it, output was already billed.
        no_charge = self.items == 0 and is_error_reply(error)
        self.call.finish(error_type=type(error).__name__, no_charge=no_charge)

    def finish_early(self) -> None:
        """Record a stream closed or collected before it ended: usage_unknown."""
        if self._handled_elsewhere():
            return
        if not self.requested:
            self.call.discard()
            return
        self.call.finish()

    def _handled_elsewhere(self) -> bool:
        if self.call.finished:
            return True
        if self.call.delegated:
            # An instrumented SDK made the deferred request and records it.
            self.call.discard()
            return True
        return False


def _read_chunks(chunks: Any, litellm_provider: str | None) -> tuple[str | None, TokenUsage | None]:
    model: str | None = None
    usages: list[TokenUsage] = []
    for chunk in chunks:
        if model is None:
            model = strip_provider(field(chunk, "model"), litellm_provider)
        raw = getattr(chunk, "usage", None)
        if raw is None:
            continue
        usage = usage_from_litellm(raw)
        if usage is None:
            # One malformed count makes the total unknowable.
            return model, None
        usages.append(usage)
    return model, merge_stream_usage(usages)


def arm_stream(stream: Any, observer: StreamObserver) -> None:
    """Attach ``observer`` to ``stream``; the patched class methods report to it."""
    if getattr(stream, OBSERVER_ATTRIBUTE, None) is not None:
        # A nested litellm call returned this stream and its observer records it.
        observer.call.discard()
        return
    observer.requested = (
        getattr(stream, "completion_stream", None) is not None
        or getattr(stream, "make_call", None) is None
    )
    setattr(stream, OBSERVER_ATTRIBUTE, observer)
    # Safety net for a stream dropped unread: the observer holds no reference to the
    # stream, so this fires when the stream is collected.
    weakref.finalize(stream, _guarded, observer.finish_early)


def _guarded(step: Callable[..., None], *args: Any) -> None:
    try:
        step(*args)
    except Exception:
        errors.log_internal_error("recording a litellm stream")


def observer_of(stream: Any) -> StreamObserver | None:
    observer = getattr(stream, OBSERVER_ATTRIBUTE, None)
    return observer if isinstance(observer, StreamObserver) else None


def _is_added_usage_chunk(observer: StreamObserver, item: Any) -> bool:
    try:
        return (
            observer.hide_usage_chunk
            and getattr(item, "usage", None) is not None
            and not field(item, "choices")
        )
    except Exception:
        errors.log_internal_error("reading a litellm stream chunk")
        return False


def make_next_wrapper(is_error_reply: Callable[[BaseException], bool]) -> Callable[..., Any]:
    """Wrap ``CustomStreamWrapper.__next__``."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        observer = observer_of(instance)
        if observer is None or observer.call.finished:
            return wrapped(*args, **kwargs)
        observer.in_next = True
        try:
            if observer.requested:
                item = wrapped(*args, **kwargs)
            else:
                with routing(observer.call):
                    item = wrapped(*args, **kwargs)
                observer.requested = True
            while _is_added_usage_chunk(observer, item):
                item = wrapped(*args, **kwargs)
        except StopIteration:
            observer.in_next = False
            _guarded(observer.finish_ended, instance)
            raise
        except BaseException as exc:
            observer.in_next = False
            _guarded(observer.finish_failed, exc, is_error_reply)
            raise
        observer.in_next = False
        observer.items += 1
        return item

    return wrapper


def make_anext_wrapper(is_error_reply: Callable[[BaseException], bool]) -> Callable[..., Any]:
    """Wrap ``CustomStreamWrapper.__anext__``."""

    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        observer = observer_of(instance)
        if observer is None or observer.call.finished:
            return await wrapped(*args, **kwargs)
        observer.in_next = True
        try:
            if observer.requested:
                item = await wrapped(*args, **kwargs)
            else:
                with routing(observer.call):
                    item = await wrapped(*args, **kwargs)
                observer.requested = True
            while _is_added_usage_chunk(observer, item):
                item = await wrapped(*args, **kwargs)
        except StopAsyncIteration:
            observer.in_next = False
            _guarded(observer.finish_ended, instance)
            raise
        except BaseException as exc:
            observer.in_next = False
            _guarded(observer.finish_failed, exc, is_error_reply)
            raise
        observer.in_next = False
        observer.items += 1
        return item

    return wrapper


def close_wrapper(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Wrap ``close`` / ``aclose``: a stream closed early is recorded now.

    ``aclose`` returns its coroutine unawaited here; recording first is right, since
    the caller gave the stream up when it called ``aclose``.
    """
    observer = observer_of(instance)
    if observer is not None and not observer.in_next:
        _guarded(observer.finish_early)
    return wrapped(*args, **kwargs)
