"""Background loading of genai-prices, the source of model prices.

Importing genai-prices 0.2.3 with its price data takes 0.25-0.4 s (a 1.6 MB
data module plus pydantic, measured on a 2-core development VM), so
``import dexcost`` must not do it. `warm_up()` loads
it in a daemon thread, and the first price lookup waits for that thread for
at most `WAIT_SECONDS`. Only the bundled price snapshot is used: the library's
``UpdatePrices`` downloader is never started, so pricing makes no network calls.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.units import UnitDef, UnitRegistry

logger = logging.getLogger("dexcost.pricing")

DISTRIBUTION: Final = "genai-prices"
UNAVAILABLE_SOURCE: Final = "genai-prices unavailable"
MIN_PYTHON: Final = (3, 11)
# Bound on how long a price lookup blocks on a warm-up still in progress.
WAIT_SECONDS: Final = 5.0


@dataclass(frozen=True, slots=True)
class Library:
    """Loaded genai-prices objects that rate cards are compiled from."""

    source: str
    """Price source recorded on spans, e.g. ``"genai-prices 0.2.3"``."""
    registry: UnitRegistry
    get_snapshot: Callable[[], DataSnapshot]
    validate_priced_units: Callable[[Collection[UnitDef], UnitRegistry], None]


class _LoadState:
    """Warm-up progress.

    A forked child replaces it while loading is unfinished, because fork does
    not copy the loading thread and the child would otherwise wait for nothing.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = False
        self.done = threading.Event()
        self.library: Library | None = None


_state = _LoadState()


def warm_up() -> None:
    """Start loading genai-prices in a daemon thread; later calls do nothing.

    Returns at once. On Python 3.10, or when the import fails, one warning is
    logged and every library price lookup returns unpriced.
    """
    state = _state
    if state.started:
        return
    with state.lock:
        if state.started:
            return
        state.started = True
        thread = threading.Thread(
            target=_load, args=(state,), name="dexcost-pricing-warm-up", daemon=True
        )
        thread.start()


def wait_for_library(timeout: float | None = None) -> Library | None:
    """Return the loaded library, starting the warm-up if needed.

    Returns None when loading failed, or when it did not finish within
    `timeout` seconds (default `WAIT_SECONDS`). `load_failed()` distinguishes the two.
    """
    state = _state
    if not state.done.is_set():
        warm_up()
        if not state.done.wait(WAIT_SECONDS if timeout is None else timeout):
            return None
    return state.library


def load_failed() -> bool:
    """Return whether loading finished without a usable library."""
    state = _state
    return state.done.is_set() and state.library is None


@functools.cache
def pricing_version() -> str:
    """Return the price source name, e.g. ``"genai-prices 0.2.3"``, without importing it."""
    if sys.version_info < MIN_PYTHON:
        return UNAVAILABLE_SOURCE
    try:
        # Imported here: importlib.metadata costs ~25 ms, which init() does not need.
        from importlib import metadata

        return f"{DISTRIBUTION} {metadata.version(DISTRIBUTION)}"
    except ImportError:  # metadata.PackageNotFoundError is an ImportError
        return UNAVAILABLE_SOURCE


def _load(state: _LoadState) -> None:
    try:
        if sys.version_info < MIN_PYTHON:
            logger.warning(
                "genai-prices needs Python 3.11 or newer and this is Python %d.%d, so LLM calls "
                "are recorded unpriced. Upgrade Python or register prices with "
                "dexcost.pricing.register_model_price().",
                *sys.version_info[:2],
            )
            return
        state.library = _import_library()
    except Exception:  # any import failure must leave the instrumented program running
        logger.warning(
            "genai-prices failed to import, so LLM calls are recorded unpriced. "
            "Reinstall it with: pip install 'genai-prices>=0.2.3,<0.3'",
            exc_info=True,
        )
    finally:
        state.done.set()


def _import_library() -> Library:
    from genai_prices import __version__
    from genai_prices.data_snapshot import get_snapshot
    from genai_prices.data_units import unit_data
    from genai_prices.units import UnitRegistry
    from genai_prices.validation import validate_priced_units

    get_snapshot()  # builds the bundled snapshot, which imports the price data
    return Library(
        source=f"{DISTRIBUTION} {__version__}",
        registry=UnitRegistry(unit_data),
        get_snapshot=get_snapshot,
        validate_priced_units=validate_priced_units,
    )


def _finish_before_fork() -> None:
    # A child forked mid-import inherits the import's module locks held by a thread
    # that does not exist in the child, and its first price lookup would hang on them.
    # Pre-fork servers fork right after start-up, so let a running warm-up finish first.
    state = _state
    if state.started and not state.done.is_set():
        state.done.wait(WAIT_SECONDS)


def _reset_after_fork() -> None:
    global _state
    if not _state.done.is_set():
        _state = _LoadState()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_finish_before_fork, after_in_child=_reset_after_fork)
