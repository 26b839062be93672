"""Every captured client library prices each way of counting units, exactly."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from .clients import CLIENTS, CONNECT_ERRORS, send
from .fake_paid_api import (
    BILLED_FAILURE_COST,
    CATALOG_VERSION,
    COUNT_BODY,
    COUNT_COST,
    FIXED_COST,
    HEADER_COST,
    HTML,
    JSON_COST,
    FakePaidAPI,
)

Rows = Callable[[], list[dict[str, Any]]]

pytestmark = pytest.mark.usefixtures("dx")


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize(
    ("method", "path", "body", "cost", "units"),
    [
        ("GET", "/fixed/search", None, FIXED_COST, 1),
        ("GET", "/header/scrape", None, HEADER_COST, 3),
        ("GET", "/json/extract", None, JSON_COST, 7),
        ("POST", "/count/embed", COUNT_BODY, COUNT_COST, 4),
    ],
    ids=["fixed", "response_header", "response_json", "request_json_count"],
)
def test_client_request_priced_exactly(
    client: str,
    api: FakePaidAPI,
    costs: Rows,
    method: str,
    path: str,
    body: Any,
    cost: Decimal,
    units: int,
) -> None:
    reply = send(client, method, api.base_url + path, body)

    assert reply.status == 200
    (event,) = costs()
    assert Decimal(event["cost_usd"]) == cost
    assert event["cost_status"] == "priced"
    assert event["attributes"]["dexcost.units"] == units
    assert event["attributes"]["dexcost.pricing.source"] == f"catalog {CATALOG_VERSION}"


def test_client_event_names_service_and_request(client: str, api: FakePaidAPI, costs: Rows) -> None:
    send(client, "GET", api.base_url + "/header/scrape")

    attributes = costs()[0]["attributes"]
    assert attributes["dexcost.service"] == "fake_header"
    assert attributes["dexcost.unit"] == "credit"
    assert attributes["http.request.method"] == "GET"
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["url.path"] == "/header/scrape"
    assert attributes["http.response.status_code"] == 200


def test_client_query_string_never_stored(
    client: str, api: FakePaidAPI, costs: Rows, stored: Callable[..., Any]
) -> None:
    send(client, "GET", api.base_url + "/fixed/search?api_key=sk-secret-123&q=pizza")

    assert costs()[0]["attributes"]["url.path"] == "/fixed/search"
    assert "sk-secret-123" not in json.dumps(stored(), default=str)


def test_client_unmatched_request_records_nothing(
    client: str, api: FakePaidAPI, stored: Callable[..., Any]
) -> None:
    reply = send(client, "GET", api.base_url + "/free/weather")

    assert reply.status == 200
    assert stored() == []


def test_client_unbilled_failure_costs_zero(client: str, api: FakePaidAPI, costs: Rows) -> None:
    reply = send(client, "GET", api.base_url + "/json/extract?status=503")

    assert reply.status == 503
    (event,) = costs()
    assert Decimal(event["cost_usd"]) == 0
    assert event["cost_status"] == "priced"
    assert event["attributes"]["error.type"] == "503"


def test_client_billed_failure_is_priced(client: str, api: FakePaidAPI, costs: Rows) -> None:
    send(client, "GET", api.base_url + "/billed/search?status=429")

    (event,) = costs()
    assert Decimal(event["cost_usd"]) == BILLED_FAILURE_COST


def test_client_non_json_body_is_usage_unknown(client: str, api: FakePaidAPI, costs: Rows) -> None:
    reply = send(client, "GET", api.base_url + "/text/extract")

    assert reply.body == HTML
    (event,) = costs()
    assert event["cost_status"] == "usage_unknown"
    assert event["cost_usd"] is None


def _closed_port() -> int:
    """Return a 127.0.0.1 port that was free a moment ago, so connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_client_refused_connection_records_nothing(client: str, costs: Rows) -> None:
    with pytest.raises(CONNECT_ERRORS[client]):
        send(client, "GET", f"http://127.0.0.1:{_closed_port()}/fixed/search")

    assert costs() == []


def test_client_refused_billed_is_usage_unknown(client: str, costs: Rows) -> None:
    with pytest.raises(CONNECT_ERRORS[client]) as raised:
        send(client, "GET", f"http://127.0.0.1:{_closed_port()}/billed/search")

    (event,) = costs()
    assert event["cost_status"] == "usage_unknown"
    assert event["attributes"]["error.type"] == type(raised.value).__qualname__
