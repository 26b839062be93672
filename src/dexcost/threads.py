"""Context inheritance for worker threads.

asyncio tasks and ``asyncio.to_thread`` copy the current context, but
``ThreadPoolExecutor.submit`` (and so ``map`` and ``loop.run_in_executor``) and
``threading.Thread`` do not: work handed to them would lose its customer and task.
While dexcost runs, both carry the submitter's OpenTelemetry context into the worker,
like the OTel threading instrumentation does. Only the OTel context moves (dexcost's
attribution and task live in it); other context variables are left as Python has them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from opentelemetry import context as otel_context

_lock = threading.Lock()
_patched = False

# Captured at import, never cleared: a method looked up while patched may still run
# after unpatch_threads() (a thread started concurrently), and must find these.
_ORIGINAL_SUBMIT = ThreadPoolExecutor.submit
_ORIGINAL_START = threading.Thread.start
_ORIGINAL_RUN = threading.Thread.run

# Attribute holding the context a Thread was started from.
_THREAD_CONTEXT = "_dexcost_parent_context"


def _in_context(ctx: otel_context.Context, fn: Callable[..., Any]) -> Callable[..., Any]:
    def run_in_submitter_context(*args: Any, **kwargs: Any) -> Any:
        token = otel_context.attach(ctx)
        try:
            return fn(*args, **kwargs)
        finally:
            otel_context.detach(token)

    return run_in_submitter_context


def _submit(
    self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
) -> Future[Any]:
    return _ORIGINAL_SUBMIT(self, _in_context(otel_context.get_current(), fn), *args, **kwargs)


def _start(self: threading.Thread) -> None:
    setattr(self, _THREAD_CONTEXT, otel_context.get_current())
    _ORIGINAL_START(self)


def _run(self: threading.Thread) -> None:
    ctx = getattr(self, _THREAD_CONTEXT, None)
    if ctx is None:
        _ORIGINAL_RUN(self)
        return
    token = otel_context.attach(ctx)
    try:
        _ORIGINAL_RUN(self)
    finally:
        otel_context.detach(token)


def patch_threads() -> None:
    """Make thread pools and threads inherit the submitter's context; idempotent.

    Executors and threads created before this call are covered too, because the
    classes are patched. NOTE: a ``Thread`` subclass that overrides ``run()`` without
    calling ``super().run()`` does not inherit the context.
    """
    global _patched
    with _lock:
        if _patched:
            return
        ThreadPoolExecutor.submit = _submit  # type: ignore[method-assign, assignment]
        threading.Thread.start = _start  # type: ignore[method-assign]
        threading.Thread.run = _run  # type: ignore[method-assign]
        _patched = True


def unpatch_threads() -> None:
    """Restore the original thread pool and thread methods."""
    global _patched
    with _lock:
        if not _patched:
            return
        ThreadPoolExecutor.submit = _ORIGINAL_SUBMIT  # type: ignore[method-assign]
        threading.Thread.start = _ORIGINAL_START  # type: ignore[method-assign]
        threading.Thread.run = _ORIGINAL_RUN  # type: ignore[method-assign]
        _patched = False
