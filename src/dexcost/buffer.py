"""Durable local buffer: one SQLite file that stores every finished dexcost span.

The writer thread owns a ``Buffer`` and calls ``insert_spans`` with each batch
that the span processor hands over. Rows stay in the file after they are
synced, so ``dexcost status`` and reports can read them later.
"""

from __future__ import annotations

import functools
import getpass
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from itertools import chain
from pathlib import Path
from types import TracebackType
from typing import Final, NamedTuple

from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk.trace import ReadableSpan

from dexcost import errors
from dexcost.buffer_schema import (
    INSERT_SPAN_SQL,
    SCHEMA_VERSION,
    SPAN_COLUMNS,
    SYNC_FAILED,
    SYNC_PENDING,
    SYNC_SYNCED,
    BufferOpenError,
    BufferSchemaError,
    check_not_foreign,
    check_schema_version,
    migrate,
    read_schema_version,
    span_to_row,
)
from dexcost.errors import warn_user

try:
    from opentelemetry.instrumentation.utils import (  # type: ignore[import-not-found, unused-ignore]
        suppress_instrumentation as _otel_suppress_instrumentation,
    )
except ImportError:  # opentelemetry-instrumentation is optional
    _otel_suppress_instrumentation = None  # type: ignore[assignment, unused-ignore]

__all__ = [
    "DEFAULT_MAX_ROWS",
    "DROPPED_EVENTS",
    "EVICTED_EVENTS",
    "INTERNAL_ERRORS",
    "MAX_ROWS_ENV",
    "REJECTED_EVENTS",
    "SCHEMA_VERSION",
    "SYNC_FAILED",
    "SYNC_PENDING",
    "SYNC_ROW_COLUMNS",
    "SYNC_SYNCED",
    "Buffer",
    "BufferOpenError",
    "BufferSchemaError",
    "ModelRateRow",
    "RateRows",
    "ServiceRateRow",
    "default_buffer_path",
    "fallback_buffer_path",
    "max_rows_setting",
    "read_rate_rows",
    "resolve_buffer_path",
    "span_to_row",
    "suppressed_instrumentation",
]

logger = logging.getLogger(__name__)

# Counter names that ``dexcost status`` shows.
DROPPED_EVENTS: Final = "dropped_events"
INTERNAL_ERRORS: Final = "internal_errors"
# Rows deleted before upload to keep the buffer under its row cap.
EVICTED_EVENTS: Final = "evicted_events"
# Spans the Control Layer reported as rejected in an OTLP partial success.
REJECTED_EVENTS: Final = "rejected_events"

# Columns that ``claim_pending`` returns, in row order.
SYNC_ROW_COLUMNS: Final = (
    "id",
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "start_ns",
    "end_ns",
    "status_code",
    "status_message",
    "attributes",
    "resource",
    "scope_name",
    "scope_version",
)
# Row ids travel to SQLite as one JSON array, so a batch of any size is one
# statement and never meets SQLite's limit on bound variables.
_IDS: Final = "SELECT value FROM json_each(?)"

# The row cap: once the buffer contains more rows, the oldest are deleted (see
# ``Buffer.enforce_max_rows``). At about 1.5 KB a row (measured on priced LLM call
# events), the default is roughly 750 MB of buffer.
MAX_ROWS_ENV: Final = "DEXCOST_BUFFER_MAX_ROWS"
DEFAULT_MAX_ROWS: Final = 500_000

# How long a write waits for another connection's lock before failing.
BUSY_TIMEOUT_SECONDS: Final = 5.0

# Rate registry rows, money as exact decimal text. ServiceRateRow is
# (service, per, cost_usd). ModelRateRow is (model, provider, input_per_mtok,
# output_per_mtok, cache_read_per_mtok, cache_write_per_mtok), where provider ''
# means any provider and a missing cache price is None.
ServiceRateRow = tuple[str, str, str]
ModelRateRow = tuple[str, str, str, str, str | None, str | None]

_SELECT_SERVICE_RATES: Final = "SELECT service, per, cost_usd FROM service_rates ORDER BY service"
_SELECT_MODEL_RATES: Final = (
    "SELECT model, provider, input_per_mtok, output_per_mtok, cache_read_per_mtok, "
    "cache_write_per_mtok FROM model_rates ORDER BY model, provider"
)


class RateRows(NamedTuple):
    """Every row of the rate registry, sorted by key, in the column order of the row types.

    Values are as SQLite returned them, unchecked: a row written by another program
    may contain a BLOB, or text that is not a price.
    """

    services: list[tuple[object, ...]]
    models: list[tuple[object, ...]]


def max_rows_setting() -> int:
    """Return the buffer row cap from ``DEXCOST_BUFFER_MAX_ROWS``, or the default.

    Raises ``ValueError`` for a value that is not a whole number of at least 1.
    """
    text = os.environ.get(MAX_ROWS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_ROWS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(
            f"{MAX_ROWS_ENV}={text!r} is invalid; set it to a whole number of rows of at "
            f"least 1, or unset it for the default ({DEFAULT_MAX_ROWS})"
        )
    return value


# --- paths ---


def default_buffer_path() -> Path:
    """Return ``~/.dexcost/buffer.db`` with the user's home expanded."""
    return Path("~", ".dexcost", "buffer.db").expanduser()


def fallback_buffer_path() -> Path:
    """Return the per-user buffer under the system temp folder, used when home is read-only."""
    owner = str(os.getuid()) if hasattr(os, "getuid") else getpass.getuser()
    return Path(tempfile.gettempdir(), f"dexcost-{owner}", "buffer.db")


def _prepare_path(path: Path, *, private: bool = False) -> None:
    """Create the parent folder and prove that SQLite will be able to write there.

    The probe creates a real temporary file, because WAL mode creates ``-wal``
    and ``-shm`` files next to the database, so the folder must be writable too.
    """
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o777)
    if private and hasattr(os, "getuid") and parent.stat().st_uid != os.getuid():
        # A shared temp folder could hold a folder planted by another user.
        raise PermissionError(f"folder {parent} belongs to another user")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a file")
    if path.exists():
        with open(path, "r+b"):
            pass
    with tempfile.TemporaryFile(dir=parent):
        pass


def resolve_buffer_path(buffer_path: str | os.PathLike[str] | None) -> Path:
    """Return the buffer file to use, creating its folder.

    An explicit ``buffer_path`` must work or ``ValueError`` is raised. Without
    one, an unwritable home (common in containers) falls back to a private
    folder under the system temp folder, with a ``RuntimeWarning``.
    """
    if buffer_path is not None:
        path = Path(buffer_path).expanduser()
        try:
            _prepare_path(path)
        except OSError as error:
            raise ValueError(
                f"buffer_path {str(path)!r} cannot be written ({error}). Pass buffer_path= "
                "a file in a folder that this process can create and write"
            ) from error
        return path

    default: Path | str = "~/.dexcost/buffer.db"
    try:
        default = default_buffer_path()  # RuntimeError when no home folder can be found
        _prepare_path(default)
        return default
    except (OSError, RuntimeError) as error:
        default_problem = str(error)

    fallback = fallback_buffer_path()
    try:
        _prepare_path(fallback, private=True)
    except OSError as error:
        raise ValueError(
            f"dexcost cannot write its default buffer {default} ({default_problem}) nor the "
            f"fallback {fallback} ({error}). Pass buffer_path= a file in a writable folder"
        ) from error
    warn_user(
        f"dexcost cannot write its default buffer {default} ({default_problem}), so it "
        f"stores events in {fallback}, which the OS may delete. Pass buffer_path= to "
        "dexcost.init() or make the home folder writable to keep them"
    )
    return fallback


# --- OpenTelemetry suppression ---


@contextmanager
def suppressed_instrumentation() -> Iterator[None]:
    """Suppress OpenTelemetry instrumentation for the block.

    Without this, an app that runs the OTel sqlite3 instrumentation would trace
    dexcost's own buffer writes and send them to its exporter.
    """
    if _otel_suppress_instrumentation is not None:
        with _otel_suppress_instrumentation():
            yield
        return
    token = otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        yield
    finally:
        otel_context.detach(token)


# --- the buffer ---


class Buffer:
    """One SQLite connection to the buffer file, meant for the writer thread.

    A lock serializes calls, so a shutdown path on another thread may still
    call ``close`` safely. Every statement runs with OTel instrumentation
    suppressed and every write in an explicit ``BEGIN IMMEDIATE`` transaction.
    """

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._lock = threading.Lock()
        self._rows_per_statement: int | None = None
        self.path = path

    @classmethod
    def open(cls, path: Path) -> Buffer:
        """Open or create the buffer at ``path``, switch it to WAL and apply migrations.

        Raises ``BufferSchemaError`` for a file written by a newer dexcost, and
        ``BufferOpenError`` when SQLite cannot open the file.
        """
        path = Path(path)
        with suppressed_instrumentation():
            try:
                connection = sqlite3.connect(
                    path,
                    timeout=BUSY_TIMEOUT_SECONDS,
                    isolation_level=None,
                    check_same_thread=False,
                )
            except sqlite3.Error as error:
                raise BufferOpenError(
                    f"cannot open dexcost buffer {path}: {error}. Pass buffer_path= a file "
                    "in a writable folder"
                ) from error
            try:
                connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
                check_not_foreign(connection, path)
                _configure(connection, path)
                migrate(connection, path)
            except sqlite3.Error as error:
                connection.close()
                raise BufferOpenError(
                    f"cannot use {path} as a dexcost buffer: {error}. If another process "
                    "holds it locked, retry; if it is not a dexcost buffer, move it aside "
                    "or pass another buffer_path="
                ) from error
            except BaseException:
                connection.close()
                raise
        return cls(connection, path)

    def insert_spans(self, spans: Sequence[ReadableSpan]) -> int:
        """Store ``spans`` in one transaction and return how many rows were new.

        A span already stored (same end time, trace_id and span_id; same trace_id and
        span_id for a span without an end time) is skipped, so a batch may be retried
        safely. A span that cannot be converted is reported
        through ``errors.log_internal_error`` and skipped, so it cannot lose the
        rest of the batch (with ``RAISE_INTERNAL_ERRORS`` set, it raises instead).
        """
        stored_at = time.time_ns()
        rows = []
        for span in spans:
            try:
                rows.append(span_to_row(span, stored_at))
            except (AttributeError, TypeError, ValueError):
                errors.log_internal_error("converting a span for the buffer")
        return self.insert_rows(rows)

    def insert_rows(self, rows: Sequence[tuple[object, ...]]) -> int:
        """Store rows made by ``span_to_row`` in one transaction, like :meth:`insert_spans`."""
        if not rows:
            return 0
        try:
            with self._transaction() as connection:
                before = connection.total_changes
                self._insert_rows(connection, rows)
                return connection.total_changes - before
        except (OverflowError, ValueError, sqlite3.InterfaceError, sqlite3.IntegrityError):
            # One bad row must not keep the whole batch out of the buffer forever:
            # store the rows one by one and report those SQLite rejects.
            return self._insert_one_by_one(rows)

    def _insert_rows(
        self, connection: sqlite3.Connection, rows: Sequence[tuple[object, ...]]
    ) -> None:
        """Insert ``rows`` with multi-row INSERT statements of a few fixed sizes.

        sqlite3 releases the GIL around every statement step, and executemany steps once
        per row. While application threads keep the GIL busy, the writer then waits up
        to the 5 ms switch interval to get it back after each row. Measured on a 2-core
        machine, 4 recording threads held the writer to ~100 rows/s. Many rows per
        statement make that one wait per statement.

        Preparing a statement costs about 6 µs per row here, so statements are reused:
        a chunk shorter than the full size is padded to a multiple of
        ``_PAD_ROWS`` by repeating its last row. The repeat has the same end time and
        ids, so ``INSERT OR IGNORE`` skips it and it adds no row and no change count.
        """
        per_statement, pad = self._statement_rows(connection)
        for start in range(0, len(rows), per_statement):
            chunk = list(rows[start : start + per_statement])
            short = -len(chunk) % pad
            if short:
                chunk += [chunk[-1]] * short
            connection.execute(_multi_row_insert(len(chunk)), list(chain.from_iterable(chunk)))

    def _statement_rows(self, connection: sqlite3.Connection) -> tuple[int, int]:
        """Return the rows per full statement and the multiple that shorter ones round up to."""
        if self._rows_per_statement is None:
            getlimit = getattr(connection, "getlimit", None)  # Python 3.11+
            limit = 999  # SQLite's variable limit before 3.32, the lowest still in use
            if getlimit is not None:
                limit = int(getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))  # type: ignore[attr-defined]
            self._rows_per_statement = max(1, min(_MAX_STATEMENT_ROWS, limit // len(SPAN_COLUMNS)))
        per_statement = self._rows_per_statement
        pad = min(_PAD_ROWS, per_statement)
        return per_statement - per_statement % pad, pad

    def _insert_one_by_one(self, rows: Sequence[tuple[object, ...]]) -> int:
        stored = 0
        for row in rows:
            try:
                with self._transaction() as connection:
                    before = connection.total_changes
                    connection.execute(INSERT_SPAN_SQL, row)
                    stored += connection.total_changes - before
            except (OverflowError, ValueError, sqlite3.InterfaceError, sqlite3.IntegrityError):
                errors.log_internal_error("storing a span the buffer rejected")
        return stored

    def add_counter(self, name: str, delta: int) -> None:
        """Add ``delta`` to the persistent counter ``name``, creating it at 0 first."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"counter name must be a non-empty string, got {name!r}")
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"counter delta must be an int, got {type(delta).__name__} {delta!r}")
        with self._transaction() as connection:
            connection.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                (name, delta),
            )

    def counters(self) -> dict[str, int]:
        """Return every persistent counter by name."""
        with self._lock, suppressed_instrumentation():
            rows = self._open_connection().execute("SELECT name, value FROM counters").fetchall()
        return {str(name): int(value) for name, value in rows}

    def set_sync_state(self, key: str, value: str | None) -> None:
        """Store a sync bookkeeping value such as ``last_sync_at`` or ``last_sync_error``."""
        with self._transaction() as connection:
            _put_sync_state(connection, key, value, time.time_ns())

    # --- sync bookkeeping, used by the sync worker ---

    def claim_pending(
        self, owner: str, limit: int, lease_seconds: float, *, synced: Sequence[int] = ()
    ) -> list[tuple[object, ...]]:
        """Lease up to ``limit`` pending rows to ``owner`` and return them, oldest first.

        Rows in another owner's lease are skipped until that lease runs out or is
        released. The lease is one ``sync_leases`` row per run of claimed rows between
        other leases, each covering an id range, so claiming writes nothing to the rows
        themselves. The lookup and the lease happen in one
        ``BEGIN IMMEDIATE`` transaction, so two processes never claim the same row at
        once. Rows come in ``SYNC_ROW_COLUMNS`` order.

        ``synced`` rows, delivered since the last claim, are first marked synced as
        ``mark_synced`` with ``owner`` does, in the same transaction: one commit instead
        of two per batch.
        """
        now = time.time_ns()
        with self._transaction() as connection:
            if synced:
                _mark_synced(connection, synced, now)
                _end_finished_leases(connection, owner)
            connection.execute("DELETE FROM sync_leases WHERE expires_ns <= ?", (now,))
            leased = connection.execute(
                "SELECT first_id, last_id FROM sync_leases ORDER BY first_id"
            ).fetchall()
            # Walk the gaps between leases, oldest first (the last gap is open-ended), and
            # lease the pending rows found in each gap with one range.
            claimed: list[tuple[object, ...]] = []
            ranges = []
            low = _INT64_MIN
            for first_id, last_id in [*leased, (None, None)]:
                high = _INT64_MAX if first_id is None else int(first_id) - 1
                if low <= high:
                    rows = connection.execute(
                        _CLAIM_SQL, (SYNC_PENDING, low, high, limit - len(claimed))
                    ).fetchall()
                    if rows:
                        claimed += rows
                        ranges.append((rows[0][0], rows[-1][0]))
                        if len(claimed) >= limit:
                            break
                if last_id is not None:
                    low = max(low, int(last_id) + 1)
            expires = now + int(lease_seconds * 1e9)
            connection.executemany(
                _INSERT_LEASE,
                [(first, last, owner, expires) for first, last in ranges],
            )
        return claimed

    def mark_synced(
        self,
        ids: Sequence[int],
        *,
        synced_at_ns: int | None = None,
        owner: str | None = None,
    ) -> None:
        """Mark rows delivered, and store the time as ``last_sync_at`` with no error.

        With ``owner``, that owner's leases with no pending row left are ended too.
        """
        now = time.time_ns() if synced_at_ns is None else synced_at_ns
        with self._transaction() as connection:
            _mark_synced(connection, ids, now)
            if owner is not None:
                _end_finished_leases(connection, owner)

    def mark_failed(self, ids: Sequence[int], reason: str, *, owner: str | None = None) -> None:
        """Mark rows the Control Layer refused as failed, keeping them and the reason.

        With ``owner``, that owner's leases with no pending row left are ended too.
        """
        with self._transaction() as connection:
            connection.execute(
                f"UPDATE spans SET sync_state = ?, sync_error = ? WHERE id IN ({_IDS})",
                (SYNC_FAILED, reason, _json_ids(ids)),
            )
            if owner is not None:
                _end_finished_leases(connection, owner)

    def release(self, ids: Sequence[int], owner: str) -> None:
        """End ``owner``'s lease on rows that stay pending, so any worker may claim them.

        A lease that also covers rows not in ``ids`` is cut down to the runs of its
        other pending rows, so those stay leased.
        """
        if not ids:
            return
        released = {int(row_id) for row_id in ids}
        with self._transaction() as connection:
            leases = connection.execute(
                "SELECT rowid, first_id, last_id, expires_ns FROM sync_leases "
                "WHERE owner = ? AND last_id >= ? AND first_id <= ?",
                (owner, min(released), max(released)),
            ).fetchall()
            for lease_id, first_id, last_id, expires_ns in leases:
                pending = [
                    int(row_id)
                    for (row_id,) in connection.execute(
                        "SELECT id FROM spans WHERE sync_state = ? AND id BETWEEN ? AND ? "
                        "ORDER BY id",
                        (SYNC_PENDING, first_id, last_id),
                    )
                ]
                connection.execute("DELETE FROM sync_leases WHERE rowid = ?", (lease_id,))
                connection.executemany(
                    _INSERT_LEASE,
                    [
                        (run[0], run[-1], owner, expires_ns)
                        for run in _runs_without(pending, released)
                    ],
                )

    def count_pending(self, limit: int | None = None) -> int:
        """Return how many rows wait for upload, counting at most ``limit`` of them."""
        with self._lock, suppressed_instrumentation():
            row = (
                self._open_connection()
                .execute(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM spans WHERE sync_state = ? LIMIT ?)",
                    (SYNC_PENDING, -1 if limit is None else limit),
                )
                .fetchone()
            )
        return int(row[0])

    def sync_counts(self) -> dict[str, int]:
        """Return the number of pending, synced and failed rows, tasks included."""
        with self._lock, suppressed_instrumentation():
            rows = (
                self._open_connection()
                .execute("SELECT sync_state, COUNT(*) FROM spans GROUP BY sync_state")
                .fetchall()
            )
        counts = dict(rows)
        return {
            "pending": int(counts.get(SYNC_PENDING, 0)),
            "synced": int(counts.get(SYNC_SYNCED, 0)),
            "failed": int(counts.get(SYNC_FAILED, 0)),
        }

    def sync_state(self) -> dict[str, str | None]:
        """Return the sync bookkeeping values by key."""
        with self._lock, suppressed_instrumentation():
            rows = self._open_connection().execute("SELECT key, value FROM sync_state").fetchall()
        return {str(key): value for key, value in rows}

    def enforce_max_rows(self, max_rows: int, keep_fraction: float = 0.9) -> int:
        """Delete rows while the buffer contains over ``max_rows``, and return how many were unsent.

        Once over the cap, rows are deleted down to ``keep_fraction`` of it, so the
        next inserts do not trigger another pass at once. Synced rows go first,
        oldest first, then failed ones, then pending ones. Every deleted row that
        was never delivered is added to the ``evicted_events`` counter in the same
        transaction, so no loss goes uncounted.
        """
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows!r}")
        with self._transaction() as connection:
            total = int(connection.execute("SELECT COUNT(*) FROM spans").fetchone()[0])
            if total <= max_rows:
                return 0
            excess = total - int(max_rows * keep_fraction)
            evicted = 0
            for state in (SYNC_SYNCED, SYNC_FAILED, SYNC_PENDING):
                if excess <= 0:
                    break
                cursor = connection.execute(
                    "DELETE FROM spans WHERE id IN "
                    "(SELECT id FROM spans WHERE sync_state = ? ORDER BY id LIMIT ?)",
                    (state, excess),
                )
                excess -= cursor.rowcount
                if state != SYNC_SYNCED:
                    evicted += cursor.rowcount
            if evicted:
                connection.execute(
                    "INSERT INTO counters (name, value) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                    (EVICTED_EVENTS, evicted),
                )
        return evicted

    def rate_rows(self) -> RateRows:
        """Return the rows of the rate registry as stored, unchecked."""
        with self._lock, suppressed_instrumentation():
            return _select_rate_rows(self._open_connection())

    def merge_rates(
        self, services: Sequence[ServiceRateRow], models: Sequence[ModelRateRow]
    ) -> None:
        """Store rate rows in one transaction, replacing rows with the same key.

        The key is the service, or the model with its provider. Other rows stay,
        and any failure leaves the registry as it was.
        """
        now = time.time_ns()
        with self._transaction() as connection:
            connection.executemany(
                "INSERT INTO service_rates (service, per, cost_usd, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (service) DO UPDATE SET per = excluded.per, "
                "cost_usd = excluded.cost_usd, updated_at = excluded.updated_at",
                [(*row, now) for row in services],
            )
            connection.executemany(
                "INSERT INTO model_rates (model, provider, input_per_mtok, output_per_mtok, "
                "cache_read_per_mtok, cache_write_per_mtok, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (model, provider) DO UPDATE SET "
                "input_per_mtok = excluded.input_per_mtok, "
                "output_per_mtok = excluded.output_per_mtok, "
                "cache_read_per_mtok = excluded.cache_read_per_mtok, "
                "cache_write_per_mtok = excluded.cache_write_per_mtok, "
                "updated_at = excluded.updated_at",
                [(*row, now) for row in models],
            )

    def close(self) -> None:
        """Close the connection. Later calls do nothing."""
        with self._lock:
            if self._connection is None:
                return
            with suppressed_instrumentation():
                self._connection.close()
            self._connection = None

    def __enter__(self) -> Buffer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _open_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError(f"buffer {self.path} is closed; open a new one with Buffer.open")
        return self._connection

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, suppressed_instrumentation():
            connection = self._open_connection()
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")


def read_rate_rows(path: Path) -> RateRows:
    """Read the rate registry of the buffer at ``path`` without changing the file.

    The file is opened read-only and never migrated, so an application running an
    older dexcost can keep writing it. A buffer from before the registry existed
    (schema version 1) has no rates. Raises BufferOpenError for a missing file or
    one SQLite cannot read, and BufferSchemaError for a file that is not a dexcost
    buffer or comes from a newer dexcost.
    """
    path = Path(path)
    if not path.is_file():
        raise BufferOpenError(
            f"no dexcost buffer at {path}: nothing has been stored there yet. Import rates "
            "with dexcost rates --import FILE, or pass --db (or set DEXCOST_BUFFER_PATH) to "
            "read another buffer"
        )
    # mode=ro never creates the database file; as_uri() escapes '?' and '#' in the path.
    uri = path.resolve().as_uri() + "?mode=ro"
    with suppressed_instrumentation():
        try:
            connection = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS)
        except sqlite3.Error as error:
            raise BufferOpenError(f"cannot open dexcost buffer {path}: {error}") from error
        try:
            version = read_schema_version(connection)
            check_schema_version(version, path)
            if version == 0:
                raise BufferSchemaError(
                    f"{path} is not a dexcost buffer: it has no dexcost schema. Pass --db the "
                    "buffer file that dexcost.init() writes"
                )
            if version < 2:
                return RateRows([], [])
            return _select_rate_rows(connection)
        except sqlite3.Error as error:
            raise BufferOpenError(
                f"cannot read the rates in {path}: {error}. Check that this user can read "
                "the file and write its folder, because SQLite creates a -shm file beside "
                "a WAL database"
            ) from error
        finally:
            connection.close()


_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

# Pending rows with ids in [?2, ?3], oldest first. The spans_sync_state index holds
# (sync_state, id), so this reads only the rows it returns.
_CLAIM_SQL: Final = (
    f"SELECT {', '.join(SYNC_ROW_COLUMNS)} FROM spans "
    "WHERE sync_state = ?1 AND id BETWEEN ?2 AND ?3 ORDER BY id LIMIT ?4"
)


_INSERT_LEASE: Final = (
    "INSERT INTO sync_leases (first_id, last_id, owner, expires_ns) VALUES (?, ?, ?, ?)"
)


def _mark_synced(connection: sqlite3.Connection, ids: Sequence[int], now_ns: int) -> None:
    """Mark rows delivered and store ``now_ns`` as ``last_sync_at``, clearing the error."""
    connection.execute(
        f"UPDATE spans SET sync_state = ?, synced_at = ?, sync_error = NULL WHERE id IN ({_IDS})",
        (SYNC_SYNCED, now_ns, _json_ids(ids)),
    )
    # Both keys in one statement, because each statement releases the GIL and then has
    # to wait to take it back.
    connection.execute(
        "INSERT INTO sync_state (key, value, updated_at) VALUES ('last_sync_at', ?, ?), "
        "('last_sync_error', NULL, ?) ON CONFLICT (key) DO UPDATE SET "
        "value = excluded.value, updated_at = excluded.updated_at",
        (_iso_utc(now_ns), now_ns, now_ns),
    )


def _end_finished_leases(connection: sqlite3.Connection, owner: str) -> None:
    """Delete ``owner``'s leases whose ranges hold no pending row any more."""
    connection.execute(
        "DELETE FROM sync_leases WHERE owner = ? AND NOT EXISTS (SELECT 1 FROM spans "
        "WHERE sync_state = ? AND id BETWEEN sync_leases.first_id AND sync_leases.last_id)",
        (owner, SYNC_PENDING),
    )


def _runs_without(ordered: Sequence[int], removed: set[int]) -> list[list[int]]:
    """Split ``ordered`` into the runs of consecutive items between the removed ones."""
    runs: list[list[int]] = [[]]
    for item in ordered:
        if item in removed:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(item)
    return [run for run in runs if run]


def _json_ids(ids: Sequence[int]) -> str:
    return "[" + ",".join(str(int(row_id)) for row_id in ids) + "]"


def _iso_utc(unix_ns: int) -> str:
    moment = datetime.fromtimestamp(unix_ns / 1e9, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _put_sync_state(
    connection: sqlite3.Connection, key: str, value: str | None, now_ns: int
) -> None:
    connection.execute(
        "INSERT INTO sync_state (key, value, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
        "updated_at = excluded.updated_at",
        (key, value, now_ns),
    )


def _select_rate_rows(connection: sqlite3.Connection) -> RateRows:
    services = connection.execute(_SELECT_SERVICE_RATES).fetchall()
    models = connection.execute(_SELECT_MODEL_RATES).fetchall()
    return RateRows(services, models)


# Rows per INSERT statement: at most this many, and a multiple of _PAD_ROWS, so a
# writer uses at most _MAX_STATEMENT_ROWS / _PAD_ROWS distinct statements.
_MAX_STATEMENT_ROWS: Final = 512
_PAD_ROWS: Final = 32


@functools.lru_cache(maxsize=2 * _MAX_STATEMENT_ROWS // _PAD_ROWS)
def _multi_row_insert(row_count: int) -> str:
    placeholders = "(" + ", ".join("?" for _ in SPAN_COLUMNS) + ")"
    return (
        f"INSERT OR IGNORE INTO spans ({', '.join(SPAN_COLUMNS)}) "
        f"VALUES {', '.join(placeholders for _ in range(row_count))}"
    )


def _configure(connection: sqlite3.Connection, path: Path) -> None:
    # busy_timeout goes first so that the journal-mode switch waits for other writers.
    connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
    mode = _enable_wal(connection)
    if mode.lower() != "wal":
        # SQLite returns the previous mode when it cannot switch (an in-memory
        # database, for one); the buffer still works, only with slower commits.
        logger.warning("dexcost buffer %s is in journal mode %r, not WAL", path, mode)
    # With WAL, NORMAL skips the fsync on each commit but keeps the file consistent,
    # so a power cut may lose the last commits (SQLite docs, PRAGMA synchronous).
    connection.execute("PRAGMA synchronous = NORMAL")


def _enable_wal(connection: sqlite3.Connection) -> str:
    """Switch to WAL and return the journal mode now in force, retrying while locked.

    With SQLite 3.40, a switch that races another connection opening the same
    new file fails at once with "database is locked", without waiting for
    busy_timeout, so this loop provides the wait.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            return str(connection.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
