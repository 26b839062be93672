"""Tests for ``dexcost status``: collect_status and the click command over real buffers."""

from __future__ import annotations

import importlib.metadata
import json
import sqlite3
import sys
import types
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import Tracer

from dexcost import semconv
from dexcost import status as status_module
from dexcost._version import __version__
from dexcost.buffer import DROPPED_EVENTS, INTERNAL_ERRORS, SYNC_FAILED, SYNC_SYNCED, Buffer
from dexcost.cli import main
from dexcost.status import LLM_SDK_DISTRIBUTIONS, StatusError, collect_status

SECRET_KEY = "dx_test_s3cr3tKeyValue9876"


class CollectingProcessor(SpanProcessor):
    """Keeps every finished span in memory, in the order spans end."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


@pytest.fixture
def tracer() -> Iterator[Tracer]:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "checkout-api"}), shutdown_on_exit=False
    )
    provider.add_span_processor(CollectingProcessor())
    yield provider.get_tracer(semconv.SCOPE_NAME, "0.1.0")
    provider.shutdown()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hide the developer's own key, mode and buffer from every test."""
    for name in ("DEXCOST_API_KEY", "DEXCOST_ENV", "DEXCOST_BUFFER_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def record(tracer: Tracer, name: str, attributes: dict[str, Any]) -> ReadableSpan:
    with tracer.start_as_current_span(name, attributes=attributes) as span:
        pass
    assert isinstance(span, ReadableSpan)
    return span


def record_task(tracer: Tracer, task_id: str) -> list[ReadableSpan]:
    """Record a task with two llm_call children and return the three spans."""
    llm = {
        semconv.EVENT_TYPE: semconv.LLM_CALL,
        semconv.COST_USD: "0.00036",
        semconv.COST_STATUS: semconv.PRICED,
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        semconv.GEN_AI_INPUT_TOKENS: 1200,
        semconv.GEN_AI_OUTPUT_TOKENS: 300,
        semconv.CUSTOMER_ID: "acme",
        semconv.TASK_ID: task_id,
    }
    with tracer.start_as_current_span(
        "task",
        attributes={
            semconv.EVENT_TYPE: semconv.TASK,
            semconv.TASK_ID: task_id,
            semconv.TASK_COST_USD: "0.00072",
        },
    ) as task:
        first = record(tracer, "chat gpt-4o-mini", llm)
        second = record(tracer, "chat gpt-4o-mini", llm)
    assert isinstance(task, ReadableSpan)
    return [first, second, task]


@pytest.fixture
def populated_db(tmp_path: Path, tracer: Tracer) -> tuple[Path, int]:
    """A buffer with 2 tasks and 5 events; return its path and the last task end (ns)."""
    path = tmp_path / "buffer.db"
    spans = record_task(tracer, "task-1") + record_task(tracer, "task-2")
    spans.append(
        record(
            tracer,
            "twilio sms",
            {
                semconv.EVENT_TYPE: semconv.EXTERNAL_COST,
                semconv.SERVICE: "twilio",
                semconv.COST_USD: "0.0079",
            },
        )
    )
    with Buffer.open(path) as buffer:
        buffer.insert_spans(spans)
        buffer.add_counter(DROPPED_EVENTS, 4)
        buffer.add_counter(INTERNAL_ERRORS, 1)
        buffer.set_sync_state("last_sync_at", "2025-06-01T12:00:00Z")
        buffer.set_sync_state("last_sync_error", "HTTP 503 from the Control Layer")
    with closing(sqlite3.connect(path)) as connection, connection:
        event_ids = [
            row_id
            for (row_id,) in connection.execute(
                "SELECT id FROM spans WHERE event_type != 'task' ORDER BY id"
            )
        ]
        # Two events uploaded, one failed, two pending; task rows are not counted.
        connection.executemany(
            "UPDATE spans SET sync_state = ? WHERE id = ?",
            [(SYNC_SYNCED, event_ids[0]), (SYNC_SYNCED, event_ids[1]), (SYNC_FAILED, event_ids[2])],
        )
    last_task_end = max(span.end_time or 0 for span in spans if span.name == "task")
    return path, last_task_end


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def parse_lines(output: str) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in output.splitlines())
    return {label: value.strip() for label, value in pairs}


# --- collect_status ---


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("events", 5),
        ("tasks", 2),
        ("pending", 2),
        ("synced", 2),
        ("failed", 1),
        ("dropped_events", 4),
        ("internal_errors", 1),
        ("last_sync_at", "2025-06-01T12:00:00Z"),
        ("last_sync_error", "HTTP 503 from the Control Layer"),
        ("storage_mode", "local"),
        ("key_type", None),
    ],
)
def test_status_reports_buffer_value(
    populated_db: tuple[Path, int], key: str, expected: Any
) -> None:
    assert collect_status(populated_db[0])[key] == expected


def test_status_reports_last_task_time(populated_db: tuple[Path, int]) -> None:
    path, last_task_end = populated_db
    expected = datetime.fromtimestamp(last_task_end // 1_000_000_000, tz=timezone.utc)
    assert collect_status(path)["last_task_at"] == expected.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_status_reports_db_path(populated_db: tuple[Path, int]) -> None:
    assert collect_status(populated_db[0])["db_path"] == str(populated_db[0])


def test_empty_buffer_has_no_last_task(tmp_path: Path) -> None:
    Buffer.open(tmp_path / "empty.db").close()
    assert collect_status(tmp_path / "empty.db")["last_task_at"] is None


def test_status_lists_only_known_sdks(populated_db: tuple[Path, int]) -> None:
    sdks = collect_status(populated_db[0])["sdk_versions"]
    assert set(sdks) <= set(LLM_SDK_DISTRIBUTIONS)


def test_status_reports_installed_sdk_version(
    populated_db: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_version(name: str) -> str:
        if name == "anthropic":
            return "0.40.0"
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", fake_version)
    assert collect_status(populated_db[0])["sdk_versions"] == {"anthropic": "0.40.0"}


def test_pricing_version_comes_from_pricing_module(
    populated_db: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_pricing = types.ModuleType("dexcost.pricing")
    fake_pricing.pricing_version = lambda: "prices-2025-06"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dexcost.pricing", fake_pricing)
    assert collect_status(populated_db[0])["pricing_version"] == "prices-2025-06"


def test_pricing_version_falls_back_to_genai_prices(
    populated_db: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_version(name: str) -> str:
        if name == "genai-prices":
            return "0.2.5"
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setitem(sys.modules, "dexcost.pricing", None)  # makes the import fail
    monkeypatch.setattr(importlib.metadata, "version", fake_version)
    assert collect_status(populated_db[0])["pricing_version"] == "0.2.5"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ("local", None)),
        ({"DEXCOST_API_KEY": "  "}, ("local", None)),
        ({"DEXCOST_API_KEY": "dx_live_abcdef123456"}, ("cloud", "live")),
        ({"DEXCOST_API_KEY": "dx_test_abcdef123456"}, ("cloud", "test")),
        ({"DEXCOST_API_KEY": "dx_test_abc", "DEXCOST_ENV": "development"}, ("local", "test")),
        ({"DEXCOST_API_KEY": "sk-proj-abcdef"}, (None, "invalid")),
        ({"DEXCOST_API_KEY": "dx_live_"}, (None, "invalid")),
    ],
)
def test_storage_settings_follow_environment(
    environ: dict[str, str], expected: tuple[str | None, str | None]
) -> None:
    assert status_module.storage_settings(environ) == expected


def test_missing_db_raises_status_error(tmp_path: Path) -> None:
    with pytest.raises(StatusError, match="nothing has been recorded"):
        collect_status(tmp_path / "missing.db")


# --- the status command ---


def test_status_command_succeeds(populated_db: tuple[Path, int]) -> None:
    assert run_cli("status", "--db", str(populated_db[0])).exit_code == 0


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("events", "5"),
        ("tasks", "2"),
        ("events pending upload", "2"),
        ("events uploaded", "2"),
        ("events failed upload", "1"),
        ("dropped events", "4"),
        ("internal errors", "1"),
        ("storage mode", "local"),
        ("key type", "no key"),
    ],
)
def test_status_text_shows_value(populated_db: tuple[Path, int], label: str, expected: str) -> None:
    lines = parse_lines(run_cli("status", "--db", str(populated_db[0])).output)
    assert lines[label] == expected


def test_status_text_dates_last_sync_error(populated_db: tuple[Path, int]) -> None:
    """The error is shown with the time it was stored, not a retry delay long past."""
    before = datetime.now(timezone.utc).replace(microsecond=0)
    lines = parse_lines(run_cli("status", "--db", str(populated_db[0])).output)
    message, _, when = lines["last sync error"].partition(" (at ")
    assert message == "HTTP 503 from the Control Layer"
    assert when.endswith("Z)")
    stored = datetime.fromisoformat(when[:-2] + "+00:00")
    assert abs((stored - before).total_seconds()) < 600


def test_status_text_shows_last_task_time(populated_db: tuple[Path, int]) -> None:
    path, _ = populated_db
    lines = parse_lines(run_cli("status", "--db", str(path)).output)
    assert lines["last task at"] == collect_status(path)["last_task_at"]


def test_status_text_values_are_aligned(populated_db: tuple[Path, int]) -> None:
    output = run_cli("status", "--db", str(populated_db[0])).output
    value_columns = {
        len(line) - len(line.split(":", 1)[1].lstrip()) for line in output.splitlines()
    }
    assert len(value_columns) == 1


def test_status_json_matches_collect_status(populated_db: tuple[Path, int]) -> None:
    output = run_cli("status", "--db", str(populated_db[0]), "--json").output
    assert json.loads(output) == collect_status(populated_db[0])


def test_status_reads_buffer_path_env(
    populated_db: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEXCOST_BUFFER_PATH", str(populated_db[0]))
    assert json.loads(run_cli("status", "--json").output)["events"] == 5


def test_status_defaults_to_home_buffer(
    tmp_path: Path, tracer: Tracer, monkeypatch: pytest.MonkeyPatch
) -> None:
    home_buffer = tmp_path / "home" / ".dexcost" / "buffer.db"
    home_buffer.parent.mkdir(parents=True)
    with Buffer.open(home_buffer) as buffer:
        buffer.insert_spans(record_task(tracer, "task-1"))
    assert json.loads(run_cli("status", "--json").output)["db_path"] == str(home_buffer)


def test_status_leaves_buffer_unchanged(populated_db: tuple[Path, int]) -> None:
    path, _ = populated_db
    before = path.read_bytes()
    run_cli("status", "--db", str(path))
    assert path.read_bytes() == before


def test_missing_db_exits_with_one(tmp_path: Path) -> None:
    assert run_cli("status", "--db", str(tmp_path / "missing.db")).exit_code == 1


def test_missing_db_message_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    assert str(missing) in run_cli("status", "--db", str(missing)).output


def test_missing_db_message_mentions_db_option(tmp_path: Path) -> None:
    assert "--db" in run_cli("status", "--db", str(tmp_path / "missing.db")).output


def test_missing_db_message_is_one_line(tmp_path: Path) -> None:
    output = run_cli("status", "--db", str(tmp_path / "missing.db")).output
    assert len(output.strip().splitlines()) == 1


def test_missing_db_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    run_cli("status", "--db", str(missing))
    assert not missing.exists()


def test_garbage_file_exits_with_one(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.db"
    garbage.write_bytes(b"shopping list: eggs, milk\n" * 200)
    assert run_cli("status", "--db", str(garbage)).exit_code == 1


def test_garbage_file_message_has_no_traceback(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.db"
    garbage.write_bytes(b"shopping list: eggs, milk\n" * 200)
    output = run_cli("status", "--db", str(garbage)).output
    assert "Traceback" not in output


def test_garbage_file_message_says_not_a_buffer(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.db"
    garbage.write_bytes(b"shopping list: eggs, milk\n" * 200)
    assert "not a dexcost buffer" in run_cli("status", "--db", str(garbage)).output


def test_other_sqlite_file_says_no_spans_table(tmp_path: Path) -> None:
    other = tmp_path / "app.db"
    with closing(sqlite3.connect(other)) as connection:
        connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    assert "no spans table" in run_cli("status", "--db", str(other)).output


def test_other_sqlite_file_exits_with_one(tmp_path: Path) -> None:
    other = tmp_path / "app.db"
    with closing(sqlite3.connect(other)) as connection:
        connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    assert run_cli("status", "--db", str(other)).exit_code == 1


def test_test_key_shows_key_type(
    populated_db: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEXCOST_API_KEY", SECRET_KEY)
    lines = parse_lines(run_cli("status", "--db", str(populated_db[0])).output)
    assert lines["key type"] == "test"


def test_test_key_selects_cloud_storage(
    populated_db: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEXCOST_API_KEY", SECRET_KEY)
    lines = parse_lines(run_cli("status", "--db", str(populated_db[0])).output)
    assert lines["storage mode"] == "cloud"


@pytest.mark.parametrize("extra_args", [(), ("--json",)])
def test_status_never_prints_key(
    populated_db: tuple[Path, int], monkeypatch: pytest.MonkeyPatch, extra_args: tuple[str, ...]
) -> None:
    monkeypatch.setenv("DEXCOST_API_KEY", SECRET_KEY)
    output = run_cli("status", "--db", str(populated_db[0]), *extra_args).output
    assert "s3cr3t" not in output


def test_invalid_key_is_reported(
    populated_db: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEXCOST_API_KEY", "sk-not-a-dexcost-key")
    lines = parse_lines(run_cli("status", "--db", str(populated_db[0])).output)
    assert lines["key type"] == "invalid"


def test_newer_schema_asks_for_upgrade(populated_db: tuple[Path, int]) -> None:
    path, _ = populated_db
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA user_version = 99")
    assert "Upgrade dexcost" in run_cli("status", "--db", str(path)).output


def test_version_option_prints_version() -> None:
    assert __version__ in run_cli("--version").output


def test_status_key_rules_match_init() -> None:
    from dexcost.status import storage_settings

    assert storage_settings({"DEXCOST_API_KEY": "dx_test_ab cd"}) == (None, "invalid")


def test_status_dev_mode_case_insensitive() -> None:
    from dexcost.status import storage_settings

    settings = storage_settings(
        {"DEXCOST_API_KEY": "dx_live_abcdefghijklmnop", "DEXCOST_ENV": "Development"}
    )
    assert settings == ("local", "live")


def test_status_blames_invalid_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    from dexcost.status import render_status_text, storage_settings

    monkeypatch.setenv("DEXCOST_ENDPOINT", "http://example.com")

    assert storage_settings({"DEXCOST_API_KEY": "dx_test_abcd1234"}) == (None, "test")
    counts = ("events", "tasks", "pending", "synced", "failed", "dropped_events")
    counts += ("evicted_events", "rejected_events", "internal_errors")
    text = render_status_text(
        {
            "db_path": "b.db",
            "storage_mode": None,
            "key_type": "test",
            "sdk_versions": {},
            "last_task_at": None,
            "last_sync_at": None,
            "last_sync_error": None,
            "pricing_version": None,
            **{key: 0 for key in counts},
        }
    )
    assert "DEXCOST_ENDPOINT is invalid" in text
    assert "DEXCOST_API_KEY is invalid" not in text


@pytest.mark.parametrize(
    ("value", "updated_at", "shown"),
    [
        ("boom", "yesterday", "boom"),
        (b"bytes error", 1_780_000_000_000_000_000, "bytes error (at 2026-05-28T"),
        ("line one\nline two", 1e30, "line one line two"),
    ],
    ids=["text-time", "blob-error", "newline-and-huge-time"],
)
def test_status_reads_odd_sync_error_rows(
    populated_db: tuple[Path, int], value: object, updated_at: object, shown: str
) -> None:
    """A buffer edited by hand or other software still gives a status, text and JSON."""
    path = populated_db[0]
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(
            "UPDATE sync_state SET value = ?, updated_at = ? WHERE key = 'last_sync_error'",
            (value, updated_at),
        )
    text = run_cli("status", "--db", str(path))
    assert text.exit_code == 0, text.output
    assert parse_lines(text.output)["last sync error"].startswith(shown)
    assert run_cli("status", "--db", str(path), "--json").exit_code == 0
