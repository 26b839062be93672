"""The gateway configs: every pipeline part exists, only dexcost spans pass, no key in a file."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType, SimpleNamespace
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
    # dexcost means dropping every span whose scope name is not "dexcost". That also
    # drops the "dexcost.export" copies an app's own tracing may send the gateway.
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


# --- the rotel gateway (collector-config/rotel) ---

ROTEL = CONFIG.parent / "rotel"


@pytest.fixture(scope="module")
def launcher() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_gateway", ROTEL / "run_gateway.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rotel_settings(launcher: ModuleType) -> dict[str, str]:
    settings: dict[str, str] = launcher.read_settings(ROTEL / "gateway.env")
    return settings


def test_rotel_settings_contain_no_key(rotel_settings: dict[str, str]) -> None:
    assert [name for name in rotel_settings if "HEADERS" in name] == []


def test_rotel_exporter_uses_otlp_http(rotel_settings: dict[str, str]) -> None:
    assert rotel_settings["ROTEL_OTLP_EXPORTER_PROTOCOL"] == "http"


def test_rotel_exporter_uses_https(rotel_settings: dict[str, str]) -> None:
    assert rotel_settings["ROTEL_OTLP_EXPORTER_ENDPOINT"].startswith("https://")


def test_rotel_retry_time_is_not_zero(rotel_settings: dict[str, str]) -> None:
    # rotel reads 0s as "never retry", not as "retry forever".
    assert rotel_settings["ROTEL_OTLP_EXPORTER_RETRY_MAX_ELAPSED_TIME"] not in ("0", "0s")


def test_rotel_launcher_builds_bearer_header(launcher: ModuleType) -> None:
    environment = launcher.agent_environment({"DEXCOST_API_KEY": "dx_live_abc"})
    assert environment["ROTEL_OTLP_EXPORTER_CUSTOM_HEADERS"] == "Authorization=Bearer dx_live_abc"


def test_rotel_launcher_enables_filter(launcher: ModuleType) -> None:
    environment = launcher.agent_environment({"DEXCOST_API_KEY": "dx_live_abc"})
    assert environment["ROTEL_OTLP_WITH_TRACE_PROCESSOR"] == str(ROTEL / "dexcost_only.py")


def test_rotel_environment_overrides_settings(launcher: ModuleType) -> None:
    environment = launcher.agent_environment(
        {"DEXCOST_API_KEY": "dx_live_abc", "ROTEL_OTLP_HTTP_ENDPOINT": "10.0.0.5:4318"}
    )
    assert environment["ROTEL_OTLP_HTTP_ENDPOINT"] == "10.0.0.5:4318"


@pytest.mark.parametrize("key", ["", "dx_live_a,b", "dx_live_a b"])
def test_rotel_launcher_rejects_invalid_key(launcher: ModuleType, key: str) -> None:
    with pytest.raises(SystemExit, match="DEXCOST_API_KEY"):
        launcher.agent_environment({"DEXCOST_API_KEY": key})


def test_rotel_filter_keeps_dexcost_scope() -> None:
    spec = importlib.util.spec_from_file_location("dexcost_only", ROTEL / "dexcost_only.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # "dexcost.export" is the scope of the copies export_to_otel gives the app's own
    # tracing. The upload already carries each cost, so the gateway must drop the copy.
    names = ("dexcost", "other", "dexcost.export")
    scopes = [SimpleNamespace(scope=SimpleNamespace(name=name)) for name in names]
    resource_spans = SimpleNamespace(scope_spans=[*scopes, SimpleNamespace(scope=None)])
    module.process_spans(resource_spans)
    assert resource_spans.scope_spans == scopes[:1]
