"""Data-quality checks for the bundled catalog of paid API services.

These tests read services.json with the standard library only, so they hold the
data to its format whether or not the catalog code that loads it exists yet.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
import subprocess
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
CATALOG_PATH = ROOT / "src" / "dexcost" / "catalog" / "data" / "services.json"
REFERENCE_SCRIPT = ROOT / "scripts" / "catalog_reference.py"

# The day the prices were read. A later check date would be a typo.
TODAY = dt.date(2026, 12, 5)
TARGET_COUNT = 163

CATEGORIES = {
    "search",
    "scraping",
    "maps",
    "ocr",
    "email",
    "sms_voice",
    "enrichment",
    "vector_db",
    "speech",
    "image_video",
    "finance",
    "cloud",
    "translation",
    "payments",
    "other",
}
PRICING_MODELS = {
    "per_request",
    "per_page",
    "per_unit",
    "per_credit",
    "per_character",
    "per_minute",
    "per_second",
    "per_image",
    "per_token",
    "per_record",
    "per_email",
    "per_message",
    "per_query",
}
REQUIRED_KEYS = {
    "id",
    "name",
    "category",
    "hosts",
    "pricing_model",
    "unit",
    "units_from",
    "price_usd",
    "per",
    "bills_failed_requests",
    "source_url",
    "checked",
}
OPTIONAL_KEYS = {"paths", "methods", "price_note"}
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
# A host is lowercase labels joined by dots, optionally behind one leading "*." wildcard.
HOST_PATTERN = re.compile(
    r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$"
)
DECIMAL_PATTERN = re.compile(r"^\d+(\.\d+)?$")
HEADER_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
FIELD_PATTERN = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

# Bounds for the price of one unit in USD. A price outside them is probably a typo.
MIN_UNIT_PRICE = Decimal("0.000001")
MAX_UNIT_PRICE = Decimal("50")
# Entries whose price of one unit lies outside the bounds on purpose, with the reason.
PRICE_EXCEPTIONS: dict[str, str] = {
    # Object storage and edge platforms bill reads and requests by the million.
    "backblaze_b2.class_b": "$0.004 per 10,000 transactions is $0.0000004 each",
    "cloudflare_kv.bulk_read": "$0.50 per million reads is $0.0000005 each",
    "cloudflare_kv.read": "$0.50 per million reads is $0.0000005 each",
    "cloudflare_r2.class_b": "$0.36 per million operations is $0.00000036 each",
    "cloudflare_workers.requests": "$0.30 per million requests is $0.0000003 each",
    "cloudflare_r2.public_dev_read": "$0.36 per million reads is $0.00000036 each",
    "cloudflare_queues.ack": "$0.40 per million operations is $0.0000004 each",
    "cloudflare_queues.push": "$0.40 per million operations is $0.0000004 each",
    "cloudflare_queues.push_batch": "$0.40 per million operations is $0.0000004 each",
    "google_cloud_tasks.create_task": "$0.40 per million operations is $0.0000004 each",
    "telnyx_edge_compute.requests": "$0.21 per million requests is $0.00000021 each",
    "telnyx_kv.read": "$0.35 per million reads is $0.00000035 each",
    "alibaba_function_compute.invocations": "$0.0015 per 10,000 calls is $0.00000015 each",
    "aws_lambda.function_url": "$0.20 per million requests is $0.0000002 each",
    "aws_lambda.invoke": "$0.20 per million requests is $0.0000002 each",
    "google_cloud_functions.invocations": "$0.40 per million calls is $0.0000004 each",
    # Blockchain APIs bill compute units or credits, many of them per call.
    "alchemy.nft_api_160cu": "$0.45 per million compute units; a call uses a fixed 40 to 1,000",
    "alchemy.nft_api_240cu": "$0.45 per million compute units; a call uses a fixed 40 to 1,000",
    "alchemy.nft_api_320cu": "$0.45 per million compute units; a call uses a fixed 40 to 1,000",
    "alchemy.nft_api_360cu": "$0.45 per million compute units; a call uses a fixed 40 to 1,000",
    "alchemy.nft_api_40cu": "$0.45 per million compute units; a call uses a fixed 40 to 1,000",
    "alchemy.nft_api_480cu": "$0.45 per million compute units; a call uses a fixed 40 to 1,000",
    "alchemy.nft_api_80cu": "$0.45 per million compute units; a call uses a fixed 40 to 1,000",
    "alchemy.portfolio_nft_contracts": "$0.45 per million compute units; a call uses a fixed 40 to 1,000",
    "alchemy.portfolio_nfts_and_history": "$0.45 per million compute units; a call uses a fixed 40 to 1,000",
    "alchemy.portfolio_token_balances": "$0.45 per million compute units; a call uses a fixed 40 to 1,000",
    "alchemy.portfolio_tokens": "$0.45 per million compute units; a call uses a fixed 40 to 1,000",
    "alchemy.prices_api": "$0.45 per million compute units; a call uses a fixed 40 to 1,000",
    "ankr.advanced_api": "$0.10 per million API credits; a call uses a fixed 200 to 700",
    "ankr.beacon_rpc": "$0.10 per million API credits; a call uses a fixed 200 to 700",
    "ankr.rpc_standard": "$0.10 per million API credits; a call uses a fixed 200 to 700",
    "ankr.solana_rpc": "$0.10 per million API credits; a call uses a fixed 200 to 700",
    # Billed by the millisecond of browser time the response header reports.
    "cloudflare_browser_rendering.rest": "$0.09 per browser hour is $0.000000025 per ms",
}

# LLM APIs are priced from their tokens, so the catalog must never claim their hosts.
LLM_HOST_DENY = (
    "api.openai.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "*.openai.azure.com",
    "bedrock-runtime.*",
    "api.cohere.com",
    "api.cohere.ai",
    "api.mistral.ai",
    "api.groq.com",
    "openrouter.ai",
    "api.together.xyz",
    "api.deepseek.com",
    "api.x.ai",
    "api.perplexity.ai",
    "api.fireworks.ai",
)


def _load() -> dict[str, Any]:
    with CATALOG_PATH.open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


CATALOG = _load()
SERVICES: list[dict[str, Any]] = CATALOG["services"]


def _entry_id(entry: dict[str, Any]) -> str:
    return str(entry.get("id", "<no id>"))


def _unit_price(entry: dict[str, Any]) -> Decimal:
    return Decimal(entry["price_usd"]) / Decimal(entry["per"])


def _host_is_denied(host: str) -> bool:
    # A wildcard on either side counts: "*.openai.azure.com" must catch
    # "x.openai.azure.com", and a catalog pattern "*.openai.azure.com" itself.
    return any(
        fnmatch.fnmatchcase(host, denied) or fnmatch.fnmatchcase(denied, host)
        for denied in LLM_HOST_DENY
    )


def _host_paths(entry: dict[str, Any]) -> list[tuple[str, str]]:
    paths = entry.get("paths") or ["*"]
    return [(host, path) for host in entry["hosts"] for path in paths]


@pytest.fixture(params=SERVICES, ids=_entry_id)
def entry(request: pytest.FixtureRequest) -> dict[str, Any]:
    value: dict[str, Any] = request.param
    return value


def test_catalog_top_level_matches_format() -> None:
    assert set(CATALOG) == {"schema_version", "catalog_version", "services"}
    assert CATALOG["schema_version"] == 1
    assert re.fullmatch(r"\d{4}\.\d{2}\.\d{2}", CATALOG["catalog_version"])
    assert isinstance(SERVICES, list)


def test_entry_keys_are_exactly_the_format(entry: dict[str, Any]) -> None:
    keys = set(entry)
    missing = REQUIRED_KEYS - keys
    extra = keys - REQUIRED_KEYS - OPTIONAL_KEYS
    assert not missing, f"{_entry_id(entry)}: add the missing keys {sorted(missing)}"
    assert not extra, f"{_entry_id(entry)}: remove the unknown keys {sorted(extra)}"


def test_entry_id_matches_pattern(entry: dict[str, Any]) -> None:
    assert isinstance(entry["id"], str)
    assert ID_PATTERN.fullmatch(entry["id"]), (
        f"{entry['id']!r}: ids are lowercase letters, digits, '_', '.' or '-', 2-64 long"
    )


def test_entry_ids_are_unique() -> None:
    ids = [_entry_id(e) for e in SERVICES]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"rename the duplicated ids {duplicates}"


def test_entry_name_and_unit_are_text(entry: dict[str, Any]) -> None:
    for key in ("name", "unit"):
        value = entry[key]
        assert isinstance(value, str), f"{entry['id']}: {key} must be a string"
        assert value.strip(), f"{entry['id']}: {key} is empty"


def test_entry_category_is_known(entry: dict[str, Any]) -> None:
    assert entry["category"] in CATEGORIES, (
        f"{entry['id']}: category {entry['category']!r} is not one of {sorted(CATEGORIES)}"
    )


def test_entry_pricing_model_is_known(entry: dict[str, Any]) -> None:
    assert entry["pricing_model"] in PRICING_MODELS, (
        f"{entry['id']}: pricing_model {entry['pricing_model']!r} is not one of the format's"
    )


def test_entry_hosts_are_valid_patterns(entry: dict[str, Any]) -> None:
    hosts = entry["hosts"]
    assert isinstance(hosts, list), f"{entry['id']}: hosts must be a list"
    assert hosts, f"{entry['id']}: hosts is empty"
    for host in hosts:
        assert isinstance(host, str), f"{entry['id']}: host {host!r} is not a string"
        assert HOST_PATTERN.fullmatch(host), (
            f"{entry['id']}: host {host!r} must be a lowercase host name without scheme,"
            " port or path, with at most a leading '*.'"
        )


def test_entry_paths_are_absolute_globs(entry: dict[str, Any]) -> None:
    if "paths" not in entry:
        return
    paths = entry["paths"]
    assert isinstance(paths, list), f"{entry['id']}: paths must be a list"
    assert paths, f"{entry['id']}: drop the empty paths list to match every path"
    for path in paths:
        assert isinstance(path, str), f"{entry['id']}: path {path!r} is not a string"
        assert path.startswith("/"), f"{entry['id']}: path {path!r} must start with '/'"
        assert "?" not in path.replace("[?]", ""), (
            f"{entry['id']}: path {path!r} must not carry a query string"
        )


def test_entry_methods_are_uppercase_http(entry: dict[str, Any]) -> None:
    if "methods" not in entry:
        return
    methods = entry["methods"]
    assert isinstance(methods, list), f"{entry['id']}: methods must be a list"
    assert methods, f"{entry['id']}: drop the empty methods list to match every method"
    for method in methods:
        assert method in HTTP_METHODS, (
            f"{entry['id']}: method {method!r} must be an uppercase HTTP method"
        )


def test_entry_units_from_matches_format(entry: dict[str, Any]) -> None:
    units_from = entry["units_from"]
    name = entry["id"]
    assert isinstance(units_from, dict), f"{name}: units_from must be an object"
    kind = units_from.get("kind")
    if kind == "fixed":
        assert set(units_from) == {"kind", "units"}, f"{name}: fixed takes only 'units'"
        units = units_from["units"]
        assert isinstance(units, int), f"{name}: fixed units must be an integer"
        assert not isinstance(units, bool), f"{name}: fixed units must be an integer"
        assert units >= 1, f"{name}: fixed units {units} must be at least 1"
    elif kind == "response_header":
        assert set(units_from) == {"kind", "header"}, f"{name}: response_header takes 'header'"
        assert HEADER_PATTERN.fullmatch(units_from["header"]), (
            f"{name}: header {units_from['header']!r} must be a lowercase header name"
        )
    elif kind in ("response_json", "request_json_count"):
        assert set(units_from) == {"kind", "field"}, f"{name}: {kind} takes only 'field'"
        assert FIELD_PATTERN.fullmatch(units_from["field"]), (
            f"{name}: field {units_from['field']!r} must be a dotted path"
        )
    else:
        pytest.fail(
            f"{name}: units_from kind {kind!r} is not fixed, response_header,"
            " response_json or request_json_count"
        )


def test_entry_price_is_exact_decimal_string(entry: dict[str, Any]) -> None:
    price = entry["price_usd"]
    assert isinstance(price, str), (
        f"{entry['id']}: price_usd {price!r} must be a quoted decimal, not a JSON number"
    )
    assert DECIMAL_PATTERN.fullmatch(price), (
        f"{entry['id']}: price_usd {price!r} must be a plain decimal such as '0.015'"
    )
    try:
        Decimal(price)
    except InvalidOperation:  # pragma: no cover - the pattern already rules this out
        pytest.fail(f"{entry['id']}: price_usd {price!r} is not a decimal")


def test_entry_per_is_power_of_ten(entry: dict[str, Any]) -> None:
    per = entry["per"]
    assert isinstance(per, int), f"{entry['id']}: per {per!r} must be an integer"
    assert not isinstance(per, bool), f"{entry['id']}: per must be an integer"
    assert per >= 1, f"{entry['id']}: per {per} must be at least 1"
    assert str(per) == "1" + "0" * (len(str(per)) - 1), (
        f"{entry['id']}: per {per} must be a power of ten (1, 10, 100, 1000, ...)"
    )


def test_entry_bills_failed_is_boolean(entry: dict[str, Any]) -> None:
    assert isinstance(entry["bills_failed_requests"], bool), (
        f"{entry['id']}: bills_failed_requests must be true or false"
    )


def test_entry_price_note_is_text(entry: dict[str, Any]) -> None:
    if "price_note" not in entry:
        return
    note = entry["price_note"]
    assert isinstance(note, str), f"{entry['id']}: price_note must be a string"
    assert note.strip(), f"{entry['id']}: drop the empty price_note"


def test_entry_source_url_is_https(entry: dict[str, Any]) -> None:
    url = entry.get("source_url")
    assert isinstance(url, str), f"{_entry_id(entry)}: add the pricing page as source_url"
    parts = urlsplit(url)
    assert parts.scheme == "https", f"{entry['id']}: source_url {url!r} must use https"
    assert parts.netloc, f"{entry['id']}: source_url {url!r} has no host"


def test_entry_checked_date_is_past(entry: dict[str, Any]) -> None:
    checked = entry.get("checked")
    assert isinstance(checked, str), f"{_entry_id(entry)}: add the checked date"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", checked), (
        f"{entry['id']}: checked {checked!r} must be written YYYY-MM-DD"
    )
    try:
        day = dt.date.fromisoformat(checked)
    except ValueError:
        pytest.fail(f"{entry['id']}: checked {checked!r} is not a calendar date")
    assert day <= TODAY, f"{entry['id']}: checked {checked} is after {TODAY}, fix the date"


def test_entry_unit_price_is_plausible(entry: dict[str, Any]) -> None:
    if entry["id"] in PRICE_EXCEPTIONS:
        return
    price = _unit_price(entry)
    assert MIN_UNIT_PRICE <= price <= MAX_UNIT_PRICE, (
        f"{entry['id']}: one {entry['unit']} costs ${price}, outside"
        f" ${MIN_UNIT_PRICE}-${MAX_UNIT_PRICE}; fix price_usd/per or list the id in"
        " PRICE_EXCEPTIONS with a reason"
    )


def test_price_exceptions_name_real_entries() -> None:
    ids = {_entry_id(e) for e in SERVICES}
    stale = sorted(set(PRICE_EXCEPTIONS) - ids)
    assert not stale, f"remove the exceptions for ids no longer in the catalog: {stale}"


def test_entry_hosts_are_not_llm_apis(entry: dict[str, Any]) -> None:
    denied = [host for host in entry["hosts"] if _host_is_denied(host)]
    assert not denied, (
        f"{entry['id']}: hosts {denied} belong to LLM APIs, which are priced from tokens;"
        " remove the entry"
    )


def test_llm_deny_list_catches_wildcards() -> None:
    assert _host_is_denied("myres.openai.azure.com")
    assert _host_is_denied("bedrock-runtime.us-east-1.amazonaws.com")
    assert not _host_is_denied("serpapi.com")


def test_no_two_entries_match_same_request() -> None:
    # Two entries clash when a host of one can match a host of the other and a path
    # glob of one can match a path glob of the other, for a shared method.
    clashes = []
    for i, first in enumerate(SERVICES):
        for second in SERVICES[i + 1 :]:
            first_methods = set(first.get("methods") or HTTP_METHODS)
            second_methods = set(second.get("methods") or HTTP_METHODS)
            if not first_methods & second_methods:
                continue
            for host_a, path_a in _host_paths(first):
                for host_b, path_b in _host_paths(second):
                    hosts_meet = fnmatch.fnmatchcase(host_a, host_b) or fnmatch.fnmatchcase(
                        host_b, host_a
                    )
                    paths_meet = fnmatch.fnmatchcase(path_a, path_b) or fnmatch.fnmatchcase(
                        path_b, path_a
                    )
                    if hosts_meet and paths_meet:
                        clashes.append(f"{first['id']} and {second['id']} on {host_a}{path_a}")
    assert not clashes, "narrow hosts or paths so one request matches one entry: " + "; ".join(
        clashes
    )


def test_catalog_has_target_entry_count() -> None:
    assert len(SERVICES) >= TARGET_COUNT


def test_reference_page_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(REFERENCE_SCRIPT), "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, (
        f"docs/catalog.md is stale; run scripts/catalog_reference.py: {result.stderr}"
    )
