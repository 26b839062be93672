"""Pass-through generators that show each stream event to an observer.

A provider's stream module swaps the SDK's event iterator for one of these generators.
The caller receives the same events in the same order, except those the observer marks
as hidden. Once iteration has started, the generator finishes the observer exactly once,
with the exception that ended the stream, or with ``None`` when the stream ran out or was
closed early. A generator never iterated finishes nothing, so callers keep their own
safety net for streams dropped unread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

from dexcost import errors


class EventObserver(Protocol):
    """Interface of a per-call observer: read each event, then record the call once."""

    def observe(self, event: Any) -> bool | None:
        """Read one event. A true result hides the event from the caller."""

    def finish(self, error: BaseException | None = None) -> None:
        """Record the call, with the exception that ended the stream if any."""


def pass_through(events: Iterator[Any], observer: EventObserver, failure: str) -> Iterator[Any]:
    """Yield ``events`` after showing each to ``observer``, then finish it once.

    ``failure`` is the step name logged when ``observer.observe`` raises. Closing the
    generator early (``GeneratorExit``) finishes the observer without an error. An
    exception from ``observer.observe`` is logged and the event is shown to the caller.
    The guard is inline rather than a helper because this loop runs for every event.
    """
    error: BaseException | None = None
    observe = observer.observe
    try:
        for event in events:
            try:
                hidden = observe(event)
            except Exception:
                errors.log_internal_error(failure)
                hidden = False
            if not hidden:
                yield event
    except GeneratorExit:
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        observer.finish(error)


async def pass_through_async(
    events: AsyncIterator[Any], observer: EventObserver, failure: str
) -> AsyncIterator[Any]:
    """Yield async ``events`` like :func:`pass_through` does for sync ones."""
    error: BaseException | None = None
    observe = observer.observe
    try:
        async for event in events:
            try:
                hidden = observe(event)
            except Exception:
                errors.log_internal_error(failure)
                hidden = False
            if not hidden:
                yield event
    except GeneratorExit:
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        observer.finish(error)
