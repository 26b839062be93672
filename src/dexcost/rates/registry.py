"""The rates that ``dexcost.init()`` loads from the buffer, and pricing with them.

Model prices go to the stored layer of ``dexcost.pricing.user_prices``, below
prices registered in code. Service rates stay here for ``price_service_usage``.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal, Inexact, localcontext
from typing import Final

from dexcost import errors
from dexcost.buffer import Buffer, ModelRateRow, RateRows, ServiceRateRow
from dexcost.pricing import user_prices
from dexcost.pricing.money import format_usd
from dexcost.rates.entries import (
    MODEL_PRICE_FIELDS,
    ModelRate,
    RateValueError,
    ServiceRate,
    model_rate,
    service_rate,
)

logger = logging.getLogger(__name__)

# Pricing source of costs computed from stored rates, as dexcost.pricing.source
# records it. Model prices from the rate registry carry the same source.
SOURCE: Final = user_prices.STORED_SOURCE

# How many skipped rows the load warning names before it only counts them.
_NAMED_SKIPS: Final = 5


@dataclass
class StoredRates:
    """Rates read from a buffer, with the keys of the rows that failed their checks."""

    services: list[ServiceRate] = field(default_factory=list)
    models: list[ModelRate] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


_service_rates: dict[str, ServiceRate] = {}


def rates_from_rows(rows: RateRows) -> StoredRates:
    """Convert buffer rows into checked entries, skipping and naming the invalid ones."""
    result = StoredRates()
    for service_row in rows.services:
        try:
            result.services.append(_service_from_row(service_row))
        except ValueError as error:
            result.skipped.append(f"service {service_row[0]!r}: {_column_problem(error)}")
    for model_row in rows.models:
        try:
            result.models.append(_model_from_row(model_row))
        except ValueError as error:
            result.skipped.append(f"model {model_row[0]!r}: {_column_problem(error)}")
    return result


def _column_problem(error: ValueError) -> str:
    field = getattr(error, "field", "")
    return f"{field} {error}" if field else str(error)


def service_row(rate: ServiceRate) -> ServiceRateRow:
    """Return the buffer row of a service rate, money as exact decimal text."""
    return (rate.service, rate.per, format_usd(rate.cost_usd))


def model_row(rate: ModelRate) -> ModelRateRow:
    """Return the buffer row of a model price; an empty provider means any provider."""
    prices = rate.prices()
    texts = [
        None if name not in prices else format_usd(prices[name]) for name in MODEL_PRICE_FIELDS
    ]
    return (rate.model, rate.provider or "", texts[0] or "", texts[1] or "", texts[2], texts[3])


def read_for_init(buffer: Buffer) -> StoredRates:
    """Read the rate registry of an open buffer, or return no rates when it cannot be read.

    A registry that cannot be read costs its rates, not the application's start, so
    SQLite errors are logged as a warning and other errors go to
    ``errors.log_internal_error``. Rows that fail their checks are skipped with one
    warning that names them.
    """
    try:
        stored = rates_from_rows(buffer.rate_rows())
    except sqlite3.Error as error:
        logger.warning(
            "dexcost cannot read the stored rates in %s (%s), so calls are priced without "
            "them. Check the file with: dexcost rates --list --db %s",
            buffer.path,
            error,
            buffer.path,
        )
        return StoredRates()
    except Exception:
        errors.log_internal_error("reading stored rates")
        return StoredRates()
    if stored.skipped:
        named = "; ".join(stored.skipped[:_NAMED_SKIPS])
        more = len(stored.skipped) - _NAMED_SKIPS
        logger.warning(
            "dexcost skipped %d invalid stored rate(s) in %s: %s%s. Import corrected rates "
            "with: dexcost rates --import FILE --db %s",
            len(stored.skipped),
            buffer.path,
            named,
            f"; and {more} more" if more > 0 else "",
            buffer.path,
        )
    return stored


def install(stored: StoredRates) -> None:
    """Make ``stored`` the rates that pricing uses, replacing any loaded before."""
    global _service_rates
    user_prices.set_stored_model_prices(
        (rate.provider, rate.model, rate.prices()) for rate in stored.models
    )
    _service_rates = {rate.service: rate for rate in stored.services}


def uninstall() -> None:
    """Remove the loaded rates, as ``dexcost.shutdown()`` does."""
    install(StoredRates())


def price_service_usage(service: str, units: int | Decimal) -> tuple[Decimal, str] | None:
    """Return ``(cost in USD, pricing source)`` of ``units`` of ``service``, or None if unknown.

    ``units`` counts single units (requests, pages, characters) whatever the rate's
    ``per``: with ``per: 1k_requests`` and ``cost_usd: "5"``, 1 request costs 0.005.
    The cost is exact, never rounded. Raises ValueError for negative, non-finite or
    non-integer-or-Decimal ``units``.
    """
    if isinstance(units, bool) or not isinstance(units, (int, Decimal)):
        raise ValueError(
            f"units={units!r} ({type(units).__name__}) is invalid; pass an int or a Decimal"
        )
    if not Decimal(units).is_finite() or units < 0:
        raise ValueError(f"units={units!r} is invalid; pass a finite count of 0 or more")
    rate = _service_rates.get(service)
    if rate is None:
        return None
    return exact_cost(rate, Decimal(units)), SOURCE


def exact_cost(rate: ServiceRate, units: Decimal) -> Decimal:
    """Return ``units`` times the rate's price per single unit, with no rounding."""
    # The default context rounds products to 28 digits, so the precision is raised to
    # fit every digit. Dividing by a power of ten only moves the exponent.
    with localcontext() as context:
        context.prec = len(rate.cost_usd.as_tuple().digits) + len(units.as_tuple().digits)
        context.traps[Inexact] = True
        product = rate.cost_usd * units
        return product.scaleb(-(len(str(rate.units_per_price)) - 1))


def _service_from_row(row: tuple[object, ...]) -> ServiceRate:
    service, per, cost_usd = (
        _row_text(value, name) for value, name in zip(row, _SERVICE_COLUMNS, strict=True)
    )
    return service_rate(service, per, cost_usd)


def _model_from_row(row: tuple[object, ...]) -> ModelRate:
    model = _row_text(row[0], "model")
    provider = _row_text(row[1], "provider")
    prices = {
        name: _row_text(value, name)
        for name, value in zip(MODEL_PRICE_FIELDS, row[2:], strict=True)
        if value is not None
    }
    return model_rate(model, provider or None, prices)


_SERVICE_COLUMNS: Final = ("service", "per", "cost_usd")


def _row_text(value: object, column: str) -> str:
    """Return a column value that must be text, such as a price stored as exact decimal text."""
    if not isinstance(value, str):
        raise RateValueError(
            column, f"contains {value!r} ({type(value).__name__}), which is not text"
        )
    return value
