"""Sync across processes: a killed process, two processes on one buffer, exit, fork."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from .conftest import API_KEY, stored_events, stored_span_ids, wait_until
from .receiver import Receiver

# Shared start of every child script: short waits, a short lease, and dexcost
# pushing to the test's receiver.
PRELUDE = """
import os, sqlite3, sys, time
import dexcost
from dexcost.sync import worker
worker.BACKOFF_BASE_SECONDS = 0.05
worker.BACKOFF_CAP_SECONDS = 0.2
worker.POLL_SECONDS = 0.05
worker.REQUEST_TIMEOUT_SECONDS = 2.0
worker.LEASE_SECONDS = 1.0
BUFFER = sys.argv[1]

def pending():
    connection = sqlite3.connect(BUFFER)
    try:
        return connection.execute("SELECT COUNT(*) FROM spans WHERE sync_state = 0").fetchone()[0]
    finally:
        connection.close()

def wait_for_no_pending(timeout):
    deadline = time.monotonic() + timeout
    while pending() and time.monotonic() < deadline:
        time.sleep(0.05)
"""


def child_env(receiver: Receiver, tmp_path: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("DEXCOST_") and name != "OPENAI_API_KEY"
    }
    env.update(
        DEXCOST_API_KEY=API_KEY,
        DEXCOST_ENDPOINT=receiver.endpoint,
        HOME=str(tmp_path / "home"),
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    return env


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(PRELUDE + textwrap.dedent(body))
    return path


def run(path: Path, buffer_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(path), str(buffer_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_receiver_matches_buffer(receiver: Receiver, path: Path) -> None:
    events = stored_events(path)
    assert receiver.event_ids() == set(events)
    assert receiver.event_cost() == sum(events.values(), Decimal(0))


def test_one_call_is_delivered_at_exit(
    receiver: Receiver, buffer_path: Path, tmp_path: Path
) -> None:
    receiver.up()
    path = script(
        tmp_path,
        "one_call.py",
        """
        dexcost.init(buffer_path=BUFFER, flush_interval=60.0)
        dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
        """,
    )
    result = run(path, buffer_path, child_env(receiver, tmp_path))
    assert result.returncode == 0, result.stderr
    # 1,200 * $0.15/M + 300 * $0.60/M = $0.00018 + $0.00018.
    assert (len(receiver.event_ids()), receiver.event_cost()) == (1, Decimal("0.00036"))


def test_killed_process_events_sent_by_next(
    receiver: Receiver, buffer_path: Path, tmp_path: Path
) -> None:
    # Slow responses keep a batch leased and in flight when the process is killed.
    receiver.handle_delay = 0.3
    receiver.up()
    env = child_env(receiver, tmp_path)
    recorder = script(
        tmp_path,
        "recorder.py",
        """
        dexcost.init(buffer_path=BUFFER, flush_interval=0.1, batch_size=20)
        for _ in range(200):
            dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
        dexcost.flush()
        print("stored", flush=True)
        time.sleep(60)
        """,
    )
    process = subprocess.Popen(
        [sys.executable, str(recorder), str(buffer_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "stored"
        assert wait_until(lambda: len(receiver.requests) >= 1, 10)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        process.stdout.close()  # type: ignore[union-attr]
        process.stderr.close()  # type: ignore[union-attr]
    assert len(receiver.event_ids()) < 200
    receiver.handle_delay = 0.0
    follower = script(
        tmp_path,
        "follower.py",
        """
        dexcost.init(buffer_path=BUFFER, flush_interval=0.1, batch_size=50)
        wait_for_no_pending(20)
        """,
    )
    result = run(follower, buffer_path, env)
    assert result.returncode == 0, result.stderr
    assert len(stored_events(buffer_path)) == 200
    assert_receiver_matches_buffer(receiver, buffer_path)


def test_two_processes_share_buffer_without_duplicates(
    receiver: Receiver, buffer_path: Path, tmp_path: Path
) -> None:
    receiver.handle_delay = 0.02
    receiver.up()
    env = child_env(receiver, tmp_path)
    path = script(
        tmp_path,
        "sharer.py",
        """
        dexcost.init(buffer_path=BUFFER, flush_interval=0.05, batch_size=10)
        for _ in range(300):
            dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
            time.sleep(0.001)
        dexcost.flush()
        wait_for_no_pending(20)
        """,
    )
    processes = [
        subprocess.Popen(
            [sys.executable, str(path), str(buffer_path)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
    assert len(stored_events(buffer_path)) == 600
    assert_receiver_matches_buffer(receiver, buffer_path)
    assert (receiver.concurrent_duplicates, receiver.deliveries) == (
        0,
        len(stored_span_ids(buffer_path)),
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_uploads_its_events(
    receiver: Receiver, buffer_path: Path, tmp_path: Path
) -> None:
    receiver.up()
    path = script(
        tmp_path,
        "forker.py",
        """
        dexcost.init(buffer_path=BUFFER, flush_interval=0.1)
        dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
        dexcost.flush()
        pid = os.fork()
        if pid == 0:
            for _ in range(3):
                dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
            dexcost.flush()
            wait_for_no_pending(10)
            threads = [t.name for t in __import__("threading").enumerate()]
            sys.exit(0 if "dexcost-sync" in threads else 3)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
        """,
    )
    result = run(path, buffer_path, child_env(receiver, tmp_path))
    assert result.returncode == 0, result.stderr
    assert len(stored_events(buffer_path)) == 4
    assert_receiver_matches_buffer(receiver, buffer_path)
