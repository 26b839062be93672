"""The text a span's ids and cost are stored as."""

from __future__ import annotations

import pytest

from dexcost.buffer_schema import SPAN_COLUMNS, span_to_row

from .spans import llm_span

TRACE_ID = SPAN_COLUMNS.index("trace_id")
SPAN_ID = SPAN_COLUMNS.index("span_id")
COST = SPAN_COLUMNS.index("cost_usd")


@pytest.mark.parametrize("trace_id", [1, 0xABC, 2**128 - 1])
def test_trace_id_is_32_lowercase_hex_digits(trace_id: int) -> None:
    row = span_to_row(llm_span(5, trace_id=trace_id), 1)
    assert row[TRACE_ID] == format(trace_id, "032x")


@pytest.mark.parametrize("span_id", [1, 0xDEF, 2**64 - 1])
def test_span_id_is_16_lowercase_hex_digits(span_id: int) -> None:
    row = span_to_row(llm_span(span_id), 1)
    assert row[SPAN_ID] == format(span_id, "016x")


@pytest.mark.parametrize(
    "cost,stored",
    [("0.00036", "0.00036"), (" 0.5 ", "0.5"), ("nan", None), ("abc", None), ("1e-7", "1e-7")],
)
def test_cost_text_is_checked_on_every_span(cost: str, stored: str | None) -> None:
    # The check of a cost string is cached, so the second span must get the same result.
    first = span_to_row(llm_span(1, cost=cost), 1)[COST]
    second = span_to_row(llm_span(2, cost=cost), 1)[COST]
    assert (first, second) == (stored, stored)
