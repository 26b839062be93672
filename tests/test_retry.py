"""Retry heuristics: a call after a transient failure of the same model is a probable retry."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

import dexcost
from dexcost.demo.fake_openai import FakeOpenAI, FakeReply, FakeUsage
from dexcost.retry import RetryHeuristicEngine, transient_weight

from .instrumentation.openai.conftest import http_client

MESSAGES = [{"role": "user", "content": "Reset my password"}]
# gpt-4o-mini, 1,200 prompt and 300 completion tokens: 1,200 * 0.15 + 300 * 0.60 per million.
ONE_CALL_USD = Decimal("0.00036")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _engine(clock: Clock, **settings: Any) -> RetryHeuristicEngine:
    return RetryHeuristicEngine(
        settings.pop("window", 60.0), settings.pop("threshold", 0.8), clock=clock, **settings
    )


# --- the engine on plain data ---


@pytest.mark.parametrize(
    ("error_type", "weight"),
    [
        ("RateLimitError", 1.0),
        ("OverloadedError", 1.0),
        ("ThrottlingException", 1.0),
        ("APITimeoutError", 0.95),
        ("InternalServerError", 0.9),
        ("APIConnectionError", 0.9),
        ("BadRequestError", None),
        ("AuthenticationError", None),
        (None, None),
    ],
)
def test_transient_error_weights(error_type: str | None, weight: float | None) -> None:
    assert transient_weight(error_type) == weight


def test_engine_flags_quick_retry(clock: Clock) -> None:
    engine = _engine(clock)
    engine.record_failure("t1", "gpt-4o-mini", "RateLimitError")
    clock.now += 6.0

    # 1.0 * (1 - 6 / 60)
    assert engine.score("t1", "gpt-4o-mini") == 0.9


def test_engine_confidence_falls_with_time(clock: Clock) -> None:
    engine = _engine(clock)
    engine.record_failure("t1", "gpt-4o-mini", "RateLimitError")
    clock.now += 30.0

    # 1.0 * (1 - 30 / 60) is below the 0.8 threshold.
    assert engine.score("t1", "gpt-4o-mini") is None


def test_engine_other_model_not_retry(clock: Clock) -> None:
    engine = _engine(clock)
    engine.record_failure("t1", "gpt-4o-mini", "RateLimitError")

    assert engine.score("t1", "gpt-4o") is None
    assert engine.score("t2", "gpt-4o-mini") is None


def test_engine_one_retry_per_failure(clock: Clock) -> None:
    engine = _engine(clock)
    engine.record_failure("t1", "gpt-4o-mini", "APITimeoutError")
    clock.now += 1.0

    assert engine.score("t1", "gpt-4o-mini") is not None
    assert engine.score("t1", "gpt-4o-mini") is None
    assert len(engine) == 0


def test_engine_ignores_permanent_errors(clock: Clock) -> None:
    engine = _engine(clock)
    engine.record_failure("t1", "gpt-4o-mini", "BadRequestError")

    assert engine.score("t1", "gpt-4o-mini") is None
    assert len(engine) == 0


def test_engine_memory_bounded(clock: Clock) -> None:
    engine = _engine(clock, max_tasks=100, max_failures=4)
    for task in range(1_000):
        for _ in range(10):
            engine.record_failure(f"t{task}", "gpt-4o-mini", "RateLimitError")

    assert len(engine) == 100
    # The oldest tasks were dropped, the newest kept.
    assert engine.score("t0", "gpt-4o-mini") is None
    assert engine.score("t999", "gpt-4o-mini") == 1.0


def test_engine_expired_failures_forgotten(clock: Clock) -> None:
    engine = _engine(clock)
    engine.record_failure("t1", "gpt-4o-mini", "RateLimitError")
    clock.now += 61.0

    assert engine.score("t1", "gpt-4o-mini") is None
    assert len(engine) == 0


# --- through the openai SDK ---


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


def _init(buffer_path: Path, **settings: Any) -> None:
    dexcost.init(
        storage="local", buffer_path=str(buffer_path), auto_instrument=["openai"], **settings
    )


def _call_after_rate_limit(client: openai.OpenAI, fake: FakeOpenAI) -> None:
    fake.enqueue(FakeReply(status=429))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def _task_totals(stored: Any, task_type: str) -> dict[str, Any]:
    (row,) = [row for row in stored("task") if row["task_type"] == task_type]
    return row["attributes"]


def test_retry_after_rate_limit_is_waste(buffer_path, client, fake, stored) -> None:
    _init(buffer_path, enable_retry_heuristics=True)
    with dexcost.task("support_ticket"):
        _call_after_rate_limit(client, fake)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    calls = stored("llm_call")
    dexcost.shutdown()
    flagged = [c for c in calls if c["attributes"].get("dexcost.retry.is_retry")]
    assert len(calls) == 3
    assert len(flagged) == 1
    assert 0.8 <= flagged[0]["attributes"]["dexcost.retry.confidence"] <= 1.0
    totals = _task_totals(stored, "support_ticket")
    assert totals["dexcost.task.retry_count"] == 1
    assert Decimal(totals["dexcost.task.retry_cost_usd"]) == ONE_CALL_USD
    assert Decimal(totals["dexcost.task.llm_cost_usd"]) == ONE_CALL_USD
    assert Decimal(totals["dexcost.task.cost_usd"]) == 2 * ONE_CALL_USD


def test_retry_heuristics_off_by_default(buffer_path, client, fake, stored) -> None:
    _init(buffer_path)
    with dexcost.task("support_ticket"):
        _call_after_rate_limit(client, fake)

    calls = stored("llm_call")
    dexcost.shutdown()
    assert not any(c["attributes"].get("dexcost.retry.is_retry") for c in calls)
    assert _task_totals(stored, "support_ticket")["dexcost.task.retry_count"] == 0


def test_retry_in_other_task_not_flagged(buffer_path, client, fake, stored) -> None:
    _init(buffer_path, enable_retry_heuristics=True)
    fake.enqueue(FakeReply(status=429))
    with dexcost.task("first"), pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with dexcost.task("second"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    calls = stored("llm_call")
    dexcost.shutdown()
    assert not any(c["attributes"].get("dexcost.retry.is_retry") for c in calls)


def test_strict_threshold_flags_nothing(buffer_path, client, fake, stored) -> None:
    # A rate-limit failure weighs 1.0, and any elapsed time lowers it below 1.0.
    _init(buffer_path, enable_retry_heuristics=True, retry_heuristic_threshold=1.0)
    with dexcost.task("support_ticket"):
        _call_after_rate_limit(client, fake)

    calls = stored("llm_call")
    dexcost.shutdown()
    assert not any(c["attributes"].get("dexcost.retry.is_retry") for c in calls)


def test_call_after_bad_request_not_retry(buffer_path, client, fake, stored) -> None:
    # A 400 is the caller's mistake, not a transient failure; the next call is new work.
    _init(buffer_path, enable_retry_heuristics=True)
    fake.enqueue(FakeReply(status=400))
    with dexcost.task("support_ticket"):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    calls = stored("llm_call")
    dexcost.shutdown()
    assert not any(c["attributes"].get("dexcost.retry.is_retry") for c in calls)
