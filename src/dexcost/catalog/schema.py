"""The service catalog format and its validator.

A catalog is JSON: ``schema_version``, ``catalog_version`` and ``services``, a list of
entries that each describe one paid API (its hosts, the paths and methods that are
billed, and how to count and price the units one request uses). The validator is
strict: a field that is missing, unknown or of the wrong type raises
:class:`CatalogFormatError` naming the entry and the field, because a wrong price
silently applied to every request is worse than no price.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import urlsplit

SCHEMA_VERSION: Final = 1

CATEGORIES: Final = frozenset(
    {
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
)
PRICING_MODELS: Final = frozenset(
    {
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
)
HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# units_from kinds.
FIXED: Final = "fixed"
RESPONSE_HEADER: Final = "response_header"
RESPONSE_JSON: Final = "response_json"
REQUEST_JSON_COUNT: Final = "request_json_count"

_TOP_KEYS: Final = frozenset({"schema_version", "catalog_version", "services"})
_REQUIRED_KEYS: Final = frozenset(
    {
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
)
_OPTIONAL_KEYS: Final = frozenset({"paths", "methods", "price_note"})
_UNITS_FROM_KEYS: Final = {
    FIXED: "units",
    RESPONSE_HEADER: "header",
    RESPONSE_JSON: "field",
    REQUEST_JSON_COUNT: "field",
}

_ID: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{1,63}")
# A DNS name or IPv4 address in lower case, optionally after "*." for its subdomains.
_LABEL: Final = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST: Final = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")
_HEADER: Final = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_FIELD: Final = re.compile(r"[A-Za-z0-9_$@-]+(?:\.[A-Za-z0-9_$@-]+)*")
_PRICE: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Largest `per` accepted: a price per billion units.
_MAX_PER_EXPONENT: Final = 9


class CatalogFormatError(ValueError):
    """Raised when a catalog does not follow the format.

    ``entry_id`` names the entry (``""`` for the top level, ``"#N"`` for the entry
    at index N without a valid id) and ``field`` the key at fault. The message states
    what is wrong and how to write it.
    """

    def __init__(self, entry_id: str, field: str, problem: str) -> None:
        where = f"catalog entry {entry_id!r}" if entry_id else "catalog"
        if field:
            where += f", field {field!r}"
        super().__init__(f"{where}: {problem}")
        self.entry_id = entry_id
        self.field = field


@dataclass(frozen=True, slots=True)
class UnitsFrom:
    """Rule giving the unit count of one request.

    ``units`` is the count of a ``fixed`` rule. ``name`` is the header name of a
    ``response_header`` rule or the dotted field of a JSON rule, split into ``path``.
    """

    kind: str
    units: int = 0
    name: str = ""
    path: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One paid API: where its requests go and what one unit costs."""

    id: str
    name: str
    category: str
    hosts: tuple[str, ...]
    paths: tuple[str, ...] | None
    methods: frozenset[str] | None
    pricing_model: str
    unit: str
    units_from: UnitsFrom
    price_usd: Decimal
    per: int
    bills_failed_requests: bool
    source_url: str
    checked: str
    price_note: str | None = None


@dataclass(frozen=True, slots=True)
class Catalog:
    """A validated catalog: its version and its entries in file order."""

    schema_version: int
    catalog_version: str
    entries: tuple[CatalogEntry, ...]


def parse_catalog(document: object) -> Catalog:
    """Validate a decoded catalog document and return it; raise CatalogFormatError."""
    if not isinstance(document, Mapping):
        raise CatalogFormatError("", "", f"the document is {_kind(document)}, not a JSON object")
    _check_keys("", document, _TOP_KEYS, frozenset())
    version = document["schema_version"]
    if type(version) is not int or version != SCHEMA_VERSION:
        raise CatalogFormatError(
            "",
            "schema_version",
            f"{version!r} is not supported; this dexcost reads schema_version {SCHEMA_VERSION}",
        )
    catalog_version = document["catalog_version"]
    if not isinstance(catalog_version, str) or not catalog_version.strip():
        raise CatalogFormatError(
            "", "catalog_version", f"{catalog_version!r} is not a version such as '2026.12.04'"
        )
    services = document["services"]
    if not isinstance(services, list):
        raise CatalogFormatError("", "services", f"is {_kind(services)}, not a list of entries")
    entries: list[CatalogEntry] = []
    seen: set[str] = set()
    for position, raw in enumerate(services):
        entry = parse_entry(raw, position)
        if entry.id in seen:
            raise CatalogFormatError(entry.id, "id", "is used by an earlier entry; ids are unique")
        seen.add(entry.id)
        entries.append(entry)
    return Catalog(version, catalog_version, tuple(entries))


def parse_entry(raw: object, position: int = 0) -> CatalogEntry:
    """Validate one entry of ``services`` (at index ``position``) and return it."""
    if not isinstance(raw, Mapping):
        raise CatalogFormatError(
            f"#{position}", "", f"is {_kind(raw)}; each entry is a JSON object"
        )
    entry_id = raw.get("id")
    if not isinstance(entry_id, str) or _ID.fullmatch(entry_id) is None:
        raise CatalogFormatError(
            f"#{position}",
            "id",
            f"{entry_id!r} is not an id; write 2 to 64 characters of a-z, 0-9, '_', '.' "
            "or '-', starting with a letter or digit, such as 'google_maps.geocoding'",
        )
    _check_keys(entry_id, raw, _REQUIRED_KEYS, _OPTIONAL_KEYS)
    return CatalogEntry(
        id=entry_id,
        name=_text(entry_id, raw, "name"),
        category=_choice(entry_id, raw, "category", CATEGORIES),
        hosts=_hosts(entry_id, raw["hosts"]),
        paths=_paths(entry_id, raw.get("paths")),
        methods=_methods(entry_id, raw.get("methods")),
        pricing_model=_choice(entry_id, raw, "pricing_model", PRICING_MODELS),
        unit=_text(entry_id, raw, "unit"),
        units_from=_units_from(entry_id, raw["units_from"]),
        price_usd=_price(entry_id, raw["price_usd"]),
        per=_per(entry_id, raw["per"]),
        bills_failed_requests=_flag(entry_id, raw, "bills_failed_requests"),
        source_url=_source_url(entry_id, raw["source_url"]),
        checked=_checked(entry_id, raw["checked"]),
        price_note=_text(entry_id, raw, "price_note") if "price_note" in raw else None,
    )


def _kind(value: object) -> str:
    """Name a decoded JSON value's type the way the catalog's author wrote it."""
    names = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        type(None): "null",
    }
    return names.get(type(value), "an object")


def _check_keys(
    entry_id: str, raw: Mapping[str, Any], required: frozenset[str], optional: frozenset[str]
) -> None:
    missing = sorted(required - raw.keys())
    if missing:
        raise CatalogFormatError(entry_id, missing[0], "is missing; every entry needs it")
    unknown = sorted(set(raw.keys()) - required - optional)
    if unknown:
        allowed = ", ".join(sorted(required | optional))
        raise CatalogFormatError(
            entry_id, str(unknown[0]), f"is not a catalog key; the keys are {allowed}"
        )


def _text(entry_id: str, raw: Mapping[str, Any], key: str) -> str:
    value = raw[key]
    if not isinstance(value, str) or not value.strip():
        raise CatalogFormatError(entry_id, key, f"{value!r} is not a non-empty string")
    return value


def _choice(entry_id: str, raw: Mapping[str, Any], key: str, allowed: frozenset[str]) -> str:
    value = raw[key]
    if value not in allowed:
        raise CatalogFormatError(
            entry_id, key, f"{value!r} is not one of {', '.join(sorted(allowed))}"
        )
    return str(value)


def _flag(entry_id: str, raw: Mapping[str, Any], key: str) -> bool:
    value = raw[key]
    if not isinstance(value, bool):
        raise CatalogFormatError(entry_id, key, f"{value!r} is not true or false")
    return value


def _string_list(entry_id: str, key: str, value: object) -> list[str]:
    if not isinstance(value, list) or not value:
        raise CatalogFormatError(entry_id, key, f"{value!r} is not a non-empty list of strings")
    for item in value:
        if not isinstance(item, str):
            raise CatalogFormatError(entry_id, key, f"{item!r} in the list is not a string")
    return value


def _hosts(entry_id: str, value: object) -> tuple[str, ...]:
    hosts = _string_list(entry_id, "hosts", value)
    for host in hosts:
        if _HOST.fullmatch(host) is None or len(host) > 253:
            raise CatalogFormatError(
                entry_id,
                "hosts",
                f"{host!r} is not a host pattern; write a lowercase host such as "
                "'serpapi.com' or '*.pinecone.io', with no scheme, port or path",
            )
    return tuple(hosts)


def _paths(entry_id: str, value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    paths = _string_list(entry_id, "paths", value)
    for path in paths:
        # The glob is matched against a path without its query, so "?" in it is a
        # wildcard, never a query separator.
        if not path.startswith(("/", "*")):
            raise CatalogFormatError(
                entry_id, "paths", f"{path!r} is not a path glob; start it with '/'"
            )
    return tuple(paths)


def _methods(entry_id: str, value: object) -> frozenset[str] | None:
    if value is None:
        return None
    methods = _string_list(entry_id, "methods", value)
    for method in methods:
        if method not in HTTP_METHODS:
            raise CatalogFormatError(
                entry_id,
                "methods",
                f"{method!r} is not an HTTP method; write one of "
                f"{', '.join(sorted(HTTP_METHODS))} in upper case",
            )
    return frozenset(methods)


def _units_from(entry_id: str, value: object) -> UnitsFrom:
    if not isinstance(value, Mapping):
        raise CatalogFormatError(
            entry_id,
            "units_from",
            f'is {_kind(value)}; write an object such as {{"kind": "fixed", "units": 1}}',
        )
    kind = value.get("kind")
    key = _UNITS_FROM_KEYS.get(kind) if isinstance(kind, str) else None
    if key is None or not isinstance(kind, str):
        raise CatalogFormatError(
            entry_id,
            "units_from.kind",
            f"{kind!r} is not one of {', '.join(sorted(_UNITS_FROM_KEYS))}",
        )
    expected = {"kind", key}
    if set(value.keys()) != expected:
        raise CatalogFormatError(
            entry_id,
            "units_from",
            f"has keys {sorted(value.keys())}; a {kind!r} rule has exactly {sorted(expected)}",
        )
    setting = value[key]
    if kind == FIXED:
        if type(setting) is not int or setting < 1:
            raise CatalogFormatError(
                entry_id, "units_from.units", f"{setting!r} is not a whole number of 1 or more"
            )
        return UnitsFrom(kind, units=setting)
    if kind == RESPONSE_HEADER:
        if not isinstance(setting, str) or _HEADER.fullmatch(setting) is None:
            raise CatalogFormatError(
                entry_id,
                "units_from.header",
                f"{setting!r} is not a header name; write it in lower case, such as "
                "'x-credits-used'",
            )
        return UnitsFrom(kind, name=setting)
    if not isinstance(setting, str) or _FIELD.fullmatch(setting) is None:
        raise CatalogFormatError(
            entry_id,
            "units_from.field",
            f"{setting!r} is not a dotted field path such as 'usage.credits'",
        )
    return UnitsFrom(kind, name=setting, path=tuple(setting.split(".")))


def _price(entry_id: str, value: object) -> Decimal:
    if not isinstance(value, str):
        raise CatalogFormatError(
            entry_id,
            "price_usd",
            f'{value!r} is {_kind(value)}; write the price as a string such as "0.015", '
            "so it stays exact",
        )
    if _PRICE.fullmatch(value) is None:
        raise CatalogFormatError(
            entry_id,
            "price_usd",
            f"{value!r} is not a plain decimal; write digits with an optional point, "
            'such as "0.015"',
        )
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise CatalogFormatError(entry_id, "price_usd", f"{value!r} is not a decimal") from None


def _per(entry_id: str, value: object) -> int:
    powers = {10**exponent for exponent in range(_MAX_PER_EXPONENT + 1)}
    if type(value) is not int or value not in powers:
        raise CatalogFormatError(
            entry_id,
            "per",
            f"{value!r} is not a power of ten; write 1, 10, 100, 1000 or 1000000",
        )
    return value


def _source_url(entry_id: str, value: object) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme != "https" or not parts.netloc:
        raise CatalogFormatError(
            entry_id,
            "source_url",
            f"{value!r} is not an https URL; link the provider's public pricing page",
        )
    return str(value)


def _checked(entry_id: str, value: object) -> str:
    valid = isinstance(value, str) and _DATE.fullmatch(value) is not None
    if valid:
        try:
            datetime.date.fromisoformat(str(value))
        except ValueError:
            valid = False
    if not valid:
        raise CatalogFormatError(
            entry_id, "checked", f"{value!r} is not a date; write YYYY-MM-DD, such as '2026-12-04'"
        )
    return str(value)
