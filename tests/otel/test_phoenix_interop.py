"""dexcost's sync pointed straight at a real Arize Phoenix server.

The openai SDK calls the fake OpenAI server, dexcost prices and stores the call, and
its sync worker uploads the span over OTLP/HTTP to ``phoenix serve`` on 127.0.0.1.
The tests then read the span back through Phoenix's REST and GraphQL APIs. They skip
when no Phoenix is installed; see ``phoenix_server.py`` for how it is found.
"""

from __future__ import annotations

import math
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

import dexcost
from dexcost.buffer import SYNC_SYNCED
from dexcost.demo.fake_openai import FakeOpenAIServer, FakeReply, FakeUsage
from dexcost.pricing import clear_model_prices

from .phoenix_server import (
    EXECUTABLE_VARIABLE,
    PhoenixServer,
    find_phoenix,
    guard_environment,
    write_sitecustomize,
)

API_KEY = "dx_test_" + "k" * 24
# gpt-4o-mini list price: $0.15 per million input tokens and $0.60 per million output
# tokens, so 1200 * 0.15 / 1e6 + 300 * 0.60 / 1e6 = 0.00018 + 0.00018 = $0.00036.
EXPECTED_COST = "0.00036"
# A fine-tuned model at a negotiated price that only dexcost has, set with
# register_model_price(): 1200 * 0.25 / 1e6 + 300 * 1.00 / 1e6 = 0.0003 + 0.0003 = $0.0006.
FINE_TUNED_MODEL = "ft:gpt-4o-mini-2024-07-18:acme::a1b2c3d4"
FINE_TUNED_COST = "0.0006"

SPAN_COST_QUERY = """
query ($id: ID!) {
  node(id: $id) {
    ... on Span {
      tokenCountPrompt
      tokenCountCompletion
      tokenCountTotal
      costSummary { total { tokens cost } }
    }
  }
}
"""


@pytest.fixture(scope="module")
def phoenix() -> Iterator[PhoenixServer]:
    if sys.platform == "win32":
        pytest.skip("the Phoenix interop test stops the server by process group (POSIX only)")
    executable = find_phoenix()
    if executable is None:
        pytest.skip(
            f"Phoenix is not installed: set {EXECUTABLE_VARIABLE} to a phoenix executable, "
            "or run python3 scripts/dev.py test to create .venv-phoenix"
        )
    with PhoenixServer(executable) as server:
        yield server
    # The guard rejected every outbound attempt, so none reached the network. An entry
    # still means that Phoenix tried, and the run must report it.
    assert server.blocked_connections() == []


def _call_openai(model: str, customer_id: str) -> None:
    with FakeOpenAIServer() as server:
        server.enqueue(FakeReply(usage=FakeUsage(prompt_tokens=1200, completion_tokens=300)))
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        with client, dexcost.context(customer_id=customer_id):
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "Reset my password"}]
            )


def _stored_call(buffer_path: Path) -> dict[str, Any]:
    with closing(sqlite3.connect(buffer_path)) as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute("SELECT * FROM spans WHERE event_type = 'llm_call'").fetchall()
    (row,) = rows
    return dict(row)


def _upload_call(
    phoenix: PhoenixServer,
    monkeypatch: pytest.MonkeyPatch,
    buffer_path: Path,
    model: str,
    resource_attributes: str | None = None,
) -> dict[str, Any]:
    """Make one priced call, upload it to Phoenix, and return its row in the buffer."""
    monkeypatch.setenv("DEXCOST_ENDPOINT", phoenix.url)
    # The OpenTelemetry SDK adds OTEL_RESOURCE_ATTRIBUTES to dexcost's resource, and
    # Phoenix files spans under the project named by openinference.project.name in it.
    if resource_attributes is None:
        monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    else:
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", resource_attributes)
    dexcost.init(
        api_key=API_KEY,
        buffer_path=str(buffer_path),
        flush_interval=0.1,
        auto_instrument=["openai"],
    )
    _call_openai(model, customer_id="acme")
    # shutdown() stores the spans and gives the worker the rest of the time to upload.
    dexcost.shutdown(timeout=20)
    return _stored_call(buffer_path)


def test_phoenix_accepts_upload(
    phoenix: PhoenixServer, monkeypatch: pytest.MonkeyPatch, buffer_path: Path
) -> None:
    call = _upload_call(phoenix, monkeypatch, buffer_path, "gpt-4o-mini")

    # A 2xx response from Phoenix to the Bearer-authorised protobuf POST.
    assert call["sync_error"] is None
    assert call["sync_state"] == SYNC_SYNCED


def test_phoenix_shows_dexcost_attributes(
    phoenix: PhoenixServer, monkeypatch: pytest.MonkeyPatch, buffer_path: Path
) -> None:
    call = _upload_call(phoenix, monkeypatch, buffer_path, "gpt-4o-mini")

    # Without an openinference.project.name resource attribute, Phoenix files spans
    # under its "default" project.
    span = phoenix.wait_for_span("default", call["span_id"])
    attributes = span["attributes"]

    assert span["context"]["trace_id"] == call["trace_id"]
    assert span["name"] == "chat gpt-4o-mini"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attributes["gen_ai.usage.input_tokens"] == 1200
    assert attributes["gen_ai.usage.output_tokens"] == 300
    # The exact decimal string arrives unchanged: Phoenix does not turn it into a float.
    assert attributes["dexcost.cost_usd"] == EXPECTED_COST
    assert Decimal(attributes["dexcost.cost_usd"]) == Decimal(call["cost_usd"])
    assert attributes["dexcost.cost_status"] == "priced"
    assert attributes["dexcost.customer_id"] == "acme"
    assert attributes["dexcost.task.id"] == call["task_id"]
    assert phoenix.blocked_connections() == []


def test_phoenix_maps_gen_ai_to_openinference(
    phoenix: PhoenixServer, monkeypatch: pytest.MonkeyPatch, buffer_path: Path
) -> None:
    call = _upload_call(phoenix, monkeypatch, buffer_path, "gpt-4o-mini")

    span = phoenix.wait_for_span("default", call["span_id"])
    attributes = span["attributes"]

    # Phoenix derives OpenInference attributes from gen_ai.* when it receives a span,
    # which makes it an LLM span with a model and token counts in its UI.
    assert span["span_kind"] == "LLM"
    assert attributes["llm.provider"] == "openai"
    assert attributes["llm.model_name"] == "gpt-4o-mini"
    assert attributes["llm.token_count.prompt"] == 1200
    assert attributes["llm.token_count.completion"] == 300
    assert attributes["llm.token_count.total"] == 1500


def test_phoenix_own_cost_is_float_estimate(
    phoenix: PhoenixServer, monkeypatch: pytest.MonkeyPatch, buffer_path: Path
) -> None:
    call = _upload_call(phoenix, monkeypatch, buffer_path, "gpt-4o-mini")
    span = phoenix.wait_for_span("default", call["span_id"])

    node = phoenix.graphql(SPAN_COST_QUERY, id=span["id"])["node"]

    assert node["tokenCountPrompt"] == 1200
    assert node["tokenCountCompletion"] == 300
    assert node["tokenCountTotal"] == 1500
    # Phoenix prices the call from its own model table as a binary float
    # (0.00035999999999999997 in 20.26.1), close to dexcost's exact decimal.
    assert node["costSummary"]["total"]["tokens"] == 1500
    assert math.isclose(node["costSummary"]["total"]["cost"], float(EXPECTED_COST), rel_tol=1e-9)


def test_phoenix_cost_ignores_registered_price(
    phoenix: PhoenixServer,
    monkeypatch: pytest.MonkeyPatch,
    buffer_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    request.addfinalizer(clear_model_prices)
    dexcost.register_model_price(
        FINE_TUNED_MODEL, provider="openai", input_per_mtok="0.25", output_per_mtok="1.00"
    )
    call = _upload_call(phoenix, monkeypatch, buffer_path, FINE_TUNED_MODEL)
    span = phoenix.wait_for_span("default", call["span_id"])

    node = phoenix.graphql(SPAN_COST_QUERY, id=span["id"])["node"]

    assert span["attributes"]["dexcost.cost_usd"] == FINE_TUNED_COST
    assert node["tokenCountTotal"] == 1500
    # Prices registered with dexcost stay in dexcost. Phoenix 20.26.1 prices this
    # fine-tuned model from its own table as the base gpt-4o-mini ($0.00036); another
    # release may show no cost at all. Either way it is not dexcost's figure.
    summary = node["costSummary"]
    if summary is not None:
        assert not math.isclose(summary["total"]["cost"], float(FINE_TUNED_COST), rel_tol=1e-9)


def test_resource_attribute_selects_phoenix_project(
    phoenix: PhoenixServer, monkeypatch: pytest.MonkeyPatch, buffer_path: Path
) -> None:
    call = _upload_call(
        phoenix,
        monkeypatch,
        buffer_path,
        "gpt-4o-mini",
        resource_attributes="openinference.project.name=llm-costs",
    )

    span = phoenix.wait_for_span("llm-costs", call["span_id"])

    assert span["attributes"]["dexcost.cost_usd"] == EXPECTED_COST


# The guard Phoenix runs under, checked in a plain Python process so that no Phoenix is
# needed. sys.audit() raises the same events a socket call raises, without touching the
# network, so the rejected addresses are never contacted.
GUARD_PROBE = """
import sys

attempts = [
    ("socket.connect", (None, ("192.0.2.1", 443))),
    ("socket.getaddrinfo", ("example.com", 443, 0, 0, 0)),
    ("socket.bind", (None, ("0.0.0.0", 4317))),
    ("socket.connect", (None, ("127.0.0.1", 6006))),
    ("socket.getaddrinfo", ("localhost", 6006, 0, 0, 0)),
]
for event, arguments in attempts:
    try:
        sys.audit(event, *arguments)
    except PermissionError:
        print("rejected", event)
    else:
        print("allowed", event)
"""


def test_guard_rejects_non_loopback(tmp_path: Path) -> None:
    write_sitecustomize(tmp_path)
    blocked_log = tmp_path / "blocked.log"
    environment = {**os.environ, "PYTHONPATH": str(tmp_path), **guard_environment(blocked_log)}

    result = subprocess.run(
        [sys.executable, "-c", GUARD_PROBE],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "rejected socket.connect",
        "rejected socket.getaddrinfo",
        "rejected socket.bind",
        "allowed socket.connect",
        "allowed socket.getaddrinfo",
    ]
    assert blocked_log.read_text(encoding="utf-8").splitlines() == [
        "socket.connect ('192.0.2.1', 443)",
        "socket.getaddrinfo 'example.com'",
        "socket.bind ('0.0.0.0', 4317)",
    ]
