"""A routing library's call and the SDK call it makes are recorded once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import dexcost
from dexcost import semconv
from dexcost.llm import LLMCall, routing
from dexcost.pricing import TokenUsage
from dexcost.runtime import current_runtime

USAGE = TokenUsage(input_tokens=1_200, output_tokens=300)


def _routing_call() -> LLMCall:
    runtime = current_runtime()
    assert runtime is not None
    return LLMCall(
        runtime,
        provider="openai",
        operation="chat",
        request_model="gpt-4o-mini",
        attributes={semconv.ROUTED_BY: "litellm"},
    )


def _sdk_call() -> None:
    runtime = current_runtime()
    assert runtime is not None
    call = LLMCall(runtime, provider="openai", operation="chat", request_model="gpt-4o-mini")
    call.finish(response_model="gpt-4o-mini", usage=USAGE)


def _finish_routing(call: LLMCall) -> None:
    if call.delegated:
        call.discard()
    else:
        call.finish(response_model="gpt-4o-mini", usage=USAGE)


def test_routing_inner_sdk_call_records_alone(dx, stored):
    outer = _routing_call()
    with routing(outer):
        _sdk_call()
    assert outer.delegated
    _finish_routing(outer)

    rows = stored("llm_call")
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == "0.00036"
    assert rows[0]["attributes"][semconv.ROUTED_BY] == "litellm"


def test_routing_without_sdk_call_records_itself(dx, stored):
    outer = _routing_call()
    with routing(outer):
        pass
    assert not outer.delegated
    _finish_routing(outer)

    rows = stored("llm_call")
    assert len(rows) == 1
    assert rows[0]["attributes"][semconv.COST_USD] == "0.00036"


def test_routing_sdk_call_in_worker_thread(dx, stored):
    outer = _routing_call()
    with routing(outer), ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(_sdk_call).result()
    assert outer.delegated
    _finish_routing(outer)

    assert len(stored("llm_call")) == 1


def test_routing_later_call_is_independent(dx, stored):
    outer = _routing_call()
    with routing(outer):
        pass
    _sdk_call()
    assert not outer.delegated
    _finish_routing(outer)

    assert len(stored("llm_call")) == 2


def test_routing_concurrent_calls_stay_apart(dx, stored):
    started = threading.Barrier(2)
    outers: list[LLMCall] = []

    def route(make_sdk_call: bool) -> None:
        outer = _routing_call()
        outers.append(outer)
        with routing(outer):
            started.wait(timeout=5)
            if make_sdk_call:
                _sdk_call()
        _finish_routing(outer)

    threads = [threading.Thread(target=route, args=(flag,)) for flag in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outer.delegated for outer in outers) == [False, True]
    assert len(stored("llm_call")) == 2
    assert dexcost.flush(timeout=5)


def test_implausible_cost_recorded_unpriced(dx, stored, caplog):
    runtime = current_runtime()
    assert runtime is not None
    call = LLMCall(runtime, provider="openai", operation="chat", request_model="gpt-4o-mini")
    # 2**70 input tokens at $0.15 per million: about $177 trillion for one call.
    call.finish(response_model="gpt-4o-mini", usage=TokenUsage(input_tokens=2**70))

    (row,) = stored("llm_call")
    assert row["cost_status"] == "unpriced"
    assert row["cost_usd"] is None
    assert "not plausible" in caplog.text


def test_cost_above_call_bound_unpriced(dx, stored, caplog):
    runtime = current_runtime()
    assert runtime is not None
    call = LLMCall(
        runtime, provider="anthropic", operation="chat", request_model="claude-3-5-haiku"
    )
    # 10**12 input tokens at $0.80 per million: $800,000 for one call, which no real
    # request costs.
    call.finish(response_model="claude-3-5-haiku-20241022", usage=TokenUsage(input_tokens=10**12))

    (row,) = stored("llm_call")
    assert row["cost_status"] == "unpriced"
    assert row["input_tokens"] == 10**12
    assert "not plausible" in caplog.text
