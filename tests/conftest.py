"""Shared fixtures: a dexcost runtime on a temporary buffer, and reading what it stored."""

from __future__ import annotations

import gc
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# litellm downloads its model price map when imported unless told to use the copy it
# ships. Set before any test module can import it, because no test may reach the internet.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

import pytest
from opentelemetry import context as otel_context

import dexcost
from dexcost import errors


@pytest.fixture(autouse=True, scope="session")
def _freeze_imported_objects() -> None:
    """Keep the per-test gc.collect() cheap by freezing what the big imports created."""
    from dexcost.pricing.library import wait_for_library

    wait_for_library(timeout=60)
    try:
        import openai  # noqa: F401
    except ImportError:
        pass
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _raise_internal_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make dexcost's contained internal errors fail tests instead of being logged."""
    monkeypatch.setattr(errors, "RAISE_INTERNAL_ERRORS", True)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in (
        "DEXCOST_API_KEY",
        "DEXCOST_ENDPOINT",
        "DEXCOST_ENV",
        "DEXCOST_BUFFER_PATH",
        "DEXCOST_BUFFER_MAX_ROWS",
        "DEXCOST_EXPORT_TO_OTEL",
        "DEXCOST_PRICE_GENAI_SPANS",
        "DEXCOST_AUTO_INSTRUMENT",
        "DEXCOST_ALLOW_HTTP_HOSTS",
        "OPENAI_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    # Keep the default buffer location away from the real home folder.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    # set_context() changes the context for the rest of the thread, so start each test
    # from an empty one and restore the previous one afterwards.
    token = otel_context.attach(otel_context.Context())
    yield
    # Streams a test left unread are recorded when collected: do it inside this test.
    gc.collect()
    dexcost.shutdown()
    otel_context.detach(token)


@pytest.fixture
def buffer_path(tmp_path: Path) -> Path:
    return tmp_path / "buffer.db"


@pytest.fixture
def dx(buffer_path: Path) -> Iterator[dexcost.DexcostConfig]:
    """dexcost initialised in local mode on a temporary buffer, instrumenting openai."""
    config = dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["openai"])
    yield config
    dexcost.shutdown()


def _read_rows(path: Path) -> list[dict[str, Any]]:
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        rows = [dict(row) for row in connection.execute("SELECT * FROM spans ORDER BY id")]
    finally:
        connection.close()
    for row in rows:
        row["attributes"] = json.loads(row["attributes"])
    return rows


@pytest.fixture
def stored(buffer_path: Path) -> Callable[..., list[dict[str, Any]]]:
    """Flush dexcost and return the stored spans, optionally only one event type."""

    def read(event_type: str | None = None) -> list[dict[str, Any]]:
        assert dexcost.flush(timeout=10)
        rows = _read_rows(buffer_path)
        if event_type is None:
            return rows
        return [row for row in rows if row["event_type"] == event_type]

    return read
