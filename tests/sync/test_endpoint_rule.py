"""The endpoint must be https, except loopback and hosts opted in to plain http."""

from __future__ import annotations

import pytest

from dexcost.config import DexcostConfig


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:4318",
        "http://127.8.9.10",
        "http://[::1]:4318",
        "http://localhost:4318",
        "https://collector.example.com",
    ],
)
def test_endpoint_allowed(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    monkeypatch.setenv("DEXCOST_ENDPOINT", endpoint)
    assert DexcostConfig().endpoint == endpoint


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://collector.example.com",
        "http://10.0.0.5:4318",
        "http://[::2]",
        # Resolvers may look these names up in DNS instead of answering with loopback.
        "http://localhost.:4318",
        "http://api.localhost:4318",
    ],
)
def test_plain_http_endpoint_rejected(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    monkeypatch.setenv("DEXCOST_ENDPOINT", endpoint)
    with pytest.raises(ValueError, match=r"DEXCOST_ENDPOINT .* uses plain http"):
        DexcostConfig()


def test_plain_http_error_names_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEXCOST_ENDPOINT", "http://otel-gateway:4318")
    with pytest.raises(ValueError, match="DEXCOST_ALLOW_HTTP_HOSTS=otel-gateway"):
        DexcostConfig()


def test_opted_in_host_allows_plain_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEXCOST_ALLOW_HTTP_HOSTS", "collector.internal, OTEL-Gateway")
    monkeypatch.setenv("DEXCOST_ENDPOINT", "http://otel-gateway:4318")
    assert DexcostConfig().endpoint == "http://otel-gateway:4318"


def test_opt_in_matches_whole_host_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEXCOST_ALLOW_HTTP_HOSTS", "gateway")
    monkeypatch.setenv("DEXCOST_ENDPOINT", "http://gateway.evil.example")
    with pytest.raises(ValueError, match="plain http"):
        DexcostConfig()
