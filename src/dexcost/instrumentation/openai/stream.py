"""Observing OpenAI streams without replacing them.

The user gets the SDK's own ``Stream`` / ``AsyncStream`` object. dexcost swaps the
stream's internal item iterator for a generator that watches each item and passes it
through, and the patched ``close`` methods (see ``patch.py``) tell the observer when a
stream is closed early. Whatever happens (fully read, ``break``, ``close()``, an error,
or the stream garbage-collected unread) the call is recorded exactly once: with its
usage when the usage chunk arrived, else as ``usage_unknown``.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from decimal import Decimal
from typing import Any

from dexcost import errors
from dexcost.instrumentation._streams import pass_through, pass_through_async
from dexcost.instrumentation.openai.extract import (
    CHAT,
    FINAL_RESPONSE_EVENTS,
    RESPONSES,
    field,
    reported_cost,
    usage_from_chat,
    usage_from_responses,
)
from dexcost.instrumentation.openai.providers import REPORTS_COST
from dexcost.llm import LLMCall
from dexcost.pricing import TokenUsage

# Attribute set on an observed stream so the patched close() can find its observer.
OBSERVER_ATTRIBUTE = "_dexcost_observer"

# Field of a chunk in which Groq sends a stream's usage.
GROQ_FIELD = "x_groq"
# Per chunk class: whether its GROQ_FIELD can be read from the instance's own state.
_reads_state: dict[type, bool] = {}


def _readable_from_state(cls: type) -> bool:
    """Tell whether ``getattr(chunk, GROQ_FIELD)`` only looks in ``__dict__`` and the extras.

    True for a pydantic 2 model class that does not change attribute lookup and defines
    no class attribute of that name: pydantic then finds a declared field in ``__dict__``
    and an undeclared one in ``__pydantic_extra__``, and raises AttributeError otherwise.
    """
    try:
        from pydantic import BaseModel
    except ImportError:
        return False
    pydantic_getattr = getattr(BaseModel, "__getattr__", None)
    return (
        pydantic_getattr is not None
        and issubclass(cls, BaseModel)
        and not issubclass(cls, Mapping)
        and getattr(cls, "__getattr__", None) is pydantic_getattr
        and cls.__getattribute__ is object.__getattribute__
        and not any(GROQ_FIELD in vars(base) for base in cls.__mro__)
        and GROQ_FIELD not in getattr(cls, "__private_attributes__", {})
    )


def groq_field(item: Any) -> Any:
    """Return ``field(item, GROQ_FIELD)`` without pydantic's slow miss.

    A pydantic model lacking the attribute formats, raises and catches an AttributeError
    for it, about 3 µs (timeit) per chunk of every other provider's stream.
    """
    cls = type(item)
    direct = _reads_state.get(cls)
    if direct is None:
        direct = _reads_state[cls] = _readable_from_state(cls)
    if direct:
        try:
            state = item.__dict__
            if GROQ_FIELD in state:
                return state[GROQ_FIELD]
            extra = object.__getattribute__(item, "__pydantic_extra__")
        except AttributeError:
            return None
        return extra.get(GROQ_FIELD) if extra else None
    return field(item, GROQ_FIELD)


class StreamObserver:
    """Collect model and usage from stream items and finish the call exactly once."""

    __slots__ = (
        "__weakref__",
        "api",
        "call",
        "hide_usage_chunk",
        "model",
        "reported_cost",
        "tier",
        "usage",
    )

    def __init__(self, call: LLMCall, api: str, *, hide_usage_chunk: bool) -> None:
        self.call = call
        self.api = api
        # True when dexcost itself asked for the usage chunk, which the caller's code
        # does not expect (it has no choices, so chunk.choices[0] would fail).
        self.hide_usage_chunk = hide_usage_chunk
        self.model: str | None = None
        self.tier: str | None = None
        self.usage: TokenUsage | None = None
        self.reported_cost: Decimal | None = None

    def observe(self, item: Any) -> bool:
        """Read one stream item; return True when it must be hidden from the caller."""
        if self.api == CHAT:
            raw_usage = field(item, "usage")
            if raw_usage is None:
                # Groq sends a stream's usage in the last chunk's x_groq.usage, with or
                # without stream_options. Other providers send no x_groq field.
                raw_usage = field(groq_field(item), "usage")
            if self.model is None:
                # Azure's first chunk carries content-filter results and an empty model.
                model = field(item, "model")
                if isinstance(model, str) and model:
                    self.model = model
            if raw_usage is not None:
                self.usage = usage_from_chat(raw_usage)
                self._read_reported_cost(raw_usage)
                tier = field(item, "service_tier")
                self.tier = tier if isinstance(tier, str) else self.tier
                return self.hide_usage_chunk and not field(item, "choices")
            return False
        if self.api == RESPONSES:
            event_type = field(item, "type")
            if event_type in FINAL_RESPONSE_EVENTS or event_type == "response.created":
                response = field(item, "response")
                model = field(response, "model")
                if isinstance(model, str):
                    self.model = model
                tier = field(response, "service_tier")
                if isinstance(tier, str):
                    self.tier = tier
                if event_type in FINAL_RESPONSE_EVENTS:
                    self.usage = usage_from_responses(field(response, "usage"))
        return False

    def take_usage_event(self, data: str) -> bool:
        """Read the usage chunk dexcost asked for from its raw event; True to drop it.

        The SDK would build a pydantic model for the chunk only for dexcost to hide it
        again, which costs more than the rest of dexcost's work on a call. Other events
        are left to the SDK untouched; the text checks keep their cost near zero.
        """
        position = data.find('"usage"')
        if position < 0:
            return False
        after = data[position + 7 :].lstrip(" :")
        if after.startswith("null"):
            return False
        chunk = json.loads(data)
        if not isinstance(chunk, dict) or chunk.get("choices"):
            return False
        usage = usage_from_chat(chunk.get("usage"))
        if usage is None:
            return False
        self.usage = usage
        self._read_reported_cost(chunk.get("usage"))
        tier = chunk.get("service_tier")
        if isinstance(tier, str):
            self.tier = tier
        if self.model is None and isinstance(chunk.get("model"), str) and chunk["model"]:
            self.model = chunk["model"]
        return True

    def _read_reported_cost(self, raw_usage: Any) -> None:
        if self.call.provider in REPORTS_COST:
            self.reported_cost = reported_cost(raw_usage)

    def finish(self, error: BaseException | None = None) -> None:
        """Record the call; later calls do nothing."""
        if self.call.finished:
            return
        try:
            self.call.finish(
                response_model=self.model,
                usage=self.usage,
                reported_cost=self.reported_cost if self.usage is not None else None,
                service_tier=self.tier,
                error_type=type(error).__name__ if error is not None else None,
            )
        except Exception:
            errors.log_internal_error("recording an openai stream")


def arm_stream(stream: Any, observer: StreamObserver, *, is_async: bool) -> bool:
    """Route ``stream``'s items through ``observer``; False if the stream is not observable.

    Relies on the SDK's ``_iterator`` attribute, present on ``Stream`` and
    ``AsyncStream`` from openai 1.0 through 3.x; both ``__iter__`` and ``__next__`` read it.
    """
    inner = getattr(stream, "_iterator", None)
    if inner is None or getattr(stream, OBSERVER_ATTRIBUTE, None) is not None:
        return False
    if is_async:
        stream._iterator = pass_through_async(inner, observer, "reading an openai stream item")
    else:
        stream._iterator = pass_through(inner, observer, "reading an openai stream item")
    if observer.hide_usage_chunk:
        _filter_raw_events(stream, observer, is_async=is_async)
    setattr(stream, OBSERVER_ATTRIBUTE, observer)
    # Safety net for a stream dropped unread: the observer holds no reference to the
    # stream, so this fires when the stream is collected.
    weakref.finalize(stream, observer.finish)
    return True


def _take(observer: StreamObserver, event: Any) -> bool:
    try:
        data = event.data
        return isinstance(data, str) and observer.take_usage_event(data)
    except Exception:
        errors.log_internal_error("reading an openai stream event")
        return False


def _filter_raw_events(stream: Any, observer: StreamObserver, *, is_async: bool) -> None:
    """Route the stream's server-sent events through ``observer.take_usage_event``.

    The SDK's item generator looks up ``_iter_events`` on the stream when it starts, so
    an attribute set on the instance before the first item takes its place. Present on
    ``Stream`` and ``AsyncStream`` from openai 1.0 through 3.x; without it, the usage
    chunk is read and hidden at the item level instead.
    """
    original = getattr(stream, "_iter_events", None)
    if original is None:
        return
    if is_async:

        async def iter_events_async() -> AsyncIterator[Any]:
            async for event in original():
                if not _take(observer, event):
                    yield event

        stream._iter_events = iter_events_async
    else:

        def iter_events() -> Iterator[Any]:
            for event in original():
                if not _take(observer, event):
                    yield event

        stream._iter_events = iter_events


def observer_of(stream: Any) -> StreamObserver | None:
    observer = getattr(stream, OBSERVER_ATTRIBUTE, None)
    return observer if isinstance(observer, StreamObserver) else None
