from __future__ import annotations

from decimal import Decimal

import openai
import pytest

import dexcost
from dexcost.demo.fake_openai import FakeOpenAI, FakeReply, FakeUsage

MESSAGES = [{"role": "user", "content": "Reset my password"}]

pytestmark = pytest.mark.usefixtures("dx")


def test_chat_priced_exactly(client, llm_events) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.00036")


def test_chat_event_attributes(client, llm_events) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    attributes = llm_events()[0]["attributes"]
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attributes["gen_ai.usage.input_tokens"] == 1200
    assert attributes["gen_ai.usage.output_tokens"] == 300
    assert attributes["dexcost.cost_status"] == "priced"
    assert attributes["dexcost.pricing.source"].startswith("genai-prices")


def test_chat_returns_sdk_object(client, fake: FakeOpenAI) -> None:
    response = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert type(response) is openai.types.chat.ChatCompletion
    assert response.choices[0].message.content == fake.text


def test_chat_attributed_to_customer_and_task(client, llm_events) -> None:
    dexcost.set_context(customer_id="acme-corp", project_id="helpdesk")
    with dexcost.task("support_ticket") as task:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    (event,) = llm_events()
    assert event["customer_id"] == "acme-corp"
    assert event["project_id"] == "helpdesk"
    assert event["task_id"] == task.task_id
    assert event["task_type"] == "support_ticket"


def test_task_total_sums_calls(client) -> None:
    with dexcost.task("batch") as task:
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert task.cost_usd == Decimal("0.00108")


def test_cached_tokens_priced_at_cache_rate(client, fake: FakeOpenAI, llm_events) -> None:
    fake.enqueue(
        FakeReply(usage=FakeUsage(prompt_tokens=17_903, completion_tokens=200, cached_tokens=17_817))
    )
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.02448625")
    assert event["attributes"]["gen_ai.usage.cache_read.input_tokens"] == 17_817


def test_reasoning_tokens_not_counted_twice(client, fake: FakeOpenAI, llm_events) -> None:
    fake.enqueue(
        FakeReply(usage=FakeUsage(prompt_tokens=1_000, completion_tokens=2_000, reasoning_tokens=1_500))
    )
    client.chat.completions.create(model="o3-mini", messages=MESSAGES)
    (event,) = llm_events()
    # 1,000 x $1.10/M + 2,000 x $4.40/M; reasoning is inside the 2,000 output tokens.
    assert Decimal(event["cost_usd"]) == Decimal("0.0099")
    assert event["attributes"]["gen_ai.usage.reasoning.output_tokens"] == 1_500


def test_dated_snapshot_priced_as_itself(client, fake: FakeOpenAI, llm_events) -> None:
    fake.enqueue(
        FakeReply(model="gpt-4o-2024-05-13", usage=FakeUsage(prompt_tokens=1_000, completion_tokens=500)),
        FakeReply(model="gpt-4o-2024-11-20", usage=FakeUsage(prompt_tokens=1_000, completion_tokens=500)),
    )
    client.chat.completions.create(model="gpt-4o-2024-05-13", messages=MESSAGES)
    client.chat.completions.create(model="gpt-4o-2024-11-20", messages=MESSAGES)
    old, new = llm_events()
    assert Decimal(old["cost_usd"]) == Decimal("0.0125")
    assert Decimal(new["cost_usd"]) == Decimal("0.0075")


def test_unknown_model_unpriced_with_tokens(client, fake: FakeOpenAI, llm_events) -> None:
    fake.enqueue(FakeReply(model="acme-secret-model-9"))
    client.chat.completions.create(model="acme-secret-model-9", messages=MESSAGES)
    (event,) = llm_events()
    assert event["cost_usd"] is None
    assert event["cost_status"] == "unpriced"
    assert event["input_tokens"] == 1200
    assert event["model"] == "acme-secret-model-9"


def test_bad_request_reaches_user_unchanged(client, fake: FakeOpenAI, llm_events) -> None:
    fake.enqueue(FakeReply(status=400))
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.status_code == 400
    (event,) = llm_events()
    assert event["cost_usd"] == "0"
    assert event["cost_status"] == "priced"
    assert event["attributes"]["error.type"] == "BadRequestError"


def test_error_event_marks_span_status(client, fake: FakeOpenAI, llm_events) -> None:
    fake.enqueue(FakeReply(status=500))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    (event,) = llm_events()
    assert event["status_code"] == 2  # StatusCode.ERROR


def test_usage_null_is_usage_unknown(client, fake: FakeOpenAI, llm_events) -> None:
    fake.enqueue(FakeReply(usage=None))
    response = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert response.usage is None
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"
    assert event["cost_usd"] is None


def test_parse_helper_priced(client, llm_events) -> None:
    completions = client.chat.completions
    parse = getattr(completions, "parse", None) or client.beta.chat.completions.parse
    parse(model="gpt-4o-mini", messages=MESSAGES)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.00036")


def test_internal_failure_leaves_response_intact(
    client, fake: FakeOpenAI, llm_events, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    from dexcost import errors
    from dexcost.instrumentation.openai import patch

    def broken_reader(api, result):  # type: ignore[no-untyped-def]
        raise RuntimeError("usage extractor bug")

    monkeypatch.setattr(errors, "RAISE_INTERNAL_ERRORS", False)
    monkeypatch.setattr(patch, "read_result", broken_reader)
    before = errors.internal_error_count()
    response = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert type(response) is openai.types.chat.ChatCompletion
    assert response.usage is not None
    assert response.usage.prompt_tokens == 1200
    assert response.choices[0].message.content == fake.text
    assert errors.internal_error_count() == before + 1
    assert "usage extractor bug" in caplog.text
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"


async def test_async_chat_priced(async_client, llm_events) -> None:
    await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.00036")


async def test_async_bad_request_unchanged(async_client, fake: FakeOpenAI, llm_events) -> None:
    fake.enqueue(FakeReply(status=400))
    with pytest.raises(openai.BadRequestError):
        await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    (event,) = llm_events()
    assert event["cost_usd"] == "0"


def test_call_outside_task_goes_to_session_task(client, stored) -> None:
    dexcost.set_context(agent="triage-bot")
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    dexcost.shutdown()
    events = stored("llm_call")
    tasks = stored("task")
    assert {row["task_type"] for row in events} == {"triage-bot"}
    assert len(tasks) == 1
    assert Decimal(tasks[0]["cost_usd"]) == Decimal("0.00072")


def test_parse_cut_at_length_still_priced(client, fake: FakeOpenAI, llm_events) -> None:
    import pydantic

    class Ticket(pydantic.BaseModel):
        summary: str

    fake.enqueue(
        FakeReply(
            body={
                "id": "chatcmpl-length",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": '{"summary": "Pass'},
                        "finish_reason": "length",
                        "logprobs": None,
                    }
                ],
                "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500},
            }
        )
    )
    completions = client.chat.completions
    parse = getattr(completions, "parse", None) or client.beta.chat.completions.parse
    with pytest.raises(openai.LengthFinishReasonError):
        parse(model="gpt-4o-mini", messages=MESSAGES, response_format=Ticket)
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.00036")
    assert event["attributes"]["error.type"] == "LengthFinishReasonError"


def _chat_body(usage: dict) -> dict:  # type: ignore[type-arg]
    return {
        "id": "chatcmpl-odd",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": usage,
    }


def test_oversized_count_does_not_block_storage(client, fake: FakeOpenAI, llm_events) -> None:
    fake.enqueue(FakeReply(body=_chat_body({"prompt_tokens": 2**63, "completion_tokens": 1})))
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    events = llm_events()
    assert len(events) == 4
    assert events[0]["input_tokens"] is None
    assert events[0]["attributes"]["gen_ai.usage.input_tokens"] == 2**63
    assert [Decimal(event["cost_usd"]) for event in events[1:]] == [Decimal("0.00036")] * 3


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": -5, "completion_tokens": 10},
        {"prompt_tokens": 10, "completion_tokens": -3},
        {"prompt_tokens": 10, "completion_tokens": 2.5},
    ],
)
def test_invalid_counts_are_usage_unknown(client, fake: FakeOpenAI, llm_events, usage) -> None:
    fake.enqueue(FakeReply(body=_chat_body(usage)))
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    (event,) = llm_events()
    assert event["cost_status"] == "usage_unknown"
    assert event["input_tokens"] is None


def test_user_price_for_requested_alias_applies(client, llm_events) -> None:
    # The user priced the name they send; the response names the dated snapshot.
    dexcost.register_model_price("gpt-4o-mini", input_per_mtok="1", output_per_mtok="2")
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        dexcost.pricing.clear_model_prices()

    (event,) = llm_events()
    assert event["attributes"]["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    # 1,200 * $1 + 300 * $2 per million.
    assert Decimal(event["cost_usd"]) == Decimal("0.0018")
    assert event["attributes"]["dexcost.pricing.source"] == "user"


def test_self_hosted_reasoner_user_price(make_http_client, llm_events) -> None:
    # A self-hosted OpenAI-compatible reasoning model priced by the user at $1 input and
    # $2 output per million: 100 * 1 + 1,200 * 2 = 2,500 per million. Reasoning tokens
    # are part of the 1,200 completion tokens, so they are neither dropped ($0.0005) nor
    # counted twice ($0.0045).
    fake = FakeOpenAI(models={"acme-reasoner": "acme-reasoner"})
    fake.enqueue(
        FakeReply(usage=FakeUsage(prompt_tokens=100, completion_tokens=1_200, reasoning_tokens=1_000))
    )
    dexcost.register_model_price("acme-reasoner", input_per_mtok="1.00", output_per_mtok="2.00")
    try:
        with openai.OpenAI(
            api_key="sk-test",
            base_url="http://vllm.internal:8000/v1",
            http_client=make_http_client(fake, asynchronous=False),
            max_retries=0,
        ) as client:
            client.chat.completions.create(model="acme-reasoner", messages=MESSAGES)
    finally:
        dexcost.pricing.clear_model_prices()

    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.0025")
    assert event["attributes"]["gen_ai.usage.reasoning.output_tokens"] == 1_000
