"""Telling a retried LLM call from a new one, when ``enable_retry_heuristics`` is on.

Applications retry a call that failed with a transient error (rate limit, overload,
timeout, a 5xx) with the same model, usually within seconds. The engine remembers
such failures per task for ``retry_heuristic_window`` seconds. The next successful
call of the same model in the same task is a probable retry: its confidence starts at
the failure kind's weight and falls linearly to 0 over the window. A call whose
confidence reaches ``retry_heuristic_threshold`` is flagged, and each failure explains
at most one retry.

Memory is bounded: at most ``max_tasks`` tasks (least recently used dropped first)
and ``max_failures`` remembered failures per task.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

# Fragments of exception class names that mean "try again later", across the SDKs
# dexcost instruments, and the confidence weight of each kind.
_TRANSIENT_KINDS: Final[tuple[tuple[str, float], ...]] = (
    ("ratelimit", 1.0),
    ("toomanyrequests", 1.0),
    ("throttling", 1.0),
    ("overloaded", 1.0),
    ("serviceunavailable", 1.0),
    ("timeout", 0.95),
    ("internalserver", 0.9),
    ("apiconnection", 0.9),
    ("connecterror", 0.9),
    ("connectionerror", 0.9),
    ("endpointconnection", 0.9),
)


def transient_weight(error_type: str | None) -> float | None:
    """Return the weight of a transient error class name, or None for any other error."""
    if not error_type:
        return None
    name = error_type.lower().replace("_", "")
    for fragment, weight in _TRANSIENT_KINDS:
        if fragment in name:
            return weight
    return None


@dataclass(frozen=True, slots=True)
class _Failure:
    model: str
    at: float
    weight: float


class RetryHeuristicEngine:
    """Remember transient failures per task and score later calls as probable retries."""

    def __init__(
        self,
        window_seconds: float,
        threshold: float,
        *,
        max_tasks: int = 10_000,
        max_failures: int = 32,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window_seconds
        self.threshold = threshold
        self._max_tasks = max_tasks
        self._max_failures = max_failures
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, deque[_Failure]] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._failures)

    def record_failure(self, task_id: str, model: str, error_type: str | None) -> None:
        """Remember a failed call if its error is transient; other errors are ignored."""
        weight = transient_weight(error_type)
        if weight is None or not model:
            return
        failure = _Failure(model, self._clock(), weight)
        with self._lock:
            failures = self._failures.get(task_id)
            if failures is None:
                failures = deque(maxlen=self._max_failures)
                self._failures[task_id] = failures
                if len(self._failures) > self._max_tasks:
                    self._failures.popitem(last=False)
            else:
                self._failures.move_to_end(task_id)
            failures.append(failure)

    def score(self, task_id: str, model: str) -> float | None:
        """Return the confidence that a successful call is a retry, if it reaches the threshold.

        The failure it retries is forgotten, so the next call counts as new work.
        """
        if not model or self.window <= 0:
            return None
        now = self._clock()
        with self._lock:
            failures = self._failures.get(task_id)
            if not failures:
                return None
            # Forget failures that left the window.
            while failures and now - failures[0].at > self.window:
                failures.popleft()
            best: tuple[float, _Failure] | None = None
            for failure in failures:
                if failure.model != model:
                    continue
                elapsed = max(0.0, now - failure.at)
                confidence = failure.weight * (1.0 - elapsed / self.window)
                if best is None or confidence > best[0]:
                    best = (confidence, failure)
            if best is None or best[0] < self.threshold:
                if not failures:
                    del self._failures[task_id]
                return None
            failures.remove(best[1])
            if not failures:
                del self._failures[task_id]
        return round(best[0], 4)
