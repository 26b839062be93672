"""A priced request is worked out after the call returns, and task totals still include it.

With the SQLite buffer as the only reader of event spans, the application's thread
keeps the request's context, times and reply. The buffer's writer, or a thread that
reads a task's totals first, then reads the count from the body, prices it and finds
the task. A task's totals therefore include every request made before the read.
"""

from __future__ import annotations

import contextvars
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

import dexcost
from dexcost import events
from dexcost import runtime as runtime_module
from dexcost.http import capture
from dexcost.processor import DexcostSpanProcessor
from dexcost.runtime import Runtime, current_runtime

from .fake_paid_api import COUNT_BODY, COUNT_COST, FIXED_COST, JSON_COST, FakePaidAPI

# A reply of the fake API's JSON path: 7 credits, JSON_COST.
JSON_REPLY = b'{"usage": {"credits": 7}}'


def _runtime() -> Runtime:
    runtime = current_runtime()
    assert runtime is not None and isinstance(runtime.processor, DexcostSpanProcessor)
    assert runtime.event_sink is runtime.processor
    return runtime


def _external_rows(path: Path) -> list[sqlite3.Row]:
    with closing(sqlite3.connect(path)) as connection:
        connection.row_factory = sqlite3.Row
        return list(
            connection.execute("SELECT * FROM spans WHERE event_type = 'external_cost' ORDER BY id")
        )


@pytest.fixture
def decoded_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Names of the threads that decoded a body, in order."""
    names: list[str] = []
    original = capture.decode_json

    def decode_json(body: bytes | str | None) -> Any:
        names.append(threading.current_thread().name)
        return original(body)

    monkeypatch.setattr(capture, "decode_json", decode_json)
    yield names


def test_writer_reads_count_off_caller_thread(
    api: FakePaidAPI, dx: dexcost.DexcostConfig, buffer_path: Path, decoded_on: list[str]
) -> None:
    with dexcost.task("search", customer_id="acme") as tracked:
        requests.get(f"{api.base_url}/json/search?q=secret")
        # Nothing reads the task here, so only the writer works the event out. It
        # stores what is queued at least every 0.2 s.
        deadline = time.monotonic() + 10
        while not _external_rows(buffer_path) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert decoded_on and threading.current_thread().name not in decoded_on
        assert tracked.cost_usd == JSON_COST
    (row,) = _external_rows(buffer_path)
    assert Decimal(row["cost_usd"]) == JSON_COST
    assert row["customer_id"] == "acme"
    assert row["task_id"] == tracked.task_id


@pytest.mark.parametrize(
    ("send", "expected"),
    [
        (lambda base: requests.get(f"{base}/json/a"), JSON_COST),
        (lambda base: httpx.get(f"{base}/fixed/a"), FIXED_COST),
        (lambda base: httpx.post(f"{base}/count/a", json=COUNT_BODY), COUNT_COST),
    ],
    ids=["response-json", "fixed", "request-json"],
)
def test_task_read_includes_queued_request(
    api: FakePaidAPI,
    dx: dexcost.DexcostConfig,
    buffer_path: Path,
    send: Callable[[str], Any],
    expected: Decimal,
) -> None:
    runtime = _runtime()
    processor = runtime.processor
    assert isinstance(processor, DexcostSpanProcessor)
    # The writer drains only while holding this lock, so it cannot take the event.
    with processor._io_lock, dexcost.task("search") as tracked:
        send(api.base_url)
        queued = list(processor._queue)
        assert len(queued) == 1 and isinstance(queued[0], capture.Plan)
        assert not queued[0].settled
        assert tracked.cost_usd == expected
        assert tracked.totals()["external_cost_usd"] == expected
        assert queued[0].settled
    assert dexcost.flush(timeout=10)
    (row,) = _external_rows(buffer_path)
    assert Decimal(row["cost_usd"]) == expected
    assert row["task_id"] == tracked.task_id


def test_task_end_includes_queued_requests(
    api: FakePaidAPI, dx: dexcost.DexcostConfig, buffer_path: Path
) -> None:
    processor = _runtime().processor
    assert isinstance(processor, DexcostSpanProcessor)
    with processor._io_lock, dexcost.task("search") as tracked:
        for _ in range(3):
            requests.get(f"{api.base_url}/json/a")
    assert dexcost.flush(timeout=10)
    with closing(sqlite3.connect(buffer_path)) as connection:
        (total,) = connection.execute(
            "SELECT cost_usd FROM spans WHERE event_type = 'task' AND task_id = ?",
            (tracked.task_id,),
        ).fetchone()
    assert Decimal(total) == 3 * JSON_COST


def test_late_request_goes_to_session_task(
    api: FakePaidAPI, dx: dexcost.DexcostConfig, buffer_path: Path
) -> None:
    """A request that outlives its task is counted in the session task, not lost."""
    with dexcost.task("search", customer_id="acme") as tracked:
        inside = contextvars.copy_context()
    inside.run(requests.get, f"{api.base_url}/json/late")
    assert tracked.cost_usd == 0
    assert dexcost.flush(timeout=10)
    (row,) = _external_rows(buffer_path)
    assert row["task_id"] != tracked.task_id
    assert row["customer_id"] == "acme"
    assert Decimal(row["cost_usd"]) == JSON_COST


def test_too_many_waiting_settle_on_caller(
    api: FakePaidAPI,
    dx: dexcost.DexcostConfig,
    buffer_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    decoded_on: list[str],
) -> None:
    """The bodies deferred events hold are bounded when the writer cannot keep up."""
    monkeypatch.setattr(runtime_module, "MAX_UNSETTLED", 2)
    runtime = _runtime()
    processor = runtime.processor
    assert isinstance(processor, DexcostSpanProcessor)
    with processor._io_lock:
        for _ in range(3):
            requests.get(f"{api.base_url}/json/a")
        assert events.unsettled_count() == 0
        assert decoded_on == [threading.current_thread().name] * 3
    assert dexcost.flush(timeout=10)
    assert [Decimal(row["cost_usd"]) for row in _external_rows(buffer_path)] == [JSON_COST] * 3


def test_waiting_body_bytes_are_bounded(
    dx: dexcost.DexcostConfig, monkeypatch: pytest.MonkeyPatch, decoded_on: list[str]
) -> None:
    monkeypatch.setattr(runtime_module, "MAX_UNSETTLED_BYTES", 100)
    body = b'{"usage": {"credits": 7}, "pad": "' + b"x" * 200 + b'"}'
    client = httpx.Client(
        transport=httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    )
    runtime = _runtime()
    processor = runtime.processor
    assert isinstance(processor, DexcostSpanProcessor)
    with processor._io_lock, dexcost.task("search") as tracked:
        client.get("http://127.0.0.1/json/a")
        assert events.unsettled_count() == 0
        assert decoded_on == [threading.current_thread().name]
        assert tracked.cost_usd == JSON_COST


def test_threads_settle_without_loss(
    dx: dexcost.DexcostConfig, buffer_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writer, readers and recording threads settling at once count each request once."""
    monkeypatch.setattr(runtime_module, "MAX_UNSETTLED", 5)
    body = JSON_REPLY
    client = httpx.Client(
        transport=httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    )
    threads_count, requests_each = 8, 40
    seen_totals: list[Decimal] = []

    with dexcost.task("crawl") as tracked:
        inside = contextvars.copy_context()

        def work() -> None:
            for _ in range(requests_each):
                client.get("http://127.0.0.1/json/a")
                seen_totals.append(tracked.cost_usd)

        threads = [
            threading.Thread(target=inside.copy().run, args=(work,)) for _ in range(threads_count)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert tracked.event_count == threads_count * requests_each
        assert tracked.cost_usd == threads_count * requests_each * JSON_COST

    # A total read right after a request includes at least that thread's requests.
    assert min(seen_totals) >= JSON_COST
    assert dexcost.flush(timeout=10)
    rows = _external_rows(buffer_path)
    assert len(rows) == threads_count * requests_each
    assert {Decimal(row["cost_usd"]) for row in rows} == {JSON_COST}
    assert {row["task_id"] for row in rows} == {tracked.task_id}


def test_writer_ends_session_task_after_shutdown(
    api: FakePaidAPI, dx: dexcost.DexcostConfig, buffer_path: Path
) -> None:
    """The writer can end an idle session task while it stores after shutdown began.

    Working out the second request ends the first customer's idle session task, and a
    span that ends after shutdown is stored directly, under the writer's own I/O lock.
    """
    runtime = _runtime()
    processor = runtime.processor
    assert isinstance(processor, DexcostSpanProcessor)
    runtime.sessions._idle_seconds = 0.0
    with processor._io_lock:
        for customer in ("acme", "globex"):
            dexcost.set_context(customer_id=customer)
            requests.get(f"{api.base_url}/json/a")
        # Shut the processor down while its writer waits for the lock.
        stopper = threading.Thread(target=processor.shutdown, args=(200,))
        stopper.start()
        stopper.join(timeout=10)
        assert not stopper.is_alive()
    processor._thread.join(timeout=10)
    assert not processor._thread.is_alive()
    with closing(sqlite3.connect(buffer_path)) as connection:
        stored = connection.execute(
            "SELECT event_type, customer_id, cost_usd FROM spans ORDER BY event_type, customer_id"
        ).fetchall()
    assert ("external_cost", "acme", str(JSON_COST)) in stored
    assert ("external_cost", "globex", str(JSON_COST)) in stored
    assert ("task", "acme", str(JSON_COST)) in stored


def test_task_read_settles_after_reinit(
    api: FakePaidAPI, dx: dexcost.DexcostConfig, buffer_path: Path
) -> None:
    """A task started before a second init() still counts requests recorded after it."""
    with dexcost.task("search", customer_id="acme") as tracked:
        dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])
        requests.get(f"{api.base_url}/json/a")
        assert tracked.cost_usd == JSON_COST
        assert tracked.event_count == 1
    assert dexcost.flush(timeout=10)
    (row,) = _external_rows(buffer_path)
    assert row["task_id"] == tracked.task_id


def test_decoded_documents_read_at_record_time(
    dx: dexcost.DexcostConfig, buffer_path: Path
) -> None:
    """A payload or reply the caller changes after the call keeps the count it had."""
    host = capture.lookup("127.0.0.1")
    assert host is not None
    processor = _runtime().processor
    assert isinstance(processor, DexcostSpanProcessor)
    with processor._io_lock, dexcost.task("embed") as tracked:
        sent = {"input": {"texts": ["a", "b", "c", "d"]}}
        plan = host.plan("POST", "/count/a")
        assert plan is not None
        plan.record_response(200, request_json=sent)
        sent["input"]["texts"].extend(["x"] * 1000)
        reply = {"usage": {"credits": 7}}
        plan = host.plan("GET", "/json/a")
        assert plan is not None
        plan.record_response(200, response_json=reply)
        reply.pop("usage")
        assert tracked.cost_usd == COUNT_COST + JSON_COST


def test_waiting_request_drops_sent_request(api: FakePaidAPI, dx: dexcost.DexcostConfig) -> None:
    processor = _runtime().processor
    assert isinstance(processor, DexcostSpanProcessor)
    with processor._io_lock:
        requests.post(f"{api.base_url}/fixed/a", data=b"x" * 100_000)
        (queued,) = list(processor._queue)
        assert isinstance(queued, capture.Plan)
        assert queued.sent is None
        assert queued.response_body is None


def test_deeply_nested_body_is_usage_unknown(dx: dexcost.DexcostConfig, buffer_path: Path) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    client = httpx.Client(
        transport=httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    )
    with dexcost.task("search") as tracked:
        client.get("http://127.0.0.1/json/a")
        assert tracked.event_count == 1
    assert dexcost.flush(timeout=10)
    (row,) = _external_rows(buffer_path)
    assert row["cost_status"] == "usage_unknown"
    assert row["cost_usd"] is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_sees_waiting_costs(api: FakePaidAPI, dx: dexcost.DexcostConfig) -> None:
    """Requests still waiting at fork are in the task totals of parent and child."""
    processor = _runtime().processor
    assert isinstance(processor, DexcostSpanProcessor)
    with dexcost.task("search") as tracked:
        with processor._io_lock:
            for _ in range(3):
                requests.get(f"{api.base_url}/json/a")
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            os.write(write, str(tracked.cost_usd).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            child_total = pipe.read()
        os.waitpid(pid, 0)
        assert Decimal(child_total) == 3 * JSON_COST
        assert tracked.cost_usd == 3 * JSON_COST


def test_request_after_shutdown_stores_session_task(buffer_path: Path, test_catalog: None) -> None:
    """A request outside any task that finishes after shutdown() has its task row too."""
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])
    reply_now = threading.Event()
    started = threading.Event()

    def reply(request: httpx.Request) -> httpx.Response:
        started.set()
        reply_now.wait(10)
        return httpx.Response(200, content=JSON_REPLY)

    client = httpx.Client(transport=httpx.MockTransport(reply))
    dexcost.set_context(customer_id="acme")
    worker = threading.Thread(target=client.get, args=("http://127.0.0.1/json/a",))
    worker.start()
    assert started.wait(10)
    dexcost.shutdown()
    reply_now.set()
    worker.join(10)

    (row,) = _external_rows(buffer_path)
    with closing(sqlite3.connect(buffer_path)) as connection:
        tasks = connection.execute(
            "SELECT task_id, cost_usd FROM spans WHERE event_type = 'task'"
        ).fetchall()
    assert tasks == [(row["task_id"], str(JSON_COST))]


def test_settling_never_waits_for_writer_lock(
    dx: dexcost.DexcostConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread settling never holds the settle lock while it waits for the I/O lock.

    After shutdown, working out a late request ends its new session task, whose span
    is stored under the processor's I/O lock. The writer holds that lock and then
    settles, so the reader must end the task only after releasing the settle lock.
    """
    runtime = _runtime()
    processor = runtime.processor
    assert isinstance(processor, DexcostSpanProcessor)
    host = capture.lookup("127.0.0.1")
    assert host is not None
    plan = host.plan("GET", "/json/a")
    assert plan is not None
    dexcost.shutdown()

    # Queue the late request for settling only, as if its call had just returned.
    monkeypatch.setattr(
        capture.Plan, "_submit", lambda self, held: events.add_unsettled(self, held)
    )
    plan.record_response(200, response_body=JSON_REPLY)
    waiting_for_io = threading.Event()
    write_late = processor._write_late

    def signalling_write_late(event: Any) -> None:
        waiting_for_io.set()
        write_late(event)

    monkeypatch.setattr(processor, "_write_late", signalling_write_late)

    with processor._io_lock:  # as the writer does while it drains
        reader = threading.Thread(target=events.settle)
        reader.start()
        assert waiting_for_io.wait(10)
        writer = threading.Thread(target=events.settle)
        writer.start()
        writer.join(5)
        settled_while_held = not writer.is_alive()
    reader.join(10)
    writer.join(10)
    assert settled_while_held
    assert plan.settled
