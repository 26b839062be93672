"""A dexcost runtime matching requests against the test catalog, and the fake paid API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import dexcost
from dexcost import http as http_capture

from .fake_paid_api import FakePaidAPI, build_catalog


@pytest.fixture
def api() -> Iterator[FakePaidAPI]:
    server = FakePaidAPI().start()
    yield server
    server.stop()


@pytest.fixture
def test_catalog() -> Iterator[None]:
    http_capture.use_catalog(build_catalog())
    yield
    http_capture.use_catalog(None)


@pytest.fixture
def dx(buffer_path: Path, test_catalog: None) -> Iterator[dexcost.DexcostConfig]:
    config = dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])
    yield config
    dexcost.shutdown()


@pytest.fixture
def costs(stored: Callable[..., list[dict[str, Any]]]) -> Callable[[], list[dict[str, Any]]]:
    """Return the stored external_cost rows."""
    return lambda: stored("external_cost")
