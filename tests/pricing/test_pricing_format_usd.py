"""format_usd writes exact plain decimal strings for span attributes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dexcost.pricing import format_usd


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("0.00036"), "0.00036"),
        (Decimal("0"), "0"),
        (Decimal("0E-12"), "0"),
        (Decimal("-0"), "0"),
        (Decimal("1.5E-7"), "0.00000015"),
        (Decimal("0.000360000"), "0.00036"),
        (Decimal("2.50"), "2.5"),
        (Decimal("12"), "12"),
        (Decimal("1E+3"), "1000"),
        (Decimal("1200.00"), "1200"),
        (Decimal("-0.25"), "-0.25"),
        (
            Decimal("123456789012345678901234567890.123456789"),
            "123456789012345678901234567890.123456789",
        ),
    ],
)
def test_format_usd_exact_plain(value: Decimal, expected: str) -> None:
    assert format_usd(value) == expected


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_format_usd_rejects_non_finite(value: Decimal) -> None:
    with pytest.raises(ValueError, match="must be finite"):
        format_usd(value)
