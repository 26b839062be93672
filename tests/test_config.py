from __future__ import annotations

import logging

import pytest

import dexcost
from dexcost.config import DexcostConfig


def test_defaults_match_reference() -> None:
    config = DexcostConfig()
    assert config.api_key is None
    assert config.auto_instrument is None
    assert config.track_http is True
    assert config.environment is None
    assert config.batch_size == 100
    assert config.flush_interval == 5.0
    assert config.redact_fields is None
    assert config.hash_customer_id is False
    assert config.storage is None
    assert config.buffer_path is None
    assert config.service_catalog_url is None
    assert config.enable_retry_heuristics is False
    assert config.retry_heuristic_window is None
    assert config.retry_heuristic_threshold is None
    assert config.endpoint == "https://api.dexcost.io"


def test_no_key_means_local_storage() -> None:
    assert DexcostConfig().storage_mode == "local"


def test_api_key_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEXCOST_API_KEY", "dx_live_abc123456789")
    config = DexcostConfig()
    assert config.api_key == "dx_live_abc123456789"
    assert config.key_type == "live"
    assert config.storage_mode == "cloud"


def test_environment_key_ignored_in_local_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEXCOST_API_KEY", "dx_live_abc123456789")
    config = DexcostConfig(storage="local")
    assert config.api_key is None
    assert config.storage_mode == "local"


def test_test_key_type() -> None:
    assert DexcostConfig(api_key="dx_test_abc123456789").key_type == "test"


def test_dev_mode_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEXCOST_ENV", "development")
    config = DexcostConfig(api_key="dx_live_abc123456789")
    assert config.is_dev is True
    assert config.storage_mode == "local"


def test_explicit_environment_wins_over_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEXCOST_ENV", "development")
    assert DexcostConfig(environment="production").is_dev is False


def test_endpoint_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEXCOST_ENDPOINT", "https://collector.example.com/")
    assert DexcostConfig().endpoint == "https://collector.example.com"


def test_openai_key_rejected_without_echoing_it() -> None:
    with pytest.raises(ValueError) as info:
        DexcostConfig(api_key="sk-proj-secretsecretsecret1234")
    message = str(info.value)
    assert "dx_live_" in message
    assert "dx_test_" in message
    assert "secretsecret" not in message


def test_bare_prefix_rejected() -> None:
    with pytest.raises(ValueError, match="dx_live_"):
        DexcostConfig(api_key="dx_live_")


def test_non_string_key_rejected() -> None:
    with pytest.raises(TypeError, match="api_key"):
        DexcostConfig(api_key=12345)  # type: ignore[arg-type]


@pytest.mark.parametrize("storage", ["cloud", "remote", "LOCAL", ""])
def test_unknown_storage_rejected(storage: str) -> None:
    with pytest.raises(ValueError, match="storage='local'"):
        DexcostConfig(storage=storage)


@pytest.mark.parametrize("batch_size", [0, -5])
def test_batch_size_below_one_rejected(batch_size: int) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        DexcostConfig(batch_size=batch_size)


def test_batch_size_float_rejected() -> None:
    with pytest.raises(TypeError, match="batch_size"):
        DexcostConfig(batch_size=10.5)  # type: ignore[arg-type]


def test_batch_size_bool_rejected() -> None:
    with pytest.raises(TypeError, match="batch_size"):
        DexcostConfig(batch_size=True)


@pytest.mark.parametrize("interval", [0, -1.0, float("nan"), float("inf")])
def test_flush_interval_not_positive_rejected(interval: float) -> None:
    with pytest.raises(ValueError, match="flush_interval"):
        DexcostConfig(flush_interval=interval)


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_threshold_outside_unit_range_rejected(threshold: float) -> None:
    with pytest.raises(ValueError, match="retry_heuristic_threshold"):
        DexcostConfig(retry_heuristic_threshold=threshold)


@pytest.mark.parametrize("threshold", [0, 0.0, 0.5, 1, 1.0])
def test_threshold_inside_unit_range_accepted(threshold: float) -> None:
    assert DexcostConfig(retry_heuristic_threshold=threshold).retry_threshold == float(threshold)


@pytest.mark.parametrize("window", [0, -3.0, float("nan")])
def test_window_not_positive_rejected(window: float) -> None:
    with pytest.raises(ValueError, match="retry_heuristic_window"):
        DexcostConfig(retry_heuristic_window=window)


def test_unknown_instrument_lists_valid_names() -> None:
    with pytest.raises(ValueError) as info:
        DexcostConfig(auto_instrument=["openai", "opneai"])
    assert "opneai" in str(info.value)
    assert "openai" in str(info.value).split("valid names are:")[1]


def test_instrument_name_as_bare_string_rejected() -> None:
    with pytest.raises(TypeError, match=r'\["openai"\]'):
        DexcostConfig(auto_instrument="openai")  # type: ignore[arg-type]


def test_empty_instrument_list_accepted() -> None:
    assert DexcostConfig(auto_instrument=[]).auto_instrument == []


@pytest.mark.parametrize("endpoint", ["ftp://api.dexcost.io", "api.dexcost.io", "https://"])
def test_non_http_endpoint_rejected(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    monkeypatch.setenv("DEXCOST_ENDPOINT", endpoint)
    with pytest.raises(ValueError, match="DEXCOST_ENDPOINT"):
        DexcostConfig()


def test_catalog_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="service_catalog_url"):
        DexcostConfig(service_catalog_url="file:///etc/passwd")


def test_repr_masks_api_key() -> None:
    text = repr(DexcostConfig(api_key="dx_live_abcdefghijklmnop"))
    assert "abcdefghijkl" not in text
    assert "mnop" in text


def test_init_returns_config(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = dexcost.init(storage="local", buffer_path=str(tmp_path / "b.db"), auto_instrument=[])
    assert isinstance(config, dexcost.DexcostConfig)


def test_init_rejects_bad_input_before_changing_anything(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dexcost.runtime import current_runtime

    dexcost.init(storage="local", buffer_path=str(tmp_path / "b.db"), auto_instrument=[])
    before = current_runtime()
    with pytest.raises(ValueError):
        dexcost.init(api_key="sk-wrong")
    assert current_runtime() is before


def test_bad_environment_key_names_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEXCOST_API_KEY", "sk-proj-abcdefghijkl")
    with pytest.raises(ValueError, match="DEXCOST_API_KEY"):
        DexcostConfig()


def test_openai_key_gets_a_hint() -> None:
    with pytest.raises(ValueError, match="looks like an OpenAI"):
        DexcostConfig(api_key="sk-proj-abcdefghijkl")


def test_empty_key_rejected_as_empty() -> None:
    with pytest.raises(ValueError, match="api_key is empty"):
        DexcostConfig(api_key="  ")


def test_buffer_path_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEXCOST_BUFFER_PATH", "/var/lib/app/dexcost.db")
    assert DexcostConfig().buffer_path == "/var/lib/app/dexcost.db"


def test_explicit_buffer_path_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEXCOST_BUFFER_PATH", "/var/lib/app/dexcost.db")
    assert DexcostConfig(buffer_path="here.db").buffer_path == "here.db"


def test_bare_prefix_says_nothing_follows() -> None:
    with pytest.raises(ValueError, match="nothing after its prefix"):
        DexcostConfig(api_key="dx_test_")


@pytest.mark.parametrize("key", ["dx_live_abc def123456", "dx_live_abc\ndef123456"])
def test_key_with_whitespace_rejected(key: str) -> None:
    with pytest.raises(ValueError, match="spaces or control characters"):
        DexcostConfig(api_key=key)


def test_short_key_mask_hides_tail() -> None:
    from dexcost.config import mask_key

    assert mask_key("dx_live_abcde") == "dx_live_…"


def test_endpoint_with_credentials_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEXCOST_ENDPOINT", "https://user:hunter2@collector.example.com")
    with pytest.raises(ValueError) as info:
        DexcostConfig()
    assert "user name or password" in str(info.value)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    "endpoint", ["http://[::1", "https://collector.example.com:99999", "https://exa mple.com"]
)
def test_malformed_endpoint_named(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    monkeypatch.setenv("DEXCOST_ENDPOINT", endpoint)
    with pytest.raises(ValueError, match="DEXCOST_ENDPOINT"):
        DexcostConfig()


def test_huge_flush_interval_named() -> None:
    with pytest.raises(ValueError, match="flush_interval"):
        DexcostConfig(flush_interval=10**400)


def test_storage_wrong_type_is_type_error() -> None:
    with pytest.raises(TypeError, match="storage"):
        DexcostConfig(storage=5)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["", "   "])
def test_blank_buffer_path_rejected(value: str) -> None:
    with pytest.raises(ValueError, match="buffer_path .* is empty"):
        DexcostConfig(buffer_path=value)


def test_environment_name_case_insensitive() -> None:
    assert DexcostConfig(environment="Development").is_dev is True


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/tmp/a\x00.db", "contains a NUL character"),
        (":memory:", "is an in-memory SQLite database"),
    ],
)
def test_buffer_path_unusable_rejected(path: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dexcost.DexcostConfig(storage="local", buffer_path=path)


def test_redact_fields_warns_on_attribution_field(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dexcost.config"):
        DexcostConfig(storage="local", redact_fields=["email", "project_id"])
    assert "redact_fields lists 'project_id'" in caplog.text
    assert "'email'" not in caplog.text
