"""dexcost: what each AI agent task costs, per customer, as OpenTelemetry spans.

Call :func:`init` once at start-up; it patches the LLM SDKs the application uses and
records the exact cost of every call. Attribute costs with :func:`set_context` and
group them with :func:`task`.
"""

from __future__ import annotations

from dexcost._version import __version__
from dexcost.config import DexcostConfig
from dexcost.context import DexcostContext, clear_context, get_context, set_context
from dexcost.instrumentation.registry import ALL_SUPPORTED_INSTRUMENTS
from dexcost.runtime import flush, init, shutdown
from dexcost.tasks import TrackedTask, task

__all__ = [
    "ALL_SUPPORTED_INSTRUMENTS",
    "DexcostConfig",
    "DexcostContext",
    "TrackedTask",
    "__version__",
    "clear_context",
    "flush",
    "get_context",
    "init",
    "record_cost",
    "set_context",
    "shutdown",
    "task",
]


def record_cost(
    service: str,
    cost_usd: str | int | float | object,
    *,
    units: float | int | None = None,
    unit: str | None = None,
) -> None:
    """Record a non-LLM cost in the current task, or the session task outside any task."""
    from opentelemetry import context as otel_context

    from dexcost.context import current_attribution
    from dexcost.runtime import require_runtime
    from dexcost.tasks import resolve_task

    runtime = require_runtime()
    ctx = otel_context.get_current()
    tracked = resolve_task(runtime, ctx, current_attribution(ctx))
    tracked.record_cost(service, cost_usd, units=units, unit=unit)  # type: ignore[arg-type]
