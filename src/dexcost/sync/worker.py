"""The sync worker: one daemon thread that uploads pending buffer rows to the Control Layer.

Delivery is at least once. A row is marked synced only after a 2xx response, and every
span keeps its stored trace and span ids, so a batch sent again (after a timeout, a
reset connection or a killed process) carries the same ids and the receiver drops the
duplicates. Processes sharing one buffer lease the rows they send (see
``Buffer.claim_pending``), so they never send the same row at the same time.
"""

from __future__ import annotations

import http.client
import logging
import os
import queue
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from dexcost import errors
from dexcost.buffer import (
    EVICTED_EVENTS,
    MAX_ROWS_ENV,
    REJECTED_EVENTS,
    Buffer,
    max_rows_setting,
)
from dexcost.sync.otlp import (
    EncodedSpan,
    PartialSuccess,
    decode_partial_success,
    decode_status_message,
    encode_request,
    encode_span,
)
from dexcost.sync.sender import OTLPSender, Response, backoff_delay, parse_retry_after

logger = logging.getLogger(__name__)

# Settings read when they are used, so tests can shorten them.
REQUEST_TIMEOUT_SECONDS = 10.0
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0
# A Retry-After longer than this is shortened to it, because a typo on the server
# must not stop uploads for days.
RETRY_AFTER_CAP_SECONDS = 600.0
# A lease must outlast one request (timeout) plus encoding. Once a killed process's
# lease runs out, another process claims its rows again.
LEASE_SECONDS = 60.0
# How often the worker checks whether a full batch waits, between flush intervals.
POLL_SECONDS = 0.5
# Batches claimed, and later marked synced, per transaction. Each SQLite transaction
# costs the worker a fixed share on top of its rows, and each statement a GIL hand-off.
# A claimed batch may wait for the requests before it, each bounded by the request
# timeout, so CLAIM_BATCHES * REQUEST_TIMEOUT_SECONDS stays under LEASE_SECONDS.
CLAIM_BATCHES = 4
# Encoded batches that may wait for the sending thread, besides the one it sends. A
# larger value lets the claiming thread run further ahead, and every waiting batch keeps
# its lease until it is sent.
SEND_AHEAD = 2
# How often the row cap is checked, because counting the rows scans the table.
PRUNE_INTERVAL_SECONDS = 30.0
# Warnings about failed uploads are logged at most this often.
WARNING_INTERVAL_SECONDS = 60.0

EVICTED_ATTRIBUTE: Final = "dexcost.buffer.evicted_events"


def _key_type(api_key: str) -> str:
    for prefix in ("dx_live_", "dx_test_"):
        if api_key.startswith(prefix):
            return prefix
    return "dexcost"


class _Retry(Exception):
    """The batch could not be delivered now; try again after ``delay`` seconds."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class _Unauthorized(Exception):
    """The Control Layer rejected the API key."""


class SyncWorker(SpanProcessor):
    """Upload pending rows of one buffer in batches, from one daemon thread.

    It is also a span processor, so a process forked after ``init()`` starts its own
    thread when it records its first span there.
    """

    def __init__(
        self,
        buffer_path: Path,
        *,
        endpoint: str,
        api_key: str,
        batch_size: int,
        flush_interval: float,
    ) -> None:
        self.buffer_path = buffer_path
        self._endpoint = endpoint
        self._key_type = _key_type(api_key)
        self._sender = OTLPSender(endpoint, api_key)
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_rows = max_rows_setting()
        self._unauthorized = False
        self._stopping = False
        self._reset_process_state()
        weak_self = weakref.ref(self)

        def before_fork() -> None:
            worker = weak_self()
            if worker is not None:
                worker._before_fork()

        def after_fork_in_parent() -> None:
            worker = weak_self()
            if worker is not None:
                worker._io_lock.release()

        def after_fork_in_child() -> None:
            worker = weak_self()
            if worker is not None:
                worker._after_fork_in_child()

        os.register_at_fork(
            before=before_fork,
            after_in_parent=after_fork_in_parent,
            after_in_child=after_fork_in_child,
        )

    def _reset_process_state(self) -> None:
        # A lease owner is unique to this process and worker, so two processes never
        # mistake each other's leases for their own.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._start_lock = threading.Lock()
        # Held around all SQLite work, never around HTTP, and by fork (see _before_fork).
        self._io_lock = threading.Lock()
        self._buffer: Buffer | None = None
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._deadline: float | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._last_warning = -WARNING_INTERVAL_SECONDS
        self._next_prune = 0.0

    def _before_fork(self) -> None:
        # As in the span processor, a child must not inherit an open SQLite connection.
        # The worker reopens it on its next pass.
        self._io_lock.acquire()
        if self._buffer is not None:
            try:
                self._buffer.close()
            except Exception:
                errors.log_internal_error("closing the sync buffer before fork")
            self._buffer = None

    def _after_fork_in_child(self) -> None:
        # The parent's thread, leases and connection stay the parent's. The child gets
        # a thread of its own when it records a span (on_end).
        self._sender.forget_connection()
        self._reset_process_state()

    # --- life cycle ---

    def start(self) -> None:
        """Start the upload thread unless it is running, has stopped, or the key was rejected."""
        with self._start_lock:
            if self._thread is not None or self._stopping or self._unauthorized:
                return
            self._thread = threading.Thread(target=self._run, name="dexcost-sync", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Ask for an upload pass now instead of at the next interval."""
        self._wake.set()

    def shutdown(self, timeout_millis: int = 0) -> None:
        """Upload what is pending for at most ``timeout_millis``, then stop the thread.

        Rows still pending stay in the buffer for the next process that syncs it.
        A second call does nothing.
        """
        if self._stopping:
            return
        self._stopping = True
        thread = self._thread
        if thread is None:
            return
        timeout = max(timeout_millis / 1000, 0.0)
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        thread.join(timeout + 0.5)
        if thread.is_alive():
            logger.debug("dexcost sync thread still sending at shutdown; it is a daemon")

    # --- SpanProcessor ---

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        self.ensure_started()

    def ensure_started(self) -> None:
        """Start the upload thread if this process has none (the child of a fork)."""
        if self._thread is None:
            try:
                self.start()
            except Exception:
                errors.log_internal_error("starting the sync thread")

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    # --- the thread ---

    def _run(self) -> None:
        # A fresh context, as in the span processor, so uploads do not inherit a request's
        # span or baggage. Suppression keeps app instrumentation off dexcost's sqlite3 work.
        token = otel_context.attach(
            otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, otel_context.Context())
        )
        try:
            next_pass = time.monotonic()
            while not self._stop.is_set():
                now = time.monotonic()
                if not self._unauthorized and now >= self._retry_at:
                    try:
                        if now >= next_pass or self._full_batch_waiting():
                            self._pass()
                            next_pass = time.monotonic() + self._flush_interval
                    except Exception:
                        # The buffer may be locked or unreadable, so keep the thread and retry.
                        errors.log_internal_error("uploading cost events")
                        next_pass = time.monotonic() + self._flush_interval
                wait = min(POLL_SECONDS, max(next_pass, self._retry_at) - time.monotonic())
                self._wake.wait(max(wait, 0.01))
                self._wake.clear()
            self._final_pass()
        except Exception:
            errors.log_internal_error("uploading cost events")
        finally:
            with self._io_lock:
                if self._buffer is not None:
                    self._buffer.close()
                    self._buffer = None
            self._sender.close()
            otel_context.detach(token)

    def _final_pass(self) -> None:
        deadline = self._deadline if self._deadline is not None else time.monotonic()
        if self._unauthorized or self._retry_at > deadline:
            return
        time.sleep(max(self._retry_at - time.monotonic(), 0.0))
        self._pass(deadline)

    def _pass(self, deadline: float | None = None) -> None:
        """Send batches until none is full, one fails, or ``deadline`` passes.

        One transaction claims ``CLAIM_BATCHES`` batches, which are then sent one
        request each, so a request still carries at most ``batch_size`` events. Batches
        are pipelined: this thread claims and encodes batches while a sending
        thread gzips and posts the ones before. Encoding holds the GIL, while the POST,
        gzip and SQLite mostly release it, so the two overlap. At most ``SEND_AHEAD``
        encoded batches wait for the sending thread, and batches are sent in the order
        claimed, one request at a time. Rows the receiver accepted are marked synced by
        the next claim's transaction, so the sending thread does no SQLite work when all
        goes well.
        """
        self._prune_if_due()
        pipeline = _Pipeline(self, deadline)
        try:
            while True:
                timeout = REQUEST_TIMEOUT_SECONDS
                if deadline is not None:
                    timeout = min(timeout, deadline - time.monotonic())
                    if timeout < 0.05:
                        return
                if pipeline.failed:
                    return
                delivered, rejections = pipeline.take_delivered()
                claim = self._batch_size * CLAIM_BATCHES
                try:
                    with self._locked_buffer() as buffer:
                        rows = buffer.claim_pending(
                            self.owner, claim, LEASE_SECONDS, synced=delivered
                        )
                except BaseException:
                    # Not marked yet: the end of the pass tries again.
                    pipeline.return_delivered(delivered)
                    raise
                finally:
                    # After the rows are marked, so the rejection stays the last sync error.
                    self._note_rejections(rejections)
                if not rows:
                    return
                encoded = self._encode(rows)
                for start in range(0, len(encoded), self._batch_size):
                    if not pipeline.put(encoded[start : start + self._batch_size]):
                        # An earlier batch must wait for a retry, and so must these.
                        self._release([span.row_id for span in encoded[start:]])
                        return
                if len(rows) < claim:
                    return
        finally:
            error = pipeline.finish()
            delivered, rejections = pipeline.take_delivered()
            try:
                if delivered:
                    with self._locked_buffer() as buffer:
                        buffer.mark_synced(delivered, owner=self.owner)
            finally:
                self._note_rejections(rejections)
            if error is not None:
                raise error

    def _encode(self, rows: Sequence[tuple[object, ...]]) -> list[EncodedSpan]:
        """Encode claimed rows; a row that cannot be encoded is marked failed instead."""
        encoded = []
        for row in rows:
            try:
                encoded.append(encode_span(row))
            except (TypeError, ValueError):
                errors.log_internal_error("encoding a stored span for upload")
                with self._locked_buffer() as buffer:
                    buffer.mark_failed(
                        [int(row[0])],  # type: ignore[call-overload]
                        "dexcost could not encode this row for upload",
                        owner=self.owner,
                    )
        return encoded

    def _send_batch(
        self,
        encoded: list[EncodedSpan],
        deadline: float | None,
        extra: dict[str, object],
        delivered: Callable[[list[int], PartialSuccess | None], None],
    ) -> bool:
        """Deliver one claimed batch. Return False when the rest must wait for a retry.

        ``delivered`` gets the ids of each part the receiver accepted and the rejected
        spans that its response reports. The caller marks those rows synced.
        """
        # Parts of the batch still to send. A 400 splits a part in halves, and the
        # last part in the list is sent first.
        parts: list[list[EncodedSpan]] = [encoded] if encoded else []
        while parts:
            part = parts.pop()
            ids = [span.row_id for span in part]
            try:
                response = self._post(encode_request(part, extra), deadline)
            except _Retry as retry:
                self._release([span.row_id for rest in (*parts, part) for span in rest])
                self._schedule_retry(retry)
                return False
            except _Unauthorized as refused:
                self._release([span.row_id for rest in (*parts, part) for span in rest])
                self._refuse_key(str(refused))
                return False
            if 200 <= response.status < 300:
                delivered(ids, _rejected_spans(response))
                self._failures = 0
            elif len(part) == 1:
                reason = _describe(response)
                logger.error(
                    "dexcost Control Layer rejected cost event %s as malformed (%s); it is "
                    "kept in %s with sync state failed and will not be sent again",
                    part[0].row_id,
                    reason,
                    self.buffer_path,
                )
                with self._locked_buffer() as buffer:
                    buffer.mark_failed(ids, reason, owner=self.owner)
            else:
                middle = len(part) // 2
                parts += (part[middle:], part[:middle])
        return True

    def _post(self, body: bytes, deadline: float | None) -> Response:
        """Send one request; raise ``_Retry`` or ``_Unauthorized``, or return a 2xx/400/413."""
        timeout = REQUEST_TIMEOUT_SECONDS
        if deadline is not None:
            timeout = max(min(timeout, deadline - time.monotonic()), 0.05)
        try:
            response = self._sender.post(body, timeout)
        except (OSError, http.client.HTTPException) as error:
            proxy = self._sender.proxy
            via = "" if proxy is None else f" through the proxy {proxy.where()} (HTTPS_PROXY)"
            raise _Retry(
                f"{type(error).__name__} sending to {self._sender.url}{via}: {error}"
            ) from None
        status = response.status
        if 200 <= status < 300 or status in (400, 413):
            return response
        if status in (401, 403):
            raise _Unauthorized(f"HTTP {status}")
        retry_after = parse_retry_after(response.retry_after)
        # 429 and 5xx are server trouble. Any other status (404, 405, 415, ...) means a
        # wrong endpoint or a proxy in the way. The data is fine, so it is kept and
        # retried at the slowest pace until the setting is fixed.
        delay = retry_after
        if delay is None and status != 429 and status < 500:
            delay = BACKOFF_CAP_SECONDS
        raise _Retry(_describe(response), delay)

    # --- outcomes ---

    def _schedule_retry(self, retry: _Retry) -> None:
        self._failures += 1
        delay = retry.delay
        if delay is None:
            delay = backoff_delay(self._failures, BACKOFF_BASE_SECONDS, BACKOFF_CAP_SECONDS)
        delay = min(delay, RETRY_AFTER_CAP_SECONDS)
        self._retry_at = time.monotonic() + delay
        error = f"{retry.reason}; retrying in {delay:.1f} s"
        with self._locked_buffer() as buffer:
            # Without the delay: dexcost status shows it later, when it means nothing.
            buffer.set_sync_state("last_sync_error", retry.reason)
        now = time.monotonic()
        if now - self._last_warning >= WARNING_INTERVAL_SECONDS:
            self._last_warning = now
            logger.warning(
                "dexcost could not upload cost events (%s); they stay in %s and will be sent "
                "when the Control Layer answers",
                error,
                self.buffer_path,
            )

    def _refuse_key(self, status: str) -> None:
        self._unauthorized = True
        message = (
            f"the Control Layer at {self._endpoint} rejected the {self._key_type} API key "
            f"({status}); uploads are stopped for this process and events stay in the buffer. "
            "Check DEXCOST_API_KEY (or api_key=) against the dexcost dashboard and restart"
        )
        logger.error("dexcost %s", message)
        with self._locked_buffer() as buffer:
            buffer.set_sync_state("last_sync_error", message)

    def _note_rejections(self, rejections: Sequence[PartialSuccess]) -> None:
        """Count and log the spans that 2xx responses reported as rejected.

        OTLP forbids retrying a partially successful request, and the response does
        not say which spans were rejected, so all of them stay marked synced.
        """
        for partial in rejections:
            message = (
                f"the Control Layer rejected {partial.rejected_spans} cost events of a "
                f"batch: {partial.error_message or 'no reason given'}"
            )
            logger.warning("dexcost %s", message)
            with self._locked_buffer() as buffer:
                buffer.add_counter(REJECTED_EVENTS, partial.rejected_spans)
                buffer.set_sync_state("last_sync_error", message)

    # --- buffer access ---

    @contextmanager
    def _locked_buffer(self) -> Iterator[Buffer]:
        with self._io_lock:
            if self._buffer is None:
                self._buffer = Buffer.open(self.buffer_path)
            yield self._buffer

    def _release(self, ids: Sequence[int]) -> None:
        if ids:
            with self._locked_buffer() as buffer:
                buffer.release(ids, self.owner)

    def _full_batch_waiting(self) -> bool:
        with self._locked_buffer() as buffer:
            return buffer.count_pending(self._batch_size) >= self._batch_size

    def _wire_counters(self) -> dict[str, object]:
        with self._locked_buffer() as buffer:
            evicted = buffer.counters().get(EVICTED_EVENTS, 0)
        return {EVICTED_ATTRIBUTE: evicted} if evicted else {}

    def _prune_if_due(self) -> None:
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_INTERVAL_SECONDS
        with self._locked_buffer() as buffer:
            evicted = buffer.enforce_max_rows(self._max_rows)
        if evicted:
            logger.error(
                "dexcost deleted %d cost events that were never uploaded, to keep %s under "
                "%s=%d rows; the count is in dexcost status and is sent to the Control Layer",
                evicted,
                self.buffer_path,
                MAX_ROWS_ENV,
                self._max_rows,
            )


class _Pipeline:
    """One pass's sending thread and the encoded batches that wait for it.

    The thread starts with the first batch and runs with instrumentation suppressed
    in an empty context, like the worker's own thread. Once a batch fails, the
    batches still waiting are released unsent and ``put`` refuses more.
    """

    def __init__(self, worker: SyncWorker, deadline: float | None) -> None:
        self._worker = worker
        self._deadline = deadline
        self._extra: dict[str, object] | None = None
        self._queue: queue.Queue[list[EncodedSpan] | None] = queue.Queue(SEND_AHEAD)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._delivered: list[int] = []
        self._rejections: list[PartialSuccess] = []
        self._delivered_lock = threading.Lock()
        self.failed = False

    def put(self, encoded: list[EncodedSpan]) -> bool:
        """Queue a batch for sending, waiting while ``SEND_AHEAD`` batches wait.

        Returns False, queueing nothing, once a batch has failed.
        """
        if self.failed:
            return False
        if self._thread is None:
            # Read once a pass: the count changes only when rows are evicted.
            self._extra = self._worker._wire_counters()
            self._thread = threading.Thread(target=self._run, name="dexcost-sync-send", daemon=True)
            self._thread.start()
        self._queue.put(encoded)
        return True

    def take_delivered(self) -> tuple[list[int], list[PartialSuccess]]:
        """Return and forget the rows delivered since the last call, and the rejections."""
        with self._delivered_lock:
            ids, self._delivered = self._delivered, []
            rejections, self._rejections = self._rejections, []
        return ids, rejections

    def return_delivered(self, ids: list[int]) -> None:
        """Put back ids from ``take_delivered`` that could not be marked synced."""
        with self._delivered_lock:
            self._delivered[:0] = ids

    def finish(self) -> BaseException | None:
        """Wait until every queued batch is sent or released; return what the thread raised."""
        if self._thread is None:
            return None
        self._queue.put(None)
        self._thread.join()
        error, self._error = self._error, None
        return error

    def _add_delivered(self, ids: list[int], rejected: PartialSuccess | None) -> None:
        with self._delivered_lock:
            self._delivered += ids
            if rejected is not None:
                self._rejections.append(rejected)

    def _run(self) -> None:
        token = otel_context.attach(
            otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, otel_context.Context())
        )
        try:
            while True:
                encoded = self._queue.get()
                if encoded is None:
                    return
                # Every error is caught here, so the thread keeps emptying the queue
                # and ``put`` and ``finish`` never wait on a full one.
                try:
                    late = self._deadline is not None and self._deadline - time.monotonic() < 0.05
                    if self.failed or late:
                        self._worker._release([span.row_id for span in encoded])
                        continue
                    ok = self._worker._send_batch(
                        encoded, self._deadline, self._extra or {}, self._add_delivered
                    )
                except BaseException as error:
                    # The rest of the pass stops, and rows not released stay leased until
                    # their lease expires.
                    if self._error is None:
                        self._error = error
                    ok = False
                if not ok:
                    self.failed = True
        finally:
            otel_context.detach(token)


def _rejected_spans(response: Response) -> PartialSuccess | None:
    """Return the ``partial_success`` of a 2xx response when it reports rejected spans."""
    if not response.body or "json" in response.content_type:
        return None
    try:
        partial = decode_partial_success(response.body)
    except ValueError:
        logger.debug("dexcost could not read the Control Layer's OTLP response")
        return None
    if partial is None or partial.rejected_spans <= 0:
        return None
    return partial


def _describe(response: Response) -> str:
    """Return the status and the server's message, read from a ``google.rpc.Status`` body."""
    if "protobuf" in response.content_type:
        try:
            text = decode_status_message(response.body)
        except ValueError:
            text = ""
    else:
        text = response.body.decode("utf-8", "replace")
    text = " ".join(text.split())[:200]
    return f"HTTP {response.status}" + (f": {text}" if text else "")
