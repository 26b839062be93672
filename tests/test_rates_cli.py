"""Tests for ``dexcost rates``: import, list and export through the click command."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import dexcost
from dexcost.buffer import read_rate_rows
from dexcost.buffer_schema import MIGRATIONS
from dexcost.cli import main
from dexcost.pricing import clear_model_prices
from dexcost.rates import ModelRate, ServiceRate
from dexcost.rates.rate_file import parse_rate_file
from dexcost.rates.registry import StoredRates, rates_from_rows, uninstall
from dexcost.semconv import PRICING_SOURCE

RATES_YAML = """\
rates:
  maps.googleapis.com:
    per: request
    cost_usd: "0.005"
  tts:
    per: character
    cost_usd: "0.0000015"
models:
  acme-reasoner:
    input_per_mtok: "1.00"
    output_per_mtok: "2.00"
  gpt-4o-mini:
    provider: openai
    input_per_mtok: "0.10"
    output_per_mtok: "0.40"
    cache_read_per_mtok: "0.05"
"""

MAPS = ServiceRate("maps.googleapis.com", "request", Decimal("0.005"))
TTS = ServiceRate("tts", "character", Decimal("0.0000015"))
REASONER = ModelRate("acme-reasoner", None, Decimal("1"), Decimal("2"))
MINI_OPENAI = ModelRate(
    "gpt-4o-mini", "openai", Decimal("0.1"), Decimal("0.4"), cache_read_per_mtok=Decimal("0.05")
)


@pytest.fixture(autouse=True)
def _no_user_prices() -> Iterator[None]:
    yield
    clear_model_prices()
    uninstall()


@pytest.fixture
def rates_file(tmp_path: Path) -> Path:
    path = tmp_path / "rates.yaml"
    path.write_text(RATES_YAML, encoding="utf-8")
    return path


def run(*args: str, input_text: str | None = None) -> Result:
    return CliRunner().invoke(main, ["rates", *args], input=input_text)


def stored_rates(path: Path) -> StoredRates:
    return rates_from_rows(read_rate_rows(path))


def test_import_stores_every_entry(buffer_path: Path, rates_file: Path) -> None:
    result = run("--import", str(rates_file), "--db", str(buffer_path))
    assert result.exit_code == 0, result.output
    assert "imported 2 service rate(s) and 2 model price(s)" in result.output
    assert stored_rates(buffer_path).services == [MAPS, TTS]
    assert stored_rates(buffer_path).models == [REASONER, MINI_OPENAI]


def test_import_creates_missing_folder(tmp_path: Path, rates_file: Path) -> None:
    path = tmp_path / "new" / "folder" / "buffer.db"
    result = run("--import", str(rates_file), "--db", str(path))
    assert result.exit_code == 0, result.output
    assert stored_rates(path).services == [MAPS, TTS]


def test_import_merges_over_stored(buffer_path: Path, rates_file: Path, tmp_path: Path) -> None:
    run("--import", str(rates_file), "--db", str(buffer_path))
    update = tmp_path / "update.yaml"
    update.write_text(
        'rates:\n  tts:\n    per: 1k_characters\n    cost_usd: "0.015"\n'
        'models:\n  acme-reasoner:\n    provider: groq\n    input_per_mtok: "3"\n'
        '    output_per_mtok: "4"\n',
        encoding="utf-8",
    )
    result = run("--import", str(update), "--db", str(buffer_path))
    assert result.exit_code == 0, result.output
    stored = stored_rates(buffer_path)
    assert stored.services == [MAPS, ServiceRate("tts", "1k_characters", Decimal("0.015"))]
    assert stored.models == [
        REASONER,
        ModelRate("acme-reasoner", "groq", Decimal("3"), Decimal("4")),
        MINI_OPENAI,
    ]


def test_import_invalid_entry_imports_nothing(
    buffer_path: Path, rates_file: Path, tmp_path: Path
) -> None:
    run("--import", str(rates_file), "--db", str(buffer_path))
    bad = tmp_path / "bad.yaml"
    # The first entry is valid and would replace a stored one, but the second is not.
    bad.write_text(
        'rates:\n  maps.googleapis.com:\n    per: request\n    cost_usd: "9"\n'
        '  ocr-api.com:\n    per: page\n    cost_usd: "abc"\n',
        encoding="utf-8",
    )
    result = run("--import", str(bad), "--db", str(buffer_path))
    assert result.exit_code == 1
    assert (
        f'{bad}: rates.ocr-api.com.cost_usd: "abc" is not a decimal number; write it as a '
        'quoted decimal such as "0.005". Nothing was imported'
    ) in result.output
    assert stored_rates(buffer_path).services == [MAPS, TTS]


def test_import_unquoted_float_exits_1(buffer_path: Path, tmp_path: Path) -> None:
    bad = tmp_path / "float.yaml"
    bad.write_text("rates:\n  a.com:\n    per: request\n    cost_usd: 0.005\n", encoding="utf-8")
    result = run("--import", str(bad), "--db", str(buffer_path))
    assert result.exit_code == 1
    assert "YAML reads it as a float, which is not exact" in result.output
    assert not buffer_path.exists()


def test_import_missing_file_exits_1(buffer_path: Path, tmp_path: Path) -> None:
    result = run("--import", str(tmp_path / "absent.yaml"), "--db", str(buffer_path))
    assert result.exit_code == 1
    assert "cannot read rate file" in result.output


def test_import_reads_standard_input(buffer_path: Path) -> None:
    result = run("--import", "-", "--db", str(buffer_path), input_text=RATES_YAML)
    assert result.exit_code == 0, result.output
    assert "from <stdin>" in result.output
    assert stored_rates(buffer_path).services == [MAPS, TTS]


def test_import_upgrades_version_1_buffer(buffer_path: Path, rates_file: Path) -> None:
    with closing(sqlite3.connect(buffer_path)) as connection:
        for statement in MIGRATIONS[0]:
            connection.execute(statement)
        connection.execute("PRAGMA user_version = 1")
        connection.commit()
    result = run("--import", str(rates_file), "--db", str(buffer_path))
    assert result.exit_code == 0, result.output
    assert stored_rates(buffer_path).models == [REASONER, MINI_OPENAI]


def test_import_uses_buffer_path_env(
    buffer_path: Path, rates_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEXCOST_BUFFER_PATH", str(buffer_path))
    result = run("--import", str(rates_file))
    assert result.exit_code == 0, result.output
    assert stored_rates(buffer_path).services == [MAPS, TTS]


def test_import_defaults_to_home_buffer(rates_file: Path, tmp_path: Path) -> None:
    # The shared conftest points HOME at tmp_path / "home".
    result = run("--import", str(rates_file))
    assert result.exit_code == 0, result.output
    assert stored_rates(tmp_path / "home" / ".dexcost" / "buffer.db").services == [MAPS, TTS]


def test_list_prints_table(buffer_path: Path, rates_file: Path) -> None:
    run("--import", str(rates_file), "--db", str(buffer_path))
    result = run("--list", "--db", str(buffer_path))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"buffer: {buffer_path}"
    assert lines[1] == "service rates (2), USD:"
    assert lines[2].split() == ["service", "per", "cost_usd"]
    assert lines[3].split() == ["maps.googleapis.com", "request", "0.005"]
    assert lines[4].split() == ["tts", "character", "0.0000015"]
    assert lines[5] == "model prices (2), USD per million tokens:"
    assert lines[7].split() == ["acme-reasoner", "any", "1", "2", "-", "-"]
    assert lines[8].split() == ["gpt-4o-mini", "openai", "0.1", "0.4", "0.05", "-"]


def test_list_json_output(buffer_path: Path, rates_file: Path) -> None:
    run("--import", str(rates_file), "--db", str(buffer_path))
    result = run("--list", "--json", "--db", str(buffer_path))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["db_path"] == str(buffer_path)
    assert report["rates"][1] == {"service": "tts", "per": "character", "cost_usd": "0.0000015"}
    assert report["models"][1] == {
        "model": "gpt-4o-mini",
        "provider": "openai",
        "input_per_mtok": "0.1",
        "output_per_mtok": "0.4",
        "cache_read_per_mtok": "0.05",
    }
    assert report["models"][0]["provider"] is None
    assert report["skipped"] == []


def test_list_empty_buffer_prints_hint(buffer_path: Path, rates_file: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("rates: {}\n", encoding="utf-8")
    run("--import", str(empty), "--db", str(buffer_path))
    result = run("--list", "--db", str(buffer_path))
    assert result.exit_code == 0, result.output
    assert "No rates stored. Add some with: dexcost rates --import FILE" in result.output


def test_list_missing_buffer_exits_1(tmp_path: Path) -> None:
    result = run("--list", "--db", str(tmp_path / "absent.db"))
    assert result.exit_code == 1
    assert "no dexcost buffer at" in result.output


def test_list_version_1_buffer_stays_version_1(buffer_path: Path) -> None:
    with closing(sqlite3.connect(buffer_path)) as connection:
        for statement in MIGRATIONS[0]:
            connection.execute(statement)
        connection.execute("PRAGMA user_version = 1")
        connection.commit()
    result = run("--list", "--json", "--db", str(buffer_path))
    with closing(sqlite3.connect(buffer_path)) as connection:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rates"] == []
    assert version == 1


def test_list_foreign_database_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER)")
        connection.commit()
    result = run("--list", "--db", str(path))
    assert result.exit_code == 1
    assert "is not a dexcost buffer" in result.output


def test_list_warns_about_corrupt_row(buffer_path: Path, rates_file: Path) -> None:
    run("--import", str(rates_file), "--db", str(buffer_path))
    with closing(sqlite3.connect(buffer_path)) as connection:
        connection.execute("UPDATE service_rates SET per = 'Per Request' WHERE service = 'tts'")
        connection.commit()
    result = run("--list", "--json", "--db", str(buffer_path))
    assert result.exit_code == 0, result.output
    assert "warning: skipped invalid stored rate service 'tts': per" in result.stderr
    assert [rate["service"] for rate in json.loads(result.stdout)["rates"]] == [
        "maps.googleapis.com"
    ]


def test_export_round_trips_exactly(buffer_path: Path, rates_file: Path, tmp_path: Path) -> None:
    run("--import", str(rates_file), "--db", str(buffer_path))
    exported = tmp_path / "exported.yaml"
    result = run("--export", str(exported), "--db", str(buffer_path))
    assert result.exit_code == 0, result.output
    parsed = parse_rate_file(exported.read_text(encoding="utf-8"), str(exported))
    assert parsed.services == [MAPS, TTS]
    assert parsed.models == [REASONER, MINI_OPENAI]
    assert parsed.services[1].cost_usd == Decimal("0.0000015")


def test_export_import_restores_buffer(buffer_path: Path, rates_file: Path, tmp_path: Path) -> None:
    run("--import", str(rates_file), "--db", str(buffer_path))
    exported = tmp_path / "exported.yaml"
    run("--export", str(exported), "--db", str(buffer_path))
    copy = tmp_path / "copy.db"
    result = run("--import", str(exported), "--db", str(copy))
    assert result.exit_code == 0, result.output
    assert stored_rates(copy) == stored_rates(buffer_path)


def test_export_to_standard_output(buffer_path: Path, rates_file: Path) -> None:
    run("--import", str(rates_file), "--db", str(buffer_path))
    result = run("--export", "-", "--db", str(buffer_path))
    assert result.exit_code == 0, result.output
    assert parse_rate_file(result.output, "<stdout>").services == [MAPS, TTS]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--list", "--export", "out.yaml"],
        ["--import", "a.yaml", "--export", "b.yaml"],
        ["--export", "out.yaml", "--json"],
    ],
)
def test_rates_usage_error_exits_2(args: list[str], buffer_path: Path) -> None:
    result = run(*args, "--db", str(buffer_path))
    assert result.exit_code == 2


def test_existing_commands_still_listed() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert {"prices", "rates", "status"} <= set(result.output.split())


def test_console_script_persists_rates(buffer_path: Path, rates_file: Path) -> None:
    script = Path(sys.executable).parent / "dexcost"
    if not script.exists():
        found = shutil.which("dexcost")
        if found is None:
            pytest.skip("the dexcost console script is not installed")
        script = Path(found)
    environment = {**os.environ, "DEXCOST_BUFFER_PATH": str(buffer_path)}
    imported = subprocess.run(
        [str(script), "rates", "--import", str(rates_file)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    listed = subprocess.run(
        [str(script), "rates", "--list", "--json"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["rates"][0]["cost_usd"] == "0.005"
    assert stored_rates(buffer_path).models == [REASONER, MINI_OPENAI]


def test_imported_rates_price_app_calls(
    buffer_path: Path,
    rates_file: Path,
    stored: Callable[..., list[dict[str, Any]]],
) -> None:
    result = run("--import", str(rates_file), "--db", str(buffer_path))
    assert result.exit_code == 0, result.output
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])
    dexcost.record_llm_call("openai", "acme-reasoner", 1200, 300)
    (row,) = stored("llm_call")
    # 1,200 input tokens at $1/M plus 300 output tokens at $2/M: 0.0012 + 0.0006.
    assert row["cost_usd"] == "0.0018"
    assert row["attributes"][PRICING_SOURCE] == "user rates"
