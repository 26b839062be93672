"""Pricing one request from its catalog entry: pure functions on plain data.

The unit count comes from the entry's ``units_from`` rule; the cost is
``units * price_usd / per``, exact. When the count cannot be read the cost is
unknown (``usage_unknown``), never $0; a failed request of a service that does not
bill failures costs $0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow
from typing import Any, Final

from dexcost.catalog.schema import (
    FIXED,
    REQUEST_JSON_COUNT,
    RESPONSE_HEADER,
    RESPONSE_JSON,
    CatalogEntry,
    UnitsFrom,
)

# Status codes from this one up are failed requests.
FIRST_FAILED_STATUS: Final = 400
_ZERO: Final = Decimal(0)
# Prices and counts have a few dozen digits at most, so 200 digits hold any product
# exactly, and Inexact would flag a bug rather than round. Calling the context's own
# methods costs less per request than switching the thread's context.
_EXACT: Final = Context(prec=200, traps=[Inexact, InvalidOperation, Overflow])
# The exponent of each `per` the format allows: 1000 -> 3.
_POWERS: Final = {10**exponent: exponent for exponent in range(10)}


def is_billed(entry: CatalogEntry, status: int | None) -> bool:
    """Tell whether a response with ``status`` (None: no response) is billed."""
    if status is not None and status < FIRST_FAILED_STATUS:
        return True
    return entry.bills_failed_requests


def needs_response_body(units_from: UnitsFrom) -> bool:
    return units_from.kind == RESPONSE_JSON


def needs_request_body(units_from: UnitsFrom) -> bool:
    return units_from.kind == REQUEST_JSON_COUNT


def read_units(
    units_from: UnitsFrom,
    *,
    header: str | None = None,
    response_json: Any = None,
    request_json: Any = None,
) -> Decimal | None:
    """Return the units one request used, or None when the rule's value is unreadable.

    ``header`` is the value of the rule's response header, ``response_json`` the
    decoded response body and ``request_json`` the decoded request body. Only the
    one the rule reads is needed.
    """
    kind = units_from.kind
    if kind == FIXED:
        return Decimal(units_from.units)
    if kind == RESPONSE_HEADER:
        return _count(header.strip()) if isinstance(header, str) else None
    if kind == RESPONSE_JSON:
        return _count(_field(response_json, units_from.path))
    if kind == REQUEST_JSON_COUNT:
        value = _field(request_json, units_from.path)
        if isinstance(value, (list, str)):
            return Decimal(len(value))
        return None
    return None


def cost_of(entry: CatalogEntry, units: Decimal) -> Decimal:
    """Return ``units * price_usd / per``, exact: ``per`` is a power of ten."""
    product = _EXACT.multiply(entry.price_usd, units)
    return product.scaleb(-_POWERS[entry.per], _EXACT)


def _field(document: Any, path: Sequence[str]) -> Any:
    """Follow a dotted path into decoded JSON; a digit segment indexes a list."""
    value = document
    for key in path:
        if isinstance(value, Mapping):
            if key not in value:
                return None
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return None
    return value


def _count(value: object) -> Decimal | None:
    """Return a non-negative finite count from a JSON number or decimal text, else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        # repr() is the shortest text that reads back as the same float: 1.5 -> "1.5".
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            return None
    else:
        return None
    if not number.is_finite() or number < _ZERO:
        return None
    return number
