"""Tests for the rate registry: the YAML rate file, storage in the buffer and loading at init()."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import dexcost
from dexcost.buffer import Buffer, read_rate_rows
from dexcost.buffer_schema import MIGRATIONS, SCHEMA_VERSION
from dexcost.pricing import TokenUsage, clear_model_prices, price_llm
from dexcost.rates import ModelRate, ServiceRate, price_service_usage
from dexcost.rates.entries import RateValueError, service_rate, units_in_per
from dexcost.rates.rate_file import RateFileError, parse_rate_file, render_rate_file
from dexcost.rates.registry import install, model_row, rates_from_rows, service_row, uninstall
from dexcost.semconv import PRICED, PRICING_SOURCE, UNPRICED

EXAMPLE = """\
rates:
  maps.googleapis.com:
    per: request
    cost_usd: "0.005"
  ocr-api.com:
    per: page
    cost_usd: "0.01"
models:
  acme-reasoner:            # any provider
    input_per_mtok: "1.00"
    output_per_mtok: "2.00"
  gpt-4o-mini:
    provider: openai
    input_per_mtok: "0.10"
    output_per_mtok: "0.40"
    cache_read_per_mtok: "0.05"
"""

MAPS = ServiceRate("maps.googleapis.com", "request", Decimal("0.005"))
OCR = ServiceRate("ocr-api.com", "page", Decimal("0.01"))
REASONER = ModelRate("acme-reasoner", None, Decimal("1"), Decimal("2"))
MINI_OPENAI = ModelRate(
    "gpt-4o-mini", "openai", Decimal("0.1"), Decimal("0.4"), cache_read_per_mtok=Decimal("0.05")
)


@pytest.fixture(autouse=True)
def _no_user_prices() -> Iterator[None]:
    clear_model_prices()
    uninstall()
    yield
    clear_model_prices()
    uninstall()


def store(path: Path, services: list[ServiceRate], models: list[ModelRate]) -> None:
    with Buffer.open(path) as buffer:
        buffer.merge_rates(
            [service_row(rate) for rate in services], [model_row(rate) for rate in models]
        )


# --- the YAML rate file ---


def test_rate_file_reads_example() -> None:
    parsed = parse_rate_file(EXAMPLE, "rates.yaml")
    assert parsed.services == [MAPS, OCR]
    assert parsed.models == [REASONER, MINI_OPENAI]


def test_rate_file_reads_provider_list() -> None:
    text = """\
models:
  llama-ft:
    - input_per_mtok: "0.2"
      output_per_mtok: "0.6"
    - provider: ollama
      input_per_mtok: "0"
      output_per_mtok: "0"
"""
    parsed = parse_rate_file(text, "rates.yaml")
    assert parsed.models == [
        ModelRate("llama-ft", None, Decimal("0.2"), Decimal("0.6")),
        ModelRate("llama-ft", "ollama", Decimal("0"), Decimal("0")),
    ]


def test_rate_file_accepts_unquoted_integer() -> None:
    text = "rates:\n  sms:\n    per: 1k_requests\n    cost_usd: 7\n"
    assert parse_rate_file(text, "rates.yaml").services == [
        ServiceRate("sms", "1k_requests", Decimal(7))
    ]


def test_rate_file_accepts_empty_sections() -> None:
    parsed = parse_rate_file("rates:\nmodels: {}\n", "rates.yaml")
    assert parsed.services == []
    assert parsed.models == []


SERVICE_ENTRY = '    per: request\n    cost_usd: "0.005"\n'
MODEL_ENTRY = '    input_per_mtok: "1"\n    output_per_mtok: "2"\n'

# (YAML text, the message expected after "rates.yaml: ").
BAD_FILES = [
    pytest.param(
        'rates:\n  maps.googleapis.com:\n    per: request\n    cost_usd: "abc"\n',
        'rates.maps.googleapis.com.cost_usd: "abc" is not a decimal number; write it as a '
        'quoted decimal such as "0.005"',
        id="not-a-number",
    ),
    pytest.param(
        "rates:\n  maps.googleapis.com:\n    per: request\n    cost_usd: 0.005\n",
        "rates.maps.googleapis.com.cost_usd: 0.005 is written without quotes, so YAML reads "
        'it as a float, which is not exact; write it as a quoted decimal such as "0.005"',
        id="unquoted-float",
    ),
    pytest.param(
        'rates:\n  a.com:\n    per: request\n    cost_usd: "-0.01"\n',
        'rates.a.com.cost_usd: "-0.01" is negative, but a price cannot be; write it as a '
        'quoted decimal such as "0.005"',
        id="negative",
    ),
    pytest.param(
        'rates:\n  a.com:\n    per: request\n    cost_usd: "Infinity"\n',
        'rates.a.com.cost_usd: "Infinity" is not a finite number; write it as a quoted '
        'decimal such as "0.005"',
        id="infinite",
    ),
    pytest.param(
        'rates:\n  a.com:\n    per: request\n    cost_usd: "NaN"\n',
        'rates.a.com.cost_usd: "NaN" is not a finite number; write it as a quoted decimal '
        'such as "0.005"',
        id="nan",
    ),
    pytest.param(
        "rates:\n  a.com:\n    per: request\n    cost_usd: true\n",
        "rates.a.com.cost_usd: true is not a decimal number; write it as a quoted decimal "
        'such as "0.005"',
        id="boolean",
    ),
    pytest.param(
        "rates:\n  a.com:\n    per: request\n    cost_usd:\n",
        'rates.a.com.cost_usd: expected a quoted decimal such as "0.005", not an empty value',
        id="empty-cost",
    ),
    pytest.param(
        'rates:\n  a.com:\n    cost_usd: "1"\n',
        "rates.a.com: per is missing. Add it, such as per: request",
        id="missing-per",
    ),
    pytest.param(
        "rates:\n  a.com:\n    per: request\n",
        'rates.a.com: cost_usd is missing. Add it, such as cost_usd: "0.005"',
        id="missing-cost",
    ),
    pytest.param(
        'rates:\n  a.com:\n    per: request\n    cost: "1"\n',
        "rates.a.com.cost: unknown key 'cost'. Did you mean cost_usd? Allowed keys: per, cost_usd",
        id="unknown-service-key",
    ),
    pytest.param(
        'rates:\n  a.com:\n    per: "1 request"\n    cost_usd: "1"\n',
        "rates.a.com.per: '1 request' is not a unit. Write a lowercase unit name such as "
        "'request', 'page' or 'character', optionally after a power of ten such as "
        "'1k_requests', '100_pages' or '1m_characters'",
        id="invalid-per",
    ),
    pytest.param(
        'rates:\n  a.com:\n    per: 5_requests\n    cost_usd: "1"\n',
        "rates.a.com.per: '5_requests' is not a unit.",
        id="per-not-power-of-ten",
    ),
    pytest.param(
        'rates:\n  "":\n' + SERVICE_ENTRY,
        "rates.: the service name is empty. Write the service name as the key",
        id="empty-service-name",
    ),
    pytest.param(
        'rates:\n  " a.com":\n' + SERVICE_ENTRY,
        "rates. a.com: the service name ' a.com' has spaces around it, so it would never "
        "match a call. Remove them",
        id="service-name-spaces",
    ),
    pytest.param(
        "rates:\n  a.com:\n" + SERVICE_ENTRY + "  a.com:\n" + SERVICE_ENTRY,
        "rates.a.com: appears twice. Keep one entry",
        id="duplicate-service",
    ),
    pytest.param(
        "rates:\n  - a.com\n",
        "rates: the rates section must be a mapping of names to values, not a list",
        id="section-not-mapping",
    ),
    pytest.param(
        "rates:\n  a.com: 0.005\n",
        "rates.a.com: a service rate must be a mapping of names to values, not the value '0.005'",
        id="entry-not-mapping",
    ),
    pytest.param(
        "rate:\n  a.com:\n" + SERVICE_ENTRY,
        "rate: unknown key 'rate'. Did you mean rates? Allowed keys: rates, models",
        id="unknown-section",
    ),
    pytest.param("", "the file is empty. Write a rates: and/or a models: section", id="empty-file"),
    pytest.param("rates: [\n", "invalid YAML: expected the node content", id="invalid-yaml"),
    pytest.param(
        'models:\n  acme:\n    input_per_mtok: "1"\n',
        "models.acme.output_per_mtok: output_per_mtok is missing. Add it as a quoted USD "
        'price per million tokens, such as "0.15"',
        id="missing-output-price",
    ),
    pytest.param(
        'models:\n  acme:\n    input_per_mtok: "0.0000015"\n    output_per_mtok: "2"\n',
        'models.acme.input_per_mtok: "0.0000015" is below $0.001 per million tokens, which '
        "looks like a price per token or per thousand tokens. Write the USD price per "
        'million tokens, such as "0.15" for $0.15 per million',
        id="per-token-price",
    ),
    pytest.param(
        'models:\n  acme:\n    input_per_mtok: "1"\n    output_per_mtok: "1500"\n',
        'models.acme.output_per_mtok: "1500" is above $1000 per million tokens, more than '
        "any LLM list price, which suggests a unit mix-up.",
        id="absurd-high-price",
    ),
    pytest.param(
        'models:\n  acme:\n    input_per_mtok: "1"\n    output_per_mtok: 2.5\n',
        "models.acme.output_per_mtok: 2.5 is written without quotes, so YAML reads it as a float",
        id="unquoted-model-float",
    ),
    pytest.param(
        "models:\n  acme:\n" + MODEL_ENTRY + '    cache_read: "0.1"\n',
        "models.acme.cache_read: unknown key 'cache_read'. Did you mean cache_read_per_mtok?",
        id="unknown-model-key",
    ),
    pytest.param(
        "models:\n  acme:\n    provider: OpenAI\n" + MODEL_ENTRY,
        "models.acme.provider: 'OpenAI' is not a provider name. Write the lowercase "
        "gen_ai.provider.name",
        id="uppercase-provider",
    ),
    pytest.param(
        "models:\n  acme:\n    provider:\n" + MODEL_ENTRY,
        "models.acme.provider: expected text, not an empty value",
        id="empty-provider",
    ),
    pytest.param(
        'models:\n  "":\n' + MODEL_ENTRY,
        "models.: the model name is empty. Write the model name as the key",
        id="empty-model-name",
    ),
    pytest.param(
        "models:\n  acme: []\n",
        "models.acme: the list of provider entries is empty. Add an entry",
        id="empty-provider-list",
    ),
    pytest.param(
        "models:\n  acme:\n    - provider: groq\n"
        + MODEL_ENTRY.replace("    ", "      ")
        + "    - provider: groq\n"
        + MODEL_ENTRY.replace("    ", "      "),
        "models.acme[1]: a second entry for provider 'groq', after models.acme[0]. Keep one "
        "entry per provider",
        id="duplicate-provider",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_rate_file_rejects_invalid_entry(text: str, expected: str) -> None:
    with pytest.raises(RateFileError) as raised:
        parse_rate_file(text, "rates.yaml")
    assert str(raised.value).startswith(f"rates.yaml: {expected}")


def test_rate_file_allows_zero_model_price() -> None:
    text = 'models:\n  llama3.2:\n    provider: ollama\n    input_per_mtok: "0"\n'
    text += '    output_per_mtok: "0"\n'
    assert parse_rate_file(text, "rates.yaml").models[0].input_per_mtok == Decimal(0)


def test_rate_file_round_trip_exact() -> None:
    services = [
        ServiceRate("translate", "1m_characters", Decimal("20")),
        ServiceRate("tts", "character", Decimal("0.0000015")),
        ServiceRate("geo: lookup #1", "1k_requests", Decimal("5.00")),
    ]
    models = [
        ModelRate("acme", None, Decimal("0.001"), Decimal("1000")),
        ModelRate(
            "acme",
            "aws.bedrock",
            Decimal("0.25"),
            Decimal("1.25"),
            cache_read_per_mtok=Decimal("0.025"),
            cache_write_per_mtok=Decimal("0.3125"),
        ),
        ModelRate("claude-3-5-sonnet@20240620", "gcp.vertex_ai", Decimal("3"), Decimal("15")),
    ]
    parsed = parse_rate_file(render_rate_file(services, models), "export.yaml")
    assert sorted(parsed.services, key=lambda rate: rate.service) == sorted(
        services, key=lambda rate: rate.service
    )
    assert sorted(parsed.models, key=lambda rate: rate.key[0] + (rate.provider or "")) == sorted(
        models, key=lambda rate: rate.key[0] + (rate.provider or "")
    )


def test_rate_file_export_keeps_small_digits() -> None:
    text = render_rate_file([ServiceRate("tts", "character", Decimal("1.5E-6"))], [])
    assert "'0.0000015'" in text


# --- per units and service pricing ---


@pytest.mark.parametrize(
    ("per", "units"),
    [
        ("request", 1),
        ("page", 1),
        ("1_request", 1),
        ("100_pages", 100),
        ("1k_requests", 1_000),
        ("10k_requests", 10_000),
        ("1m_characters", 1_000_000),
        ("gb_month", 1),
    ],
)
def test_units_in_per_counts_units(per: str, units: int) -> None:
    assert units_in_per(per) == units


@pytest.mark.parametrize("per", ["", "Request", "3_requests", "1K_requests", "1k", "1k_", "0_x"])
def test_units_in_per_rejects_invalid(per: str) -> None:
    with pytest.raises(ValueError, match="is not a unit"):
        units_in_per(per)


def test_service_usage_single_unit_price() -> None:
    install_services(MAPS)
    # 3 requests at $0.005 each.
    assert price_service_usage("maps.googleapis.com", 3) == (Decimal("0.015"), "user rates")


def test_service_usage_thousand_unit_price() -> None:
    install_services(ServiceRate("sms", "1k_requests", Decimal("5")))
    # $5 per 1,000 requests: 1 request costs 5 / 1000.
    assert price_service_usage("sms", 1) == (Decimal("0.005"), "user rates")


def test_service_usage_million_unit_price() -> None:
    install_services(ServiceRate("translate", "1m_characters", Decimal("20")))
    # $20 per million characters: 1,234 characters cost 1234 * 20 / 1,000,000.
    cost, _ = price_service_usage("translate", 1234) or (None, None)
    assert cost == Decimal("0.02468")


def test_service_usage_decimal_units() -> None:
    install_services(ServiceRate("stt", "minute", Decimal("0.006")))
    # 2.5 minutes at $0.006.
    cost, _ = price_service_usage("stt", Decimal("2.5")) or (None, None)
    assert cost == Decimal("0.015")


def test_service_usage_exact_beyond_28_digits() -> None:
    install_services(ServiceRate("tts", "character", Decimal("0.0000015")))
    units = 1_234_567_890_123_456_789_012_345_678_901
    cost, _ = price_service_usage("tts", units) or (None, None)
    # 0.0000015 is 15E-7, so the exact cost is the integer 15 * units times 1E-7. It has
    # 32 significant digits, which the default Decimal context (28 digits) would round.
    assert cost == Decimal(f"{15 * units}E-7")


def test_service_usage_unknown_service_none() -> None:
    install_services(MAPS)
    assert price_service_usage("ocr-api.com", 1) is None


@pytest.mark.parametrize("units", [-1, Decimal("-0.5"), Decimal("NaN"), Decimal("Infinity")])
def test_service_usage_rejects_invalid_count(units: Decimal) -> None:
    install_services(MAPS)
    with pytest.raises(ValueError, match="pass a finite count of 0 or more"):
        price_service_usage("maps.googleapis.com", units)


@pytest.mark.parametrize("units", [1.5, True, "3"])
def test_service_usage_rejects_non_number(units: Any) -> None:
    install_services(MAPS)
    with pytest.raises(ValueError, match="pass an int or a Decimal"):
        price_service_usage("maps.googleapis.com", units)


def install_services(*rates: ServiceRate) -> None:
    install(rates_from_rows(_rows(list(rates), [])))


def _rows(services: list[ServiceRate], models: list[ModelRate]) -> Any:
    from dexcost.buffer import RateRows

    return RateRows([service_row(rate) for rate in services], [model_row(rate) for rate in models])


# --- storage in the buffer ---


def test_buffer_rates_round_trip(buffer_path: Path) -> None:
    services = [MAPS, ServiceRate("tts", "character", Decimal("0.0000015"))]
    models = [REASONER, MINI_OPENAI]
    store(buffer_path, services, models)
    stored = rates_from_rows(read_rate_rows(buffer_path))
    assert stored.services == services
    assert stored.models == models
    assert stored.skipped == []


def test_buffer_stores_money_as_text(buffer_path: Path) -> None:
    store(buffer_path, [MAPS], [MINI_OPENAI])
    with closing(sqlite3.connect(buffer_path)) as connection:
        service_type = connection.execute("SELECT typeof(cost_usd) FROM service_rates").fetchone()
        model_types = connection.execute(
            "SELECT typeof(input_per_mtok), typeof(cache_read_per_mtok), "
            "typeof(cache_write_per_mtok) FROM model_rates"
        ).fetchone()
    assert service_type == ("text",)
    assert model_types == ("text", "text", "null")


def test_buffer_merge_replaces_same_key(buffer_path: Path) -> None:
    store(buffer_path, [MAPS, OCR], [REASONER, MINI_OPENAI])
    new_maps = ServiceRate("maps.googleapis.com", "1k_requests", Decimal("4"))
    new_reasoner = ModelRate("acme-reasoner", None, Decimal("3"), Decimal("4"))
    reasoner_groq = ModelRate("acme-reasoner", "groq", Decimal("5"), Decimal("6"))
    store(buffer_path, [new_maps], [new_reasoner, reasoner_groq])
    stored = rates_from_rows(read_rate_rows(buffer_path))
    assert stored.services == [new_maps, OCR]
    assert stored.models == [new_reasoner, reasoner_groq, MINI_OPENAI]


def test_buffer_merge_failure_changes_nothing(buffer_path: Path) -> None:
    store(buffer_path, [MAPS], [])
    with Buffer.open(buffer_path) as buffer, pytest.raises(sqlite3.IntegrityError):
        # The second row breaks the CHECK on empty service names.
        buffer.merge_rates([("ocr-api.com", "page", "0.01"), ("", "request", "1")], [])
    assert rates_from_rows(read_rate_rows(buffer_path)).services == [MAPS]


def create_version_1_buffer(path: Path) -> None:
    """Create a buffer as the release before the rate registry wrote it, with one span."""
    with closing(sqlite3.connect(path)) as connection:
        for statement in MIGRATIONS[0]:
            connection.execute(statement)
        connection.execute(
            "INSERT INTO spans (trace_id, span_id, name, kind, status_code, attributes, "
            "resource, created_at) VALUES ('t', 's', 'chat', 3, 0, '{}', '{}', 1)"
        )
        connection.execute("PRAGMA user_version = 1")
        connection.commit()


def test_migration_upgrades_version_1_buffer(buffer_path: Path) -> None:
    create_version_1_buffer(buffer_path)
    store(buffer_path, [MAPS], [REASONER])
    with closing(sqlite3.connect(buffer_path)) as connection:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        spans = connection.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
    # Every later migration runs too, up to the newest schema.
    assert version == SCHEMA_VERSION
    assert spans == 1
    assert rates_from_rows(read_rate_rows(buffer_path)).services == [MAPS]


def test_read_rates_leaves_version_1_unchanged(buffer_path: Path) -> None:
    create_version_1_buffer(buffer_path)
    rows = read_rate_rows(buffer_path)
    with closing(sqlite3.connect(buffer_path)) as connection:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    assert rows == ([], [])
    assert version == 1


# --- loading at init() ---


def init(buffer_path: Path) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])


def llm_rows(stored: Callable[..., list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return stored("llm_call")


def test_init_loads_stored_model_price(
    buffer_path: Path, stored: Callable[..., list[dict[str, Any]]]
) -> None:
    store(buffer_path, [], [REASONER])
    init(buffer_path)
    dexcost.record_llm_call("openai", "acme-reasoner", 1200, 300)
    (row,) = llm_rows(stored)
    # 1,200 input tokens at $1/M plus 300 output tokens at $2/M: 0.0012 + 0.0006.
    assert row["cost_usd"] == "0.0018"
    assert row["attributes"]["dexcost.cost_status"] == PRICED
    assert row["attributes"][PRICING_SOURCE] == "user rates"


def test_stored_price_overrides_price_table(
    buffer_path: Path, stored: Callable[..., list[dict[str, Any]]]
) -> None:
    store(buffer_path, [], [MINI_OPENAI])
    init(buffer_path)
    dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300, cached_tokens=200)
    (row,) = llm_rows(stored)
    # 1,000 uncached input tokens at $0.10/M, 200 cached at $0.05/M and 300 output
    # at $0.40/M: (100 + 10 + 120) / 1,000,000. The price table's $0.15/$0.60 would
    # give 0.000345.
    assert row["cost_usd"] == "0.00023"
    assert row["attributes"][PRICING_SOURCE] == "user rates"


def test_stored_provider_price_stays_with_provider(buffer_path: Path) -> None:
    store(buffer_path, [], [ModelRate("acme-chat", "groq", Decimal("3"), Decimal("3"))])
    init(buffer_path)
    usage = TokenUsage(input_tokens=1_000_000)
    assert price_llm("groq", "acme-chat", usage).cost_usd == Decimal("3")
    assert price_llm("openai", "acme-chat", usage).status == UNPRICED


def test_code_price_registered_before_init_wins(buffer_path: Path) -> None:
    store(buffer_path, [], [REASONER])
    dexcost.register_model_price("acme-reasoner", input_per_mtok="7", output_per_mtok="7")
    init(buffer_path)
    price = price_llm("openai", "acme-reasoner", TokenUsage(input_tokens=1_000_000))
    assert price.cost_usd == Decimal("7")
    assert price.source == "user"


def test_code_price_registered_after_init_wins(buffer_path: Path) -> None:
    store(buffer_path, [], [REASONER])
    init(buffer_path)
    dexcost.register_model_price("acme-reasoner", input_per_mtok="7", output_per_mtok="7")
    price = price_llm("openai", "acme-reasoner", TokenUsage(input_tokens=1_000_000))
    assert price.cost_usd == Decimal("7")


def test_code_any_provider_beats_stored_provider(buffer_path: Path) -> None:
    store(buffer_path, [], [ModelRate("acme-chat", "groq", Decimal("3"), Decimal("3"))])
    dexcost.register_model_price("acme-chat", input_per_mtok="7", output_per_mtok="7")
    init(buffer_path)
    price = price_llm("groq", "acme-chat", TokenUsage(input_tokens=1_000_000))
    assert price.cost_usd == Decimal("7")


def test_stored_any_provider_fills_code_gap(buffer_path: Path) -> None:
    store(buffer_path, [], [ModelRate("acme-chat", None, Decimal("3"), Decimal("3"))])
    dexcost.register_model_price(
        "acme-chat", provider="groq", input_per_mtok="7", output_per_mtok="7"
    )
    init(buffer_path)
    usage = TokenUsage(input_tokens=1_000_000)
    assert price_llm("groq", "acme-chat", usage).cost_usd == Decimal("7")
    assert price_llm("openai", "acme-chat", usage).cost_usd == Decimal("3")


def test_clear_model_prices_keeps_stored(buffer_path: Path) -> None:
    store(buffer_path, [], [REASONER])
    init(buffer_path)
    dexcost.register_model_price("acme-reasoner", input_per_mtok="7", output_per_mtok="7")
    clear_model_prices()
    price = price_llm("openai", "acme-reasoner", TokenUsage(input_tokens=1_000_000))
    assert price.cost_usd == Decimal("1")


def test_shutdown_unloads_stored_rates(buffer_path: Path) -> None:
    store(buffer_path, [MAPS], [REASONER])
    init(buffer_path)
    dexcost.shutdown()
    price = price_llm("openai", "acme-reasoner", TokenUsage(input_tokens=1_000_000))
    assert price.status == UNPRICED
    assert price_service_usage("maps.googleapis.com", 1) is None


def test_reinit_replaces_stored_rates(buffer_path: Path, tmp_path: Path) -> None:
    store(buffer_path, [MAPS], [REASONER])
    init(buffer_path)
    init(tmp_path / "other.db")
    price = price_llm("openai", "acme-reasoner", TokenUsage(input_tokens=1_000_000))
    assert price.status == UNPRICED
    assert price_service_usage("maps.googleapis.com", 1) is None


def test_init_loads_service_rates(buffer_path: Path) -> None:
    store(buffer_path, [OCR], [])
    init(buffer_path)
    # 12 pages at $0.01.
    assert price_service_usage("ocr-api.com", 12) == (Decimal("0.12"), "user rates")


def test_init_skips_corrupt_row_with_warning(
    buffer_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store(buffer_path, [MAPS], [REASONER])
    with closing(sqlite3.connect(buffer_path)) as connection:
        connection.execute(
            "INSERT INTO service_rates (service, per, cost_usd, updated_at) "
            "VALUES ('ocr-api.com', 'page', 'abc', 0)"
        )
        connection.execute(
            "INSERT INTO model_rates (model, provider, input_per_mtok, output_per_mtok, "
            "updated_at) VALUES ('acme-real', '', X'31', '1', 0)"
        )
        connection.commit()
    with caplog.at_level(logging.WARNING, logger="dexcost"):
        init(buffer_path)
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 2 invalid stored rate(s)" in warnings[0].getMessage()
    assert "service 'ocr-api.com': cost_usd" in warnings[0].getMessage()
    assert (
        "model 'acme-real': input_per_mtok contains b'1' (bytes), which is not text"
        in warnings[0].getMessage()
    )
    assert price_service_usage("maps.googleapis.com", 1) == (Decimal("0.005"), "user rates")
    assert price_service_usage("ocr-api.com", 1) is None


def test_init_survives_unreadable_rate_table(
    buffer_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store(buffer_path, [MAPS], [])
    with closing(sqlite3.connect(buffer_path)) as connection:
        connection.execute("DROP TABLE model_rates")
        connection.commit()
    with caplog.at_level(logging.WARNING, logger="dexcost"):
        init(buffer_path)
    assert "cannot read the stored rates" in caplog.text
    assert price_service_usage("maps.googleapis.com", 1) is None


def test_openai_call_priced_with_stored_rate(
    buffer_path: Path, stored: Callable[..., list[dict[str, Any]]]
) -> None:
    openai = pytest.importorskip("openai")
    httpx2 = pytest.importorskip("httpx2")
    from dexcost.demo.fake_openai import FakeOpenAI, FakeUsage

    store(buffer_path, [], [REASONER])
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["openai"])
    fake = FakeOpenAI(usage=FakeUsage(prompt_tokens=1200, completion_tokens=300))
    with openai.OpenAI(
        api_key="sk-test",
        base_url="http://fake.test/v1",
        http_client=httpx2.Client(transport=fake.httpx2_transport()),
        max_retries=0,
    ) as client:
        client.chat.completions.create(
            model="acme-reasoner", messages=[{"role": "user", "content": "hi"}]
        )
    (row,) = llm_rows(stored)
    # 1,200 input tokens at $1/M plus 300 output tokens at $2/M.
    assert row["cost_usd"] == "0.0018"
    assert row["attributes"][PRICING_SOURCE] == "user rates"


@pytest.mark.parametrize("cost", ["1e999999", "1000000000000", "1000000.01"])
def test_service_cost_above_cap_rejected(cost: str) -> None:
    with pytest.raises(RateValueError, match=r"is above \$1,000,000 per unit"):
        service_rate("maps.googleapis.com", "request", cost)
