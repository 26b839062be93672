"""Manual task lifecycle, retry markers and scoped attribution blocks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry import context as otel_context

import dexcost
from dexcost.tasks import current_task

Stored = Callable[..., list[dict[str, Any]]]

# record_llm_call("openai", "gpt-4o-mini", 1200, 300): 1,200 * $0.15 + 300 * $0.60 per million.
ONE_CALL_USD = Decimal("0.00036")


@pytest.fixture(autouse=True)
def _fresh_otel_context() -> Iterator[None]:
    token = otel_context.attach(otel_context.Context())
    yield
    otel_context.detach(token)


def _task_row(stored: Stored, task_type: str) -> dict[str, Any]:
    (row,) = [row for row in stored("task") if row["task_type"] == task_type]
    return row


# --- start_task / end ---


def test_start_task_collects_calls_until_end(dx, stored: Stored) -> None:
    t = dexcost.start_task("nightly_report", customer_id="acme")
    dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
    t.end()
    dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)

    row = _task_row(stored, "nightly_report")
    assert row["attributes"]["dexcost.task.status"] == "completed"
    assert Decimal(row["attributes"]["dexcost.task.cost_usd"]) == ONE_CALL_USD
    assert row["customer_id"] == "acme"
    calls = stored("llm_call")
    assert [c["task_id"] for c in calls].count(t.task_id) == 1


def test_start_task_end_restores_context(dx) -> None:
    dexcost.set_context(customer_id="beta")
    t = dexcost.start_task("triage", customer_id="acme")

    assert current_task() is t
    assert dexcost.get_context().customer_id == "acme"
    t.end()
    assert current_task() is None
    assert dexcost.get_context().customer_id == "beta"


def test_start_task_custom_status(dx, stored: Stored) -> None:
    t = dexcost.start_task("import_job")
    t.end("cancelled")
    t.end("completed")

    row = _task_row(stored, "import_job")
    assert row["attributes"]["dexcost.task.status"] == "cancelled"


def test_start_task_failed_status_marks_error(dx, stored: Stored) -> None:
    dexcost.start_task("import_job").end("failed")

    row = _task_row(stored, "import_job")
    assert row["attributes"]["dexcost.task.status"] == "failed"
    assert row["status_code"] == 2  # OpenTelemetry StatusCode.ERROR


def test_start_task_nests_under_open_task(dx, stored: Stored) -> None:
    with dexcost.task("conversation") as outer:
        inner = dexcost.start_task("tool_run")
        dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
        inner.end()

    assert inner.parent_task_id == outer.task_id
    assert Decimal(
        _task_row(stored, "conversation")["attributes"]["dexcost.task.cost_usd"]
    ) == ONE_CALL_USD


def test_start_task_ended_from_other_thread(dx, stored: Stored) -> None:
    t = dexcost.start_task("handoff")
    worker = threading.Thread(target=t.end)
    worker.start()
    worker.join()

    assert t.status == "completed"
    # The starting thread's context still names the task, which is over, so a later
    # call goes to the session task instead.
    dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
    (call,) = stored("llm_call")
    assert call["task_id"] != t.task_id


async def test_start_task_in_asyncio_task(dx, stored: Stored) -> None:
    async def job(name: str) -> str:
        t = dexcost.start_task(name)
        await asyncio.sleep(0)
        dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
        t.end()
        return t.task_id

    first, second = await asyncio.gather(job("job_a"), job("job_b"))

    calls = stored("llm_call")
    assert sorted(c["task_id"] for c in calls) == sorted([first, second])


def test_end_rejects_empty_status(dx) -> None:
    t = dexcost.start_task("triage")
    with pytest.raises(TypeError, match="status must be a non-empty string"):
        t.end("")
    t.end()


# --- mark_retry ---


def test_mark_retry_counts_retry_cost(dx, stored: Stored) -> None:
    with dexcost.task("support_ticket") as t:
        t.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
        t.mark_retry("timeout", cost_usd="0.00036")

    totals = _task_row(stored, "support_ticket")["attributes"]
    assert Decimal(totals["dexcost.task.retry_cost_usd"]) == ONE_CALL_USD
    assert Decimal(totals["dexcost.task.cost_usd"]) == 2 * ONE_CALL_USD
    assert totals["dexcost.task.retry_count"] == 1
    (marker,) = stored("retry_marker")
    assert marker["attributes"]["dexcost.retry.reason"] == "timeout"
    assert marker["attributes"]["dexcost.retry.is_retry"] is True


def test_mark_retry_without_cost(dx, stored: Stored) -> None:
    with dexcost.task("support_ticket"):
        dexcost.mark_retry("rate_limited")

    totals = _task_row(stored, "support_ticket")["attributes"]
    assert totals["dexcost.task.retry_count"] == 1
    assert Decimal(totals["dexcost.task.retry_cost_usd"]) == 0


@pytest.mark.parametrize(
    ("reason", "cost", "error"),
    [("", None, TypeError), (None, None, TypeError), ("timeout", "-1", ValueError)],
)
def test_mark_retry_rejects_bad_input(dx, reason: Any, cost: Any, error: type) -> None:
    with pytest.raises(error):
        dexcost.mark_retry(reason, cost_usd=cost)


# --- dexcost.context ---


def test_context_block_restores_previous(dx) -> None:
    dexcost.set_context(customer_id="beta", project_id="p1")
    with dexcost.context(customer_id="acme") as inside:
        assert inside.customer_id == "acme"
        assert dexcost.get_context().customer_id == "acme"
        assert dexcost.get_context().project_id == "p1"

    assert dexcost.get_context().customer_id == "beta"


def test_context_block_restores_after_error(dx) -> None:
    with pytest.raises(KeyError), dexcost.context(customer_id="acme"):
        raise KeyError("boom")

    assert dexcost.get_context() is None


def test_context_block_attributes_calls(dx, stored: Stored) -> None:
    with dexcost.context(customer_id="acme", agent="support_bot"):
        dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
    dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)

    customers = sorted(str(c["customer_id"]) for c in stored("llm_call"))
    assert customers == ["None", "acme"]


async def test_context_block_async_tasks_apart(dx, stored: Stored) -> None:
    async def serve(customer: str) -> None:
        async with dexcost.context(customer_id=customer):
            for _ in range(3):
                await asyncio.sleep(0)
                dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)

    await asyncio.gather(*(serve(name) for name in ("acme", "beta", "gamma")))

    calls = stored("llm_call")
    by_customer: dict[str, int] = {}
    for call in calls:
        by_customer[call["customer_id"]] = by_customer.get(call["customer_id"], 0) + 1
    assert by_customer == {"acme": 3, "beta": 3, "gamma": 3}
    assert dexcost.get_context() is None


# --- session tasks end when idle ---


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_idle_session_task_ends(dx, stored: Stored) -> None:
    from dexcost.runtime import current_runtime

    runtime = current_runtime()
    assert runtime is not None
    clock = _Clock()
    runtime.sessions._clock = clock
    dexcost.set_context(customer_id="acme")
    dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
    clock.now += 301.0
    dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)

    sessions = [row for row in stored("task") if row["task_type"] == "agent_session"]
    # The first session task ended when the second call found it idle; the second is open.
    assert len(sessions) == 1
    assert sessions[0]["attributes"]["dexcost.task.status"] == "completed"
    assert Decimal(sessions[0]["attributes"]["dexcost.task.cost_usd"]) == ONE_CALL_USD
    calls = stored("llm_call")
    assert calls[0]["task_id"] != calls[1]["task_id"]


def test_active_session_task_stays_open(dx, stored: Stored) -> None:
    from dexcost.runtime import current_runtime

    runtime = current_runtime()
    assert runtime is not None
    clock = _Clock()
    runtime.sessions._clock = clock
    dexcost.set_context(customer_id="acme")
    for _ in range(4):
        dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
        clock.now += 200.0

    calls = stored("llm_call")
    assert len({call["task_id"] for call in calls}) == 1
    assert [row for row in stored("task") if row["task_type"] == "agent_session"] == []


def test_flush_ends_idle_session_tasks(dx, stored: Stored) -> None:
    from dexcost.runtime import current_runtime

    runtime = current_runtime()
    assert runtime is not None
    clock = _Clock()
    runtime.sessions._clock = clock
    dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
    clock.now += 301.0
    dexcost.flush()

    (session,) = [row for row in stored("task") if row["task_type"] == "agent_session"]
    assert session["attributes"]["dexcost.task.event_count"] == 1


# --- costs recorded on a task after it ended ---


def test_cost_after_end_goes_to_session(dx, stored: Stored) -> None:
    with dexcost.task("outer", customer_id="acme") as outer:
        outer.record_llm_call("openai", "gpt-4o-mini", 1200, 300)

    with pytest.warns(RuntimeWarning, match="already ended"):
        outer.record_cost("serpapi", "0.1")
    with pytest.warns(RuntimeWarning, match="already ended"):
        outer.mark_retry("timeout", cost_usd="0.1")

    # The ended task's totals stay what was stored when it ended.
    assert outer.cost_usd == ONE_CALL_USD
    row = _task_row(stored, "outer")
    assert Decimal(row["attributes"]["dexcost.task.cost_usd"]) == ONE_CALL_USD
    late = stored("external_cost") + stored("retry_marker")
    assert len(late) == 2
    assert all(event["task_id"] != outer.task_id for event in late)
    assert all(event["customer_id"] == "acme" for event in late)


def test_task_total_keeps_every_digit(dx) -> None:
    with dexcost.task("mixed") as t:
        t.record_cost("tiny", "1E-30")
        t.record_cost("large", "1000000")

    assert t.cost_usd == Decimal("1000000.000000000000000000000000000001")
    assert t.totals()["external_cost_usd"] == Decimal("1000000.000000000000000000000000000001")


def test_scope_exited_too_often_is_clear(dx) -> None:
    scope = dexcost.task("triage")
    with scope:
        pass

    with pytest.raises(RuntimeError, match="exited more times than it was entered"):
        scope.__exit__(None, None, None)
