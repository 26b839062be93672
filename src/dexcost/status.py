"""Data behind ``dexcost status``: what the local buffer contains and how dexcost is set up.

The buffer is opened read-only, so running ``status`` never creates, migrates
or locks the file that a running app writes to.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import sqlite3
from collections.abc import Mapping
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

from dexcost import semconv
from dexcost._version import __version__
from dexcost.buffer import (
    DROPPED_EVENTS,
    EVICTED_EVENTS,
    INTERNAL_ERRORS,
    REJECTED_EVENTS,
    SYNC_FAILED,
    SYNC_PENDING,
    SYNC_SYNCED,
    suppressed_instrumentation,
)
from dexcost.buffer_schema import SCHEMA_VERSION, read_schema_version

logger = logging.getLogger(__name__)

# Distribution names of the LLM SDKs that status reports. They are looked up in
# the installed package metadata, never imported.
LLM_SDK_DISTRIBUTIONS: Final = (
    "openai",
    "anthropic",
    "litellm",
    "google-genai",
    "boto3",
    "cohere",
    "mistralai",
    "groq",
    "ollama",
)

# Same prefixes and minimum length that DexcostConfig accepts.


class StatusError(Exception):
    """Raised when the buffer cannot be read. Its message is written for the user."""


def collect_status(db_path: Path) -> dict[str, Any]:
    """Read the buffer at ``db_path`` and the environment into a JSON-ready dict.

    Raises ``StatusError`` when the file is missing or is not a dexcost buffer.
    """
    db_path = Path(db_path)
    counts = _read_buffer(db_path)
    storage_mode, key_type = storage_settings(os.environ)
    return {
        "db_path": str(db_path),
        **counts,
        "pricing_version": pricing_version(),
        "storage_mode": storage_mode,
        "key_type": key_type,
        "sdk_versions": installed_sdk_versions(),
    }


def storage_settings(environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """Return ``(storage_mode, key_type)`` as ``dexcost.init()`` would derive them from env.

    ``key_type`` is ``live``, ``test``, ``invalid`` or None without a key. For an
    invalid key ``init()`` raises, so ``storage_mode`` is None. Arguments passed
    to ``init()`` in code (``api_key=``, ``storage="local"``) are not visible here.
    """
    from dexcost.config import DexcostConfig

    key = environ.get("DEXCOST_API_KEY", "").strip()
    environment = environ.get("DEXCOST_ENV", "").strip() or None
    try:
        # The same validation and rules as init(), on the given environment only.
        # Options that do not bear on the key are fixed, so a bad value of their
        # variables is not reported as a bad key.
        config = DexcostConfig(
            api_key=key or None,
            environment=environment,
            buffer_path="-",
            export_to_otel=False,
            price_genai_spans=False,
        )
    except (TypeError, ValueError) as error:
        if str(error).startswith("DEXCOST_ENDPOINT"):
            # The key is fine; init() would reject the endpoint instead.
            key_type = {"dx_live_": "live", "dx_test_": "test"}.get(key[:8]) if key else None
            return None, key_type
        return None, "invalid"
    return config.storage_mode, config.key_type


def pricing_version() -> str | None:
    """Return the version of the model price table, or None when none is installed."""
    try:
        pricing = importlib.import_module("dexcost.pricing")
    except ImportError:
        pricing = None
    read_pricing_version = getattr(pricing, "pricing_version", None)
    if callable(read_pricing_version):
        try:
            return str(read_pricing_version())
        except Exception:  # status must still print every other line
            logger.debug("dexcost.pricing.pricing_version() failed", exc_info=True)
    try:
        return importlib.metadata.version("genai-prices")
    except importlib.metadata.PackageNotFoundError:
        return None


def installed_sdk_versions() -> dict[str, str]:
    """Return the installed version of each known LLM SDK distribution."""
    versions = {}
    for name in LLM_SDK_DISTRIBUTIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _iso_utc(unix_ns: int | None) -> str | None:
    if unix_ns is None:
        return None
    try:
        moment = datetime.fromtimestamp(unix_ns // 1_000_000_000, tz=timezone.utc)
    except (OverflowError, ValueError, OSError):
        return None  # Not a time this machine can show.
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _with_time(message: str | None, stored_at: str | None) -> str:
    if not message:
        return "none"
    # One line: an error message from the Control Layer may contain line breaks.
    text = " ".join(str(message).split())
    return f"{text} (at {stored_at})" if stored_at else text


def _read_buffer(db_path: Path) -> dict[str, Any]:
    if not db_path.exists():
        raise StatusError(
            f"No dexcost buffer at {db_path}: nothing has been recorded there yet. "
            "Pass --db PATH (or set DEXCOST_BUFFER_PATH) to read another buffer"
        )
    if not db_path.is_file():
        raise StatusError(f"{db_path} is a folder, not a dexcost buffer; pass --db a .db file")
    # mode=ro never creates the database file, though SQLite may leave the
    # usual -wal and -shm files beside it. as_uri() escapes '?' and '#' in the path.
    uri = db_path.resolve().as_uri() + "?mode=ro"
    with suppressed_instrumentation():
        try:
            with closing(sqlite3.connect(uri, uri=True)) as connection:
                _check_is_buffer(connection, db_path)
                return _query_buffer(connection)
        except sqlite3.OperationalError as error:
            raise StatusError(
                f"cannot read {db_path}: {error}. Check that this user can read the file and "
                "write its folder, because SQLite creates a -shm file beside a WAL database"
            ) from error
        except sqlite3.DatabaseError as error:
            raise StatusError(
                f"{db_path} is not a dexcost buffer: SQLite cannot read it ({error}). "
                "Pass --db the buffer file that dexcost.init() writes"
            ) from error


def _check_is_buffer(connection: sqlite3.Connection, db_path: Path) -> None:
    tables = {
        row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    missing = [name for name in ("spans", "counters", "sync_state") if name not in tables]
    if missing:
        raise StatusError(
            f"{db_path} is not a dexcost buffer: it is a SQLite file with no "
            f"{missing[0]} table. Pass --db the buffer file that dexcost.init() writes"
        )
    version = read_schema_version(connection)
    if version > SCHEMA_VERSION:
        raise StatusError(
            f"{db_path} has buffer schema version {version}, newer than the {SCHEMA_VERSION} "
            f"that dexcost {__version__} reads. Upgrade dexcost (pip install -U dexcost)"
        )


def _query_buffer(connection: sqlite3.Connection) -> dict[str, Any]:

    row = connection.execute(
        "SELECT"
        " COALESCE(SUM(event_type IS NOT ?), 0),"
        " COALESCE(SUM(event_type IS ?), 0),"
        " MAX(CASE WHEN event_type IS ? THEN end_ns END),"
        # Sync counts are of cost events, like the events line; task rows are uploaded
        # with them but are not events.
        " COALESCE(SUM(sync_state = ? AND event_type IS NOT ?), 0),"
        " COALESCE(SUM(sync_state = ? AND event_type IS NOT ?), 0),"
        " COALESCE(SUM(sync_state = ? AND event_type IS NOT ?), 0)"
        " FROM spans",
        (
            semconv.TASK,
            semconv.TASK,
            semconv.TASK,
            SYNC_PENDING,
            semconv.TASK,
            SYNC_SYNCED,
            semconv.TASK,
            SYNC_FAILED,
            semconv.TASK,
        ),
    ).fetchone()
    counters = dict(connection.execute("SELECT name, value FROM counters").fetchall())
    sync: dict[str, Any] = {}
    sync_times: dict[str, Any] = {}
    for key, value, updated_at in connection.execute(
        "SELECT key, value, updated_at FROM sync_state"
    ):
        # A buffer edited by hand or by other software may hold any type here.
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        sync[key] = value
        sync_times[key] = updated_at if type(updated_at) is int else None
    return {
        "events": int(row[0]),
        "tasks": int(row[1]),
        "last_task_at": _iso_utc(row[2]),
        "pending": int(row[3]),
        "synced": int(row[4]),
        "failed": int(row[5]),
        "dropped_events": int(counters.get(DROPPED_EVENTS, 0)),
        "evicted_events": int(counters.get(EVICTED_EVENTS, 0)),
        "rejected_events": int(counters.get(REJECTED_EVENTS, 0)),
        "internal_errors": int(counters.get(INTERNAL_ERRORS, 0)),
        "last_sync_at": sync.get("last_sync_at"),
        "last_sync_error": sync.get("last_sync_error"),
        "last_sync_error_at": (
            _iso_utc(sync_times.get("last_sync_error")) if sync.get("last_sync_error") else None
        ),
    }


def render_status_text(status: Mapping[str, Any]) -> str:
    """Format ``collect_status`` output as aligned ``label: value`` lines."""
    storage_mode = status["storage_mode"]
    if storage_mode is None and status["key_type"] == "invalid":
        storage_mode = "unknown: DEXCOST_API_KEY is invalid (keys start with dx_live_ or dx_test_)"
    elif storage_mode is None:
        storage_mode = "unknown: DEXCOST_ENDPOINT is invalid (dexcost.init() says why)"
    sdks = ", ".join(f"{name} {version}" for name, version in status["sdk_versions"].items())
    last_error = _with_time(status["last_sync_error"], status.get("last_sync_error_at"))
    lines = [
        ("buffer", status["db_path"]),
        ("storage mode", storage_mode),
        ("key type", status["key_type"] or "no key"),
        ("events", status["events"]),
        ("tasks", status["tasks"]),
        ("last task at", status["last_task_at"] or "never"),
        ("events pending upload", status["pending"]),
        ("events uploaded", status["synced"]),
        ("events failed upload", status["failed"]),
        ("dropped events", status["dropped_events"]),
        ("events evicted unsent", status["evicted_events"]),
        ("events rejected upstream", status["rejected_events"]),
        ("internal errors", status["internal_errors"]),
        ("last sync at", status["last_sync_at"] or "never"),
        ("last sync error", last_error),
        ("pricing version", status["pricing_version"] or "not installed"),
        ("LLM SDKs", sdks or "none installed"),
    ]
    width = max(len(label) for label, _ in lines) + 1
    return "\n".join(f"{label + ':':<{width}} {value}" for label, value in lines)
