"""Exact conversions between USD amounts, rates and text."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation


def format_usd(value: Decimal) -> str:
    """Format `value` as a plain decimal string with every significant digit.

    There is no exponent and no trailing fractional zero: ``Decimal("1.5E-7")``
    becomes ``"0.00000015"`` and ``Decimal("2.50")`` becomes ``"2.5"``. Unlike
    ``Decimal.normalize()``, this never rounds to the context precision.
    Raises ValueError for NaN and infinity, which are not amounts.
    """
    if not value.is_finite():
        raise ValueError(f"cannot format {value!r} as USD: the amount must be finite")
    if value.is_zero():
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def parse_rate_per_mtok(name: str, value: object) -> Decimal:
    """Convert a user-supplied USD price per million tokens to an exact Decimal.

    Accepts a Decimal, an int or a numeric string. Floats are rejected because
    most prices (0.1, 0.15, ...) have no exact binary value. Raises ValueError
    that names the argument, the value and the fix.
    """
    fix = f"pass {name} as the USD price per million tokens, e.g. {name}='0.15'"
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        raise ValueError(f"invalid {name}={value!r} ({type(value).__name__}); {fix}")
    try:
        rate = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"invalid {name}={value!r}: not a number; {fix}") from None
    if not rate.is_finite():
        raise ValueError(f"invalid {name}={value!r}: not a finite number; {fix}")
    if rate < 0:
        raise ValueError(f"invalid {name}={value!r}: a price cannot be negative; {fix}")
    return rate
