"""Pricing the results of Anthropic Message Batches at the batch rate.

A batch's requests are billed when they run, but their usage only becomes visible
when the application reads the results (``messages.batches.results(batch_id)``, also
under ``beta``). The SDK decodes that JSON Lines download with ``JSONLDecoder`` /
``AsyncJSONLDecoder``; dexcost wraps their ``__decode__`` generator and records one
``llm_call`` event per succeeded result as it passes to the caller, unchanged.
Errored, canceled and expired requests are not billed and are not recorded.

The attribution is the context in which the results are read, since the batch may
have been created by another process. A result read twice in one process is recorded
once.

NOTE: reading the same results again in another process records them again; the
events carry the batch and custom ids, so a report can drop the duplicates.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from dexcost import errors, semconv
from dexcost.instrumentation.anthropic.extract import ANTHROPIC, CHAT, field, read_message
from dexcost.llm import LLMCall
from dexcost.runtime import current_runtime

_RESULTS_SEGMENT = "results"
_BATCHES_SEGMENT = "batches"
# Results already recorded in this process, as (batch id, custom id), oldest first.
_SEEN_LIMIT = 100_000
_seen: OrderedDict[tuple[str, str], None] = OrderedDict()
_seen_lock = threading.Lock()


def batch_id_of(decoder: Any) -> str | None:
    """Return the batch id when ``decoder`` reads a Message Batch's results, else None.

    The results URL ends in ``/messages/batches/{batch_id}/results``.
    """
    response = getattr(decoder, "http_response", None)
    path = getattr(getattr(getattr(response, "request", None), "url", None), "path", None)
    if not isinstance(path, str):
        return None
    segments = [segment for segment in path.split("/") if segment]
    if len(segments) < 3 or segments[-1] != _RESULTS_SEGMENT:
        return None
    if segments[-3] != _BATCHES_SEGMENT:
        return None
    return segments[-2]


def _first_sighting(batch_id: str, custom_id: str) -> bool:
    key = (batch_id, custom_id)
    with _seen_lock:
        if key in _seen:
            return False
        _seen[key] = None
        if len(_seen) > _SEEN_LIMIT:
            _seen.popitem(last=False)
    return True


def record_result(batch_id: str, item: Any) -> None:
    """Record one decoded result line if it succeeded and was not recorded before."""
    result = field(item, "result")
    if field(result, "type") != "succeeded":
        return
    custom_id = field(item, "custom_id")
    if not isinstance(custom_id, str) or not _first_sighting(batch_id, custom_id):
        return
    runtime = current_runtime()
    if runtime is None:
        return
    model, usage = read_message(field(result, "message"))
    call = LLMCall(
        runtime,
        provider=ANTHROPIC,
        operation=CHAT,
        request_model=None,
        attributes={semconv.BATCH_ID: batch_id, semconv.BATCH_CUSTOM_ID: custom_id},
    )
    call.finish(response_model=model, usage=usage, batch=True)


def _record(batch_id: str, item: Any) -> None:
    try:
        record_result(batch_id, item)
    except Exception:
        errors.log_internal_error("recording an anthropic batch result")


def _observe_sync(items: Iterator[Any], batch_id: str) -> Iterator[Any]:
    for item in items:
        _record(batch_id, item)
        yield item


async def _observe_async(items: AsyncIterator[Any], batch_id: str) -> AsyncIterator[Any]:
    async for item in items:
        _record(batch_id, item)
        yield item


def make_decode_wrapper(*, is_async: bool) -> Callable[..., Any]:
    """Wrap ``JSONLDecoder.__decode__`` / ``AsyncJSONLDecoder.__decode__``."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        items = wrapped(*args, **kwargs)
        try:
            batch_id = batch_id_of(instance)
        except Exception:
            errors.log_internal_error("reading an anthropic results URL")
            return items
        if batch_id is None:
            return items
        if is_async:
            return _observe_async(items, batch_id)
        return _observe_sync(items, batch_id)

    return wrapper
