"""The Collector gateway config: every pipeline part exists and only dexcost spans pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

CONFIG = Path(__file__).resolve().parents[2] / "collector-config" / "gateway.yaml"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded = yaml.safe_load(CONFIG.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.mark.parametrize("section", ["receivers", "processors", "exporters"])
def test_gateway_pipeline_references_exist(config: dict[str, Any], section: str) -> None:
    pipelines = config["service"]["pipelines"].values()
    used = {name for pipeline in pipelines for name in pipeline[section]}
    assert used <= set(config[section])


def test_gateway_extensions_are_defined(config: dict[str, Any]) -> None:
    assert set(config["service"]["extensions"]) <= set(config["extensions"])


def test_gateway_receives_otlp_http_and_grpc(config: dict[str, Any]) -> None:
    protocols = config["receivers"]["otlp"]["protocols"]
    assert (protocols["http"]["endpoint"], protocols["grpc"]["endpoint"]) == (
        "0.0.0.0:4318",
        "0.0.0.0:4317",
    )


def test_gateway_processor_order(config: dict[str, Any]) -> None:
    processors = config["service"]["pipelines"]["traces/dexcost"]["processors"]
    assert processors == ["memory_limiter", "filter/dexcost_only", "batch"]


def test_gateway_filter_drops_other_scopes(config: dict[str, Any]) -> None:
    # The filter processor drops spans that match a condition, so keeping only
    # dexcost means dropping every span whose scope name is not "dexcost".
    conditions = config["processors"]["filter/dexcost_only"]["traces"]["span"]
    assert conditions == ['instrumentation_scope.name != "dexcost"']


def test_gateway_exporter_sends_bearer_key(config: dict[str, Any]) -> None:
    exporter = config["exporters"]["otlphttp/dexcost"]
    assert exporter["headers"]["Authorization"] == "Bearer ${env:DEXCOST_API_KEY}"


def test_gateway_exporter_uses_https(config: dict[str, Any]) -> None:
    assert config["exporters"]["otlphttp/dexcost"]["endpoint"].startswith("https://")


def test_gateway_queue_uses_defined_storage(config: dict[str, Any]) -> None:
    storage = config["exporters"]["otlphttp/dexcost"]["sending_queue"]["storage"]
    assert storage in config["extensions"]
