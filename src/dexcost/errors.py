"""Containment of dexcost's own failures.

Instrumentation code calls :func:`log_internal_error` from ``except`` blocks around
dexcost's own work, so a bug in dexcost never reaches the application. dexcost's
test suite sets :data:`RAISE_INTERNAL_ERRORS` so the same bugs fail tests loudly.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import warnings

logger = logging.getLogger("dexcost")

# Set to True by dexcost's own tests so internal errors fail loudly there.
RAISE_INTERNAL_ERRORS = False

# Full tracebacks are logged at most this often; the rest are counted.
_LOG_INTERVAL_SECONDS = 60.0

_lock = threading.Lock()
_count = 0
_last_logged: dict[str, float] = {}


def internal_error_count() -> int:
    """Return how many internal errors this process has contained so far."""
    return _count


def log_internal_error(what: str) -> None:
    """Count and log the exception being handled; call only from an ``except`` block.

    ``what`` names the step that failed, e.g. ``"reading openai usage"``. The same step
    logs its traceback at most once a minute so a hot path cannot flood the log.
    """
    global _count
    with _lock:
        _count += 1
        now = time.monotonic()
        last = _last_logged.get(what)
        should_log = last is None or now - last >= _LOG_INTERVAL_SECONDS
        if should_log:
            _last_logged[what] = now
    if RAISE_INTERNAL_ERRORS:
        raise
    if should_log:
        logger.warning(
            "dexcost internal error while %s; the application is unaffected", what, exc_info=True
        )


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_user(message: str, category: type[Warning] = RuntimeWarning) -> None:
    """Warn about the caller's misuse, pointing at the first frame outside dexcost.

    A fixed ``stacklevel`` would point into dexcost whenever the public function that
    noticed the problem was reached through another dexcost function.
    """
    frame = sys._getframe(0)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level)
