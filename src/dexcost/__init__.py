"""dexcost: what each AI agent task costs, per customer, as OpenTelemetry spans.

Call :func:`init` once at start-up; it patches the LLM SDKs the application uses and
records the exact cost of every call. Attribute costs with :func:`set_context` and
group them with :func:`task`.
"""

from __future__ import annotations

from dexcost._version import __version__
from dexcost.attribution import (
    DexcostContext,
    clear_context,
    context,
    get_context,
    set_context,
)
from dexcost.config import DexcostConfig
from dexcost.instrumentation.registry import ALL_SUPPORTED_INSTRUMENTS
from dexcost.pricing import register_model_price
from dexcost.runtime import flush, init, shutdown
from dexcost.tasks import (
    TrackedTask,
    mark_retry,
    record_cost,
    record_llm_call,
    record_usage,
    start_task,
    task,
)

__all__ = [
    "ALL_SUPPORTED_INSTRUMENTS",
    "DexcostConfig",
    "DexcostContext",
    "TrackedTask",
    "__version__",
    "clear_context",
    "context",
    "flush",
    "get_context",
    "init",
    "mark_retry",
    "record_cost",
    "record_llm_call",
    "record_usage",
    "register_model_price",
    "set_context",
    "shutdown",
    "start_task",
    "task",
]
