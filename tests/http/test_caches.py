"""The match results the capture caches per host and path never outlive the catalog or rates.

A request to a host or path no entry bills is matched from a cache the next time.
A new catalog (``use_catalog``, a remote catalog refresh) or a rate stored for the
host before ``init()`` must still price the next request to it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import dexcost
from dexcost import http as http_capture
from dexcost.catalog import loading
from dexcost.catalog.schema import Catalog
from dexcost.cli import main
from dexcost.http import capture

from .clients import CLIENTS, send
from .fake_paid_api import CATALOG_DOCUMENT, FIXED_COST, JSON_COST, FakePaidAPI, build_catalog

Rows = Callable[[], list[dict[str, Any]]]


def _only(*entry_ids: str) -> Catalog:
    """Return the test catalog with only the entries named."""
    full = build_catalog()
    entries = tuple(entry for entry in full.entries if entry.id in entry_ids)
    return Catalog(full.schema_version, "test.partial", entries)


@pytest.mark.parametrize("client", CLIENTS)
def test_unbilled_host_priced_after_new_catalog(
    dx: Any, api: FakePaidAPI, costs: Rows, client: str
) -> None:
    http_capture.use_catalog(_only())
    send(client, "GET", api.base_url + "/fixed/search")
    assert costs() == []

    http_capture.use_catalog(build_catalog())
    send(client, "GET", api.base_url + "/fixed/search")

    (event,) = costs()
    assert Decimal(event["cost_usd"]) == FIXED_COST


@pytest.mark.parametrize("client", CLIENTS)
def test_unbilled_path_priced_after_new_catalog(
    dx: Any, api: FakePaidAPI, costs: Rows, client: str
) -> None:
    http_capture.use_catalog(_only("fake_fixed"))
    send(client, "GET", api.base_url + "/json/extract")
    assert costs() == []

    http_capture.use_catalog(build_catalog())
    send(client, "GET", api.base_url + "/json/extract")

    (event,) = costs()
    assert Decimal(event["cost_usd"]) == JSON_COST


def test_cached_answers_repeat_per_request(dx: Any, api: FakePaidAPI, costs: Rows) -> None:
    for _ in range(3):
        send("requests", "GET", api.base_url + "/fixed/search")
        send("requests", "GET", api.base_url + "/free/weather")

    assert [Decimal(row["cost_usd"]) for row in costs()] == [FIXED_COST] * 3


def test_remote_refresh_prices_unbilled_host(
    tmp_path: Path,
    buffer_path: Path,
    api: FakePaidAPI,
    costs: Rows,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundled = tmp_path / "services.json"
    bundled.write_text(json.dumps({**CATALOG_DOCUMENT, "services": []}))
    monkeypatch.setattr(loading, "BUNDLED_PATH", bundled)
    for name in ("_bundled_file", "_remote", "_active"):
        monkeypatch.setattr(loading, name, None)
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])
    try:
        send("httpx", "GET", api.base_url + "/fixed/search")
        assert costs() == []

        loading.set_remote(build_catalog())
        http_capture.refresh_catalog()
        send("httpx", "GET", api.base_url + "/fixed/search")

        (event,) = costs()
    finally:
        dexcost.shutdown()
    assert Decimal(event["cost_usd"]) == FIXED_COST


RATES = """\
rates:
  localhost.test:
    per: 1k_requests
    cost_usd: "2"
"""


def _mock_get(url: str) -> None:
    import httpx

    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": True})

    with httpx.Client(transport=httpx.MockTransport(reply)) as client:
        client.get(url)


def test_stored_host_rate_prices_unbilled_host(
    tmp_path: Path, buffer_path: Path, test_catalog: None, costs: Rows
) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])
    try:
        _mock_get("http://localhost.test/anything")
        assert costs() == []
    finally:
        dexcost.shutdown()
    rates_file = tmp_path / "rates.yaml"
    rates_file.write_text(RATES)
    result = CliRunner().invoke(
        main, ["rates", "--import", str(rates_file), "--db", str(buffer_path)]
    )
    assert result.exit_code == 0, result.output

    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])
    try:
        _mock_get("http://localhost.test/anything")
        (event,) = costs()
    finally:
        dexcost.shutdown()
    # $2 per 1000 requests, one request.
    assert Decimal(event["cost_usd"]) == Decimal("0.002")


def test_host_cache_is_bounded(dx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture, "_CACHE_LIMIT", 8)
    for number in range(20):
        assert capture.lookup(f"host{number}.example") is None

    state = capture._state
    assert state is not None
    assert 0 < len(state.hosts) <= 8


def test_path_cache_is_bounded(dx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture, "_PATHS_PER_HOST", 8)
    host = capture.lookup("127.0.0.1")
    assert host is not None
    for number in range(20):
        host.plan("GET", f"/free/{number}")

    assert 0 < len(host.answers) <= 8
    assert host.plan("GET", "/free/0") is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"usage": {"credits": 7}}',
        b'{"a": 1}  \n',
        b"[1, 2]",
        '{"a": "text body"}',
        b'\xef\xbb\xbf{"a": 1}',
        '{"a": 1}'.encode("utf-16"),
        b"7",
        b' {"a": 1}',
        b'{"a": NaN}',
    ],
    ids=repr,
)
def test_decode_json_agrees_with_json_loads(body: bytes | str) -> None:
    assert capture.decode_json(body) == json.loads(body)


@pytest.mark.parametrize(
    "body",
    [b'{"a": 1} trailing', b'{"a": ', b"[1", "{oops}", b'{"a": "\xff"}', b"{\x00", b""],
    ids=repr,
)
def test_decode_json_invalid_is_none(body: bytes | str) -> None:
    assert capture.decode_json(body) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/fixed/a?q=1#part",
        "https://127.0.0.1/fixed/a#part?q=1",
        "http://127.0.0.1/fixed/a",
        "http://127.0.0.1/",
        "http://127.0.0.1//fixed/a?q=#",
        "http://user:secret@127.0.0.1/fixed/a",
        "http://127.0.0.1?next=/fixed/a",
        "http://127.0.0.1",
        "HTTP://127.0.0.1/fixed/a",
        "http://example.org/fixed/a?q=1",
        "http://user@example.org@127.0.0.1/fixed/a",
    ],
)
def test_cached_url_lookup_agrees_with_first(dx: Any, url: str) -> None:
    """A URL looked up again, from the authority cache, gives the same host and path."""
    capture.configure(build_catalog(), None, ())
    first = capture.lookup_url(url)
    again = capture.lookup_url(url)
    if first is None:
        assert again is None
    else:
        assert again is not None
        assert again[0] is first[0]
        assert again[1] == first[1] == capture.split_url(url)[1]
