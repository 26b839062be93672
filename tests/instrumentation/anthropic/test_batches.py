"""Message Batches results are priced at the batch rate, once per succeeded request."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import anthropic
import pytest

from dexcost.instrumentation.anthropic import batches

from .conftest import USES_HTTPX2

pytestmark = pytest.mark.usefixtures("dx")

BATCH_ID = "msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d"
RESULTS_PATH = f"/v1/messages/batches/{BATCH_ID}/results"
SONNET_45 = "claude-sonnet-4-5-20250929"


def _message(usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": SONNET_45,
        "content": [{"type": "text", "text": "Done."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


RESULT_LINES = [
    {
        "custom_id": "ticket-1",
        "result": {
            "type": "succeeded",
            "message": _message(
                {
                    "input_tokens": 1_000,
                    "cache_creation_input_tokens": 2_000,
                    "cache_read_input_tokens": 5_000,
                    "output_tokens": 300,
                }
            ),
        },
    },
    {
        "custom_id": "ticket-2",
        "result": {
            "type": "succeeded",
            "message": _message({"input_tokens": 10_000, "output_tokens": 1_000}),
        },
    },
    {
        "custom_id": "ticket-3",
        "result": {
            "type": "errored",
            "error": {"type": "error", "error": {"type": "invalid_request_error", "message": "x"}},
        },
    },
    {"custom_id": "ticket-4", "result": {"type": "expired"}},
]

# claude-sonnet-4-5 list prices per million tokens: input $3, cache write (5 minutes)
# $3.75, cache read $0.30, output $15. Message Batches bill 50% of each rate.
# ticket-1: (1,000 * 3 + 2,000 * 3.75 + 5,000 * 0.30 + 300 * 15) / 1M / 2 = 0.0165 / 2
# ticket-2: (10,000 * 3 + 1,000 * 15) / 1M / 2 = 0.045 / 2
EXPECTED = {"ticket-1": Decimal("0.00825"), "ticket-2": Decimal("0.0225")}


def _batch() -> dict[str, Any]:
    return {
        "id": BATCH_ID,
        "type": "message_batch",
        "processing_status": "ended",
        "request_counts": {
            "processing": 0,
            "succeeded": 2,
            "errored": 1,
            "canceled": 0,
            "expired": 1,
        },
        "created_at": "2026-12-01T10:00:00Z",
        "ended_at": "2026-12-01T10:30:00Z",
        "expires_at": "2026-12-02T10:00:00Z",
        "archived_at": None,
        "cancel_initiated_at": None,
        "results_url": f"https://fake.test{RESULTS_PATH}",
    }


def _handler(http: Any) -> Any:
    def handle(request: Any) -> Any:
        if request.url.path == RESULTS_PATH:
            body = "".join(json.dumps(line) + "\n" for line in RESULT_LINES)
            return http.Response(
                200, content=body.encode(), headers={"content-type": "application/binary"}
            )
        if request.url.path == f"/v1/messages/batches/{BATCH_ID}":
            return http.Response(200, json=_batch())
        return http.Response(404, json={"type": "error", "error": {"type": "not_found_error"}})

    return handle


def _http_module() -> Any:
    if USES_HTTPX2:
        import httpx2

        return httpx2
    import httpx

    return httpx


def _client(*, asynchronous: bool) -> Any:
    http = _http_module()
    transport = http.MockTransport(_handler(http))
    if asynchronous:
        return anthropic.AsyncAnthropic(
            api_key="sk-ant-test",
            base_url="https://fake.test",
            http_client=http.AsyncClient(transport=transport),
            max_retries=0,
        )
    return anthropic.Anthropic(
        api_key="sk-ant-test",
        base_url="https://fake.test",
        http_client=http.Client(transport=transport),
        max_retries=0,
    )


@pytest.fixture(autouse=True)
def _forget_seen_results() -> None:
    batches._seen.clear()


def _costs(events: list[dict[str, Any]]) -> dict[str, Decimal]:
    return {
        event["attributes"]["dexcost.batch.custom_id"]: Decimal(event["cost_usd"])
        for event in events
    }


def test_batch_results_priced_at_batch_rate(llm_events) -> None:
    client = _client(asynchronous=False)
    results = list(client.messages.batches.results(BATCH_ID))

    assert [result.custom_id for result in results] == [
        "ticket-1",
        "ticket-2",
        "ticket-3",
        "ticket-4",
    ]
    events = llm_events()
    assert _costs(events) == EXPECTED
    for event in events:
        assert event["attributes"]["dexcost.batch.id"] == BATCH_ID
        assert event["attributes"]["gen_ai.response.model"] == SONNET_45
        assert event["cost_status"] == "priced"
    first = next(e for e in events if e["attributes"]["dexcost.batch.custom_id"] == "ticket-1")
    # Inclusive input: 1,000 uncached + 2,000 cache write + 5,000 cache read.
    assert first["attributes"]["gen_ai.usage.input_tokens"] == 8_000


async def test_async_batch_results_priced(llm_events) -> None:
    client = _client(asynchronous=True)
    decoder = await client.messages.batches.results(BATCH_ID)
    custom_ids = [result.custom_id async for result in decoder]

    assert len(custom_ids) == 4
    assert _costs(llm_events()) == EXPECTED


def test_batch_results_read_twice_once(llm_events) -> None:
    client = _client(asynchronous=False)
    list(client.messages.batches.results(BATCH_ID))
    list(client.messages.batches.results(BATCH_ID))

    assert _costs(llm_events()) == EXPECTED
    assert len(llm_events()) == 2


def test_batch_results_partly_read(llm_events) -> None:
    client = _client(asynchronous=False)
    decoder = client.messages.batches.results(BATCH_ID)
    first = next(iter(decoder))
    decoder.close()

    assert first.custom_id == "ticket-1"
    assert _costs(llm_events()) == {"ticket-1": EXPECTED["ticket-1"]}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (RESULTS_PATH, BATCH_ID),
        ("/v1/files/file_011/content", None),
        ("/results", None),
        ("/v1/messages/other/abc/results", None),
    ],
)
def test_batch_id_from_results_url(path: str, expected: str | None) -> None:
    http = _http_module()
    response = http.Response(200, request=http.Request("GET", f"https://fake.test{path}"))

    class Decoder:
        http_response = response

    assert batches.batch_id_of(Decoder()) == expected
