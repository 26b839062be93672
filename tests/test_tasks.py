"""Tests for dexcost.task(): scopes, decorators, totals, attribution and session tasks."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import re
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry import context as otel_context

import dexcost

Stored = Callable[..., list[dict[str, Any]]]

# record_llm_call("openai", "gpt-4o-mini", 1200, 300) at $0.15 / $0.60 per million
# input / output tokens: 1200 * 0.15e-6 + 300 * 0.60e-6.
ONE_CALL_USD = "0.00036"


@pytest.fixture(autouse=True)
def _fresh_otel_context() -> Iterator[None]:
    """Start each test on an empty OTel context; set_context would leak into the next test."""
    token = otel_context.attach(otel_context.Context())
    yield
    otel_context.detach(token)


def _one_call(t: dexcost.TrackedTask) -> None:
    t.record_llm_call("openai", "gpt-4o-mini", 1200, 300)


def _task_row(stored: Stored, task_type: str) -> dict[str, Any]:
    (row,) = [row for row in stored("task") if row["task_type"] == task_type]
    return row


def _handle_ticket(ticket_id: str, *, urgent: bool = False) -> str:
    """Return a marker so callers can tell the wrapped function ran."""
    return f"handled {ticket_id} urgent={urgent}"


async def _handle_ticket_async(ticket_id: str, *, urgent: bool = False) -> str:
    await asyncio.sleep(0)
    return f"handled {ticket_id} urgent={urgent}"


# --- context manager ---


def test_context_manager_stores_completed_task(
    dx: dexcost.DexcostConfig, stored: Stored
) -> None:
    with dexcost.task("support_ticket") as t:
        pass

    row = _task_row(stored, "support_ticket")
    assert isinstance(t, dexcost.TrackedTask)
    assert row["task_id"] == t.task_id
    assert row["attributes"]["dexcost.task.status"] == "completed"


def test_explicit_task_id_is_stored(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    with dexcost.task("support_ticket", task_id="ticket-4711"):
        pass

    assert _task_row(stored, "support_ticket")["task_id"] == "ticket-4711"


async def test_async_context_manager_stores_task_row(
    dx: dexcost.DexcostConfig, stored: Stored
) -> None:
    async with dexcost.task("support_ticket") as t:
        _one_call(t)

    assert _task_row(stored, "support_ticket")["cost_usd"] == ONE_CALL_USD


# --- decorator ---


def test_decorator_keeps_function_metadata() -> None:
    wrapped = dexcost.task("triage")(_handle_ticket)

    assert wrapped.__name__ == "_handle_ticket"
    assert inspect.signature(wrapped) == inspect.signature(_handle_ticket)
    assert wrapped.__doc__ == _handle_ticket.__doc__


def test_decorator_starts_task_per_call(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    wrapped = dexcost.task("triage")(_handle_ticket)

    first = wrapped("T-1", urgent=True)
    second = wrapped("T-2")

    assert (first, second) == ("handled T-1 urgent=True", "handled T-2 urgent=False")
    assert len({row["task_id"] for row in stored("task")}) == 2


def test_async_decorator_keeps_function_metadata() -> None:
    wrapped = dexcost.task("triage")(_handle_ticket_async)

    assert inspect.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "_handle_ticket_async"
    assert inspect.signature(wrapped) == inspect.signature(_handle_ticket_async)


async def test_async_decorator_counts_costs_inside(
    dx: dexcost.DexcostConfig, stored: Stored
) -> None:
    @dexcost.task("triage")
    async def handle(ticket_id: str) -> str:
        await asyncio.sleep(0)
        dexcost.record_cost("serpapi", "0.015")
        return f"handled {ticket_id}"

    result = await handle("T-1")

    assert result == "handled T-1"
    assert _task_row(stored, "triage")["cost_usd"] == "0.015"


async def test_async_decorator_failure_marks_failed(
    dx: dexcost.DexcostConfig, stored: Stored
) -> None:
    @dexcost.task("triage")
    async def handle() -> None:
        raise LookupError("ticket not found")

    with pytest.raises(LookupError):
        await handle()

    assert _task_row(stored, "triage")["attributes"]["dexcost.task.status"] == "failed"


async def test_async_generator_decorator_owns_costs(
    dx: dexcost.DexcostConfig, stored: Stored
) -> None:
    @dexcost.task("stream_answer")
    async def stream() -> Any:
        dexcost.record_cost("serpapi", "0.015")
        yield "chunk"

    chunks = [chunk async for chunk in stream()]
    assert chunks == ["chunk"]

    (event,) = stored("external_cost")
    assert event["task_type"] == "stream_answer"


def test_generator_decorator_owns_costs(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    @dexcost.task("stream_answer")
    def stream() -> Any:
        dexcost.record_cost("serpapi", "0.015")
        yield "chunk"

    chunks = list(stream())
    assert chunks == ["chunk"]

    (event,) = stored("external_cost")
    assert event["task_type"] == "stream_answer"


# --- nesting ---


def test_nested_task_records_parent(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    with dexcost.task("outer") as outer, dexcost.task("inner"):
        pass

    rows = {row["task_type"]: row for row in stored("task")}
    assert rows["inner"]["attributes"]["dexcost.task.parent_id"] == outer.task_id
    assert rows["inner"]["parent_span_id"] == rows["outer"]["span_id"]
    assert "dexcost.task.parent_id" not in rows["outer"]["attributes"]


def test_cost_inside_nested_task_goes_to_inner(
    dx: dexcost.DexcostConfig, stored: Stored
) -> None:
    with dexcost.task("outer"), dexcost.task("inner"):
        dexcost.record_cost("serpapi", "0.015")

    (event,) = stored("external_cost")
    assert event["task_type"] == "inner"


def test_outer_task_total_includes_inner(dx: dexcost.DexcostConfig) -> None:
    with dexcost.task("outer") as outer:
        outer.record_cost("serpapi", "1")
        with dexcost.task("inner") as inner:
            inner.record_cost("serpapi", "0.5")

    assert (outer.cost_usd, inner.cost_usd) == (Decimal("1.5"), Decimal("0.5"))


# --- failure ---


def test_exception_marks_task_failed(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    with pytest.raises(ValueError), dexcost.task("support_ticket"):
        raise ValueError("model refused")

    row = _task_row(stored, "support_ticket")
    assert row["attributes"]["dexcost.task.status"] == "failed"
    # StatusCode.ERROR is 2 in the OTel API.
    assert row["status_code"] == 2


def test_exception_propagates_same_object(dx: dexcost.DexcostConfig) -> None:
    error = ValueError("model refused")

    with pytest.raises(ValueError) as caught, dexcost.task("support_ticket"):
        raise error

    assert caught.value is error


def test_decorator_propagates_same_exception(dx: dexcost.DexcostConfig) -> None:
    error = KeyError("ticket")

    @dexcost.task("triage")
    def handle() -> None:
        raise error

    with pytest.raises(KeyError) as caught:
        handle()

    assert caught.value is error


def test_failed_task_keeps_costs(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    with pytest.raises(RuntimeError), dexcost.task("support_ticket") as t:
        _one_call(t)
        raise RuntimeError("tool crashed")

    assert _task_row(stored, "support_ticket")["cost_usd"] == ONE_CALL_USD


# --- totals ---


def _record_mixed_costs(t: dexcost.TrackedTask) -> None:
    t.record_cost("serpapi", "0.015")
    t.record_cost("browserbase", 2)
    for _ in range(8):
        _one_call(t)


def test_task_span_holds_totals(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    with dexcost.task("research") as t:
        _record_mixed_costs(t)

    # Eight LLM calls at $0.00036 plus $0.015 and $2 of external costs.
    totals = _task_row(stored, "research")["attributes"]
    assert totals["dexcost.task.cost_usd"] == "2.01788"
    assert totals["dexcost.task.llm_cost_usd"] == "0.00288"
    assert totals["dexcost.task.external_cost_usd"] == "2.015"
    assert totals["dexcost.task.retry_cost_usd"] == "0"
    assert totals["dexcost.task.event_count"] == 10
    assert totals["dexcost.task.unpriced_count"] == 0
    assert totals["dexcost.task.input_tokens"] == 9600
    assert totals["dexcost.task.output_tokens"] == 2400
    assert totals["dexcost.task.cached_tokens"] == 0
    assert totals["dexcost.task.reasoning_tokens"] == 0


def test_eight_llm_calls_sum_exactly(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    with dexcost.task("research") as t:
        for _ in range(8):
            _one_call(t)

    assert [event["cost_usd"] for event in stored("llm_call")] == [ONE_CALL_USD] * 8
    assert _task_row(stored, "research")["attributes"]["dexcost.task.cost_usd"] == "0.00288"


def test_cost_usd_property_is_exact_decimal(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    with dexcost.task("research") as t:
        _record_mixed_costs(t)

    assert type(t.cost_usd) is Decimal
    assert t.cost_usd == Decimal("2.01788")
    assert _task_row(stored, "research")["cost_usd"] == "2.01788"


def test_empty_task_costs_zero(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    with dexcost.task("research"):
        pass

    assert _task_row(stored, "research")["attributes"]["dexcost.task.cost_usd"] == "0"


def test_float_cost_is_exact_decimal(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    with dexcost.task("research") as t:
        t.record_cost("serpapi", 0.1)
        t.record_cost("serpapi", 0.2)

    assert [event["cost_usd"] for event in stored("external_cost")] == ["0.1", "0.2"]
    assert t.cost_usd == Decimal("0.3")


def test_module_record_cost_uses_current_task(dx: dexcost.DexcostConfig) -> None:
    with dexcost.task("research") as t:
        dexcost.record_cost("serpapi", "0.015", units=3, unit="queries")

    assert t.cost_usd == Decimal("0.015")


def test_record_cost_stores_units(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    with dexcost.task("research") as t:
        t.record_cost("serpapi", "0.015", units=3, unit="queries")

    (event,) = stored("external_cost")
    assert (event["attributes"]["dexcost.units"], event["attributes"]["dexcost.unit"]) == (
        3,
        "queries",
    )


# --- input validation ---

BAD_RECORD_COST_CALLS = [
    pytest.param("serpapi", "-0.5", ValueError, "'-0.5'", id="negative-string"),
    pytest.param("serpapi", "abc", ValueError, "'abc'", id="not-a-number"),
    pytest.param("serpapi", float("nan"), ValueError, "nan", id="nan"),
    pytest.param("serpapi", True, TypeError, "True", id="bool"),
    pytest.param("serpapi", None, TypeError, "None", id="none-cost"),
    pytest.param(None, "0.1", TypeError, "None", id="none-service"),
    pytest.param("", "0.1", TypeError, "''", id="empty-service"),
]


@pytest.mark.parametrize(("service", "cost", "error", "shown"), BAD_RECORD_COST_CALLS)
def test_record_cost_rejects_bad_input(
    dx: dexcost.DexcostConfig, service: Any, cost: Any, error: type[Exception], shown: str
) -> None:
    with (
        dexcost.task("research") as t,
        pytest.raises(error, match=re.escape(shown)),
    ):
        t.record_cost(service, cost)


def test_rejected_cost_records_nothing(dx: dexcost.DexcostConfig) -> None:
    with dexcost.task("research") as t:
        with pytest.raises(ValueError):
            t.record_cost("serpapi", "-1")
        recorded = t.event_count

    assert recorded == 0


def test_record_llm_call_rejects_bad_tokens(dx: dexcost.DexcostConfig) -> None:
    with dexcost.task("research") as t:
        with pytest.raises(ValueError, match="input_tokens must be a non-negative int, got -1"):
            t.record_llm_call("openai", "gpt-4o-mini", -1, 300)
        with pytest.raises(ValueError, match="output_tokens must be a non-negative int, got 2.5"):
            t.record_llm_call("openai", "gpt-4o-mini", 1200, 2.5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="input_tokens must be a non-negative int, got True"):
            t.record_llm_call("openai", "gpt-4o-mini", True, 300)
        with pytest.raises(ValueError, match="cached_tokens must not exceed input_tokens"):
            t.record_llm_call("openai", "gpt-4o-mini", 100, 300, cached_tokens=101)

    assert t.event_count == 0


def test_task_type_must_be_non_empty() -> None:
    with pytest.raises(TypeError, match="task_type"):
        dexcost.task("")


def test_calls_without_init_raise() -> None:
    wrapped = dexcost.task("triage")(_handle_ticket)

    with pytest.raises(RuntimeError, match=re.escape("dexcost.init()")), dexcost.task("x"):
        pass
    with pytest.raises(RuntimeError, match="not initialised"):
        wrapped("T-1")
    with pytest.raises(RuntimeError, match="not initialised"):
        dexcost.record_cost("serpapi", "0.015")


# --- threads ---


def test_copied_context_thread_counts_toward_task(
    dx: dexcost.DexcostConfig, stored: Stored
) -> None:
    with dexcost.task("research") as t:
        worker_context = contextvars.copy_context()
        worker = threading.Thread(
            target=worker_context.run, args=(dexcost.record_cost, "serpapi", "0.25")
        )
        worker.start()
        worker.join()

    (event,) = stored("external_cost")
    assert t.cost_usd == Decimal("0.25")
    assert event["task_id"] == t.task_id


def test_costs_from_many_threads_sum_exactly(dx: dexcost.DexcostConfig) -> None:
    def record_many() -> None:
        for _ in range(25):
            dexcost.record_cost("serpapi", "0.001")

    with dexcost.task("research") as t:
        workers = [
            threading.Thread(target=contextvars.copy_context().run, args=(record_many,))
            for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    assert t.cost_usd == Decimal("0.1")


def test_plain_thread_record_cost_keeps_customer(
    dx: dexcost.DexcostConfig, stored: Stored
) -> None:
    with dexcost.task("research", customer_id="acme") as t:
        worker = threading.Thread(target=t.record_cost, args=("serpapi", "0.015"))
        worker.start()
        worker.join()

    (event,) = stored("external_cost")
    assert event["customer_id"] == "acme"


def test_plain_thread_llm_call_keeps_customer(
    dx: dexcost.DexcostConfig, stored: Stored
) -> None:
    with dexcost.task("research", customer_id="acme") as t:
        worker = threading.Thread(target=_one_call, args=(t,))
        worker.start()
        worker.join()

    (event,) = stored("llm_call")
    assert event["customer_id"] == "acme"


# --- span relations ---


def test_event_is_child_of_task_span(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    with dexcost.task("research") as t:
        _one_call(t)
        t.record_cost("serpapi", "0.015")

    task_row = _task_row(stored, "research")
    for event in stored("llm_call") + stored("external_cost"):
        assert event["parent_span_id"] == task_row["span_id"]
        assert event["trace_id"] == task_row["trace_id"]
        assert event["task_id"] == t.task_id


# --- attribution ---


def test_task_customer_overrides_context(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    dexcost.set_context(customer_id="from-context")

    with dexcost.task("research", customer_id="from-task") as t:
        _one_call(t)

    (event,) = stored("llm_call")
    assert event["customer_id"] == "from-task"
    assert _task_row(stored, "research")["customer_id"] == "from-task"


def test_task_inherits_context_customer(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    dexcost.set_context(customer_id="acme")

    with dexcost.task("research") as t:
        _one_call(t)

    (event,) = stored("llm_call")
    assert event["customer_id"] == "acme"


def test_task_customer_ends_with_task(dx: dexcost.DexcostConfig) -> None:
    dexcost.set_context(customer_id="from-context")

    with dexcost.task("research", customer_id="from-task"):
        pass

    context = dexcost.get_context()
    assert context is not None
    assert context.customer_id == "from-context"


def test_task_metadata_reaches_event(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    with dexcost.task("research", metadata={"ticket": "T-1"}) as t:
        t.record_cost("serpapi", "0.015")

    (event,) = stored("external_cost")
    assert event["attributes"]["dexcost.metadata.ticket"] == "T-1"


# --- session tasks ---


def test_cost_outside_task_goes_to_session(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    dexcost.record_cost("serpapi", "0.015")

    (event,) = stored("external_cost")
    assert event["task_type"] == "agent_session"


def test_session_task_type_is_context_agent(
    dx: dexcost.DexcostConfig, stored: Stored
) -> None:
    dexcost.set_context(agent="support-bot")

    dexcost.record_cost("serpapi", "0.015")

    (event,) = stored("external_cost")
    assert event["task_type"] == "support-bot"


def test_calls_outside_tasks_make_one_session(
    dx: dexcost.DexcostConfig, stored: Stored
) -> None:
    for _ in range(3):
        dexcost.record_cost("serpapi", "0.01")

    dexcost.shutdown()

    (session,) = stored("task")
    assert session["task_type"] == "agent_session"
    assert session["cost_usd"] == "0.03"
    assert session["attributes"]["dexcost.task.auto"] is True


def test_session_task_split_by_customer(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    dexcost.set_context(customer_id="acme")
    dexcost.record_cost("serpapi", "0.01")
    dexcost.set_context(customer_id="globex")
    dexcost.record_cost("serpapi", "0.02")

    dexcost.shutdown()

    customers = {row["customer_id"]: row["cost_usd"] for row in stored("task")}
    assert customers == {"acme": "0.01", "globex": "0.02"}


def test_module_llm_call_goes_to_session(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)

    (event,) = stored("llm_call")
    assert (event["task_type"], event["cost_usd"]) == ("agent_session", ONE_CALL_USD)


def test_module_llm_call_uses_current_task(dx: dexcost.DexcostConfig) -> None:
    with dexcost.task("research") as t:
        dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)

    assert t.cost_usd == Decimal(ONE_CALL_USD)


def test_session_cost_keeps_context_metadata(
    dx: dexcost.DexcostConfig, stored: Stored
) -> None:
    dexcost.set_context(customer_id="acme", metadata={"ticket": "T-1"})

    dexcost.record_cost("serpapi", "0.015")

    (event,) = stored("external_cost")
    assert event["attributes"].get("dexcost.metadata.ticket") == "T-1"


def test_session_llm_call_keeps_context_metadata(
    dx: dexcost.DexcostConfig, stored: Stored
) -> None:
    dexcost.set_context(customer_id="acme", metadata={"ticket": "T-1"})

    dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)

    (event,) = stored("llm_call")
    assert event["attributes"].get("dexcost.metadata.ticket") == "T-1"


def test_session_metadata_does_not_split_sessions(
    dx: dexcost.DexcostConfig, stored: Stored
) -> None:
    dexcost.set_context(metadata={"ticket": "T-1"})
    dexcost.record_cost("serpapi", "0.01")
    dexcost.set_context(metadata={"ticket": "T-2"})
    dexcost.record_cost("serpapi", "0.01")

    dexcost.shutdown()

    assert len(stored("task")) == 1


def test_cost_after_task_goes_to_session(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    with dexcost.task("research"):
        pass

    dexcost.record_cost("serpapi", "0.015")

    (event,) = stored("external_cost")
    assert event["task_type"] == "agent_session"


# --- one scope object reused ---


async def test_shared_scope_keeps_concurrent_totals(
    dx: dexcost.DexcostConfig, stored: Stored
) -> None:
    scope = dexcost.task("shared_scope")
    first_exited = asyncio.Event()
    second_entered = asyncio.Event()

    async def first() -> None:
        async with scope as t:
            await second_entered.wait()
            t.record_cost("first", "1")
        first_exited.set()

    async def second() -> None:
        async with scope as t:
            second_entered.set()
            await first_exited.wait()
            t.record_cost("second", "2")

    await asyncio.gather(first(), second())

    events = {row["task_id"]: row["service"] for row in stored("external_cost")}
    totals = {events[row["task_id"]]: row["cost_usd"] for row in stored("task")}
    assert totals == {"first": "1", "second": "2"}


def test_sequential_reuse_of_scope_works(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    scope = dexcost.task("shared_scope")

    with scope as first:
        first.record_cost("serpapi", "1")
    with scope as second:
        second.record_cost("serpapi", "2")

    assert sorted(row["cost_usd"] for row in stored("task")) == ["1", "2"]



@pytest.mark.parametrize("cost", ["1e100000", "1000000000", 10**12])
def test_implausible_cost_rejected(dx, cost: object) -> None:  # type: ignore[no-untyped-def]
    with dexcost.task("bounds") as t, pytest.raises(ValueError, match="plausible"):
        t.record_cost("serpapi", cost)  # type: ignore[arg-type]


@pytest.mark.parametrize("units", [float("nan"), -5, float("inf")])
def test_invalid_units_rejected(dx, units: float) -> None:  # type: ignore[no-untyped-def]
    with dexcost.task("bounds") as t, pytest.raises(ValueError, match="units"):
        t.record_cost("serpapi", "0.01", units=units)


def test_long_task_type_rejected(dx) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="task_type"):
        dexcost.task("t" * 257)


def test_non_string_task_id_rejected(dx) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError, match="task_id"):
        dexcost.task("triage", task_id=123)  # type: ignore[arg-type]


@pytest.mark.parametrize(("provider", "model"), [(5, "gpt-4o-mini"), ("openai", "")])
def test_record_llm_call_names_checked(dx, provider: object, model: object) -> None:  # type: ignore[no-untyped-def]
    with dexcost.task("checks") as t, pytest.raises(TypeError):
        t.record_llm_call(provider, model, 10, 0)  # type: ignore[arg-type]
