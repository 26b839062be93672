"""Worker threads and pools inherit the submitter's attribution and task."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import dexcost

Stored = Callable[..., list[dict[str, Any]]]


def _call() -> None:
    dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)


@pytest.fixture
def init_local(buffer_path: Path) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])


async def _fan_out() -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(_call) for _ in range(4)]:
            future.result()
    await asyncio.to_thread(_call)
    await asyncio.to_thread(_call)

    async def in_task() -> None:
        _call()

    await asyncio.gather(in_task(), in_task())


def test_workers_keep_customer_and_task(init_local: None, stored: Stored) -> None:
    dexcost.set_context(customer_id="acme")

    async def main() -> str:
        with dexcost.task("t1") as task:
            await _fan_out()
        return task.task_id

    task_id = asyncio.run(main())
    events = stored("llm_call")
    assert len(events) == 8
    assert {event["customer_id"] for event in events} == {"acme"}
    assert {event["task_id"] for event in events} == {task_id}
    assert sum(Decimal(event["cost_usd"]) for event in events) == Decimal("0.00288")


def test_pool_made_before_init_inherits(buffer_path: Path, stored: Stored) -> None:
    pool = ThreadPoolExecutor(max_workers=2)
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])
    dexcost.set_context(customer_id="early-pool")
    try:
        pool.submit(_call).result()
    finally:
        pool.shutdown()
    (event,) = stored("llm_call")
    assert event["customer_id"] == "early-pool"


def test_plain_thread_inherits(init_local: None, stored: Stored) -> None:
    dexcost.set_context(customer_id="threaded")
    worker = threading.Thread(target=_call)
    worker.start()
    worker.join()
    (event,) = stored("llm_call")
    assert event["customer_id"] == "threaded"


def test_concurrent_customers_stay_apart(init_local: None, stored: Stored) -> None:
    def request(customer: str) -> None:
        dexcost.set_context(customer_id=customer)
        with ThreadPoolExecutor(max_workers=2) as pool:
            for future in [pool.submit(_call) for _ in range(5)]:
                future.result()

    threads = [threading.Thread(target=request, args=(f"c{index}",)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = stored("llm_call")
    assert len(events) == 40
    counts: dict[str, int] = {}
    for event in events:
        counts[event["customer_id"]] = counts.get(event["customer_id"], 0) + 1
    assert counts == {f"c{index}": 5 for index in range(8)}


def test_shutdown_restores_pool_submit(init_local: None) -> None:
    from dexcost import threads

    assert ThreadPoolExecutor.submit is threads._submit
    dexcost.shutdown()
    assert ThreadPoolExecutor.submit is not threads._submit
    assert ThreadPoolExecutor.submit.__module__ == "concurrent.futures.thread"
    assert threading.Thread.run.__module__ == "threading"


def test_host_wrapper_on_top_survives_unpatch() -> None:
    import threading

    import wrapt

    from dexcost.threads import patch_threads, unpatch_threads

    original = threading.Thread.__dict__["start"]
    patch_threads()
    started: list[str] = []

    def host_start(wrapped, instance, args, kwargs):  # type: ignore[no-untyped-def]
        started.append(instance.name)
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(threading.Thread, "start", host_start)
    try:
        unpatch_threads()
        worker = threading.Thread(target=lambda: None, name="after-unpatch")
        worker.start()
        worker.join()

        # The host's wrapper is still installed and still runs.
        assert started == ["after-unpatch"]
        assert not hasattr(worker, "_dexcost_parent_context")
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]
