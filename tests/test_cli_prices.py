"""``dexcost prices`` shows the rates dexcost applies to a model and their source."""

from __future__ import annotations

import json

from click.testing import CliRunner

from dexcost.cli import main
from dexcost.pricing import pricing_version, register_model_price
from dexcost.pricing.user_prices import clear_model_prices


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["prices", *args])
    return result.exit_code, result.output


def _rates(output: str, context: str) -> dict[str, dict[str, object]]:
    document = json.loads(output)
    (found,) = [c for c in document["contexts"] if c["name"] == context]
    return {rate["unit"]: rate for rate in found["rates"]}


def test_prices_text_shows_tiers_and_batch() -> None:
    code, output = _run("claude-sonnet-4-5", "--provider", "anthropic")

    assert code == 0
    assert f"matched claude-sonnet-4-5 in {pricing_version()}" in output
    assert "input_mtok                   3 per 1M, above 200,000 input tokens 6" in output
    assert "cache_read_mtok              0.3 per 1M" in output
    assert "batch:" in output
    assert "output_mtok                  7.5 per 1M" in output


def test_prices_json_dated_snapshot() -> None:
    # gpt-4o-2024-05-13 keeps its own, older price: $5 input and $15 output per million.
    code, output = _run("gpt-4o-2024-05-13", "--provider", "openai", "--json")

    assert code == 0
    rates = _rates(output, "standard")
    assert rates["input_mtok"]["usd"] == "5"
    assert rates["output_mtok"]["usd"] == "15"
    assert rates["input_mtok"]["per"] == 1_000_000
    assert json.loads(output)["matched_model"] == "gpt-4o-2024-05-13"


def test_prices_json_long_context_tier() -> None:
    # gemini-2.5-pro: $1.25 input per million, $2.50 once the prompt exceeds 200k tokens.
    code, output = _run("gemini-2.5-pro", "--provider", "gcp.gemini", "--json")

    assert code == 0
    tiers = _rates(output, "standard")["input_mtok"]["tiers"]
    assert _rates(output, "standard")["input_mtok"]["usd"] == "1.25"
    assert tiers == [{"above_input_tokens": 200_000, "usd": "2.5"}]


def test_prices_unknown_model_exits_one() -> None:
    code, output = _run("gpt-9-imaginary", "--provider", "openai")

    assert code == 1
    assert "not priced by" in output
    assert "register_model_price" in output


def test_prices_json_unknown_model() -> None:
    code, output = _run("gpt-9-imaginary", "--provider", "openai", "--json")

    assert code == 1
    document = json.loads(output)
    assert document["priced"] is False
    assert document["contexts"] == []


def test_prices_registered_price_wins() -> None:
    register_model_price("gpt-4o-mini", provider="openai", input_per_mtok="1", output_per_mtok="2")
    try:
        code, output = _run("gpt-4o-mini", "--provider", "openai", "--json")
    finally:
        clear_model_prices()

    assert code == 0
    assert json.loads(output)["source"] == "user"
    assert _rates(output, "standard")["input_mtok"]["usd"] == "1"
    assert _rates(output, "standard")["output_mtok"]["usd"] == "2"


def test_prices_empty_model_is_usage_error() -> None:
    code, output = _run("  ")

    assert code == 2
    assert "give a model name such as gpt-4o-mini" in output
