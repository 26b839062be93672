"""Uploads through the HTTPS_PROXY of the environment, and how that setting is read.

The Control Layer is a receiver on 127.0.0.1 serving https with a certificate for
``control.dexcost.test``, a name the test proxy tunnels to it and that is never looked
up in DNS: every connection dexcost opens must go to the proxy.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from tests.connect_proxy import ConnectProxy, certificate_files, resolve_loopback_only

import dexcost
from dexcost import proxy as proxy_module
from dexcost.proxy import Proxy, https_proxy_for

from .conftest import (
    all_delivered,
    record_calls,
    stored_events,
    sync_states,
    wait_until,
)
from .receiver import Receiver

CONTROL_HOST = "control.dexcost.test"
# "u:p@ss" in Basic form, as the proxy must receive it from http://u:p%40ss@...
EXPECTED_AUTHORIZATION = "Basic dTpwQHNz"
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy")


@pytest.fixture(autouse=True)
def _no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return resolve_loopback_only(monkeypatch)


@pytest.fixture
def tls_receiver(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Receiver]:
    ca, certificate, key = certificate_files(tmp_path, [CONTROL_HOST])
    # OpenSSL reads this variable when ssl.create_default_context() loads the trust store.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    receiver.up()
    yield receiver


@pytest.fixture
def start_proxied(
    tls_receiver: Receiver, buffer_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], ConnectProxy]]:
    """Return a function that starts dexcost uploading through a proxy with that password."""
    proxies: list[ConnectProxy] = []

    def start(password: str) -> ConnectProxy:
        proxy = ConnectProxy(
            {f"{CONTROL_HOST}:443": tls_receiver.port}, authorization=EXPECTED_AUTHORIZATION
        )
        proxies.append(proxy)
        monkeypatch.setenv("HTTPS_PROXY", f"http://u:{password}@127.0.0.1:{proxy.port}")
        monkeypatch.setenv("DEXCOST_ENDPOINT", f"https://{CONTROL_HOST}")
        dexcost.init(
            api_key="dx_test_" + "k" * 24,
            buffer_path=str(buffer_path),
            flush_interval=0.1,
            auto_instrument=[],
        )
        return proxy

    yield start
    dexcost.shutdown()
    for proxy in proxies:
        proxy.close()


def test_events_uploaded_through_proxy(
    start_proxied: Callable[[str], ConnectProxy],
    tls_receiver: Receiver,
    buffer_path: Path,
    loopback_only: list[str],
) -> None:
    proxy = start_proxied("p%40ss")
    record_calls(3)
    assert dexcost.flush(timeout=10)

    assert wait_until(all_delivered(tls_receiver, buffer_path))
    assert tls_receiver.event_ids() == set(stored_events(buffer_path))
    assert tls_receiver.event_cost() == Decimal("0.00108")
    assert set(proxy.targets()) == {f"{CONTROL_HOST}:443"}
    assert {offered for _, offered, _ in proxy.requests} == {EXPECTED_AUTHORIZATION}
    assert set(loopback_only) == {"127.0.0.1"}


def test_refused_proxy_keeps_events_pending(
    start_proxied: Callable[[str], ConnectProxy],
    tls_receiver: Receiver,
    buffer_path: Path,
    loopback_only: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="dexcost"):
        proxy = start_proxied("wrong-secret")
        record_calls(2)
        assert dexcost.flush(timeout=10)
        # The proxy notes the request before dexcost reads the refusal and logs it.
        assert wait_until(lambda: "could not upload" in caplog.text)

    assert {status for _, _, status in proxy.requests} == {407}
    assert tls_receiver.event_ids() == set()
    assert set(sync_states(buffer_path)) == {0}
    assert f"through the proxy 127.0.0.1:{proxy.port} (HTTPS_PROXY)" in caplog.text
    assert "wrong-secret" not in caplog.text


# --- reading the setting ---


def test_no_setting_means_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    assert https_proxy_for("api.dexcost.example") is None


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy"])
def test_either_case_is_read(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, "http://proxy.internal:3128")

    assert https_proxy_for("api.dexcost.example") == Proxy("proxy.internal", 3128, {})


def test_value_without_scheme_is_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "proxy.internal:3128")

    assert https_proxy_for("api.dexcost.example") == Proxy("proxy.internal", 3128, {})


def test_port_defaults_to_80(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal")

    found = https_proxy_for("api.dexcost.example")

    assert found is not None
    assert found.port == 80


def test_credentials_become_basic_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://u:p%40ss@proxy.internal:3128")

    found = https_proxy_for("api.dexcost.example")

    assert found is not None
    assert found.headers == {"Proxy-Authorization": EXPECTED_AUTHORIZATION}
    assert found.where() == "proxy.internal:3128"


@pytest.mark.parametrize(
    ("no_proxy", "host", "bypassed"),
    [
        ("api.dexcost.example", "api.dexcost.example", True),
        (".dexcost.example", "api.dexcost.example", True),
        ("dexcost.example", "api.dexcost.example", True),
        ("*", "api.dexcost.example", True),
        ("other.example", "api.dexcost.example", False),
        ("example.org,dexcost.example", "api.dexcost.example", True),
        ("api.dexcost.example:443", "api.dexcost.example", True),
        ("api.dexcost.example:8443", "api.dexcost.example", False),
    ],
)
def test_no_proxy_hosts_connect_directly(
    no_proxy: str, host: str, bypassed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)

    assert (https_proxy_for(host) is None) is bypassed


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_never_proxied(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")

    assert https_proxy_for(host) is None


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("https://proxy.internal:3128", "only http:// proxies are supported"),
        ("socks5://u:secret@proxy.internal:1080", "only http:// proxies are supported"),
        ("   ", "names no proxy host"),
        ("http://", "names no proxy host"),
        ("http://:3128", "names no proxy host"),
        ("http://u:secret@:3128", "names no proxy host"),
        ("http://u:secret@proxy.internal:99999", "not a valid proxy URL"),
    ],
)
def test_unusable_proxy_warns_and_connects_directly(
    setting: str, message: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", setting)

    with caplog.at_level(logging.WARNING, logger=proxy_module.__name__):
        found = https_proxy_for("api.dexcost.example")

    assert found is None
    (record,) = caplog.records
    assert message in record.getMessage()
    assert "secret" not in caplog.text


def test_plain_http_endpoint_not_proxied(
    receiver: Receiver,
    buffer_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    loopback_only: list[str],
) -> None:
    """An allowed plain-http gateway is reached directly, so the key stays off the proxy."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    receiver.up()
    monkeypatch.setenv("DEXCOST_ENDPOINT", receiver.endpoint)
    dexcost.init(
        api_key="dx_test_" + "k" * 24,
        buffer_path=str(buffer_path),
        flush_interval=0.1,
        auto_instrument=[],
    )
    try:
        record_calls(1)
        assert dexcost.flush(timeout=10)
        assert wait_until(all_delivered(receiver, buffer_path))
    finally:
        dexcost.shutdown()
    assert len(receiver.event_ids()) == 1
    assert set(loopback_only) == {"127.0.0.1"}
