"""List prices of Cohere rerank models, which are billed per search unit, not per token.

genai-prices has no entry for them, so dexcost keeps this small table. Cohere defines
one search unit as one query with up to 100 documents to rank; the API reports the
count in ``meta.billed_units.search_units``.

Only prices that could be sourced are listed. A model missing here is recorded as
``unpriced`` with its search units kept.
TODO: add rerank-v4.0-pro and rerank-v4.0-fast once their pay-as-you-go prices are
confirmed on Cohere's pricing page.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

SOURCE: Final = "https://cohere.com/pricing"
# The date the table was last compared with copies of the source.
CHECKED: Final = "2026-12-04"
PRICING_SOURCE: Final = f"cohere-rerank-prices {CHECKED} {SOURCE}"

# Model -> USD per 1,000 search units.
USD_PER_THOUSAND_SEARCHES: Final[dict[str, Decimal]] = {
    # $2.00 per 1,000 searches, as Cohere's pricing page lists Rerank 3.5.
    # NOTE: checked against copies of that page quoted elsewhere, not the live page.
    "rerank-v3.5": Decimal("2.00"),
}

_THOUSAND = Decimal(1000)


def rerank_cost(model: str | None, units: int) -> Decimal | None:
    """Return the USD cost of ``units`` search units, or None for a model without a price."""
    if model is None:
        return None
    rate = USD_PER_THOUSAND_SEARCHES.get(model)
    if rate is None:
        return None
    return rate * units / _THOUSAND
