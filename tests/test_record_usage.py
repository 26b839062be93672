"""record_usage() prices units of a paid service from the stored rates."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import dexcost
from dexcost.cli import main

RATES = """\
rates:
  maps.googleapis.com:
    per: request
    cost_usd: "0.005"
  ocr-api.com:
    per: 1k_pages
    cost_usd: "1.50"
"""


@pytest.fixture
def rated_buffer(tmp_path: Path, buffer_path: Path) -> Path:
    rates_file = tmp_path / "rates.yaml"
    rates_file.write_text(RATES)
    result = CliRunner().invoke(
        main, ["rates", "--import", str(rates_file), "--db", str(buffer_path)]
    )
    assert result.exit_code == 0, result.output
    return buffer_path


@pytest.fixture
def dx_rated(rated_buffer: Path):
    config = dexcost.init(storage="local", buffer_path=str(rated_buffer), auto_instrument=[])
    yield config
    dexcost.shutdown()


def _external(stored: Any) -> list[dict[str, Any]]:
    return stored("external_cost")


def test_record_usage_priced_from_rate(dx_rated, stored) -> None:
    with dexcost.task("route_planning") as t:
        t.record_usage("maps.googleapis.com", 3)

    (event,) = _external(stored)
    # 3 requests at $0.005 each.
    assert Decimal(event["cost_usd"]) == Decimal("0.015")
    assert event["cost_status"] == "priced"
    assert event["attributes"]["dexcost.pricing.source"] == "user rates"
    assert event["attributes"]["dexcost.units"] == 3
    assert event["attributes"]["dexcost.service"] == "maps.googleapis.com"
    assert t.totals()["external_cost_usd"] == Decimal("0.015")


def test_record_usage_per_thousand(dx_rated, stored) -> None:
    dexcost.record_usage("ocr-api.com", 7)

    (event,) = _external(stored)
    # $1.50 per 1,000 pages: 7 pages cost 0.0105.
    assert Decimal(event["cost_usd"]) == Decimal("0.0105")


def test_record_usage_fractional_units(dx_rated, stored) -> None:
    dexcost.record_usage("maps.googleapis.com", 2.5)

    (event,) = _external(stored)
    assert Decimal(event["cost_usd"]) == Decimal("0.0125")
    assert event["attributes"]["dexcost.units"] == 2.5


def test_record_usage_unknown_service_unpriced(dx_rated, stored) -> None:
    with dexcost.task("scrape") as t:
        t.record_usage("unknown-api.example.com", 4)

    (event,) = _external(stored)
    assert event["cost_status"] == "unpriced"
    assert event["cost_usd"] is None
    assert event["attributes"]["dexcost.units"] == 4
    assert t.totals()["unpriced_count"] == 1
    assert t.cost_usd == 0


@pytest.mark.parametrize(
    ("units", "error"),
    [
        (-1, ValueError),
        ("many", ValueError),
        (float("inf"), ValueError),
        (None, TypeError),
        (True, TypeError),
    ],
)
def test_record_usage_rejects_bad_units(dx_rated, units: Any, error: type) -> None:
    with pytest.raises(error):
        dexcost.record_usage("maps.googleapis.com", units)


def test_record_usage_rejects_empty_service(dx_rated) -> None:
    with pytest.raises(TypeError, match="service must be a non-empty string"):
        dexcost.record_usage("", 1)
