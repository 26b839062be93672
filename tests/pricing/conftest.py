"""Fixtures for the pricing tests, which use the real genai-prices data and no network."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from dexcost.pricing import clear_model_prices
from dexcost.pricing.library import Library, wait_for_library

# genai-prices needs Python 3.11. On 3.10 only the tests that need no library run.
if sys.version_info < (3, 11):
    collect_ignore = [
        "test_pricing_constraints.py",
        "test_pricing_known_costs.py",
        "test_pricing_loading.py",
        "test_pricing_oracle.py",
        "test_pricing_price_set.py",
        "test_pricing_rate_lint.py",
        "test_pricing_robustness.py",
        "test_pricing_supplement.py",
    ]


@pytest.fixture(autouse=True)
def _no_user_prices() -> Iterator[None]:
    clear_model_prices()
    yield
    clear_model_prices()


@pytest.fixture(scope="session")
def library() -> Library:
    """genai-prices, loaded by the same background warm-up that production uses."""
    loaded = wait_for_library(timeout=30)
    assert loaded is not None, "genai-prices did not load"
    return loaded
