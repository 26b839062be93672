"""dexcost next to the application's own OpenTelemetry setup.

Each case runs ``coexistence_app.py`` twice in fresh processes (the global tracer
provider can be set only once per process): once as the baseline, without
``dexcost.init()``, and once with it. What the application's exporter, hooks and
server saw must be the same in both runs, none of dexcost's spans or ``dexcost.*``
attributes may reach the application's exporter, and the chat completion must land in
dexcost's buffer with its full cost.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

APP = Path(__file__).with_name("coexistence_app.py")
# gpt-4o-mini: 1200 input tokens at $0.15/M plus 300 output tokens at $0.60/M.
EXPECTED_COST = Decimal("0.00036")
NO_TRACE = "0" * 32
TIMEOUT_SECONDS = 60


@dataclass
class Run:
    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    stderr: str


def _start(
    tmp_path: Path, name: str, options: dict[str, Any], env: dict[str, str]
) -> tuple[Path, subprocess.Popen[str]]:
    folder = tmp_path / name
    folder.mkdir()
    options = {**options, "buffer": str(folder / "buffer.db")}
    return folder, subprocess.Popen(
        [sys.executable, str(APP), json.dumps(options)],
        env={**os.environ, "HOME": str(folder), **env},
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(folder: Path, process: subprocess.Popen[str]) -> Run:
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    assert process.returncode == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    rows: list[dict[str, Any]] = []
    buffer = folder / "buffer.db"
    if buffer.exists():
        connection = sqlite3.connect(buffer)
        connection.row_factory = sqlite3.Row
        try:
            rows = [dict(row) for row in connection.execute("SELECT * FROM spans ORDER BY id")]
        finally:
            connection.close()
    return Run(summary, rows, stderr)


def run_pair(
    tmp_path: Path,
    *,
    setup: str = "sdk",
    init: str = "after",
    instrumentors: str = "none",
    propagators: bool = False,
    allow_hosts: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> tuple[Run, Run]:
    """Run the application without and with dexcost, side by side; return both runs."""
    options = {
        "setup": setup,
        "init": init,
        "instrumentors": instrumentors,
        "propagators": propagators,
        "allow_hosts": list(allow_hosts),
    }
    environment = env or {}
    started = [
        _start(tmp_path, "baseline", {**options, "dexcost": False}, environment),
        _start(tmp_path, "dexcost", {**options, "dexcost": True}, environment),
    ]
    baseline, with_dexcost = (_finish(folder, process) for folder, process in started)
    return baseline, with_dexcost


def _without_trace_ids(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in span.items() if key != "trace_id"} for span in spans]


def check_coexistence(baseline: Run, run: Run, *, same_headers: bool = True) -> None:
    """Check that the application receives what it receives without dexcost, and no cost is lost."""
    app, base = run.summary, baseline.summary
    assert "Overriding of current TracerProvider" not in run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    # The application's provider, exporter and hooks: unchanged.
    assert app["global_provider"] == base["global_provider"]
    assert app["global_provider_at_end"] == base["global_provider_at_end"]
    assert _without_trace_ids(app["host_spans"]) == _without_trace_ids(base["host_spans"])
    assert app["hooks"] == base["hooks"]
    if same_headers:
        assert app["received"] == base["received"]
    for span in app["host_spans"]:
        assert span["scope"] != "dexcost"
        assert not any(key.startswith("dexcost.") for key in span["attributes"]), span
    assert app["instrumented_after_shutdown"] == []
    # dexcost attributed the call: its baggage was present in the process.
    assert "dexcost.customer_id" in app["baggage_in_process"]

    # No cost lost.
    assert app["flushed"] is True
    assert baseline.rows == []
    assert {row["scope_name"] for row in run.rows} == {"dexcost"}
    (call,) = [row for row in run.rows if row["event_type"] == "llm_call"]
    assert Decimal(call["cost_usd"]) == EXPECTED_COST
    assert call["cost_status"] == "priced"
    assert call["customer_id"] == "acme"
    assert (call["input_tokens"], call["output_tokens"]) == (1200, 300)
    # The call's task (here the automatic session) is recorded with the call's cost.
    (task,) = [row for row in run.rows if row["event_type"] == "task"]
    assert task["task_id"] == call["task_id"]
    assert Decimal(task["cost_usd"]) == EXPECTED_COST
    # Traces join up: the cost event is in the application's trace whenever it has one.
    if app["ticket_trace_id"] != NO_TRACE:
        assert call["trace_id"] == app["ticket_trace_id"]


def host_span_names(run: Run) -> list[str]:
    return [span["name"] for span in run.summary["host_spans"]]


OWN_SPANS = ["lookup", "handle_ticket", "after_shutdown"]


# 1 and 2: an SDK TracerProvider with an in-memory exporter.


def test_sdk_provider_set_before_init(tmp_path: Path) -> None:
    baseline, run = run_pair(tmp_path, setup="sdk", init="after")
    check_coexistence(baseline, run)
    assert run.summary["global_provider"] == "TracerProvider"
    assert host_span_names(run) == OWN_SPANS


def test_sdk_provider_set_after_init(tmp_path: Path) -> None:
    baseline, run = run_pair(tmp_path, setup="sdk", init="before")
    check_coexistence(baseline, run)
    # dexcost left the global slot free, so the application's later call took it.
    assert run.summary["global_provider"] == "TracerProvider"
    assert host_span_names(run) == OWN_SPANS


# 3: a provider that is not an SDK one but wraps one, as Logfire's does.


@pytest.mark.parametrize("init", ["before", "after"])
def test_wrapper_provider(tmp_path: Path, init: str) -> None:
    baseline, run = run_pair(tmp_path, setup="wrapper", init=init)
    check_coexistence(baseline, run)
    assert run.summary["global_provider"] == "WrapperTracerProvider"
    assert host_span_names(run) == OWN_SPANS


# 4: no provider at all.


def test_no_provider(tmp_path: Path) -> None:
    baseline, run = run_pair(tmp_path, setup="none", init="before")
    check_coexistence(baseline, run)
    # dexcost set no global provider of its own.
    assert run.summary["global_provider"] == "ProxyTracerProvider"
    assert run.summary["global_provider_at_end"] == "ProxyTracerProvider"
    assert run.summary["ticket_trace_id"] == NO_TRACE


# 5: the OpenTelemetry SDK switched off.


def test_sdk_disabled(tmp_path: Path) -> None:
    baseline, run = run_pair(tmp_path, setup="sdk", env={"OTEL_SDK_DISABLED": "true"})
    check_coexistence(baseline, run)
    assert baseline.summary["host_spans"] == []


# 6: a sampler that keeps nothing.


@pytest.mark.parametrize("setup", ["always_off", "ratio_zero"])
def test_sampler_keeps_nothing(tmp_path: Path, setup: str) -> None:
    baseline, run = run_pair(tmp_path, setup=setup)
    check_coexistence(baseline, run)
    assert baseline.summary["host_spans"] == []
    # The application's span is not recorded but has a trace id. The cost event joins it.
    assert run.summary["ticket_trace_id"] != NO_TRACE


# 7: the application's own requests and httpx instrumentation, with hooks.


@pytest.mark.parametrize("instrumentors", ["before", "after"])
def test_app_http_instrumentation(tmp_path: Path, instrumentors: str) -> None:
    baseline, run = run_pair(tmp_path, setup="sdk", instrumentors=instrumentors)
    check_coexistence(baseline, run)
    scopes = [span["scope"] for span in run.summary["host_spans"]]
    http_scopes = ["opentelemetry.instrumentation.requests", "opentelemetry.instrumentation.httpx"]
    # During dexcost, and after its shutdown() removed its patches.
    assert scopes.count(http_scopes[0]) == 2
    assert scopes.count(http_scopes[1]) == 2
    assert len(run.summary["hooks"]) == 8
    for span in run.summary["host_spans"]:
        if span["scope"] in http_scopes:
            assert span["attributes"]["app.hook.response"] == 200


# 8: the application's own propagators.


def test_app_propagators(tmp_path: Path) -> None:
    baseline, run = run_pair(tmp_path, setup="sdk", instrumentors="before", propagators=True)
    check_coexistence(baseline, run)
    for request in run.summary["received"]:
        assert request["traceparent"] is True
    during = [r for r in run.summary["received"] if r["path"].startswith("/during/")]
    assert len(during) == 2
    for request in during:
        # The application's baggage and its own header still go out, and dexcost's do not.
        assert request["baggage"] == {"app.tenant": "t1"}
        assert request["app_tenant"] == "t1"


def test_app_propagators_allowlisted_host(tmp_path: Path) -> None:
    baseline, run = run_pair(
        tmp_path,
        setup="sdk",
        instrumentors="before",
        propagators=True,
        allow_hosts=("127.0.0.1",),
    )
    check_coexistence(baseline, run, same_headers=False)
    during = [r for r in run.summary["received"] if r["path"].startswith("/during/")]
    for request in during:
        assert request["traceparent"] is True
        assert request["app_tenant"] == "t1"
        assert request["baggage"]["app.tenant"] == "t1"
        assert request["baggage"]["dexcost.customer_id"] == "acme"
    # Apart from dexcost's baggage, the server receives what it receives without dexcost.
    for ours, theirs in zip(run.summary["received"], baseline.summary["received"], strict=True):
        app_baggage = {k: v for k, v in ours["baggage"].items() if not k.startswith("dexcost.")}
        assert {**ours, "baggage": app_baggage} == theirs
