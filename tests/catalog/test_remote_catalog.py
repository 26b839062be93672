"""A service catalog fetched from ``service_catalog_url``, from a server on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from opentelemetry import context as otel_context
from opentelemetry.context import (
    _SUPPRESS_HTTP_INSTRUMENTATION_KEY,
    _SUPPRESS_INSTRUMENTATION_KEY,
)
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.connect_proxy import ConnectProxy, certificate_files, resolve_loopback_only

import dexcost
from dexcost import http as http_capture
from dexcost.catalog import loading, remote
from dexcost.catalog.schema import parse_catalog
from dexcost.config import DexcostConfig
from dexcost.demo._server import LoopbackHTTPServer, WireResponse
from dexcost.http import capture

Rows = Callable[..., list[dict[str, Any]]]

# --- catalogs -----------------------------------------------------------------------


def _entry(entry_id: str, paths: list[str], price: str, per: int = 1000) -> dict[str, Any]:
    """An entry billing requests to 127.0.0.1, one unit each, at ``price`` per ``per``."""
    return {
        "id": entry_id,
        "name": entry_id.replace("_", " ").title(),
        "category": "search",
        "hosts": ["127.0.0.1"],
        "paths": paths,
        "pricing_model": "per_request",
        "unit": "request",
        "units_from": {"kind": "fixed", "units": 1},
        "price_usd": price,
        "per": per,
        "bills_failed_requests": False,
        "source_url": "https://example.com/pricing",
        "checked": "2026-12-01",
    }


def _document(version: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"schema_version": 1, "catalog_version": version, "services": list(entries)}


# Replaces the bundled file where a test needs a bundled entry on 127.0.0.1.
BUNDLED_DOCUMENT = _document(
    "bundled.1",
    _entry("local_search", ["/search/*"], "5"),
    _entry("local_scrape", ["/scrape/*"], "2"),
)
NEW_SERVICE = _entry("remote_news", ["/news/*"], "3")
REMOTE_DOCUMENT = _document("remote.1", NEW_SERVICE)


# --- a paid API and a catalog server on 127.0.0.1 -----------------------------------


def _paid_reply(
    method: str, target: str, headers: Any, body: bytes
) -> WireResponse:  # the paid API's reply to any request
    return WireResponse(200, {"content-type": "application/json"}, b'{"ok": true}')


@dataclass
class Reply:
    """What the catalog server sends for one path.

    ``drip`` sends the body one byte at a time until the server closes. ``release``,
    when given, delays the response until the event is set.
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False
    drip: bool = False
    release: threading.Event | None = None


class CatalogServer:
    """Serve ``replies`` (path -> Reply) on 127.0.0.1 and note what happened."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.scheme = "http" if tls is None else "https"
        self.replies: dict[str, Reply] = {}
        self.targets: list[str] = []
        self.arrived = threading.Event()
        self.stop_event = threading.Event()
        # Set when a reply could not be written to the end: the client hung up.
        self.cut_off = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server.serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> CatalogServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.stop_event.set()
        for reply in self.replies.values():
            if reply.release is not None:
                reply.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        self.targets.append(handler.path)
        self.arrived.set()
        reply = self.replies.get(handler.path.split("?")[0], Reply(404, b"not found"))
        if reply.release is not None:
            reply.release.wait(timeout=60)
        try:
            handler.send_response(reply.status)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            if reply.chunked:
                handler.send_header("Transfer-Encoding", "chunked")
            else:
                handler.send_header("Content-Length", str(len(reply.body)))
            handler.end_headers()
            if reply.drip:
                self._drip(handler, reply.body)
            elif reply.chunked:
                for start in range(0, len(reply.body), 65536):
                    piece = reply.body[start : start + 65536]
                    handler.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                handler.wfile.write(b"0\r\n\r\n")
            else:
                handler.wfile.write(reply.body)
            handler.wfile.flush()
        except OSError:
            self.cut_off.set()
        handler.close_connection = True

    def _drip(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        for byte in body:
            if self.stop_event.wait(0.05):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()


def _json(document: Any) -> bytes:
    return json.dumps(document).encode()


# --- fixtures -----------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[CatalogServer]:
    catalog_server = CatalogServer().start()
    yield catalog_server
    catalog_server.close()


# A name the proxy tunnels to the https catalog server; it is never looked up in DNS.
PROXIED_HOST = "catalog.dexcost.test"


@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CatalogServer]:
    """Serve https on 127.0.0.1 with a certificate from a CA the process trusts."""
    ca, certificate, key = certificate_files(tmp_path, ["127.0.0.1", PROXIED_HOST])
    # OpenSSL reads this variable when ssl.create_default_context() loads the trust store.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    catalog_server = CatalogServer(tls=context).start()
    yield catalog_server
    catalog_server.close()


@pytest.fixture
def paid_api() -> Iterator[str]:
    api = LoopbackHTTPServer(_paid_reply)
    api.start()
    yield f"http://127.0.0.1:{api.port}"
    api.stop()


@pytest.fixture(autouse=True)
def _no_remote_catalog_left() -> Iterator[None]:
    """Each test starts and ends with the bundled catalog alone."""
    remote.stop()
    yield
    dexcost.shutdown()
    remote.stop()
    assert remote.wait(timeout=30)


@pytest.fixture
def local_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the bundled file one with two entries on 127.0.0.1."""
    path = tmp_path / "services.json"
    path.write_text(json.dumps(BUNDLED_DOCUMENT))
    monkeypatch.setattr(loading, "BUNDLED_PATH", path)
    # Restored after the test, so the next one finds the real bundled catalog.
    for name in ("_bundled_file", "_remote", "_active"):
        monkeypatch.setattr(loading, name, None)


@pytest.fixture
def no_other_hosts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail to resolve any host but 127.0.0.1, and record each host requested."""
    return resolve_loopback_only(monkeypatch)


def _init(buffer_path: Path, url: str | None) -> DexcostConfig:
    return dexcost.init(
        storage="local",
        buffer_path=str(buffer_path),
        auto_instrument=[],
        service_catalog_url=url,
    )


def _fetched(buffer_path: Path, url: str) -> None:
    """Start dexcost with ``url`` and wait until the catalog has been fetched."""
    _init(buffer_path, url)
    assert remote.wait(timeout=30)


def _entry_ids() -> set[str]:
    return {entry.id for entry in loading.active()[0].entries}


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("dexcost") and record.levelno >= logging.WARNING
    ]


# --- a valid catalog ----------------------------------------------------------------


@pytest.mark.parametrize("client", ["requests", "httpx"])
def test_new_remote_service_is_priced(
    client: str,
    server: CatalogServer,
    paid_api: str,
    buffer_path: Path,
    stored: Rows,
) -> None:
    server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT))
    _fetched(buffer_path, server.url("/catalog.json"))

    if client == "requests":
        assert requests.get(paid_api + "/news/today", timeout=10).status_code == 200
    else:
        assert httpx.get(paid_api + "/news/today", timeout=10).status_code == 200

    (event,) = stored("external_cost")
    assert event["attributes"]["dexcost.service"] == "remote_news"
    assert Decimal(event["cost_usd"]) == Decimal("0.003")


def test_remote_catalog_keeps_bundled_entries(server: CatalogServer, buffer_path: Path) -> None:
    bundled_ids = {entry.id for entry in loading.active()[0].entries}
    server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT))

    _fetched(buffer_path, server.url("/catalog.json"))

    assert _entry_ids() == bundled_ids | {"remote_news"}


def test_remote_entry_replaces_same_id(
    local_bundle: None, server: CatalogServer, paid_api: str, buffer_path: Path, stored: Rows
) -> None:
    cheaper = _entry("local_search", ["/search/*"], "4")
    server.replies["/catalog.json"] = Reply(body=_json(_document("remote.2", cheaper)))
    _fetched(buffer_path, server.url("/catalog.json"))

    requests.get(paid_api + "/search/web", timeout=10)

    (event,) = stored("external_cost")
    assert Decimal(event["cost_usd"]) == Decimal("0.004")


def test_remote_entry_wins_overlap(
    local_bundle: None, server: CatalogServer, paid_api: str, buffer_path: Path, stored: Rows
) -> None:
    overlapping = _entry("other_scraper", ["/scrape/*"], "9")
    server.replies["/catalog.json"] = Reply(body=_json(_document("remote.3", overlapping)))
    _fetched(buffer_path, server.url("/catalog.json"))

    httpx.get(paid_api + "/scrape/page", timeout=10)

    (event,) = stored("external_cost")
    assert event["attributes"]["dexcost.service"] == "other_scraper"


def test_unlisted_bundled_entry_stays(
    local_bundle: None, server: CatalogServer, paid_api: str, buffer_path: Path, stored: Rows
) -> None:
    server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT))
    _fetched(buffer_path, server.url("/catalog.json"))

    requests.get(paid_api + "/scrape/page", timeout=10)

    (event,) = stored("external_cost")
    assert Decimal(event["cost_usd"]) == Decimal("0.002")


def test_pricing_source_names_both_versions(
    local_bundle: None, server: CatalogServer, paid_api: str, buffer_path: Path, stored: Rows
) -> None:
    server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT))
    _fetched(buffer_path, server.url("/catalog.json"))

    requests.get(paid_api + "/news/today", timeout=10)

    (event,) = stored("external_cost")
    assert event["attributes"]["dexcost.pricing.source"] == "catalog remote.1 over bundled.1"


def test_loopback_redirect_is_followed(server: CatalogServer, buffer_path: Path) -> None:
    server.replies["/old.json"] = Reply(302, headers={"Location": "/catalog.json"})
    server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT))

    _fetched(buffer_path, server.url("/old.json"))

    assert "remote_news" in _entry_ids()


def test_capture_started_later_uses_remote_catalog(
    server: CatalogServer, paid_api: str, buffer_path: Path, stored: Rows
) -> None:
    server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT))
    dexcost.init(
        storage="local",
        buffer_path=str(buffer_path),
        auto_instrument=[],
        track_http=False,
        service_catalog_url=server.url("/catalog.json"),
    )
    assert remote.wait(timeout=30)
    assert not capture.is_configured()
    http_capture.start()  # what init(track_http=True) does

    requests.get(paid_api + "/news/today", timeout=10)

    (event,) = stored("external_cost")
    assert event["attributes"]["dexcost.service"] == "remote_news"


# --- failures keep the catalog in use -----------------------------------------------


def _bad_fetch(
    server: CatalogServer, buffer_path: Path, reply: Reply, caplog: pytest.LogCaptureFixture
) -> list[str]:
    """Serve ``reply``, fetch it and return the warnings logged."""
    before = loading.active()[0]
    server.replies["/catalog.json"] = reply
    with caplog.at_level(logging.WARNING):
        _fetched(buffer_path, server.url("/catalog.json?token=s3cret"))
    assert loading.active()[0] == before
    return _warnings(caplog)


def test_invalid_json_is_rejected(
    server: CatalogServer, buffer_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (warning,) = _bad_fetch(server, buffer_path, Reply(body=b'{"services": ['), caplog)

    assert "not valid JSON" in warning


def test_warning_names_host_and_hides_query(
    server: CatalogServer, buffer_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (warning,) = _bad_fetch(server, buffer_path, Reply(body=b"<html>"), caplog)

    port = server.base_url.rsplit(":", 1)[1]
    assert f"from 127.0.0.1:{port}:" in warning
    assert "s3cret" not in caplog.text


def test_one_invalid_entry_rejects_whole_catalog(
    server: CatalogServer, buffer_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = _entry("broken_prices", ["/x/*"], "0.5")
    broken["price_usd"] = 0.5
    document = _document("remote.4", NEW_SERVICE, broken)

    (warning,) = _bad_fetch(server, buffer_path, Reply(body=_json(document)), caplog)

    assert "catalog entry 'broken_prices', field 'price_usd'" in warning


def test_deeply_nested_json_is_rejected(
    server: CatalogServer, buffer_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (warning,) = _bad_fetch(server, buffer_path, Reply(body=b"[" * 200_000), caplog)

    assert "not valid JSON" in warning


def test_server_error_is_rejected(
    server: CatalogServer, buffer_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (warning,) = _bad_fetch(server, buffer_path, Reply(500, b"oops"), caplog)

    assert "the server returned HTTP 500" in warning


def test_oversize_content_length_is_rejected(
    server: CatalogServer,
    buffer_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(remote, "MAX_CATALOG_BYTES", 1000)
    body = _json(REMOTE_DOCUMENT) + b" " * 1000

    (warning,) = _bad_fetch(server, buffer_path, Reply(body=body), caplog)

    assert f"the response is {len(body)} bytes, over the 1000-byte limit" in warning


def test_oversize_chunked_body_stops_reading(
    server: CatalogServer,
    buffer_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(remote, "MAX_CATALOG_BYTES", 1000)
    # Far more than the socket buffers hold, so the server cannot write it all.
    body = b" " * 16_000_000

    (warning,) = _bad_fetch(server, buffer_path, Reply(body=body, chunked=True), caplog)

    assert "the response is over the 1000-byte limit" in warning
    assert server.cut_off.wait(timeout=30)


def test_slow_drip_body_times_out(
    server: CatalogServer,
    buffer_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(remote, "FETCH_TIMEOUT_SECONDS", 0.5)
    # Dripped until the server stops: the body alone would take hours.
    body = _json(REMOTE_DOCUMENT) * 1000

    (warning,) = _bad_fetch(server, buffer_path, Reply(body=body, drip=True), caplog)

    assert "timed out after 0.5 seconds" in warning


def test_delayed_response_times_out(
    server: CatalogServer,
    buffer_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(remote, "FETCH_TIMEOUT_SECONDS", 0.5)
    delayed = Reply(body=_json(REMOTE_DOCUMENT), release=threading.Event())

    (warning,) = _bad_fetch(server, buffer_path, delayed, caplog)

    assert "timed out after 0.5 seconds" in warning


def test_refused_connection_is_reported(
    buffer_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    before = loading.active()[0]
    with caplog.at_level(logging.WARNING):
        _fetched(buffer_path, f"http://127.0.0.1:{port}/catalog.json")

    (warning,) = _warnings(caplog)
    assert "connection failed" in warning
    assert loading.active()[0] == before


@pytest.mark.parametrize(
    "location",
    ["file:///etc/hosts", "http://catalog.example/catalog.json", "ftp://127.0.0.1/c.json"],
)
def test_unsafe_redirect_is_rejected(
    location: str,
    server: CatalogServer,
    buffer_path: Path,
    caplog: pytest.LogCaptureFixture,
    no_other_hosts: list[str],
) -> None:
    (warning,) = _bad_fetch(server, buffer_path, Reply(302, headers={"Location": location}), caplog)

    assert "rejected because that URL" in warning
    assert no_other_hosts == ["127.0.0.1"]


def test_redirect_loop_stops_after_three(
    server: CatalogServer, buffer_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (warning,) = _bad_fetch(
        server, buffer_path, Reply(302, headers={"Location": "/catalog.json"}), caplog
    )

    assert "more than 3 redirects" in warning
    assert len(server.targets) == 4


# --- https ---------------------------------------------------------------------------


def test_https_catalog_is_fetched(tls_server: CatalogServer, buffer_path: Path) -> None:
    tls_server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT))

    _fetched(buffer_path, tls_server.url("/catalog.json"))

    assert "remote_news" in _entry_ids()


@pytest.fixture
def proxied_catalog(
    tls_server: CatalogServer, monkeypatch: pytest.MonkeyPatch, no_other_hosts: list[str]
) -> Iterator[Callable[[str], ConnectProxy]]:
    """Serve a catalog behind a proxy; the function returned sets HTTPS_PROXY's password."""
    tls_server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT))
    port = int(tls_server.base_url.rsplit(":", 1)[1])
    proxy = ConnectProxy({f"{PROXIED_HOST}:443": port}, authorization="Basic dTpwQHNz")

    def use(password: str) -> ConnectProxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://u:{password}@127.0.0.1:{proxy.port}")
        return proxy

    yield use
    proxy.close()
    assert set(no_other_hosts) <= {"127.0.0.1"}


def test_https_catalog_fetched_through_proxy(
    proxied_catalog: Callable[[str], ConnectProxy], buffer_path: Path
) -> None:
    proxy = proxied_catalog("p%40ss")

    _fetched(buffer_path, f"https://{PROXIED_HOST}/catalog.json")

    assert "remote_news" in _entry_ids()
    assert proxy.requests == [(f"{PROXIED_HOST}:443", "Basic dTpwQHNz", 200)]


def test_proxy_refusal_keeps_bundled_catalog(
    proxied_catalog: Callable[[str], ConnectProxy],
    tls_server: CatalogServer,
    buffer_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxied_catalog("wrong-secret")
    before = loading.active()[0]

    with caplog.at_level(logging.WARNING):
        _fetched(buffer_path, f"https://{PROXIED_HOST}/catalog.json")

    assert loading.active()[0] == before
    assert tls_server.targets == []
    (warning,) = _warnings(caplog)
    assert "407" in warning
    assert "through the proxy 127.0.0.1:" in warning
    assert "wrong-secret" not in caplog.text


def test_https_redirect_to_http_is_rejected(
    tls_server: CatalogServer,
    server: CatalogServer,
    buffer_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT))
    moved = Reply(302, headers={"Location": server.url("/catalog.json")})

    (warning,) = _bad_fetch(tls_server, buffer_path, moved, caplog)

    assert "switches from https to plain http" in warning
    assert server.targets == []


def test_untrusted_certificate_is_rejected(
    tls_server: CatalogServer,
    buffer_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(buffer_path.parent / "no-such-ca.pem"))
    served = Reply(body=_json(REMOTE_DOCUMENT))

    (warning,) = _bad_fetch(tls_server, buffer_path, served, caplog)

    assert "CERTIFICATE_VERIFY_FAILED" in warning
    assert tls_server.targets == []


# --- init() never waits -------------------------------------------------------------


def test_init_returns_during_delayed_response(server: CatalogServer, buffer_path: Path) -> None:
    release = threading.Event()
    server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT), release=release)

    _init(buffer_path, server.url("/catalog.json"))

    assert server.arrived.wait(timeout=30)
    assert "remote_news" not in _entry_ids()
    release.set()
    assert remote.wait(timeout=30)
    assert "remote_news" in _entry_ids()


def test_requests_during_fetch_use_bundled_catalog(
    local_bundle: None, server: CatalogServer, paid_api: str, buffer_path: Path, stored: Rows
) -> None:
    release = threading.Event()
    cheaper = _entry("local_search", ["/search/*"], "4")
    server.replies["/catalog.json"] = Reply(
        body=_json(_document("remote.2", cheaper)), release=release
    )
    _init(buffer_path, server.url("/catalog.json"))
    assert server.arrived.wait(timeout=30)

    requests.get(paid_api + "/search/web", timeout=10)
    release.set()
    assert remote.wait(timeout=30)
    requests.get(paid_api + "/search/web", timeout=10)

    costs = [Decimal(event["cost_usd"]) for event in stored("external_cost")]
    assert costs == [Decimal("0.005"), Decimal("0.004")]


# --- the cache ----------------------------------------------------------------------


def test_catalog_is_cached_next_to_buffer(server: CatalogServer, buffer_path: Path) -> None:
    server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT))

    _fetched(buffer_path, server.url("/catalog.json"))

    cached = json.loads((buffer_path.parent / "buffer.db.catalog.json").read_text())
    assert cached["catalog"] == REMOTE_DOCUMENT


def test_cache_keeps_no_url(server: CatalogServer, buffer_path: Path) -> None:
    server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT))

    _fetched(buffer_path, server.url("/catalog.json?token=s3cret"))

    assert "s3cret" not in remote.cache_path(buffer_path).read_text()


def test_offline_start_uses_cached_catalog(
    server: CatalogServer, paid_api: str, buffer_path: Path, stored: Rows
) -> None:
    server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT))
    url = server.url("/catalog.json")
    _fetched(buffer_path, url)
    dexcost.shutdown()
    remote.stop()
    server.replies["/catalog.json"] = Reply(503, b"down")

    _fetched(buffer_path, url)
    requests.get(paid_api + "/news/today", timeout=10)

    (event,) = stored("external_cost")
    assert event["attributes"]["dexcost.service"] == "remote_news"


def test_failed_fetch_keeps_cached_catalog(
    server: CatalogServer, buffer_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT))
    url = server.url("/catalog.json")
    _fetched(buffer_path, url)
    dexcost.shutdown()
    remote.stop()
    server.replies["/catalog.json"] = Reply(503, b"down")

    with caplog.at_level(logging.WARNING):
        _fetched(buffer_path, url)

    (warning,) = _warnings(caplog)
    assert warning.endswith("The cached catalog stays in use.")


def test_cache_is_used_before_download(server: CatalogServer, buffer_path: Path) -> None:
    server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT))
    url = server.url("/catalog.json")
    _fetched(buffer_path, url)
    dexcost.shutdown()
    remote.stop()
    release = threading.Event()
    server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT), release=release)
    server.arrived.clear()

    _init(buffer_path, url)
    assert server.arrived.wait(timeout=30)  # the cache is read before the download

    assert "remote_news" in _entry_ids()
    release.set()


def test_corrupt_cache_is_ignored(buffer_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    remote.cache_path(buffer_path).write_text('{"format": 1, "catalog": ')
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    before = loading.active()[0]

    with caplog.at_level(logging.WARNING):
        _fetched(buffer_path, f"http://127.0.0.1:{port}/catalog.json")

    first, second = _warnings(caplog)
    assert first.startswith("dexcost ignored its cached service catalog")
    assert second.endswith("The bundled catalog stays in use.")
    assert loading.active()[0] == before


def test_cache_with_invalid_entry_is_ignored(
    server: CatalogServer, buffer_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT))
    url = server.url("/catalog.json")
    _fetched(buffer_path, url)
    dexcost.shutdown()
    remote.stop()
    path = remote.cache_path(buffer_path)
    cache = json.loads(path.read_text())
    cache["catalog"]["services"][0]["per"] = 3
    path.write_text(json.dumps(cache))
    server.replies["/catalog.json"] = Reply(503, b"down")

    with caplog.at_level(logging.WARNING):
        _fetched(buffer_path, url)

    assert "catalog entry 'remote_news', field 'per'" in _warnings(caplog)[0]
    assert "remote_news" not in _entry_ids()


def test_cache_of_other_url_unused(server: CatalogServer, buffer_path: Path) -> None:
    server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT))
    _fetched(buffer_path, server.url("/catalog.json"))
    dexcost.shutdown()
    remote.stop()

    _fetched(buffer_path, server.url("/other.json"))

    assert "remote_news" not in _entry_ids()


def test_cache_write_failure_is_logged(
    server: CatalogServer, buffer_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    remote.cache_path(buffer_path).mkdir()  # a folder where the file would go
    server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT))

    with caplog.at_level(logging.WARNING):
        _fetched(buffer_path, server.url("/catalog.json"))

    # The folder also cannot be read as a cache at start, which is warned about first.
    assert _warnings(caplog)[-1].startswith("dexcost could not write its service catalog cache")
    assert "remote_news" in _entry_ids()
    assert list(buffer_path.parent.glob("buffer.db.catalog.json.*")) == []


# --- init() again -------------------------------------------------------------------


def test_init_without_url_drops_remote_catalog(server: CatalogServer, buffer_path: Path) -> None:
    server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT))
    _fetched(buffer_path, server.url("/catalog.json"))

    _init(buffer_path, None)

    assert "remote_news" not in _entry_ids()


def test_obsolete_fetch_changes_nothing(server: CatalogServer, buffer_path: Path) -> None:
    release = threading.Event()
    server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT), release=release)
    _init(buffer_path, server.url("/catalog.json"))
    assert server.arrived.wait(timeout=30)
    first = remote._thread
    assert first is not None

    _init(buffer_path, None)
    release.set()
    first.join(timeout=30)

    assert "remote_news" not in _entry_ids()


def test_obsolete_failed_fetch_logs_nothing(
    server: CatalogServer, buffer_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()
    server.replies["/catalog.json"] = Reply(500, b"oops", release=release)
    _init(buffer_path, server.url("/catalog.json"))
    assert server.arrived.wait(timeout=30)
    first = remote._thread
    assert first is not None

    with caplog.at_level(logging.WARNING):
        _init(buffer_path, None)
        release.set()
        first.join(timeout=30)

    assert _warnings(caplog) == []


# --- dexcost does not observe its own download --------------------------------------


def test_fetch_is_not_traced(
    server: CatalogServer,
    buffer_path: Path,
    stored: Rows,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    RequestsInstrumentor().instrument(tracer_provider=provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    seen: list[otel_context.Context] = []
    send = http.client.HTTPConnection.request

    def record_context(self: http.client.HTTPConnection, *args: Any, **kwargs: Any) -> None:
        seen.append(otel_context.get_current())
        send(self, *args, **kwargs)

    monkeypatch.setattr(http.client.HTTPConnection, "request", record_context)
    server.replies["/catalog.json"] = Reply(body=_json(REMOTE_DOCUMENT))
    try:
        tracer = provider.get_tracer("app")
        with (
            tracer.start_as_current_span("app request"),
            dexcost.context(customer_id="acme"),
        ):
            _fetched(buffer_path, server.url("/catalog.json"))
    finally:
        RequestsInstrumentor().uninstrument()
        HTTPXClientInstrumentor().uninstrument()

    (fetch_context,) = seen
    assert dict(fetch_context) == {
        _SUPPRESS_INSTRUMENTATION_KEY: True,
        _SUPPRESS_HTTP_INSTRUMENTATION_KEY: True,
    }
    assert [span.name for span in exporter.get_finished_spans()] == ["app request"]
    assert stored() == []


# --- the swap is atomic -------------------------------------------------------------


def test_catalog_swap_is_atomic(local_bundle: None, buffer_path: Path) -> None:
    _init(buffer_path, None)
    updated = parse_catalog(_document("remote.5", _entry("local_search", ["/search/*"], "4")))
    stop = threading.Event()
    misses: list[int] = []

    def match_repeatedly() -> None:
        while not stop.is_set():
            plan = capture.plan("GET", "127.0.0.1", "/search/web")
            if plan is None:
                misses.append(1)

    reader = threading.Thread(target=match_repeatedly)
    interval = sys.getswitchinterval()
    # Switching threads every microsecond lets the reader run inside any gap of a swap.
    sys.setswitchinterval(1e-6)
    reader.start()
    try:
        for swap in range(400):
            remote._use(updated if swap % 2 == 0 else None)
    finally:
        stop.set()
        reader.join(timeout=30)
        sys.setswitchinterval(interval)

    assert misses == []


# --- the URL rule -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://catalog.example.com/services.json?token=abc",
        "http://127.0.0.1:8000/services.json",
        "http://127.8.9.10/services.json",
        "http://[::1]:8000/services.json",
        "http://localhost/services.json",
    ],
)
def test_https_and_loopback_urls_accepted(url: str) -> None:
    assert DexcostConfig(storage="local", service_catalog_url=url).service_catalog_url == url


@pytest.mark.parametrize("host", ["localhost.", "catalog.localhost"])
def test_loopback_looking_names_rejected(host: str) -> None:
    # Resolvers may look these names up in DNS, which could answer with a remote host.
    with pytest.raises(ValueError, match="uses plain http"):
        DexcostConfig(storage="local", service_catalog_url=f"http://{host}/c.json")


def test_plain_http_url_is_rejected() -> None:
    with pytest.raises(ValueError) as raised:
        DexcostConfig(storage="local", service_catalog_url="http://catalog.example.com/c.json")

    message = str(raised.value)
    assert "'http://catalog.example.com/c.json' uses plain http" in message
    assert "pass the https:// URL of a catalog JSON file" in message


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://127.0.0.1/c.json", "is not an https URL"),
        ("https:///c.json", "has no host"),
        ("https://user:pw@catalog.example.com/c.json", "contains a user name or password"),
        ("https://catalog.example.com/my catalog.json", "percent-encode spaces"),
        ("https://catalog.example.com/c.json\x00", "percent-encode spaces"),
        ("https://catalog.example.com:99999/c.json", "is not a valid URL"),
    ],
)
def test_invalid_url_is_rejected(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match="service_catalog_url") as raised:
        DexcostConfig(storage="local", service_catalog_url=url)

    assert problem in str(raised.value)


def test_init_rejects_plain_http_url(buffer_path: Path) -> None:
    with pytest.raises(ValueError, match="uses plain http"):
        _init(buffer_path, "http://catalog.example.com/c.json")

    assert remote._thread is None
