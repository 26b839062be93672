"""``dexcost.testing.capture_costs``: costs and attribution captured in memory."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from tests.instrumentation.openai.conftest import http_client

import dexcost
from dexcost import buffer
from dexcost.demo.fake_openai import FakeOpenAI, FakeUsage
from dexcost.pricing import user_prices
from dexcost.runtime import current_runtime, instrumented_libraries
from dexcost.testing import CapturedCosts, CostEvent, capture_costs

# gpt-4o-mini: 1200 input tokens at $0.15/M plus 300 output tokens at $0.60/M.
CALL_COST = Decimal("0.00036")


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI(usage=FakeUsage(prompt_tokens=1200, completion_tokens=300))


@pytest.fixture
def client(fake: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        api_key="sk-test",
        base_url="http://fake.test/v1",
        http_client=http_client(fake, asynchronous=False),
        max_retries=0,
    ) as sdk_client:
        yield sdk_client


@pytest.fixture
def no_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything opens a SQLite database."""

    def fail_open(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"SQLite was opened: {args!r}")

    monkeypatch.setattr(sqlite3, "connect", fail_open)
    monkeypatch.setattr(buffer.Buffer, "open", classmethod(fail_open))


def chat(client: openai.OpenAI) -> None:
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
    )


@pytest.mark.usefixtures("no_sqlite")
def test_openai_call_captured(client: openai.OpenAI, tmp_path: Path) -> None:
    with capture_costs(auto_instrument=["openai"]) as costs, dexcost.context(customer_id="acme"):
        chat(client)

    assert costs.total() == CALL_COST
    assert costs.by_customer() == {"acme": CALL_COST}
    (call,) = costs.llm_calls
    assert call.model == "gpt-4o-mini-2024-07-18"
    assert call.provider == "openai"
    assert call.cost_usd == CALL_COST
    assert call.cost_status == "priced"
    assert (call.input_tokens, call.output_tokens) == (1200, 300)
    assert call.customer_id == "acme"
    assert list(tmp_path.rglob("*.db")) == []


@pytest.mark.usefixtures("no_sqlite")
def test_task_attribution_captured(client: openai.OpenAI) -> None:
    attribution = dexcost.context(
        project_id="helpdesk", agent="triage-bot", metadata={"tier": "gold"}
    )
    with (
        capture_costs(auto_instrument=["openai"]) as costs,
        attribution,
        dexcost.task("support_ticket", customer_id="acme", task_id="T-1"),
    ):
        chat(client)
        dexcost.record_cost(service="serpapi", cost_usd="0.015")

    call, search = costs.cost_events
    assert call.event_type == "llm_call"
    assert (call.task_type, call.task_id) == ("support_ticket", "T-1")
    assert (call.project_id, call.agent) == ("helpdesk", "triage-bot")
    assert call.metadata == {"tier": "gold"}
    assert search.event_type == "external_cost"
    assert search.service == "serpapi"
    assert search.cost_usd == Decimal("0.015")
    assert costs.total() == CALL_COST + Decimal("0.015")
    assert costs.by_task_type() == {"support_ticket": CALL_COST + Decimal("0.015")}
    assert costs.by("service") == {None: CALL_COST, "serpapi": Decimal("0.015")}
    (ticket,) = costs.tasks
    assert ticket.task_id == "T-1"
    assert ticket.cost_usd == CALL_COST + Decimal("0.015")


def test_unpriced_call_adds_nothing() -> None:
    with capture_costs() as costs:
        dexcost.record_llm_call("openai", "no-such-model-xyz", 100, 10)

    (call,) = costs.unpriced
    assert call.cost_usd is None
    assert call.cost_status == "unpriced"
    assert costs.total() == Decimal(0)


def test_session_task_ends_on_exit() -> None:
    with capture_costs() as costs:
        dexcost.record_cost(service="serpapi", cost_usd="0.01")
        assert costs.tasks == []

    (session,) = costs.tasks
    assert session.cost_usd == Decimal("0.01")


def test_hash_customer_id_applies(client: openai.OpenAI) -> None:
    capture = capture_costs(auto_instrument=["openai"], hash_customer_id=True)
    with capture as costs, dexcost.context(customer_id="acme"):
        chat(client)

    (call,) = costs.llm_calls
    assert call.customer_id is not None
    assert call.customer_id != "acme"


def test_no_runtime_after_block(client: openai.OpenAI) -> None:
    with capture_costs(auto_instrument=["openai"]):
        chat(client)
        assert instrumented_libraries() == ["openai"]

    assert current_runtime() is None
    assert instrumented_libraries() == []


def test_previous_runtime_restored(
    dx: dexcost.DexcostConfig, client: openai.OpenAI, stored: Any
) -> None:
    before = current_runtime()

    with capture_costs(auto_instrument=["openai"]) as costs:
        chat(client)

    assert current_runtime() is before
    assert len(costs.llm_calls) == 1
    assert stored("llm_call") == []

    chat(client)
    assert len(stored("llm_call")) == 1
    assert len(costs.llm_calls) == 1


def test_nested_captures_restore_outer() -> None:
    with capture_costs() as outer:
        dexcost.record_cost(service="a", cost_usd="1")
        with capture_costs() as inner:
            dexcost.record_cost(service="b", cost_usd="2")
        dexcost.record_cost(service="c", cost_usd="3")

    assert [event.service for event in inner.external_costs] == ["b"]
    assert [event.service for event in outer.external_costs] == ["a", "c"]


def test_events_are_frozen() -> None:
    with capture_costs() as costs:
        dexcost.record_cost(service="serpapi", cost_usd="0.01")

    event = costs.external_costs[0]
    assert isinstance(event, CostEvent)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.cost_usd = Decimal(0)  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.metadata["key"] = "value"  # type: ignore[index]
    assert hash(event) == hash(dataclasses.replace(event))


def test_by_unknown_field_raises() -> None:
    costs = CapturedCosts()

    with pytest.raises(ValueError, match="cannot group costs by 'colour'"):
        costs.by("colour")


def test_clear_forgets_events() -> None:
    with capture_costs() as costs:
        dexcost.record_cost(service="serpapi", cost_usd="0.01")
        costs.clear()

    assert costs.external_costs == []
    assert costs.total() == Decimal(0)


def test_registered_price_applies() -> None:
    dexcost.register_model_price("house-model-xyz", input_per_mtok="1", output_per_mtok="2")
    try:
        with capture_costs() as costs:
            dexcost.record_llm_call("openai", "house-model-xyz", 1_000_000, 1_000_000)
    finally:
        user_prices.clear_model_prices()

    assert costs.total() == Decimal("3")
