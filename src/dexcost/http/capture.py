"""The part of HTTP capture every client library shares: match, plan, price, record.

A client wrapper calls :func:`plan` to learn whether a catalog entry (or a user rate
for its host) bills a request. For most requests it returns None after one cached
dict lookup, and the wrapper then only passes the call through. A matched request
gets a :class:`Plan`, made on the caller's thread so it contains the attribution and
task in effect there. The wrapper sends the request outside any guard and hands the
outcome to :meth:`Plan.record_response` or :meth:`Plan.record_failure`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry.context import (
    _SUPPRESS_HTTP_INSTRUMENTATION_KEY,
    _SUPPRESS_INSTRUMENTATION_KEY,
)
from opentelemetry.trace import SpanKind, get_current_span

from dexcost import errors, semconv
from dexcost.attribution import current_attribution
from dexcost.catalog.matching import Matcher
from dexcost.catalog.pricing import (
    cost_of,
    is_billed,
    needs_request_body,
    needs_response_body,
    read_units,
)
from dexcost.catalog.schema import (
    FIXED,
    RESPONSE_HEADER,
    Catalog,
    CatalogEntry,
    UnitsFrom,
)
from dexcost.events import EXTERNAL, AttributeValue, emit_event
from dexcost.llm import sdk_call_in_progress
from dexcost.rates import registry as rates_registry
from dexcost.runtime import current_runtime
from dexcost.tasks import resolve_task

if TYPE_CHECKING:
    from opentelemetry.context import Context

    from dexcost.runtime import Runtime
    from dexcost.tasks import TrackedTask

logger = logging.getLogger(__name__)

# Bodies larger than this are not parsed for a unit count (usage_unknown instead):
# parsing them would cost the application more time than the event is worth.
MAX_BODY_BYTES: Final = 1_000_000

# Set while a captured request is being sent, so the client library below the one
# that captured it (urllib3 under requests or botocore) does not capture it again.
_IN_CAPTURE: ContextVar[bool] = ContextVar("dexcost_http_in_capture", default=False)

# scheme://[userinfo@]host[:port] then the path up to the query or fragment. One
# regex match is faster here than urllib.parse or a chain of string searches.
_URL: Final = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?(\[[^\]]*\]|[^:/?#]*)[^/?#]*([^?#]*)"
)


def split_url(url: str) -> tuple[str | None, str]:
    """Return the host (None for a relative URL) and the path, without query, of ``url``."""
    found = _URL.match(url)
    if found is None:
        return None, path_only(url)
    host = found[1]
    if host.startswith("["):
        host = host[1:-1]
    return host, found[2] or "/"


def path_only(target: str) -> str:
    """Return a request target (``/search?q=x``) without its query and fragment."""
    for separator in "?#":
        index = target.find(separator)
        if index != -1:
            target = target[:index]
    if not target.startswith("/"):
        target = "/" + target
    return target


@dataclass(frozen=True, slots=True)
class _State:
    matcher: Matcher
    # dexcost.pricing.source of a cost priced from the catalog.
    source: str
    # Services the user stored a rate for; they win over the catalog's price.
    user_services: frozenset[str]


_state: _State | None = None


def configure(
    catalog: Catalog, bundled_matcher: Matcher | None, user_services: Iterable[str]
) -> None:
    """Make ``catalog`` (with the user's stored service rates) the one requests match."""
    global _state
    services = frozenset(user_services)
    # A rate stored under a host name bills requests to that host even where the
    # catalog has no entry. Such hosts are matched after the catalog's entries.
    extra = tuple(_user_host_entry(name) for name in sorted(services) if _is_host(name))
    if extra or bundled_matcher is None:
        matcher = Matcher((*catalog.entries, *extra))
    else:
        matcher = bundled_matcher
    _state = _State(matcher, f"catalog {catalog.catalog_version}", services)


def clear() -> None:
    """Stop matching requests; wrappers still installed then only pass calls through."""
    global _state
    _state = None


def is_configured() -> bool:
    return _state is not None


def _is_host(name: str) -> bool:
    return "." in name and "/" not in name and " " not in name


def _user_host_entry(host: str) -> CatalogEntry:
    """Build the entry of a host the user stored a rate for: each request is one unit."""
    return CatalogEntry(
        id=host,
        name=host,
        category="other",
        hosts=(host.lower(),),
        paths=None,
        methods=None,
        pricing_model="per_request",
        unit="request",
        units_from=UnitsFrom(FIXED, units=1),
        price_usd=Decimal(0),
        per=1,
        bills_failed_requests=False,
        source_url="https://dexcost.invalid/user-rates",
        checked="1970-01-01",
    )


def in_capture() -> bool:
    """Tell whether a request is already being captured further up this call."""
    return _IN_CAPTURE.get()


def enter() -> Any:
    """Mark the current context as sending a captured request; returns the reset token."""
    return _IN_CAPTURE.set(True)


def leave(token: Any) -> None:
    _IN_CAPTURE.reset(token)


def plan(method: str, host: str | None, path: str | Callable[[], str]) -> Plan | None:
    """Return the plan of a billed request, or None to let it pass with no event.

    ``path`` may be a function, called only for a host the catalog knows, so an
    unmatched request never pays for parsing its path.
    """
    state = _state
    if state is None or host is None or not state.matcher.has_host(host):
        return None
    if not isinstance(path, str):
        path = path()
    entry = state.matcher.match(host, path, method.upper())
    if entry is None:
        return None
    current = otel_context.get_current()
    if (
        current.get(_SUPPRESS_INSTRUMENTATION_KEY)
        or (current.get(_SUPPRESS_HTTP_INSTRUMENTATION_KEY) and not _in_client_span(current))
        or sdk_call_in_progress(current)
    ):
        return None
    runtime = current_runtime()
    if runtime is None:
        return None
    return Plan(runtime, state, entry, method.upper(), host.lower(), path, current)


def _in_client_span(current: Context) -> bool:
    """Tell whether an HTTP client instrumentation above this call suppressed HTTP tracing.

    The OpenTelemetry requests instrumentation sets the HTTP suppression key around
    the call it traces, so the layers below do not trace the request twice. When it
    wraps dexcost's patch, that key must not stop dexcost from pricing the request.
    The span it started is then current: a recording client span.
    """
    span = get_current_span(current)
    return span.is_recording() and getattr(span, "kind", None) is SpanKind.CLIENT


class Plan:
    """A matched request in flight; records at most one ``external_cost`` event."""

    __slots__ = (
        "attribution",
        "entry",
        "host",
        "method",
        "parent",
        "path",
        "runtime",
        "start_ns",
        "state",
        "task",
    )

    def __init__(
        self,
        runtime: Runtime,
        state: _State,
        entry: CatalogEntry,
        method: str,
        host: str,
        path: str,
        current: Context,
    ) -> None:
        self.start_ns = time.time_ns()
        self.runtime = runtime
        self.state = state
        self.entry = entry
        self.method = method
        self.host = host
        self.path = path
        self.attribution = current_attribution(current)
        self.task: TrackedTask = resolve_task(runtime, current, self.attribution)
        self.parent = self.task.event_parent(current)

    @property
    def units_from(self) -> UnitsFrom:
        return self.entry.units_from

    def wants_response_body(self, status: int) -> bool:
        """Tell whether the unit count needs the response body of a ``status`` reply."""
        return needs_response_body(self.entry.units_from) and is_billed(self.entry, status)

    def wants_request_body(self) -> bool:
        return needs_request_body(self.entry.units_from)

    def header_name(self) -> str | None:
        units_from = self.entry.units_from
        return units_from.name if units_from.kind == RESPONSE_HEADER else None

    def record_response(
        self,
        status: int,
        *,
        headers: Mapping[str, Any] | None = None,
        response_json: Any = None,
        request_json: Any = None,
    ) -> None:
        """Price and record a request that got a response with ``status``."""
        entry = self.entry
        units: Decimal | None
        if not is_billed(entry, status):
            units = Decimal(0)
        else:
            name = self.header_name()
            header = headers.get(name) if name is not None and headers is not None else None
            units = read_units(
                entry.units_from,
                header=header if isinstance(header, str) else None,
                response_json=response_json,
                request_json=request_json,
            )
        error = str(status) if status >= 400 else None
        self._emit(units, status, error)

    def record_failure(self, exc: BaseException) -> None:
        """Record a request that raised before a response, if the service bills those.

        Without a response the units are unknown, even for a fixed count: whether
        the service charged a request that never got an answer is not known.
        """
        if self.entry.bills_failed_requests:
            self._emit(None, None, type(exc).__qualname__)

    def _emit(self, units: Decimal | None, status: int | None, error_type: str | None) -> None:
        entry = self.entry
        attributes: dict[str, AttributeValue] = {
            semconv.SERVICE: entry.id,
            semconv.UNIT: entry.unit,
            semconv.HTTP_REQUEST_METHOD: self.method,
            semconv.SERVER_ADDRESS: self.host,
            semconv.URL_PATH: self.path,
        }
        if status is not None:
            attributes[semconv.HTTP_STATUS_CODE] = status
        cost: Decimal | None = None
        source: str | None = None
        if units is not None:
            whole = units == units.to_integral_value()
            attributes[semconv.UNITS] = int(units) if whole else float(units)
            cost, source = self._price(units)
        runtime = current_runtime() or self.runtime
        emit_event(
            runtime,
            name=f"external_cost {entry.id}",
            event_type=semconv.EXTERNAL_COST,
            attributes=attributes,
            attribution=self.attribution,
            task=self.task,
            cost=cost,
            cost_status=semconv.PRICED if cost is not None else semconv.USAGE_UNKNOWN,
            cost_kind=EXTERNAL,
            pricing_source=source,
            parent=self.parent,
            start_ns=self.start_ns,
            error_type=error_type,
        )

    def _price(self, units: Decimal) -> tuple[Decimal, str]:
        entry = self.entry
        user_services = self.state.user_services
        if user_services:
            for name in (entry.id, self.host):
                if name in user_services:
                    priced = rates_registry.price_service_usage(name, units)
                    if priced is not None:
                        return priced
        return cost_of(entry, units), self.state.source


def decode_json(body: bytes | str | None) -> Any:
    """Decode a JSON body of at most MAX_BODY_BYTES; None when it is absent or not JSON."""
    if body is None or len(body) > MAX_BODY_BYTES or not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def guarded(step: str, action: Callable[..., None], *args: Any) -> None:
    """Run dexcost's own ``action(*args)``, logging a failure instead of raising it."""
    try:
        action(*args)
    except Exception:
        errors.log_internal_error(step)


def send_captured(
    wrapped: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    record: Callable[[Any], None],
    record_failure: Callable[[BaseException], None],
    step: str,
    failed_step: str,
) -> Any:
    """Call ``wrapped`` with the context marked as in capture, then record the outcome.

    ``record`` receives the result and ``record_failure`` the exception, which is then
    re-raised. Both run through :func:`guarded` with ``step`` or ``failed_step`` as the
    logged step, and only after the mark is cleared.
    """
    token = enter()
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        leave(token)
        guarded(failed_step, record_failure, exc)
        raise
    leave(token)
    guarded(step, record, result)
    return result


async def send_captured_async(
    wrapped: Callable[..., Coroutine[Any, Any, Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    record: Callable[[Any], None],
    record_failure: Callable[[BaseException], None],
    step: str,
    failed_step: str,
) -> Any:
    """Await ``wrapped`` like :func:`send_captured` calls it, with the same recording."""
    token = enter()
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        leave(token)
        guarded(failed_step, record_failure, exc)
        raise
    leave(token)
    guarded(step, record, result)
    return result
