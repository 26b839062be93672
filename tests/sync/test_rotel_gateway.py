"""rotel as the collector gateway, end to end: app processes -> rotel -> the Control Layer.

Each test starts the real rotel agent through ``collector-config/rotel/run_gateway.py``
on loopback ports, forwarding to the protobuf-decoding receiver that acts as the
Control Layer, and runs dexcost in separate app processes, each with its own
buffer, that send to rotel.

rotel replies 200 to an app as soon as it has the spans in memory, so dexcost marks
them synced at once. From then on rotel alone holds them: it retries refused connections,
timeouts, 429 and 5xx until its retry time runs out, and drops a batch the Control
Layer rejects (400, 401) or still cannot reach by then. The tests check both sides.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from dexcost.buffer import SYNC_SYNCED

from .conftest import stored_events, sync_states, wait_until
from .receiver import Receiver

pytest.importorskip("rotel", reason="rotel is not installed (test extra, Linux only)")

LAUNCHER = Path(__file__).resolve().parents[2] / "collector-config" / "rotel" / "run_gateway.py"
# The gateway's key, which rotel sends upstream, and the key the apps send to rotel.
GATEWAY_KEY = "dx_live_" + "g" * 24
APP_KEY = "dx_test_" + "a" * 24
# rotel's log lines for a failed export that it will retry, and for data it gave up on.
RETRYING = "will retry again"
DROPPED = "dropping data"
# Retry fast, so that a test waits for the Control Layer for well under a second.
FAST_RETRY = {
    "ROTEL_OTLP_EXPORTER_RETRY_INITIAL_BACKOFF": "100ms",
    "ROTEL_OTLP_EXPORTER_RETRY_MAX_BACKOFF": "300ms",
}

APP = """
import sqlite3, sys, time
from decimal import Decimal
import dexcost
from dexcost.sync import worker
worker.POLL_SECONDS = 0.05
worker.BACKOFF_BASE_SECONDS = 0.05
worker.BACKOFF_CAP_SECONDS = 0.2
buffer, calls, amounts = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
dexcost.init(api_key=KEY, buffer_path=buffer, flush_interval=0.1, auto_instrument=[])
for _ in range(calls):
    dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
for amount in amounts:
    dexcost.record_cost("vector-search", Decimal(amount))
dexcost.flush()

def pending():
    connection = sqlite3.connect(buffer)
    try:
        return connection.execute("SELECT COUNT(*) FROM spans WHERE sync_state = 0").fetchone()[0]
    finally:
        connection.close()

deadline = time.monotonic() + 20
while pending() and time.monotonic() < deadline:
    time.sleep(0.05)
dexcost.shutdown()
"""


@dataclass
class Gateway:
    process: subprocess.Popen[bytes]
    endpoint: str
    log: Path

    def logged(self, text: str) -> bool:
        return text in self.log.read_text(errors="replace")


@dataclass
class App:
    """One app run: its buffer and what it records."""

    buffer: Path
    calls: int
    amounts: tuple[str, ...] = ()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def clean_environment() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DEXCOST_", "ROTEL_")) and name != "OPENAI_API_KEY"
    }


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """Return a function that starts rotel in front of a receiver, stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(receiver: Receiver, **settings: str) -> Gateway:
        http_port, grpc_port = free_port(), free_port()
        env = clean_environment()
        env.update(
            DEXCOST_API_KEY=GATEWAY_KEY,
            ROTEL_OTLP_HTTP_ENDPOINT=f"127.0.0.1:{http_port}",
            ROTEL_OTLP_GRPC_ENDPOINT=f"127.0.0.1:{grpc_port}",
            ROTEL_OTLP_EXPORTER_ENDPOINT=receiver.endpoint,
            **settings,
        )
        log = tmp_path / f"rotel-{len(started)}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, str(LAUNCHER)], env=env, stdout=output, stderr=output
            )
        started.append(process)
        wait_until(lambda: process.poll() is not None or listening(http_port), 15)
        if not listening(http_port):
            pytest.fail(f"rotel is not listening on port {http_port}:\n{log.read_text()}")
        return Gateway(process, f"http://127.0.0.1:{http_port}", log)

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def run_apps(gateway: Gateway, tmp_path: Path, apps: list[App]) -> None:
    """Run each app in its own process, all at once, and wait for them to exit."""
    script = tmp_path / "app.py"
    script.write_text(f"KEY = {APP_KEY!r}\n" + textwrap.dedent(APP))
    env = clean_environment()
    env.update(
        DEXCOST_ENDPOINT=gateway.endpoint,
        HOME=str(tmp_path / "home"),
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(app.buffer), str(app.calls), *app.amounts],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for app in apps
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr


def recorded(apps: list[App]) -> dict[str, Decimal]:
    """Return the cost of every event the apps stored, by span id."""
    events: dict[str, Decimal] = {}
    for app in apps:
        events.update(stored_events(app.buffer))
    return events


def authorizations(receiver: Receiver) -> set[str]:
    return {
        value
        for _, _, headers in receiver.requests
        for name, value in headers.items()
        if name.lower() == "authorization"
    }


def several_apps(tmp_path: Path) -> list[App]:
    # Amounts that a float sum would not add up exactly.
    return [
        App(tmp_path / "app-0.db", 3, ("0.1", "0.2")),
        App(tmp_path / "app-1.db", 5, ("0.000000001",)),
        App(tmp_path / "app-2.db", 1, ("12.345678901234567890", "0.3")),
    ]


def test_several_apps_arrive_exactly_once(
    receiver: Receiver, start_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    receiver.up()
    gateway = start_gateway(receiver)
    apps = several_apps(tmp_path)
    run_apps(gateway, tmp_path, apps)
    events = recorded(apps)
    assert len(events) == 3 + 2 + 5 + 1 + 1 + 2
    assert wait_until(lambda: receiver.event_ids() == set(events), 15), gateway.log.read_text()
    assert receiver.event_cost() == sum(events.values(), Decimal(0))
    assert receiver.deliveries == len(receiver.span_ids())
    assert authorizations(receiver) == {f"Bearer {GATEWAY_KEY}"}


def test_outage_events_arrive_after_recovery(
    receiver: Receiver, start_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    gateway = start_gateway(receiver, **FAST_RETRY)
    apps = several_apps(tmp_path)
    run_apps(gateway, tmp_path, apps)
    # rotel accepted everything, so no app keeps anything to send again.
    assert [set(sync_states(app.buffer)) for app in apps] == [{SYNC_SYNCED}] * len(apps)
    assert wait_until(lambda: gateway.logged(RETRYING), 15), gateway.log.read_text()
    receiver.up()
    events = recorded(apps)
    assert wait_until(lambda: receiver.event_ids() == set(events), 15), gateway.log.read_text()
    assert receiver.event_cost() == sum(events.values(), Decimal(0))
    assert receiver.deliveries == len(receiver.span_ids())


def test_retry_time_exceeded_drops_events(
    receiver: Receiver, start_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    gateway = start_gateway(receiver, ROTEL_OTLP_EXPORTER_RETRY_MAX_ELAPSED_TIME="1s", **FAST_RETRY)
    lost = App(tmp_path / "lost.db", 2)
    run_apps(gateway, tmp_path, [lost])
    assert wait_until(lambda: gateway.logged(DROPPED), 15), gateway.log.read_text()
    receiver.up()
    later = App(tmp_path / "later.db", 2)
    run_apps(gateway, tmp_path, [later])
    assert wait_until(lambda: bool(receiver.event_ids()), 15), gateway.log.read_text()
    # The first app's buffer marks its events as sent, but they never arrive.
    assert set(sync_states(lost.buffer)) == {SYNC_SYNCED}
    assert receiver.event_ids() == set(stored_events(later.buffer))


@pytest.mark.parametrize("status", [400, 401])
def test_rejected_batch_is_dropped(
    receiver: Receiver, start_gateway: Callable[..., Gateway], tmp_path: Path, status: int
) -> None:
    receiver.faults.append(("status", status))
    receiver.up()
    gateway = start_gateway(receiver)
    rejected = App(tmp_path / "rejected.db", 2)
    run_apps(gateway, tmp_path, [rejected])
    assert wait_until(lambda: gateway.logged(DROPPED), 15), gateway.log.read_text()
    later = App(tmp_path / "later.db", 2)
    run_apps(gateway, tmp_path, [later])
    assert wait_until(lambda: bool(receiver.event_ids()), 15), gateway.log.read_text()
    assert receiver.statuses()[0] == status
    assert receiver.event_ids() == set(stored_events(later.buffer))


def scope_spans(scope: str | None, span_id: bytes) -> ScopeSpans:
    span = Span(
        trace_id=b"\x01" * 16,
        span_id=span_id,
        name="call",
        start_time_unix_nano=1,
        end_time_unix_nano=2,
        attributes=[KeyValue(key="dexcost.cost_usd", value=AnyValue(string_value="0.5"))],
    )
    if scope is None:
        return ScopeSpans(spans=[span])
    return ScopeSpans(scope=InstrumentationScope(name=scope), spans=[span])


def test_other_scopes_are_filtered_out(
    receiver: Receiver, start_gateway: Callable[..., Gateway]
) -> None:
    receiver.up()
    gateway = start_gateway(receiver)
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                scope_spans=[
                    scope_spans("opentelemetry.instrumentation.requests", b"\x02" * 8),
                    scope_spans("dexcost", b"\x03" * 8),
                    scope_spans(None, b"\x04" * 8),
                ]
            )
        ]
    )
    connection = http.client.HTTPConnection(gateway.endpoint.removeprefix("http://"), timeout=5)
    try:
        connection.request(
            "POST",
            "/v1/traces",
            request.SerializeToString(),
            {"Content-Type": "application/x-protobuf"},
        )
        assert connection.getresponse().status == 200
    finally:
        connection.close()
    # The three scopes travel in one request, so once dexcost's span is in, so are
    # any others that got through.
    assert wait_until(lambda: bool(receiver.span_ids()), 15), gateway.log.read_text()
    assert receiver.span_ids() == {"03" * 8}
