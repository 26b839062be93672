"""Price the GenAI spans of other instrumentations (``price_genai_spans=True``).

When the option is on, one :class:`~dexcost.genai_spans.processor.GenAISpanPricer` is
added to the application's own SDK TracerProvider, never replacing it. The provider is
found behind wrappers that forward ``add_span_processor`` (Logfire's) or hold the SDK
provider in an attribute. A provider the application sets after ``init()`` gets the
processor when it is set. With no SDK provider there is nothing to attach to, and one
debug line is logged. Turning the option off stops the processor: the SDK has no way to
remove one.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, Final

from opentelemetry import trace as trace_api

from dexcost import errors, llm
from dexcost.genai_spans.processor import GenAISpanPricer

__all__ = ["GenAISpanPricer", "apply", "pricer"]

logger = logging.getLogger(__name__)

# Attributes under which wrapper providers keep the provider they wrap.
_INNER_PROVIDER_NAMES: Final = ("provider", "_provider", "tracer_provider", "_tracer_provider")
_MAX_WRAPPERS: Final = 4

# Re-entrant: with OTEL_PYTHON_TRACER_PROVIDER set, get_tracer_provider() inside apply()
# sets the provider, which runs the setter wrapper below on the same thread.
_lock = threading.RLock()
_pricer = GenAISpanPricer()
# Providers the pricer was added to. Weak references, so a provider the app drops is freed.
_attached: weakref.WeakSet[Any] = weakref.WeakSet()
_attached_ids: set[int] = set()
# (the API's setter, dexcost's wrapper around it) while the wrapper is installed.
_setter_hook: tuple[Callable[..., Any], Callable[..., Any]] | None = None


def pricer() -> GenAISpanPricer:
    """Return the process's one pricer (tests read its state)."""
    return _pricer


def apply(enabled: bool) -> None:
    """Start or stop pricing GenAI spans, as ``init()`` and ``shutdown()`` decide."""
    with _lock:
        if not enabled:
            _pricer.stop()
            llm.observe_calls(None)
            _unhook_provider_setter()
            return
        _pricer.active = True
        llm.observe_calls(_pricer.call_started)
        _hook_provider_setter()
        _attach(trace_api.get_tracer_provider())


def find_sdk_provider(provider: object) -> Any | None:
    """Return the object that takes span processors for ``provider``, or None."""
    for _ in range(_MAX_WRAPPERS):
        if provider is None or isinstance(provider, trace_api.ProxyTracerProvider):
            return None
        if callable(getattr(provider, "add_span_processor", None)):
            return provider
        provider = next(
            (
                inner
                for inner in (getattr(provider, name, None) for name in _INNER_PROVIDER_NAMES)
                if inner is not None
            ),
            None,
        )
    return None


def _attach(provider: object) -> None:
    """Add the pricer to ``provider`` once. The caller must hold ``_lock``."""
    target = find_sdk_provider(provider)
    if target is None:
        logger.debug(
            "dexcost found no SDK TracerProvider (%s) to price GenAI spans on; it will attach "
            "when the application sets one",
            type(provider).__name__,
        )
        return
    try:
        if target in _attached:
            return
        _attached.add(target)
    except TypeError:  # not weak-referenceable
        if id(target) in _attached_ids:
            return
        _attached_ids.add(id(target))
    target.add_span_processor(_pricer)
    logger.debug("dexcost prices GenAI spans on %s", type(target).__name__)


def _hook_provider_setter() -> None:
    """Wrap the API's private setter so a provider set after ``init()`` gets the pricer.

    ``trace.set_tracer_provider`` and the ``OTEL_PYTHON_TRACER_PROVIDER`` path both go
    through ``opentelemetry.trace._set_tracer_provider``, looked up at call time. If a
    release renames it, the pricer attaches only at ``init()``.
    """
    global _setter_hook
    original = getattr(trace_api, "_set_tracer_provider", None)
    if _setter_hook is not None or not callable(original):
        return

    def set_tracer_provider(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        try:
            if _pricer.active:
                with _lock:
                    _attach(trace_api.get_tracer_provider())
        except Exception:
            errors.log_internal_error("attaching the GenAI span pricer to a new provider")
        return result

    _setter_hook = (original, set_tracer_provider)
    trace_api._set_tracer_provider = set_tracer_provider


def _unhook_provider_setter() -> None:
    global _setter_hook
    if _setter_hook is None:
        return
    original, wrapper = _setter_hook
    _setter_hook = None
    # Left in place when another library wrapped it after dexcost. It then only passes through.
    if getattr(trace_api, "_set_tracer_provider", None) is wrapper:
        trace_api._set_tracer_provider = original
