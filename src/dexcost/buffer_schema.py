"""SQLite schema of the local buffer, its migrations and the span-to-row conversion.

The schema version lives in ``PRAGMA user_version``. ``MIGRATIONS[i]`` moves a
database from version ``i`` to ``i + 1``, so a new release appends a migration
and never edits an old one: files written by older releases then upgrade in
place, step by step.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from dexcost import semconv
from dexcost._version import __version__

logger = logging.getLogger(__name__)

# spans.sync_state values.
SYNC_PENDING: Final = 0
SYNC_SYNCED: Final = 1
SYNC_FAILED: Final = 2

# Columns that ``span_to_row`` fills, in row order. ``id``, ``sync_state`` and
# ``synced_at`` are left to their defaults on insert.
SPAN_COLUMNS: Final = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "start_ns",
    "end_ns",
    "status_code",
    "status_message",
    "event_type",
    "task_id",
    "task_type",
    "customer_id",
    "project_id",
    "agent",
    "cost_usd",
    "cost_status",
    "provider",
    "model",
    "service",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "reasoning_tokens",
    "attributes",
    "resource",
    "scope_name",
    "scope_version",
    "created_at",
)

INSERT_SPAN_SQL: Final = (
    f"INSERT OR IGNORE INTO spans ({', '.join(SPAN_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in SPAN_COLUMNS)})"
)

# Money is TEXT containing an exact decimal string, never REAL, so sums done in
# Python with Decimal stay exact to the last digit.
_MIGRATION_1: Final = (
    """
    CREATE TABLE spans (
        id INTEGER PRIMARY KEY,
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        parent_span_id TEXT,
        name TEXT NOT NULL,
        kind INTEGER NOT NULL,
        start_ns INTEGER,
        end_ns INTEGER,
        status_code INTEGER NOT NULL,
        status_message TEXT,
        event_type TEXT,
        task_id TEXT,
        task_type TEXT,
        customer_id TEXT,
        project_id TEXT,
        agent TEXT,
        cost_usd TEXT,
        cost_status TEXT,
        provider TEXT,
        model TEXT,
        service TEXT,
        input_tokens INTEGER,
        output_tokens INTEGER,
        cache_read_tokens INTEGER,
        reasoning_tokens INTEGER,
        attributes TEXT NOT NULL,
        resource TEXT NOT NULL,
        scope_name TEXT,
        scope_version TEXT,
        sync_state INTEGER NOT NULL DEFAULT 0 CHECK (sync_state IN (0, 1, 2)),
        synced_at INTEGER,
        created_at INTEGER NOT NULL,
        UNIQUE (trace_id, span_id)
    )
    """,
    "CREATE INDEX spans_sync_state ON spans (sync_state)",
    "CREATE INDEX spans_event_type_end ON spans (event_type, end_ns)",
    "CREATE INDEX spans_end_ns ON spans (end_ns)",
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    # Written by the sync worker: last_sync_at (ISO-8601 UTC) and last_sync_error.
    """
    CREATE TABLE sync_state (
        key TEXT PRIMARY KEY,
        value TEXT,
        updated_at INTEGER NOT NULL
    )
    """,
)

# The rate registry that `dexcost rates --import` fills and `dexcost.init()` loads.
# Prices are exact decimal TEXT, like money in spans. model_rates uses '' for
# "any provider" because SQLite treats NULLs in a primary key as distinct, which
# would allow two provider-less rows for one model.
_MIGRATION_2: Final = (
    """
    CREATE TABLE service_rates (
        service TEXT PRIMARY KEY CHECK (service <> ''),
        per TEXT NOT NULL,
        cost_usd TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE model_rates (
        model TEXT NOT NULL CHECK (model <> ''),
        provider TEXT NOT NULL DEFAULT '',
        input_per_mtok TEXT NOT NULL,
        output_per_mtok TEXT NOT NULL,
        cache_read_per_mtok TEXT,
        cache_write_per_mtok TEXT,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (model, provider)
    )
    """,
)

# What the sync worker needs. A worker leases the rows it uploads (lease_owner,
# lease_expires_ns) inside one BEGIN IMMEDIATE transaction, so processes sharing a
# buffer never upload one row at the same time, and a lease left by a killed
# process runs out. sync_error keeps why the Control Layer refused a failed row.
# Pending rows are found through the spans_sync_state index, whose entries are in
# id order within each state.
_MIGRATION_3: Final = (
    "ALTER TABLE spans ADD COLUMN lease_owner TEXT",
    "ALTER TABLE spans ADD COLUMN lease_expires_ns INTEGER",
    "ALTER TABLE spans ADD COLUMN sync_error TEXT",
)

# Leases as id ranges. Writing lease_owner and lease_expires_ns into every claimed row
# made SQLite rewrite each ~1.5 KB row twice per upload (lease, then synced). A lease
# is now one row here: ``owner`` may upload the pending spans with first_id <= id <=
# last_id until expires_ns. Ranges never overlap, and each is taken inside one BEGIN
# IMMEDIATE transaction, so two processes still never upload one row at once. The
# per-row lease columns stay for files shared with an older release, unused.
_MIGRATION_4: Final = (
    """
    CREATE TABLE sync_leases (
        first_id INTEGER NOT NULL,
        last_id INTEGER NOT NULL,
        owner TEXT NOT NULL,
        expires_ns INTEGER NOT NULL,
        CHECK (first_id <= last_id)
    )
    """,
)

# Spans are unique by (end_ns, trace_id, span_id) instead of (trace_id, span_id). Random
# ids put each new index entry at a random place, which made inserts into a 200,000-row
# buffer twice as slow as into a new one. End times grow with the clock, so new entries
# now go at the end of the index, and a retried span still matches (same ids and end
# time). SQLite never finds two NULL end times equal, so a span without one is matched
# by its ids, through an index that stays empty in practice. The new key starts with
# end_ns, so it replaces the end_ns index. SQLite cannot drop a table constraint, so the
# table is rebuilt with every row and id, and the key becomes an index that a later
# release can drop. Version 4 kept the ids of its rows unique, so the new unique indexes
# cannot fail to build.
_MIGRATION_5: Final = (
    """
    CREATE TABLE spans_v5 (
        id INTEGER PRIMARY KEY,
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        parent_span_id TEXT,
        name TEXT NOT NULL,
        kind INTEGER NOT NULL,
        start_ns INTEGER,
        end_ns INTEGER,
        status_code INTEGER NOT NULL,
        status_message TEXT,
        event_type TEXT,
        task_id TEXT,
        task_type TEXT,
        customer_id TEXT,
        project_id TEXT,
        agent TEXT,
        cost_usd TEXT,
        cost_status TEXT,
        provider TEXT,
        model TEXT,
        service TEXT,
        input_tokens INTEGER,
        output_tokens INTEGER,
        cache_read_tokens INTEGER,
        reasoning_tokens INTEGER,
        attributes TEXT NOT NULL,
        resource TEXT NOT NULL,
        scope_name TEXT,
        scope_version TEXT,
        sync_state INTEGER NOT NULL DEFAULT 0 CHECK (sync_state IN (0, 1, 2)),
        synced_at INTEGER,
        created_at INTEGER NOT NULL,
        lease_owner TEXT,
        lease_expires_ns INTEGER,
        sync_error TEXT
    )
    """,
    # The columns match the version 4 table one for one and spans_v5 has no index yet,
    # so SQLite copies each stored record as it is (its "transfer optimization"). That
    # took 1.3 s for 200,000 rows here, and 4 s with the columns named.
    "INSERT INTO spans_v5 SELECT * FROM spans",
    # Dropping the table drops its indexes with it.
    "DROP TABLE spans",
    "ALTER TABLE spans_v5 RENAME TO spans",
    "CREATE UNIQUE INDEX spans_end_ids ON spans (end_ns, trace_id, span_id)",
    "CREATE UNIQUE INDEX spans_unended_ids ON spans (trace_id, span_id) WHERE end_ns IS NULL",
    "CREATE INDEX spans_sync_state ON spans (sync_state)",
    "CREATE INDEX spans_event_type_end ON spans (event_type, end_ns)",
)

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    _MIGRATION_1,
    _MIGRATION_2,
    _MIGRATION_3,
    _MIGRATION_4,
    _MIGRATION_5,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)


class BufferOpenError(RuntimeError):
    """Raised when SQLite cannot open, configure or migrate a buffer file."""


class BufferSchemaError(BufferOpenError):
    """Raised when a buffer file has a schema this release cannot read or write."""


def read_schema_version(connection: sqlite3.Connection) -> int:
    """Return the buffer schema version stored in ``PRAGMA user_version``."""
    row = connection.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def check_schema_version(found: int, path: Path) -> None:
    """Raise ``BufferSchemaError`` when ``found`` is newer than this release's schema."""
    if found > SCHEMA_VERSION:
        raise BufferSchemaError(
            f"buffer {path} has schema version {found}, but dexcost {__version__} supports "
            f"versions up to {SCHEMA_VERSION}. Upgrade dexcost (pip install -U dexcost), "
            "or pass another buffer_path= to keep this file as it is"
        )


# Tables that the migrations create; SQLite's own tables start with "sqlite_". Every
# migration's tables belong here: check_not_foreign reads the version and the tables
# outside a transaction, so it can see version 0 and then the tables of a racing
# process that has just migrated the same new file.
DEXCOST_TABLES = frozenset(
    {"spans", "counters", "sync_state", "service_rates", "model_rates", "sync_leases"}
)


def check_not_foreign(connection: sqlite3.Connection, path: Path) -> None:
    """Raise BufferSchemaError if ``path`` is another application's SQLite database.

    Runs before the buffer changes anything (journal mode, tables), so a mistyped
    ``buffer_path`` can never alter someone else's database.
    """
    if read_schema_version(connection) != 0:
        return
    tables = {
        name
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    }
    foreign = sorted(tables - DEXCOST_TABLES)
    if foreign:
        raise BufferSchemaError(
            f"{path} is not a dexcost buffer: it is a SQLite database with other tables "
            f"({', '.join(foreign[:5])}). Pass a buffer_path= of its own"
        )


def migrate(connection: sqlite3.Connection, path: Path) -> int:
    """Apply the pending migrations and return the schema version now in force.

    The connection must be in autocommit mode (``isolation_level=None``). Each
    step runs in its own ``BEGIN IMMEDIATE`` transaction and re-reads the
    version inside it, so two processes opening a new file at once apply each
    migration only once. A process that finds a migration pending waits up to
    ``MIGRATION_WAIT_SECONDS`` for the write lock, because another process may be
    rebuilding a large table under it.
    """
    found = read_schema_version(connection)
    check_schema_version(found, path)
    if found == SCHEMA_VERSION:
        # The version never goes down, so a current file needs no write lock.
        return found
    deadline = time.monotonic() + MIGRATION_WAIT_SECONDS
    while True:
        _begin_immediate(connection, deadline)
        try:
            version = read_schema_version(connection)
            check_schema_version(version, path)
            if version == SCHEMA_VERSION:
                connection.execute("COMMIT")
                return version
            started = time.monotonic()
            for statement in MIGRATIONS[version]:
                connection.execute(statement)
            # user_version is part of the file header, so it commits or rolls
            # back together with the statements above.
            connection.execute(f"PRAGMA user_version = {version + 1}")
            connection.execute("COMMIT")
            if version > 0:
                logger.info(
                    "dexcost upgraded buffer %s to schema version %d in %.1f s",
                    path,
                    version + 1,
                    time.monotonic() - started,
                )
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise


# How long ``migrate`` waits for another connection's write lock. Rebuilding the spans
# table of a 200,000-row buffer (migration 5) held it for 6.7-8.9 s on a 2-core machine.
MIGRATION_WAIT_SECONDS: Final = 120.0


def _begin_immediate(connection: sqlite3.Connection, deadline: float) -> None:
    """Start a write transaction, retrying while another connection holds the lock."""
    while True:
        try:
            connection.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise


# --- span conversion ---


def _text(value: object) -> str | None:
    if value is None or isinstance(value, (list, tuple)):
        return None
    return value if isinstance(value, str) else str(value)


# SQLite INTEGER is a signed 64-bit value; sqlite3 raises OverflowError past it.
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def _integer(value: object) -> int | None:
    """Return ``value`` as an int column value, or None when it is not one SQLite can hold.

    An out-of-range count (a provider bug) stays in the ``attributes`` JSON, which
    stores integers of any size.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX:
        return value
    return None


def _decimal_text(value: object) -> str | None:
    """Return ``value`` as an exact decimal string, or None when it is not a finite number."""
    if value is None or isinstance(value, (bool, list, tuple)):
        return None
    text = value.strip() if isinstance(value, str) else str(value)
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    return text if amount.is_finite() else None


@functools.lru_cache(maxsize=256)
def _decimal_str(value: str) -> str | None:
    """Return ``_decimal_text(value)`` for a string, caching recent results.

    Calls of one model with the same token counts cost the same, so a few strings
    recur. Checking one with Decimal takes about 0.5 us, and a cache hit under 0.1 us.
    """
    return _decimal_text(value)


def _json_ready(value: object) -> object:
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or Infinity
    return value


def _make_encoder() -> Callable[[object, int], Sequence[str]] | None:
    """Return the C JSON encoder that ``json.dumps`` builds on every call, built once.

    ``json.dumps`` constructs a new encoder object per call, which costs about a third
    of the time of serializing a span's attributes. The arguments give the same text
    as ``json.dumps(..., sort_keys=True, ensure_ascii=False, allow_nan=False,
    default=str)``, without the circular-reference check: attribute values are strings,
    numbers, booleans and sequences of them, which cannot contain themselves. None when
    the interpreter has no C accelerator for ``json``.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    return make(  # type: ignore[no-any-return]
        None, str, json.encoder.encode_basestring, None, ": ", ", ", True, False, False
    )


_encode: Final = _make_encoder()


def _to_json(attributes: Mapping[str, object] | None) -> str:
    """Serialize attributes as a JSON object, with tuples as lists and NaN as "nan"."""
    plain = attributes if type(attributes) is dict else dict(attributes or {})
    try:
        # Fast path: json writes tuples as lists itself, so only NaN and
        # infinity, which JSON cannot express, need the slower copy below.
        if _encode is not None:
            return "".join(_encode(plain, 0))
        return json.dumps(plain, sort_keys=True, ensure_ascii=False, allow_nan=False, default=str)
    except ValueError:
        ready = {key: _json_ready(value) for key, value in plain.items()}
        return json.dumps(ready, sort_keys=True, ensure_ascii=False, default=str)


def _resource_json(resource: Resource) -> str:
    """Serialize resource attributes, reusing the text for the resource object seen last.

    Every span of one TracerProvider shares one Resource object, so one
    serialization serves a whole batch.
    """
    global _last_resource
    cached = _last_resource
    if cached is not None and cached[0] is resource:
        return cached[1]
    text = _to_json(resource.attributes)
    _last_resource = (resource, text)
    return text


_last_resource: tuple[Resource, str] | None = None

# Attributes copied to text and integer columns, in SPAN_COLUMNS order.
_TEXT_KEYS: Final = (
    semconv.TASK_ID,
    semconv.TASK_TYPE,
    semconv.CUSTOMER_ID,
    semconv.PROJECT_ID,
    semconv.AGENT,
)
_TOKEN_KEYS: Final = (
    semconv.GEN_AI_INPUT_TOKENS,
    semconv.GEN_AI_OUTPUT_TOKENS,
    semconv.GEN_AI_CACHE_READ_TOKENS,
    semconv.GEN_AI_REASONING_TOKENS,
)


def _plain_attributes(attributes: Mapping[str, object] | None) -> dict[str, object]:
    """Return a plain dict copy of span attributes.

    ``ReadableSpan.attributes`` wraps the span's own mapping in a read-only proxy. For a
    dict, the proxy's ``copy()`` is one C-level copy; ``dict(proxy)`` would go through
    the generic mapping protocol, key by key. The SDK's ``BoundedAttributes`` has no
    ``copy()``, and every lookup on it takes a lock, so it is copied once the slow way.
    """
    if attributes is None:
        return {}
    try:
        copied = attributes.copy()  # type: ignore[attr-defined]
    except AttributeError:
        return dict(attributes)
    return copied if type(copied) is dict else dict(copied)


def span_to_row(span: ReadableSpan, stored_at_ns: int | None = None) -> tuple[Any, ...]:
    """Convert a finished span to a ``spans`` row, in ``buffer_schema.SPAN_COLUMNS`` order.

    ``stored_at_ns`` fills ``created_at`` and defaults to now. Raises
    ``ValueError`` for a span without a span context.
    """
    span_context = span.context
    if span_context is None:
        raise ValueError(f"span {span.name!r} has no span context")
    parent = span.parent
    status = span.status
    scope = span.instrumentation_scope
    return row_of(
        span_context.trace_id,
        span_context.span_id,
        None if parent is None else parent.span_id,
        span.name,
        # _value_ is the member's value without the descriptor that .value goes through.
        span.kind._value_,
        span.start_time,
        span.end_time,
        status.status_code._value_,
        status.description,
        _plain_attributes(span.attributes),
        span.resource,
        scope,
        stored_at_ns,
    )


def row_of(
    trace_id: int,
    span_id: int,
    parent_span_id: int | None,
    name: str,
    kind: int,
    start_ns: int | None,
    end_ns: int | None,
    status_code: int,
    status_message: str | None,
    attributes: Mapping[str, object],
    resource: Resource,
    scope: InstrumentationScope | None,
    stored_at_ns: int | None = None,
) -> tuple[Any, ...]:
    """Build a ``spans`` row from a span's parts; ``attributes`` is a plain dict.

    The writer thread runs this for every span while the application's threads hold
    the GIL most of the time, so the common case (string and int values) is checked
    inline and only other types go through ``_text`` and ``_integer``.
    """
    get = attributes.get
    texts: list[object] = [get(key) for key in _TEXT_KEYS]
    for value in texts:
        if value is not None and type(value) is not str:
            texts = [_text(item) for item in texts]
            break
    tokens: list[object] = [get(key) for key in _TOKEN_KEYS]
    for value in tokens:
        if value is not None and (type(value) is not int or not _INT64_MIN <= value <= _INT64_MAX):
            tokens = [_integer(item) for item in tokens]
            break
    event_type = get(semconv.EVENT_TYPE)
    if event_type is not None and type(event_type) is not str:
        event_type = _text(event_type)
    cost = get(semconv.COST_USD)
    if event_type == semconv.TASK and semconv.TASK_COST_USD in attributes:
        cost = attributes[semconv.TASK_COST_USD]
    model = get(semconv.GEN_AI_RESPONSE_MODEL)
    if type(model) is not str:
        model = _text(model)
    if not model:
        model = _text(get(semconv.GEN_AI_REQUEST_MODEL))
    cost_status = get(semconv.COST_STATUS)
    provider = get(semconv.GEN_AI_PROVIDER_NAME)
    service = get(semconv.SERVICE)
    return (
        # %-formatting gives the same text as format() in half the time (0.13 us).
        "%032x" % trace_id,  # noqa: UP031
        "%016x" % span_id,  # noqa: UP031
        None if parent_span_id is None else "%016x" % parent_span_id,  # noqa: UP031
        name,
        kind,
        start_ns,
        end_ns,
        status_code,
        status_message,
        event_type,
        *texts,
        _decimal_str(cost) if type(cost) is str else _decimal_text(cost),
        cost_status if type(cost_status) is str else _text(cost_status),
        provider if type(provider) is str else _text(provider),
        model,
        service if type(service) is str else _text(service),
        *tokens,
        _to_json(attributes),
        _resource_json(resource),
        None if scope is None else scope.name,
        None if scope is None else scope.version,
        time.time_ns() if stored_at_ns is None else stored_at_ns,
    )
