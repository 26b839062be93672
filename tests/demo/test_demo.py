"""`python -m dexcost.demo` on the fake OpenAI server, as a user runs it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from dexcost.demo import __main__ as demo
from dexcost.demo import fake_openai
from dexcost.demo.fake_openai import FakeOpenAIServer, FakeReply


def _run_demo(buffer_path: Path) -> subprocess.CompletedProcess[str]:
    # The demo must take the fake-server path, so the key is removed, never set.
    env = {name: value for name, value in os.environ.items() if name != "OPENAI_API_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "dexcost.demo", "--buffer-path", str(buffer_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _event_types(buffer_path: Path) -> list[str]:
    connection = sqlite3.connect(buffer_path)
    try:
        rows = connection.execute("SELECT event_type FROM spans ORDER BY id").fetchall()
    finally:
        connection.close()
    return [row[0] for row in rows]


@dataclass(frozen=True)
class DemoRun:
    buffer_path: Path
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """Run the demo once for every test that only reads what it printed and stored."""
    buffer_path = tmp_path_factory.mktemp("demo") / "buffer.db"
    return DemoRun(buffer_path, _run_demo(buffer_path))


def test_demo_runs_on_fake_server(demo_run: DemoRun) -> None:
    result = demo_run.result

    assert result.returncode == 0, result.stdout + result.stderr
    assert "calling a fake OpenAI server at http://127.0.0.1:" in result.stdout
    assert "dexcost added stream_options.include_usage to the streamed call: True" in result.stdout
    assert "summary (streamed): Password reset: customer cannot sign in" in result.stdout


def test_demo_runs_status_cli(demo_run: DemoRun) -> None:
    result = demo_run.result
    command_line = f"$ dexcost status --db {demo_run.buffer_path}"

    assert result.returncode == 0, result.stdout + result.stderr
    assert command_line in result.stdout
    status_output = result.stdout.split(command_line, 1)[1]
    assert str(demo_run.buffer_path) in status_output


def test_demo_prints_priced_events(demo_run: DemoRun) -> None:
    result = demo_run.result

    llm_lines = [line for line in result.stderr.splitlines() if "llm_call" in line]
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(llm_lines) == 2
    assert all("gpt-4o-mini-2024-07-18" in line for line in llm_lines)
    assert all("customer=acme-corp" in line for line in llm_lines)
    assert all("task=support_ticket" in line for line in llm_lines)
    assert "external_cost serpapi  $0.015" in result.stderr
    assert "task support_ticket" in result.stderr


def test_demo_stores_events(demo_run: DemoRun) -> None:
    assert demo_run.result.returncode == 0, demo_run.result.stderr

    event_types = _event_types(demo_run.buffer_path)

    assert event_types.count("llm_call") == 2
    assert event_types.count("external_cost") == 1
    assert event_types.count("task") == 1


class _FailingServer(FakeOpenAIServer):
    """A fake server whose first chat completion fails with a 400."""

    def start(self) -> _FailingServer:
        super().start()
        self.enqueue(FakeReply(status=400))
        return self


def test_demo_exits_nonzero_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(fake_openai, "FakeOpenAIServer", _FailingServer)
    # The demo queues its own replies behind the scripted 400.

    exit_code = demo.main(["--buffer-path", str(tmp_path / "buffer.db")])

    assert exit_code == 1
    assert "BadRequestError" in capsys.readouterr().err
