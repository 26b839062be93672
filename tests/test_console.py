"""Tests for development mode: one stderr line per cost event and a summary per task."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import context as otel_context

import dexcost


@pytest.fixture(autouse=True)
def _fresh_otel_context() -> Iterator[None]:
    """Start each test on an empty OTel context; set_context would leak into the next test."""
    token = otel_context.attach(otel_context.Context())
    yield
    otel_context.detach(token)


@pytest.fixture
def dev_mode(buffer_path: Path) -> None:
    dexcost.init(environment="development", storage="local", buffer_path=str(buffer_path))


def _run_triage_task() -> None:
    dexcost.set_context(customer_id="acme")
    with dexcost.task("triage") as t:
        t.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
        t.record_cost("serpapi", "0.015", units=3, unit="queries")


def _lines_starting(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


@pytest.fixture
def triage_output(dev_mode: None, capsys: pytest.CaptureFixture[str]) -> str:
    """What dev mode wrote to stderr for one task with an LLM call and an external cost."""
    _run_triage_task()
    return capsys.readouterr().err


def test_llm_call_prints_one_line(triage_output: str) -> None:
    assert len(_lines_starting(triage_output, "[dexcost] llm_call")) == 1


def test_llm_call_line_shows_details(triage_output: str) -> None:
    (line,) = _lines_starting(triage_output, "[dexcost] llm_call")

    assert "openai gpt-4o-mini" in line
    assert "in=1200 out=300" in line
    assert "$0.00036" in line
    assert "customer=acme" in line
    assert "task=triage" in line


def test_external_cost_prints_one_line(triage_output: str) -> None:
    assert len(_lines_starting(triage_output, "[dexcost] external_cost")) == 1


def test_external_cost_line_shows_details(triage_output: str) -> None:
    (line,) = _lines_starting(triage_output, "[dexcost] external_cost")

    assert "serpapi  3 queries" in line
    assert "$0.015" in line
    assert "customer=acme" in line
    assert "task=triage" in line


def test_task_summary_shows_total(triage_output: str) -> None:
    (line,) = _lines_starting(triage_output, "[dexcost] task triage")

    assert "completed: total $0.01536" in line
    assert "customer=acme" in line
    assert "llm $0.00036 · external $0.015" in triage_output


def test_task_summary_follows_events(triage_output: str) -> None:
    prefixes = [line.split()[1] for line in triage_output.splitlines() if line.strip()]

    assert prefixes[:3] == ["llm_call", "external_cost", "task"]


def test_console_writes_nothing_to_stdout(
    dev_mode: None, capsys: pytest.CaptureFixture[str]
) -> None:
    _run_triage_task()

    assert capsys.readouterr().out == ""


def test_event_prints_before_task_ends(
    dev_mode: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with dexcost.task("triage") as t:
        t.record_cost("serpapi", "0.015")
        printed_inside = capsys.readouterr().err

    assert len(_lines_starting(printed_inside, "[dexcost] external_cost")) == 1


def test_failed_task_summary_says_failed(
    dev_mode: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(TimeoutError), dexcost.task("triage") as t:
        t.record_cost("serpapi", "0.015")
        raise TimeoutError("search timed out")

    (line,) = _lines_starting(capsys.readouterr().err, "[dexcost] task triage")
    assert "failed: total $0.015" in line


def test_session_task_summary_at_shutdown(
    dev_mode: None, capsys: pytest.CaptureFixture[str]
) -> None:
    dexcost.record_cost("serpapi", "0.015")

    dexcost.shutdown()

    summaries = _lines_starting(capsys.readouterr().err, "[dexcost] session task agent_session")
    assert len(summaries) == 1


def test_empty_session_prints_nothing(dev_mode: None, capsys: pytest.CaptureFixture[str]) -> None:
    dexcost.shutdown()

    assert capsys.readouterr().err == ""


def test_hashed_customer_printed_hashed(
    buffer_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dexcost.init(
        environment="development",
        storage="local",
        buffer_path=str(buffer_path),
        hash_customer_id=True,
    )

    _run_triage_task()

    assert "acme" not in capsys.readouterr().err


def test_production_mode_prints_nothing(
    buffer_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path))

    _run_triage_task()
    dexcost.shutdown()

    assert capsys.readouterr().err == ""


def test_env_variable_enables_dev_mode(
    buffer_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEXCOST_ENV", "development")
    dexcost.init(storage="local", buffer_path=str(buffer_path))

    _run_triage_task()

    assert len(_lines_starting(capsys.readouterr().err, "[dexcost] llm_call")) == 1


def test_control_characters_escaped() -> None:
    from dexcost.console import format_event

    line = format_event(
        {
            "dexcost.event_type": "external_cost",
            "dexcost.cost_status": "priced",
            "dexcost.cost_usd": "0.1",
            "dexcost.service": "svc\nforged",
            "dexcost.customer_id": "acme\x1b[2J\r[dexcost] task x completed: total $0",
            "dexcost.task.type": "t",
        }
    )

    assert "\n" not in line
    assert "\x1b" not in line
    assert "\r" not in line
    assert "svc\\nforged" in line
    assert "acme\\x1b[2J\\r[dexcost]" in line
