"""The span processor that moves finished dexcost spans into the SQLite buffer.

``on_end`` runs on the application's thread, so it only appends the span to an
in-memory queue: it never blocks on I/O and never raises. One
daemon thread drains the queue and writes batches in single transactions of up to
``TRANSACTION_SIZE`` spans (batching 500 rows is ~4.5x cheaper per row than one
transaction each). The queue is bounded;
a span that does not fit is counted as dropped and the count is stored, never lost
silently.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from dexcost import errors
from dexcost.buffer import MAX_ROWS_ENV, Buffer, max_rows_setting
from dexcost.buffer_schema import span_to_row
from dexcost.events import DeferredEvent, PendingEvent, event_to_row

logger = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE = 20_000  # ~2-3 KB per span: tens of MB at worst
# on_end wakes the writer once this many spans wait.
BATCH_SIZE = 500
# The most spans the writer stores in one transaction. Each transaction and each
# INSERT statement gives up the GIL while SQLite works, and while application threads
# are busy, getting it back takes one or more 5 ms switch intervals. So a writer that
# has fallen behind takes up to this many spans at once, not BATCH_SIZE.
TRANSACTION_SIZE = 4_096
# The writer stores what is queued at least this often. Waking it for every span would
# make each instrumented call pay a thread switch and a GIL hand-off (measured here:
# hundreds of microseconds per call), so on_end wakes it only for a full batch.
WRITE_INTERVAL_SECONDS = 0.2
_RETRY_DELAY_SECONDS = 0.5
# How often the writer checks the row cap, because counting the rows scans the table.
PRUNE_INTERVAL_SECONDS = 30.0


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)


class _FlushMarker:
    """Queued by ``force_flush``; set by the writer once everything before it is stored."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _Row(tuple):  # type: ignore[type-arg]
    """A queued item already converted to its buffer row (after a failed write)."""

    __slots__ = ()


# Items of the writer's queue, besides flush markers.
QueueItem = ReadableSpan | PendingEvent | DeferredEvent | _Row


class DexcostSpanProcessor(SpanProcessor):
    """Queue finished spans and store them from a background writer thread."""

    def __init__(self, buffer_path: Path, *, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        self.buffer_path = buffer_path
        self._max_queue = max_queue
        # Read here so that an invalid value fails init(), in every storage mode.
        self._max_rows = max_rows_setting()
        self._drop_lock = threading.Lock()
        self._dropped = 0
        self._reported_internal_errors = errors.internal_error_count()
        self._shutdown = False
        # Held by the writer around all SQLite work, and by fork() (see _before_fork).
        # Reentrant: working out a deferred event on the writer can end a session task,
        # whose span is stored directly when it ends after shutdown began.
        self._io_lock = threading.RLock()
        self._buffer: Buffer | None = None
        # (device, inode) of the buffer file when the writer opened it.
        self._file_identity: tuple[int, int] | None = None
        self._init_worker()
        weak_self = weakref.ref(self)

        def before_fork() -> None:
            processor = weak_self()
            if processor is not None:
                processor._before_fork()

        def after_fork_in_parent() -> None:
            processor = weak_self()
            if processor is not None:
                processor._io_lock.release()

        def after_fork_in_child() -> None:
            processor = weak_self()
            if processor is not None:
                processor._io_lock = threading.RLock()
                if not processor._shutdown:
                    processor._init_worker()

        os.register_at_fork(
            before=before_fork,
            after_in_parent=after_fork_in_parent,
            after_in_child=after_fork_in_child,
        )

    def _before_fork(self) -> None:
        """Fork with no SQLite connection open in this process.

        SQLite keeps per-process lock state for each open database file. A child that
        inherits it while the parent has the file open gets "database is locked" on its
        own connection. So fork takes the I/O lock, which the writer keeps for every
        transaction, closes the writer's connection, and the writer reopens it on its
        next write. The writer thread does
        not survive fork: the child starts its own with an empty queue, and the parent
        keeps storing the spans it queued.
        """
        self._io_lock.acquire()
        if self._buffer is not None:
            try:
                self._buffer.close()
            except Exception:
                errors.log_internal_error("closing the buffer before fork")
            self._buffer = None

    def _init_worker(self) -> None:
        # True while the writer has spans it took off the queue but has not stored yet.
        self._draining = False
        self._next_prune = 0.0
        self._queue: deque[QueueItem | _FlushMarker] = deque()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dexcost-buffer-writer", daemon=True)
        self._thread.start()

    # --- SpanProcessor ---

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        self.on_event(span)

    def on_event(self, event: ReadableSpan | PendingEvent | DeferredEvent) -> None:
        """Queue a finished span, or an event whose span the writer thread builds."""
        try:
            if self._shutdown:
                self._write_late(event)
                return
            queue = self._queue
            if len(queue) >= self._max_queue:
                with self._drop_lock:
                    self._dropped += 1
                return
            queue.append(event)
            if len(queue) >= BATCH_SIZE and not self._wake.is_set():
                self._wake.set()
        except Exception:
            errors.log_internal_error("queueing a cost event")

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Wait until every span queued before this call is stored; False on timeout."""
        if self._shutdown or not self._thread.is_alive():
            return not self._queue
        if not self._queue and not self._draining:
            return True
        marker = _FlushMarker()
        self._queue.append(marker)
        self._wake.set()
        return marker.done.wait(timeout_millis / 1000)

    def shutdown(self, timeout_millis: int = 5_000) -> None:
        """Store what is queued (bounded by ``timeout_millis``) and stop the writer."""
        if self._shutdown:
            return
        # One deadline for the flush and the join, so shutdown never takes longer than
        # ``timeout_millis`` (plus a short grace for the thread to notice the stop).
        deadline = time.monotonic() + timeout_millis / 1000
        flushed = self.force_flush(timeout_millis)
        self._shutdown = True
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout=max(deadline - time.monotonic(), 0.1))
        if not flushed and self._queue:
            logger.error(
                "dexcost could not store %d cost events in %s before shutdown timed out",
                sum(1 for item in self._queue if not isinstance(item, _FlushMarker)),
                self.buffer_path,
            )

    @property
    def queued(self) -> int:
        return len(self._queue)

    # --- writer thread ---

    def _run(self) -> None:
        # A fresh context: the writer must not inherit a request's span or baggage
        # (threading instrumentations copy the starter's context), and suppressing
        # instrumentation keeps an app's sqlite3 instrumentation from tracing our writes.
        token = otel_context.attach(
            otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, otel_context.Context())
        )
        try:
            while True:
                self._wake.wait(WRITE_INTERVAL_SECONDS)
                self._wake.clear()
                with self._io_lock:
                    self._draining = True
                    try:
                        if self._buffer is not None and self._queue and self._file_replaced():
                            logger.warning(
                                "dexcost's buffer %s was deleted or replaced while in use; "
                                "creating it again so new events are not written to a "
                                "deleted file",
                                self.buffer_path,
                            )
                            self._buffer.close()
                            self._buffer = None
                        if self._buffer is None and self._queue:
                            self._buffer = self._open_buffer()
                        opened = self._buffer is not None
                        if self._buffer is not None:
                            self._drain(self._buffer)
                            self._prune_if_due(self._buffer)
                    finally:
                        self._draining = False
                if self._stopped.is_set() and not self._queue:
                    break
                if not opened and self._queue:
                    time.sleep(_RETRY_DELAY_SECONDS)
        finally:
            with self._io_lock:
                if self._buffer is not None:
                    self._buffer.close()
                    self._buffer = None
            otel_context.detach(token)

    def _open_buffer(self) -> Buffer | None:
        try:
            buffer = Buffer.open(self.buffer_path)
        except Exception:
            errors.log_internal_error(f"opening the buffer {self.buffer_path}")
            return None
        self._file_identity = _identity(self.buffer_path)
        return buffer

    def _file_replaced(self) -> bool:
        """Tell whether the buffer file was deleted or replaced since it was opened."""
        return _identity(self.buffer_path) != self._file_identity

    def _drain(self, buffer: Buffer) -> None:
        batch: list[QueueItem] = []
        markers: list[_FlushMarker] = []
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, _FlushMarker):
                markers.append(item)
                # Spans queued before the marker must be stored before it is released.
                if batch and not self._store(buffer, batch):
                    self._requeue(batch, markers)
                    return
                batch = []
                self._store_counters(buffer)
                self._release(markers)
                markers = []
                continue
            batch.append(item)
            if len(batch) >= TRANSACTION_SIZE:
                if not self._store(buffer, batch):
                    self._requeue(batch, markers)
                    return
                batch = []
        if batch and not self._store(buffer, batch):
            self._requeue(batch, markers)
            return
        self._store_counters(buffer)
        self._release(markers)

    def _store(self, buffer: Buffer, batch: list[QueueItem]) -> bool:
        try:
            # Converted once: a batch put back after a failed write keeps its span ids.
            batch[:] = _rows(batch, time.time_ns())
            buffer.insert_rows(batch)  # type: ignore[arg-type]
            return True
        except Exception:
            errors.log_internal_error(f"writing cost events to {self.buffer_path}")
            return False

    def _prune_if_due(self, buffer: Buffer) -> None:
        """Keep the buffer under its row cap, the oldest rows going first.

        The same rule applies with or without uploads (``Buffer.enforce_max_rows``):
        synced rows go first, then failed ones, then pending ones. Without uploads every
        row is pending, so the oldest go. Each row deleted unsent is counted in
        ``evicted_events``, which ``dexcost status`` shows.
        """
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_INTERVAL_SECONDS
        try:
            evicted = buffer.enforce_max_rows(self._max_rows)
        except Exception:
            errors.log_internal_error(f"keeping {self.buffer_path} under its row cap")
            return
        if evicted:
            logger.error(
                "dexcost deleted the %d oldest cost events that were never uploaded, to keep "
                "%s under %s=%d rows; the count is in dexcost status as events evicted unsent",
                evicted,
                self.buffer_path,
                MAX_ROWS_ENV,
                self._max_rows,
            )

    def _requeue(self, batch: list[QueueItem], markers: list[_FlushMarker]) -> None:
        # Put the unwritten spans back at the front, in order, and retry shortly. The
        # queue may exceed its bound by one batch here: keeping data wins over the bound.
        self._queue.extendleft(reversed([*batch, *markers]))
        if not self._stopped.is_set():
            time.sleep(_RETRY_DELAY_SECONDS)
            self._wake.set()

    @staticmethod
    def _release(markers: list[_FlushMarker]) -> None:
        for marker in markers:
            marker.done.set()

    def _store_counters(self, buffer: Buffer) -> None:
        with self._drop_lock:
            dropped, self._dropped = self._dropped, 0
        internal = errors.internal_error_count()
        new_internal = internal - self._reported_internal_errors
        try:
            if dropped:
                logger.error("dexcost dropped %d cost events because its queue was full", dropped)
                buffer.add_counter("dropped_events", dropped)
            if new_internal > 0:
                buffer.add_counter("internal_errors", new_internal)
            self._reported_internal_errors = internal
        except Exception:
            with self._drop_lock:
                self._dropped += dropped
            errors.log_internal_error("storing dexcost counters")

    def _write_late(self, event: QueueItem) -> None:
        """Store a span that ended after shutdown (e.g. a stream finished late) directly."""
        token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            with self._io_lock:
                self._store_late(event)
        finally:
            otel_context.detach(token)

    def _store_late(self, event: QueueItem) -> None:
        buffer = Buffer.open(self.buffer_path)
        try:
            buffer.insert_rows(_rows([event], time.time_ns()))
        finally:
            buffer.close()


def _rows(batch: Sequence[QueueItem], stored_at_ns: int) -> list[_Row]:
    """Return the buffer rows of ``batch``, in order.

    Spans are converted with ``span_to_row`` and queued events with ``event_to_row``,
    which gives the same row without making the span object. A deferred event is
    worked out first, if no other thread did it yet. An item that cannot be
    converted is reported as an internal error and left out, so it cannot keep the
    rest of the batch from being stored.
    """
    rows: list[_Row] = []
    for item in batch:
        kind = type(item)
        try:
            if kind is _Row:
                rows.append(item)  # type: ignore[arg-type]
            elif kind is tuple:
                rows.append(_Row(event_to_row(item, stored_at_ns)))  # type: ignore[arg-type]
            elif isinstance(item, DeferredEvent):
                event = item.pending_event()
                if event is not None:
                    rows.append(_Row(event_to_row(event, stored_at_ns)))
            else:
                rows.append(_Row(span_to_row(item, stored_at_ns)))  # type: ignore[arg-type]
        except Exception:
            errors.log_internal_error("converting a cost event for the buffer")
    return rows
