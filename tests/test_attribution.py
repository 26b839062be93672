"""Tests for attribution: set_context, baggage, asyncio isolation, hashing and redaction."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator

import dexcost

Stored = Callable[..., list[dict[str, Any]]]


@pytest.fixture(autouse=True)
def _fresh_otel_context() -> Iterator[None]:
    """Start each test on an empty OTel context; set_context would leak into the next test."""
    token = otel_context.attach(otel_context.Context())
    yield
    otel_context.detach(token)


def _customer() -> str | None:
    context = dexcost.get_context()
    return None if context is None else context.customer_id


def _attach_remote_baggage(customer_id: str) -> object:
    """Attach baggage as an inbound-request middleware would after extracting a header."""
    remote = baggage.set_baggage("dexcost.customer_id", customer_id)
    return otel_context.attach(remote)


# --- set / get / clear ---


def test_get_context_is_none_initially() -> None:
    assert dexcost.get_context() is None


def test_set_context_sets_fields() -> None:
    returned = dexcost.set_context(customer_id="acme", project_id="billing", agent="support-bot")

    assert dexcost.get_context() == returned
    assert (returned.customer_id, returned.project_id, returned.agent) == (
        "acme",
        "billing",
        "support-bot",
    )


def test_set_context_keeps_earlier_fields() -> None:
    dexcost.set_context(customer_id="acme", project_id="billing")
    dexcost.set_context(customer_id="globex")

    context = dexcost.get_context()
    assert context is not None
    assert (context.customer_id, context.project_id) == ("globex", "billing")


def test_set_context_merges_metadata() -> None:
    dexcost.set_context(metadata={"plan": "pro", "region": "us"})
    dexcost.set_context(metadata={"region": "eu", "seats": "12"})

    context = dexcost.get_context()
    assert context is not None
    assert dict(context.metadata) == {"plan": "pro", "region": "eu", "seats": "12"}


def test_clear_context_removes_attribution() -> None:
    dexcost.set_context(customer_id="acme", agent="support-bot", metadata={"plan": "pro"})

    dexcost.clear_context()

    assert dexcost.get_context() is None
    assert [key for key in baggage.get_all() if key.startswith("dexcost.")] == []


def test_metadata_must_be_mapping() -> None:
    with pytest.raises(TypeError, match="metadata must be a dict"):
        dexcost.set_context(metadata=["plan"])  # type: ignore[arg-type]


# --- baggage ---


def test_baggage_mirrors_attribution() -> None:
    dexcost.set_context(
        customer_id="acme", project_id="billing", agent="support-bot", metadata={"plan": "pro"}
    )

    entries = baggage.get_all()
    assert entries.get("dexcost.customer_id") == "acme"
    assert entries.get("dexcost.project_id") == "billing"
    assert entries.get("dexcost.agent") == "support-bot"
    assert entries.get("dexcost.metadata.plan") == "pro"


def test_clear_context_keeps_other_baggage() -> None:
    otel_context.attach(baggage.set_baggage("tenant.region", "eu"))
    dexcost.set_context(customer_id="acme")

    dexcost.clear_context()

    assert baggage.get_all().get("tenant.region") == "eu"


# --- value cleaning ---


def test_non_string_customer_is_converted() -> None:
    with pytest.warns(RuntimeWarning, match="customer_id should be a string"):
        dexcost.set_context(customer_id=4711)  # type: ignore[arg-type]

    assert _customer() == "4711"


def test_non_string_metadata_value_is_converted() -> None:
    with pytest.warns(RuntimeWarning, match="seats"):
        dexcost.set_context(metadata={"seats": 12})  # type: ignore[dict-item]

    context = dexcost.get_context()
    assert context is not None
    assert context.metadata["seats"] == "12"


def test_long_customer_is_hashed() -> None:
    import hashlib

    long_id = "c" * 300
    with pytest.warns(RuntimeWarning, match="limit 256"):
        dexcost.set_context(customer_id=long_id)

    assert _customer() == "sha256:" + hashlib.sha256(long_id.encode()).hexdigest()


def test_long_customers_stay_distinct() -> None:
    prefix = "tenant-" + "x" * 300
    with pytest.warns(RuntimeWarning):
        dexcost.set_context(customer_id=prefix + "-alice")
    alice = _customer()
    with pytest.warns(RuntimeWarning):
        dexcost.set_context(customer_id=prefix + "-bob")

    assert _customer() != alice


def test_metadata_cap_holds_across_calls() -> None:
    for batch in range(2):
        entries = {f"m{batch}_{index}": "v" for index in range(20)}
        if batch == 0:
            dexcost.set_context(metadata=entries)
        else:
            with pytest.warns(RuntimeWarning, match="already has 32 entries"):
                dexcost.set_context(metadata=entries)

    context = dexcost.get_context()
    assert context is not None
    assert len(context.metadata) == 32


def test_too_much_metadata_is_cut() -> None:
    entries = {f"key{index}": "value" for index in range(40)}

    with pytest.warns(RuntimeWarning, match="only the first 32"):
        dexcost.set_context(metadata=entries)

    context = dexcost.get_context()
    assert context is not None
    assert len(context.metadata) == 32


def test_metadata_warning_points_at_caller() -> None:
    with pytest.warns(RuntimeWarning) as warned:
        dexcost.set_context(metadata={"seats": 12})  # type: ignore[dict-item]

    assert warned[0].filename == __file__


def test_task_customer_warning_points_at_caller(dx: dexcost.DexcostConfig) -> None:
    scope = dexcost.task("research", customer_id=4711)  # type: ignore[arg-type]

    with pytest.warns(RuntimeWarning) as warned, scope:
        pass

    assert warned[0].filename == __file__


# --- asyncio ---


async def test_asyncio_task_inherits_context() -> None:
    dexcost.set_context(customer_id="acme")

    async def read_customer() -> str | None:
        return _customer()

    assert await asyncio.create_task(read_customer()) == "acme"


async def test_asyncio_task_change_stays_inside() -> None:
    dexcost.set_context(customer_id="acme")

    async def switch_customer() -> None:
        dexcost.set_context(customer_id="globex")

    await asyncio.create_task(switch_customer())

    assert _customer() == "acme"


async def test_concurrent_asyncio_tasks_keep_customers(
    dx: dexcost.DexcostConfig, stored: Stored
) -> None:
    ready = [asyncio.Event(), asyncio.Event()]

    async def handle(index: int, customer_id: str) -> None:
        dexcost.set_context(customer_id=customer_id)
        # Both tasks have set their customer before either records a cost.
        ready[index].set()
        await ready[1 - index].wait()
        dexcost.record_cost(f"{customer_id}-search", "0.01")

    await asyncio.gather(handle(0, "acme"), handle(1, "globex"))

    customers = {row["service"]: row["customer_id"] for row in stored("external_cost")}
    assert customers == {"acme-search": "acme", "globex-search": "globex"}


async def test_concurrent_asyncio_tasks_read_own_context() -> None:
    ready = [asyncio.Event(), asyncio.Event()]

    async def handle(index: int, customer_id: str) -> str | None:
        dexcost.set_context(customer_id=customer_id)
        ready[index].set()
        await ready[1 - index].wait()
        return _customer()

    results = await asyncio.gather(handle(0, "acme"), handle(1, "globex"))

    assert results == ["acme", "globex"]


# --- remote baggage is not attribution ---


def test_remote_baggage_is_not_context() -> None:
    _attach_remote_baggage("victim")

    assert dexcost.get_context() is None


def test_remote_baggage_not_on_events(dx: dexcost.DexcostConfig, stored: Stored) -> None:
    _attach_remote_baggage("victim")

    with dexcost.task("research") as t:
        t.record_llm_call("openai", "gpt-4o-mini", 1200, 300)

    (event,) = stored("llm_call")
    assert event["customer_id"] is None


def test_remote_baggage_not_on_session_events(
    dx: dexcost.DexcostConfig, stored: Stored
) -> None:
    _attach_remote_baggage("victim")

    dexcost.record_cost("serpapi", "0.015")

    (event,) = stored("external_cost")
    assert event["customer_id"] is None


def test_remote_baggage_does_not_override_context(
    dx: dexcost.DexcostConfig, stored: Stored
) -> None:
    dexcost.set_context(customer_id="acme")
    _attach_remote_baggage("victim")

    dexcost.record_cost("serpapi", "0.015")

    (event,) = stored("external_cost")
    assert event["customer_id"] == "acme"


def test_task_replaces_remote_dexcost_baggage(dx: dexcost.DexcostConfig) -> None:
    _attach_remote_baggage("victim")

    with dexcost.task("research", customer_id="acme"):
        inside = baggage.get_all().get("dexcost.customer_id")

    assert inside == "acme"


# --- hashing and redaction ---


def _init_private(buffer_path: Path, **settings: Any) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), **settings)


def test_hashed_customer_is_sha256(buffer_path: Path, stored: Stored) -> None:
    _init_private(buffer_path, hash_customer_id=True)
    dexcost.set_context(customer_id="alice@example.com")

    with dexcost.task("research") as t:
        t.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
        t.record_cost("serpapi", "0.015")

    rows = stored()
    expected = hashlib.sha256(b"alice@example.com").hexdigest()
    assert [row["customer_id"] for row in rows] == [expected] * 3
    assert [row["span_id"] for row in rows if "alice" in json.dumps(row)] == []


def test_hashed_task_customer_is_sha256(buffer_path: Path, stored: Stored) -> None:
    _init_private(buffer_path, hash_customer_id=True)

    with dexcost.task("research", customer_id="alice@example.com"):
        pass

    (task_row,) = stored("task")
    assert task_row["customer_id"] == hashlib.sha256(b"alice@example.com").hexdigest()


def test_unhashed_customer_is_stored_raw(buffer_path: Path, stored: Stored) -> None:
    _init_private(buffer_path)
    dexcost.set_context(customer_id="alice@example.com")

    dexcost.record_cost("serpapi", "0.015")

    (event,) = stored("external_cost")
    assert event["customer_id"] == "alice@example.com"


def test_redacted_metadata_not_stored(buffer_path: Path, stored: Stored) -> None:
    _init_private(buffer_path, redact_fields=["secret"])
    dexcost.set_context(metadata={"secret": "s3cr3t", "plan": "pro"})

    with dexcost.task("research") as t:
        t.record_cost("serpapi", "0.015")

    rows = stored()
    assert [row["span_id"] for row in rows if "s3cr3t" in json.dumps(row)] == []


def test_unredacted_metadata_is_stored(buffer_path: Path, stored: Stored) -> None:
    _init_private(buffer_path, redact_fields=["secret"])
    dexcost.set_context(metadata={"secret": "s3cr3t", "plan": "pro"})

    with dexcost.task("research") as t:
        t.record_cost("serpapi", "0.015")

    (event,) = stored("external_cost")
    assert event["attributes"].get("dexcost.metadata.plan") == "pro"


def test_redacted_task_metadata_not_stored(buffer_path: Path, stored: Stored) -> None:
    _init_private(buffer_path, redact_fields=["secret"])

    with dexcost.task("research", metadata={"secret": "s3cr3t"}) as t:
        t.record_cost("serpapi", "0.015", metadata={"secret": "other"})

    rows = stored()
    assert [key for row in rows for key in row["attributes"] if "secret" in key] == []


def _outgoing_baggage_header() -> str:
    carrier: dict[str, str] = {}
    W3CBaggagePropagator().inject(carrier)
    return carrier.get("baggage", "")


def test_hashed_customer_not_in_outgoing_baggage(buffer_path: Path) -> None:
    _init_private(buffer_path, hash_customer_id=True)
    dexcost.set_context(customer_id="alice")

    assert "alice" not in _outgoing_baggage_header()


def test_redacted_metadata_not_in_outgoing_baggage(buffer_path: Path) -> None:
    _init_private(buffer_path, redact_fields=["secret"])
    dexcost.set_context(metadata={"secret": "s3cr3t"})

    assert "s3cr3t" not in _outgoing_baggage_header()
