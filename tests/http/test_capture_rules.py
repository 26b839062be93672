"""What HTTP capture skips, whom it bills, and that it never disturbs the caller."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import requests
import urllib3
from click.testing import CliRunner
from opentelemetry import context as otel_context
from opentelemetry.context import (
    _SUPPRESS_HTTP_INSTRUMENTATION_KEY,
    _SUPPRESS_INSTRUMENTATION_KEY,
)

import dexcost
from dexcost import errors
from dexcost import http as http_capture
from dexcost.cli import main
from dexcost.http import capture
from dexcost.instrumentation.registry import find_gate

from .clients import send
from .fake_paid_api import FIXED_COST, HTML, JSON_COST, FakePaidAPI

Rows = Callable[[], list[dict[str, Any]]]


# --- streamed bodies belong to the caller -------------------------------------------


def test_requests_stream_is_usage_unknown(dx: Any, api: FakePaidAPI, costs: Rows) -> None:
    with requests.get(api.base_url + "/json/extract", stream=True) as response:
        (event,) = costs()
        body = response.content

    assert event["cost_status"] == "usage_unknown"
    assert b'"credits": 7' in body


@pytest.mark.parametrize("module", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_httpx_stream_is_usage_unknown(dx: Any, api: FakePaidAPI, costs: Rows, module: Any) -> None:
    with module.Client() as client, client.stream("GET", api.base_url + "/json/extract") as reply:
        body = reply.read()

    (event,) = costs()
    assert event["cost_status"] == "usage_unknown"
    assert b'"credits": 7' in body


def test_urllib3_unpreloaded_body_is_usage_unknown(dx: Any, api: FakePaidAPI, costs: Rows) -> None:
    with urllib3.PoolManager() as pool:
        response = pool.request("GET", api.base_url + "/json/extract", preload_content=False)
        body = response.read()

    (event,) = costs()
    assert event["cost_status"] == "usage_unknown"
    assert b'"credits": 7' in body


async def test_aiohttp_priced_when_caller_reads(dx: Any, api: FakePaidAPI, costs: Rows) -> None:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.get(api.base_url + "/json/extract") as response,
    ):
        document = await response.json()

    assert document["usage"]["credits"] == 7
    assert Decimal(costs()[0]["cost_usd"]) == JSON_COST


async def test_aiohttp_unread_body_usage_unknown(dx: Any, api: FakePaidAPI, costs: Rows) -> None:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.get(api.base_url + "/json/extract") as response,
    ):
        assert response.status == 200

    (event,) = costs()
    assert event["cost_status"] == "usage_unknown"


# --- requests dexcost must not capture ----------------------------------------------


@pytest.mark.parametrize(
    "key",
    [_SUPPRESS_INSTRUMENTATION_KEY, _SUPPRESS_HTTP_INSTRUMENTATION_KEY],
    ids=["all", "http"],
)
def test_suppressed_request_records_nothing(
    dx: Any, api: FakePaidAPI, stored: Callable[..., Any], key: str
) -> None:
    token = otel_context.attach(otel_context.set_value(key, True))
    try:
        send("requests", "GET", api.base_url + "/fixed/search")
    finally:
        otel_context.detach(token)

    assert stored() == []


def test_track_http_false_patches_nothing(buffer_path: Path, test_catalog: None) -> None:
    dexcost.init(
        storage="local", buffer_path=str(buffer_path), auto_instrument=[], track_http=False
    )

    assert find_gate(vars(requests.Session)["send"]) is None
    assert http_capture.captured_libraries() == []


def test_shutdown_restores_every_send_method(buffer_path: Path, test_catalog: None) -> None:
    originals = {
        "requests": vars(requests.Session)["send"],
        "httpx": vars(httpx.Client)["send"],
        "httpx_async": vars(httpx.AsyncClient)["send"],
        "urllib3": vars(urllib3.connectionpool.HTTPConnectionPool)["urlopen"],
    }
    for _ in range(2):
        dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])
        dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])
        assert vars(requests.Session)["send"] is not originals["requests"]
        dexcost.shutdown()

    assert vars(requests.Session)["send"] is originals["requests"]
    assert vars(httpx.Client)["send"] is originals["httpx"]
    assert vars(httpx.AsyncClient)["send"] is originals["httpx_async"]
    assert vars(urllib3.connectionpool.HTTPConnectionPool)["urlopen"] is originals["urllib3"]


def test_init_twice_wraps_send_once(dx: Any) -> None:
    dexcost.init(storage="local", auto_instrument=[], buffer_path=dx.buffer_path)

    wrapper = vars(requests.Session)["send"]
    assert find_gate(wrapper) is not None
    assert find_gate(wrapper.__wrapped__) is None


def test_shutdown_stops_matching_requests(dx: Any, api: FakePaidAPI) -> None:
    dexcost.shutdown()

    reply = send("httpx", "GET", api.base_url + "/fixed/search")

    assert reply.status == 200
    assert http_capture.captured_libraries() == []
    assert not capture.is_configured()


def test_init_loads_no_catalog_code(tmp_path: Path) -> None:
    # A fresh interpreter: this one has imported every HTTP client already.
    script = (
        "import sys, dexcost\n"
        f"dexcost.init(storage='local', buffer_path={str(tmp_path / 'b.db')!r})\n"
        "print(sorted(m for m in sys.modules if m.startswith('dexcost.catalog')))\n"
        "dexcost.shutdown()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )

    assert result.stdout.strip() == "[]"


# --- attribution and tasks ----------------------------------------------------------


def test_request_cost_goes_to_current_task(dx: Any, api: FakePaidAPI, costs: Rows) -> None:
    with dexcost.context(customer_id="acme"), dexcost.task("research") as task:
        send("requests", "GET", api.base_url + "/fixed/search")

    (event,) = costs()
    assert event["attributes"]["dexcost.task.id"] == task.task_id
    assert event["attributes"]["dexcost.customer_id"] == "acme"
    assert task.totals()["external_cost_usd"] == FIXED_COST


async def test_async_request_keeps_caller_attribution(
    dx: Any, api: FakePaidAPI, costs: Rows
) -> None:
    with dexcost.context(customer_id="globex"):
        async with httpx.AsyncClient() as client:
            await client.get(api.base_url + "/fixed/search")

    assert costs()[0]["attributes"]["dexcost.customer_id"] == "globex"


# --- user rates win over the catalog ------------------------------------------------

RATES = """\
rates:
  fake_fixed:
    per: request
    cost_usd: "0.5"
  localhost.test:
    per: 1k_requests
    cost_usd: "2"
"""


@pytest.fixture
def dx_rated(tmp_path: Path, buffer_path: Path, test_catalog: None) -> Iterator[None]:
    rates_file = tmp_path / "rates.yaml"
    rates_file.write_text(RATES)
    result = CliRunner().invoke(
        main, ["rates", "--import", str(rates_file), "--db", str(buffer_path)]
    )
    assert result.exit_code == 0, result.output
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])
    yield
    dexcost.shutdown()


def test_user_rate_for_service_wins(dx_rated: None, api: FakePaidAPI, costs: Rows) -> None:
    send("requests", "GET", api.base_url + "/fixed/search")

    (event,) = costs()
    # The stored rate, $0.50 per request, instead of the catalog's $5 per 1000.
    assert Decimal(event["cost_usd"]) == Decimal("0.5")
    assert event["attributes"]["dexcost.pricing.source"] == "user rates"


def test_user_rate_for_host_prices_requests(dx_rated: None, costs: Rows) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": True})

    with httpx.Client(transport=httpx.MockTransport(reply)) as client:
        client.get("http://localhost.test/anything?x=1")

    (event,) = costs()
    # $2 per 1000 requests, one request.
    assert Decimal(event["cost_usd"]) == Decimal("0.002")
    assert event["attributes"]["dexcost.service"] == "localhost.test"


# --- dexcost's own failures stay inside dexcost -------------------------------------


def test_internal_error_never_reaches_caller(
    dx: Any, api: FakePaidAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("pricing bug")

    monkeypatch.setattr(errors, "RAISE_INTERNAL_ERRORS", False)
    monkeypatch.setattr(capture.Plan, "record_response", broken)
    before = errors.internal_error_count()

    reply = send("requests", "GET", api.base_url + "/text/extract")

    assert reply.body == HTML
    assert errors.internal_error_count() == before + 1


def test_caller_gets_client_response_object(dx: Any, api: FakePaidAPI) -> None:
    seen: list[requests.Response] = []

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        seen.append(response)

    response = requests.get(api.base_url + "/json/extract", hooks={"response": hook})

    assert response is seen[0]
