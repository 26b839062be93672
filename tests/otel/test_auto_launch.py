"""dexcost started by ``opentelemetry-instrument`` through its distro entry point.

The end-to-end tests run ``instrumented_app.py`` in a subprocess, as a user would, with
the fake OpenAI server on 127.0.0.1, and read the buffer it leaves behind.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from opentelemetry.sdk._configuration import _OTelSDKConfigurator

from dexcost import distro, runtime
from dexcost.cli import main

APP = Path(__file__).with_name("instrumented_app.py")
INSTRUMENT = Path(sys.executable).with_name("opentelemetry-instrument")
# gpt-4o-mini: 1200 input tokens at $0.15/M plus 300 output tokens at $0.60/M.
EXPECTED_COST = Decimal("0.00036")

needs_instrument = pytest.mark.skipif(
    not INSTRUMENT.exists(), reason="opentelemetry-instrument is not installed"
)


@dataclass
class Run:
    summary: dict[str, Any]
    app_spans: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    stderr: str


def run_app(tmp_path: Path, *arguments: str, **environment: str) -> Run:
    buffer = tmp_path / "buffer.db"
    spans_file = tmp_path / "app-spans.jsonl"
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "OTEL_PYTHON_DISTRO": "dexcost",
        "OTEL_PYTHON_CONFIGURATOR": "dexcost",
        "DEXCOST_BUFFER_PATH": str(buffer),
        "APP_SPANS_FILE": str(spans_file),
        **environment,
    }
    result = subprocess.run(
        [str(INSTRUMENT), sys.executable, str(APP), *arguments],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    app_spans = []
    if spans_file.exists():
        app_spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    rows: list[dict[str, Any]] = []
    if buffer.exists():
        connection = sqlite3.connect(buffer)
        connection.row_factory = sqlite3.Row
        try:
            rows = [dict(row) for row in connection.execute("SELECT * FROM spans ORDER BY id")]
        finally:
            connection.close()
    return Run(summary, app_spans, rows, result.stderr)


def llm_rows(run: Run) -> list[dict[str, Any]]:
    return [row for row in run.rows if row["event_type"] == "llm_call"]


# --- entry points and the distro in this process ---


def test_entry_points_registered() -> None:
    (distro_ep,) = importlib.metadata.entry_points(group="opentelemetry_distro", name="dexcost")
    (configurator_ep,) = importlib.metadata.entry_points(
        group="opentelemetry_configurator", name="dexcost"
    )
    assert distro_ep.load() is distro.DexcostDistro
    assert configurator_ep.load() is distro.DexcostConfigurator
    # The stock SDK setup, with nothing overridden: the app's provider is built from OTEL_*.
    assert distro.DexcostConfigurator.__mro__[1] is _OTelSDKConfigurator
    assert "_configure" not in vars(distro.DexcostConfigurator)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", []),
        ("openai", ["openai"]),
        (" openai , anthropic ,", ["openai", "anthropic"]),
    ],
)
def test_auto_instrument_from_env(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: list[str] | None
) -> None:
    if value is None:
        monkeypatch.delenv(distro.AUTO_INSTRUMENT_ENV, raising=False)
    else:
        monkeypatch.setenv(distro.AUTO_INSTRUMENT_ENV, value)
    assert distro.auto_instrument_from_env() == expected


def test_distro_starts_from_env(monkeypatch: pytest.MonkeyPatch, buffer_path: Path) -> None:
    monkeypatch.setenv("DEXCOST_BUFFER_PATH", str(buffer_path))
    monkeypatch.setenv(distro.AUTO_INSTRUMENT_ENV, "openai")
    distro.DexcostDistro().configure()
    started = runtime.current_runtime()
    assert started is not None
    assert started.buffer_path == buffer_path
    assert started.config.auto_instrument == ["openai"]


def test_bad_config_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(distro.AUTO_INSTRUMENT_ENV, "openai,not_a_library")
    with caplog.at_level(logging.ERROR, logger="dexcost.distro"):
        assert distro.start_from_env() is False
    inert = runtime.current_runtime()
    assert inert is not None
    assert inert.buffer_path is None
    assert runtime.instrumented_libraries() == []
    assert "dexcost did not start" in caplog.text
    assert "not_a_library" in caplog.text


# --- end to end under opentelemetry-instrument ---


@needs_instrument
def test_auto_launch_prices_call(tmp_path: Path) -> None:
    run = run_app(tmp_path, DEXCOST_AUTO_INSTRUMENT="openai")

    assert run.summary["started_by_auto_launch"] is True
    assert run.summary["instrumented"] == ["openai"]
    assert run.summary["flushed"] is True
    (call,) = llm_rows(run)
    assert Decimal(call["cost_usd"]) == EXPECTED_COST
    assert call["cost_status"] == "priced"
    assert call["customer_id"] == "acme"
    assert (call["input_tokens"], call["output_tokens"]) == (1200, 300)
    assert {row["scope_name"] for row in run.rows} == {"dexcost"}
    # The configurator built the app's SDK provider. The app's spans reach its own
    # processor, and no cost event does.
    assert run.summary["provider"] == "TracerProvider"
    names = {span["name"] for span in run.app_spans}
    assert "handle_ticket" in names
    assert all(span["scope"] != "dexcost" for span in run.app_spans)
    assert not any(
        key.startswith("dexcost.") for span in run.app_spans for key in span["attributes"]
    )


@needs_instrument
def test_auto_launch_prices_paid_request(tmp_path: Path) -> None:
    # A rate stored for the host makes each request to it billable: $2 per 1,000.
    rates = tmp_path / "rates.yaml"
    rates.write_text('rates:\n  127.0.0.1:\n    per: 1k_requests\n    cost_usd: "2"\n')
    imported = CliRunner().invoke(
        main, ["rates", "--import", str(rates), "--db", str(tmp_path / "buffer.db")]
    )
    assert imported.exit_code == 0, imported.output

    run = run_app(tmp_path, "paid", DEXCOST_AUTO_INSTRUMENT="openai")

    assert run.summary["paid_status"] == 200
    (paid,) = [row for row in run.rows if row["event_type"] == "external_cost"]
    assert Decimal(paid["cost_usd"]) == Decimal("0.002")
    assert paid["customer_id"] == "acme"
    (call,) = llm_rows(run)
    assert Decimal(call["cost_usd"]) == EXPECTED_COST


@needs_instrument
def test_init_again_records_once(tmp_path: Path) -> None:
    run = run_app(tmp_path, "init-again")

    assert run.summary["started_by_auto_launch"] is True
    assert run.summary["requests_to_fake"] == 1
    assert run.summary["instrumented"] == ["openai"]
    (call,) = llm_rows(run)
    assert Decimal(call["cost_usd"]) == EXPECTED_COST


@needs_instrument
def test_empty_auto_instrument_patches_nothing(tmp_path: Path) -> None:
    run = run_app(tmp_path, DEXCOST_AUTO_INSTRUMENT="")

    assert run.summary["started_by_auto_launch"] is True
    assert run.summary["instrumented"] == []
    assert llm_rows(run) == []


@needs_instrument
def test_bad_config_keeps_app_tracing(tmp_path: Path) -> None:
    # The app's own dexcost.task() and record_cost() calls must not stop it either.
    run = run_app(tmp_path, "task", DEXCOST_API_KEY="sk-not-a-dexcost-key")

    assert run.summary["started_by_auto_launch"] is False
    assert "dexcost did not start" in run.stderr
    assert "handle_ticket" in {span["name"] for span in run.app_spans}
    assert run.rows == []


@needs_instrument
@pytest.mark.skipif(
    importlib.util.find_spec("opentelemetry.instrumentation.sqlite3") is None
    or importlib.util.find_spec("opentelemetry.instrumentation.threading") is None,
    reason="needs opentelemetry-instrumentation-sqlite3 and -threading",
)
def test_sqlite3_threading_no_self_tracing(tmp_path: Path) -> None:
    run = run_app(tmp_path, "sqlite", "init-again")

    sqlite_spans = [
        span for span in run.app_spans if span["scope"] == "opentelemetry.instrumentation.sqlite3"
    ]
    # The instrumentation is active, because the app's own query is traced.
    assert [span["attributes"].get("db.statement") for span in sqlite_spans] == ["SELECT 1"]
    # None of dexcost's buffer reads and writes is traced, so nothing feeds back.
    assert all(span["scope"] != "dexcost" for span in run.app_spans)
    (call,) = llm_rows(run)
    assert Decimal(call["cost_usd"]) == EXPECTED_COST
    assert {row["event_type"] for row in run.rows} == {"llm_call", "task"}
    assert {row["scope_name"] for row in run.rows} == {"dexcost"}
