"""Rate entries and the checks every entry passes, whether it comes from YAML or SQLite.

A rate is money, so every value is an exact Decimal parsed from text. Floats are
rejected because most prices (0.1, 0.005, ...) have no exact binary value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final

# Plausible USD prices per million tokens. The non-zero flat rates in genai-prices
# 0.2.5 run from $0.0011 (a cache read) to $600 (o1-pro output), so a value outside
# this range is almost always a unit mix-up, such as a price per token. Zero is
# allowed for self-hosted models that cost nothing per call.
MIN_PER_MTOK: Final = Decimal("0.001")
MAX_PER_MTOK: Final = Decimal("1000")

SERVICE_FIELDS: Final = ("per", "cost_usd")
MODEL_PRICE_FIELDS: Final = (
    "input_per_mtok",
    "output_per_mtok",
    "cache_read_per_mtok",
    "cache_write_per_mtok",
)
REQUIRED_MODEL_PRICE_FIELDS: Final = ("input_per_mtok", "output_per_mtok")
MODEL_FIELDS: Final = ("provider", *MODEL_PRICE_FIELDS)

# A `per` value: an optional count with an optional k (thousand) or m (million)
# suffix, joined by "_" to a lowercase unit name, e.g. "request" or "1k_requests".
# Counts are powers of ten, so dividing a price by one is always exact.
_PER_PATTERN: Final = re.compile(
    r"(?:(?P<count>10{0,6})(?P<scale>[km])?_)?(?P<unit>[a-z][a-z0-9_]*)"
)
_SCALES: Final = {None: 1, "k": 1_000, "m": 1_000_000}

# gen_ai.provider.name values are lowercase, e.g. "openai", "aws.bedrock", "mistral_ai".
_PROVIDER_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9._-]*")

_SERVICE_EXAMPLE: Final = '"0.005"'
_MTOK_EXAMPLE: Final = '"0.15"'


class RateValueError(ValueError):
    """Raised when one field of a rate entry is invalid.

    ``field`` names the field (``"cost_usd"``), or is empty when the problem is the
    entry's name. The message states what is wrong with the value and how to write it.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class ServiceRate:
    """The price of a paid non-LLM API: ``cost_usd`` for each ``per`` unit of ``service``."""

    service: str
    per: str
    cost_usd: Decimal

    @property
    def units_per_price(self) -> int:
        """Number of single units that ``cost_usd`` pays for: 1000 for ``1k_requests``."""
        return units_in_per(self.per)


@dataclass(frozen=True, slots=True)
class ModelRate:
    """USD prices per million tokens for ``model``, for one provider or, with None, any."""

    model: str
    provider: str | None
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cache_read_per_mtok: Decimal | None = None
    cache_write_per_mtok: Decimal | None = None

    @property
    def key(self) -> tuple[str, str | None]:
        """The identity that an import replaces: ``(model, provider)``."""
        return (self.model, self.provider)

    def prices(self) -> dict[str, Decimal]:
        """Return the prices that are set, keyed by field name such as ``input_per_mtok``."""
        values = {
            "input_per_mtok": self.input_per_mtok,
            "output_per_mtok": self.output_per_mtok,
            "cache_read_per_mtok": self.cache_read_per_mtok,
            "cache_write_per_mtok": self.cache_write_per_mtok,
        }
        return {name: value for name, value in values.items() if value is not None}


def units_in_per(per: str) -> int:
    """Return the number of single units in ``per``: 1 for ``request``, 1000 for ``1k_requests``.

    Raises RateValueError when ``per`` does not follow the ``[COUNT[k|m]_]unit`` form.
    """
    match = _PER_PATTERN.fullmatch(per) if isinstance(per, str) else None
    if match is None:
        raise RateValueError(
            "per",
            f"{per!r} is not a unit. Write a lowercase unit name such as 'request', 'page' "
            "or 'character', optionally after a power of ten such as '1k_requests', "
            "'100_pages' or '1m_characters'",
        )
    count = match["count"]
    return (1 if count is None else int(count)) * _SCALES[match["scale"]]


def check_name(kind: str, name: object) -> str:
    """Return ``name`` if it can name a service or model, else raise RateValueError."""
    if not isinstance(name, str) or not name:
        raise RateValueError("", f"the {kind} name is empty. Write the {kind} name as the key")
    if name != name.strip():
        raise RateValueError(
            "",
            f"the {kind} name {name!r} has spaces around it, so it would never match a call. "
            "Remove them",
        )
    return name


def check_provider(provider: object) -> str:
    """Return ``provider`` when it has the form of a ``gen_ai.provider.name``."""
    if not isinstance(provider, str) or _PROVIDER_PATTERN.fullmatch(provider) is None:
        raise RateValueError(
            "provider",
            f"{provider!r} is not a provider name. Write the lowercase gen_ai.provider.name "
            "that dexcost records, such as 'openai' or 'aws.bedrock', or leave provider out "
            "to match every provider",
        )
    return provider


def parse_usd(field: str, text: str, example: str) -> Decimal:
    """Parse ``text`` as a finite, non-negative exact USD amount.

    ``example`` is a quoted value shown in the message, such as ``"0.005"``.
    """
    fix = f"write it as a quoted decimal such as {example}"
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise RateValueError(field, f'"{text}" is not a decimal number; {fix}') from None
    if not value.is_finite():
        raise RateValueError(field, f'"{text}" is not a finite number; {fix}')
    if value < 0:
        raise RateValueError(field, f'"{text}" is negative, but a price cannot be; {fix}')
    return value


# The most one ``per`` of a service may cost. record_cost() rejects single costs of a
# billion dollars or more for the same reason: a larger value is a unit mix-up (cents,
# micro-dollars) or a typo, and exact sums of it would swamp every report.
MAX_SERVICE_COST: Final = Decimal(1_000_000)


def parse_service_cost(text: str) -> Decimal:
    """Parse the ``cost_usd`` of a service rate."""
    value = parse_usd("cost_usd", text, _SERVICE_EXAMPLE)
    if value > MAX_SERVICE_COST:
        raise RateValueError(
            "cost_usd",
            f'"{text}" is above ${MAX_SERVICE_COST:,} per unit, which looks like a unit '
            f"mix-up or a typo; write the USD price of one 'per' unit, such as "
            f"{_SERVICE_EXAMPLE}",
        )
    return value


def parse_price_per_mtok(field: str, text: str) -> Decimal:
    """Parse a model price per million tokens, rejecting values that suggest another unit."""
    value = parse_usd(field, text, _MTOK_EXAMPLE)
    if value != 0 and value < MIN_PER_MTOK:
        raise RateValueError(
            field,
            f'"{text}" is below ${MIN_PER_MTOK} per million tokens, which looks like a price '
            f"per token or per thousand tokens. Write the USD price per million tokens, such "
            f"as {_MTOK_EXAMPLE} for $0.15 per million",
        )
    if value > MAX_PER_MTOK:
        raise RateValueError(
            field,
            f'"{text}" is above ${MAX_PER_MTOK} per million tokens, more than any LLM list '
            "price, which suggests a unit mix-up. Write the USD price per million tokens, "
            f"such as {_MTOK_EXAMPLE} for $0.15 per million",
        )
    return value


def service_rate(service: str, per: str, cost_usd: str) -> ServiceRate:
    """Build a checked ServiceRate from text values, raising RateValueError for a bad one."""
    name = check_name("service", service)
    units_in_per(per)
    return ServiceRate(name, per, parse_service_cost(cost_usd))


def model_rate(model: str, provider: str | None, prices: Mapping[str, str]) -> ModelRate:
    """Build a checked ModelRate from text prices keyed by field name.

    ``prices`` must contain ``input_per_mtok`` and ``output_per_mtok``, and the cache
    prices are optional.
    """
    name = check_name("model", model)
    if provider is not None:
        check_provider(provider)
    for field in REQUIRED_MODEL_PRICE_FIELDS:
        if field not in prices:
            raise RateValueError(
                field,
                f"{field} is missing. Add it as a quoted USD price per million tokens, "
                f"such as {_MTOK_EXAMPLE}",
            )
    values = {field: parse_price_per_mtok(field, text) for field, text in prices.items()}
    return ModelRate(
        model=name,
        provider=provider,
        input_per_mtok=values["input_per_mtok"],
        output_per_mtok=values["output_per_mtok"],
        cache_read_per_mtok=values.get("cache_read_per_mtok"),
        cache_write_per_mtok=values.get("cache_write_per_mtok"),
    )
