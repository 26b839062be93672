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
# False after unpatch_threads() when another library wrapped a method on top of
# dexcost's: the method then stays installed but passes calls straight through.
_active = False

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
    if not _active:
        return _ORIGINAL_SUBMIT(self, fn, *args, **kwargs)
    return _ORIGINAL_SUBMIT(self, _in_context(otel_context.get_current(), fn), *args, **kwargs)


def _start(self: threading.Thread) -> None:
    if _active:
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


# (class, method name, dexcost's function, the original).
_METHODS: tuple[tuple[type, str, Any, Any], ...] = (
    (ThreadPoolExecutor, "submit", _submit, _ORIGINAL_SUBMIT),
    (threading.Thread, "start", _start, _ORIGINAL_START),
    (threading.Thread, "run", _run, _ORIGINAL_RUN),
)
# Bound on the wrappers looked through to find dexcost's function.
_MAX_WRAPPER_DEPTH = 32


def _wraps(value: Any, ours: Any) -> bool:
    """Tell whether ``value`` is ``ours`` or a wrapper (wrapt, functools) around it."""
    for _ in range(_MAX_WRAPPER_DEPTH):
        if value is ours:
            return True
        value = getattr(value, "__wrapped__", None)
        if value is None:
            return False
    return False


def patch_threads() -> None:
    """Make thread pools and threads inherit the submitter's context; idempotent.

    Executors and threads created before this call are covered too, because the
    classes are patched. NOTE: a ``Thread`` subclass that overrides ``run()`` without
    calling ``super().run()`` does not inherit the context.
    """
    global _patched, _active
    with _lock:
        if _patched:
            return
        for owner, name, ours, _ in _METHODS:
            # Still installed under another library's wrapper since the last unpatch.
            if not _wraps(vars(owner).get(name), ours):
                setattr(owner, name, ours)
        _active = True
        _patched = True


def unpatch_threads() -> None:
    """Restore the original thread pool and thread methods.

    A method another library wrapped on top of dexcost's (the OpenTelemetry threading
    instrumentation, instrumented after ``init()``) is left in place, because restoring
    the original would remove that library's wrapper too; dexcost's part of it then
    passes calls straight through.
    """
    global _patched, _active
    with _lock:
        if not _patched:
            return
        _active = False
        for owner, name, ours, original in _METHODS:
            if vars(owner).get(name) is ours:
                setattr(owner, name, original)
        _patched = False
