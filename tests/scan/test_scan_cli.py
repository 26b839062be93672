"""``dexcost scan`` on the command line: text, JSON, stubs and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dexcost.cli import main
from dexcost.scan import load_catalog
from dexcost.scan.catalog import CatalogError

from .conftest import FIXTURES

CATALOG = str(FIXTURES / "services.json")


def _scan(*args: str) -> Result:
    return CliRunner().invoke(main, ["scan", *args])


def test_scan_text_groups_findings_by_file(project: Path) -> None:
    output = _scan(str(project), "--catalog", CATALOG).output
    files = [line for line in output.splitlines() if line.startswith("app/")]

    assert files == ["app/llm.py", "app/payments.py", "app/side_effects.py", "app/tools.py"]


def test_scan_text_ends_with_summary(project: Path) -> None:
    output = _scan(str(project), "--catalog", CATALOG).output

    assert output.splitlines()[-1] == (
        "Scanned 6 files: 17 auto-instrumented, 6 auto-priced, 2 recorded by hand, "
        "8 need manual recording; 1 skipped (see above)."
    )


def test_scan_text_names_skipped_file(project: Path) -> None:
    output = _scan(str(project), "--catalog", CATALOG).output

    assert "skipped app/broken.py:1: syntax error: invalid syntax" in output


def test_scan_json_matches_documented_keys(project: Path) -> None:
    document = json.loads(_scan(str(project), "--catalog", CATALOG, "--json").output)

    assert sorted(document) == [
        "catalog",
        "files_scanned",
        "findings",
        "root",
        "schema_version",
        "skipped",
        "summary",
    ]


def test_scan_json_finding_has_stub_when_untracked(project: Path) -> None:
    document = json.loads(_scan(str(project), "--catalog", CATALOG, "--json").output)
    (maps,) = [f for f in document["findings"] if f["library"] == "googlemaps"]

    assert maps["stub"] == (
        "# app/payments.py:45 maps.geocode\n"
        'dexcost.record_usage("googlemaps", 1)  # no catalog price: store a rate with dexcost '
        'rates --import, or call dexcost.record_cost("googlemaps", cost_usd) with the price in USD'
    )


def test_scan_stubs_fill_catalog_price(project: Path) -> None:
    output = _scan(str(project), "--catalog", CATALOG, "--generate-stubs").output

    assert (
        'dexcost.record_usage("aws-textract", 1)  # catalog price 1.5 USD per 1,000 page; '
        "set units to what this call used" in output
    )


def test_scan_stubs_cover_each_untracked_point(project: Path) -> None:
    output = _scan(str(project), "--catalog", CATALOG, "--generate-stubs").output

    assert output.count("dexcost.record_usage(") == 8


def test_scan_fail_on_untracked_exits_one(project: Path) -> None:
    assert _scan(str(project), "--catalog", CATALOG, "--fail-on-untracked").exit_code == 1


def test_scan_fail_on_untracked_passes_clean_tree(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("import openai\nopenai.OpenAI().embeddings.create(input='a')\n")

    assert _scan(str(tmp_path), "--fail-on-untracked").exit_code == 0


def test_scan_missing_path_exits_two(tmp_path: Path) -> None:
    result = _scan(str(tmp_path / "absent"))

    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_scan_bad_catalog_names_file(tmp_path: Path) -> None:
    bad = tmp_path / "services.json"
    bad.write_text("{not json")

    result = _scan(str(tmp_path), "--catalog", str(bad))

    assert result.exit_code == 1
    assert f"service catalog {bad} is not valid JSON" in result.output


def test_scan_without_catalog_says_http_unchecked(project: Path, tmp_path: Path) -> None:
    from dexcost.scan import catalog as catalog_module

    original = catalog_module.DEFAULT_CATALOG_PATH
    catalog_module.DEFAULT_CATALOG_PATH = tmp_path / "no-such-catalog.json"
    try:
        output = _scan(str(project)).output
    finally:
        catalog_module.DEFAULT_CATALOG_PATH = original

    assert "No service catalog was found" in output


def test_catalog_wildcard_host_needs_subdomain() -> None:
    catalog = load_catalog(FIXTURES / "services.json")

    assert catalog.match("api.exa.ai", "/search") == catalog.find(("exa",))
    assert catalog.match("exa.ai", "/search") is None


def test_catalog_path_glob_limits_match() -> None:
    catalog = load_catalog(FIXTURES / "services.json")

    assert catalog.match_url("https://serpapi.com/account") is None


def test_catalog_bad_price_names_value(tmp_path: Path) -> None:
    path = tmp_path / "services.json"
    path.write_text('[{"id": "x", "hosts": ["x.io"], "price_usd": "cheap"}]')

    with pytest.raises(CatalogError, match="price_usd='cheap'"):
        load_catalog(path)
