"""The part of HTTP capture every client library shares: match, plan, price, record.

A client wrapper calls :func:`lookup` (or :func:`lookup_url`) with the request's host.
For most requests it returns None after one dict lookup, and the wrapper then only
passes the call through. For a host the catalog lists, :meth:`Host.plan` matches the
path and returns a :class:`Plan` for a billed request, made on the caller's thread so
it keeps the context (attribution, task, parent span) in effect there. The wrapper sends the request
with :func:`send_captured`, outside any guard, which hands the outcome to the
client's record function or to :meth:`Plan.record_failure`.

The match result for each host, and the pricing facts of each entry, are computed once
per configuration: a new catalog or new user rates replace the whole state, caches
included, in one assignment.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from contextvars import ContextVar
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Literal

from opentelemetry import context as otel_context
from opentelemetry.context import (
    _SUPPRESS_HTTP_INSTRUMENTATION_KEY,
    _SUPPRESS_INSTRUMENTATION_KEY,
)
from opentelemetry.trace import SpanKind, get_current_span

from dexcost import errors
from dexcost.attribution import current_attribution
from dexcost.catalog.matching import Matcher, Route
from dexcost.catalog.pricing import FIRST_FAILED_STATUS, cost_of, read_units
from dexcost.catalog.schema import (
    FIXED,
    REQUEST_JSON_COUNT,
    RESPONSE_HEADER,
    RESPONSE_JSON,
    Catalog,
    CatalogEntry,
    UnitsFrom,
)
from dexcost.events import (
    EXTERNAL,
    NO_TOKENS,
    AttributeValue,
    DeferredEvent,
    PendingEvent,
    build_span,
    make_event,
)
from dexcost.llm import sdk_call_in_progress
from dexcost.rates import registry as rates_registry
from dexcost.runtime import current_runtime
from dexcost.semconv import (
    EXTERNAL_COST,
    HTTP_REQUEST_METHOD,
    HTTP_STATUS_CODE,
    PRICED,
    SERVER_ADDRESS,
    SERVICE,
    UNIT,
    UNITS,
    URL_PATH,
    USAGE_UNKNOWN,
)
from dexcost.tasks import resolve_task

if TYPE_CHECKING:
    from opentelemetry.context import Context

    from dexcost.runtime import Runtime

# Bodies larger than this are not parsed for a unit count (usage_unknown instead):
# parsing them would cost the application more time than the event is worth.
MAX_BODY_BYTES: Final = 1_000_000

# Hosts (and URL authorities) whose match result is cached. A cache is emptied when it is
# full, so a process that calls many hosts (a crawler) keeps a bounded memory.
_CACHE_LIMIT: Final = 4096
# Paths per host whose match result is cached; paths with ids would grow it forever.
_PATHS_PER_HOST: Final = 1024

# Set while a captured request is being sent, so the client library below the one
# that captured it (urllib3 under requests or botocore) does not capture it again.
# Wrappers read it directly: a call to a function around it costs more than the read.
IN_CAPTURE: ContextVar[bool] = ContextVar("dexcost_http_in_capture", default=False)

# scheme://[userinfo@] then the authority (host[:port]), then the path up to the query
# or fragment. One regex match is faster here than urllib.parse or string searches.
_URL: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?([^/?#]*)([^?#]*)")


# The first part of an http(s) URL split at "/", as lookup_url's fast path reads it.
_WEB_SCHEMES: Final = frozenset(("http:", "https:"))


def split_url(url: str) -> tuple[str | None, str]:
    """Return the host (None for a relative URL) and the path, without query, of ``url``."""
    found = _URL.match(url)
    if found is None:
        return None, path_only(url)
    return _host_of(found[1]), found[2] or "/"


def path_only(target: str) -> str:
    """Return a request target (``/search?q=x``) without its query and fragment."""
    for separator in "?#":
        index = target.find(separator)
        if index != -1:
            target = target[:index]
    if not target.startswith("/"):
        target = "/" + target
    return target


def _host_of(authority: str) -> str:
    """Return the host of ``host[:port]`` or ``[v6 address][:port]``, without brackets."""
    if authority.startswith("["):
        end = authority.find("]")
        return authority[1:end] if end != -1 else authority[1:]
    colon = authority.find(":")
    return authority if colon == -1 else authority[:colon]


class _Rule:
    """The facts needed to record a request of one entry, computed once per entry."""

    __slots__ = (
        "bills_failed",
        "entry",
        "event_name",
        "fixed_cost",
        "fixed_units",
        "fixed_units_attribute",
        "header",
        "reads_request",
        "reads_response",
        "units_from",
    )

    def __init__(self, entry: CatalogEntry) -> None:
        units_from = entry.units_from
        self.entry = entry
        self.units_from = units_from
        self.bills_failed = entry.bills_failed_requests
        self.event_name = f"external_cost {entry.id}"
        self.reads_response = units_from.kind == RESPONSE_JSON
        self.reads_request = units_from.kind == REQUEST_JSON_COUNT
        self.header = units_from.name if units_from.kind == RESPONSE_HEADER else None
        self.fixed_units: Decimal | None = None
        self.fixed_units_attribute: int | float = 0
        self.fixed_cost = Decimal(0)
        if units_from.kind == FIXED:
            units = Decimal(units_from.units)
            self.fixed_units = units
            self.fixed_units_attribute = units_attribute(units)
            self.fixed_cost = cost_of(entry, units)


class _State:
    """One configuration: the matcher, the pricing source and what was learnt from them."""

    __slots__ = ("authorities", "hosts", "matcher", "rules", "source", "user_services")

    def __init__(self, matcher: Matcher, source: str, user_services: frozenset[str]) -> None:
        self.matcher = matcher
        # dexcost.pricing.source of a cost priced from the catalog.
        self.source = source
        # Services the user stored a rate for; they win over the catalog's price.
        self.user_services = user_services
        # Host or URL authority -> its Host, or False when no entry bills it.
        self.hosts: dict[str, Host | Literal[False]] = {}
        self.authorities: dict[str, Host | Literal[False]] = {}
        self.rules: dict[int, _Rule] = {}

    def learn_host(self, host: str) -> Host | Literal[False]:
        routes = self.matcher.routes(host)
        found: Host | Literal[False] = False
        if routes:
            found = Host(self, host, tuple((route, self._rule(route.entry)) for route in routes))
        hosts = self.hosts
        if len(hosts) >= _CACHE_LIMIT:
            hosts = self.hosts = {}
        hosts[host] = found
        return found

    def learn_authority(self, authority: str) -> Host | Literal[False]:
        host = _host_of(authority)
        found = self.hosts.get(host)
        if found is None:
            found = self.learn_host(host)
        if "@" in authority:
            # Not cached: lookup_url's fast path compares everything between "://"
            # and the first "/" with the cached authorities, user name included.
            return found
        authorities = self.authorities
        if len(authorities) >= _CACHE_LIMIT:
            authorities = self.authorities = {}
        authorities[authority] = found
        return found

    def _rule(self, entry: CatalogEntry) -> _Rule:
        # Keyed by identity: the matcher keeps every entry alive as long as this state.
        rule = self.rules.get(id(entry))
        if rule is None:
            rule = self.rules[id(entry)] = _Rule(entry)
        return rule


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
    return IN_CAPTURE.get()


def enter() -> Any:
    """Mark the current context as sending a captured request; returns the reset token."""
    return IN_CAPTURE.set(True)


def leave(token: Any) -> None:
    IN_CAPTURE.reset(token)


def lookup(host: str | None) -> Host | None:
    """Return the :class:`Host` of a host some entry bills, else None (the common case)."""
    state = _state
    if state is None or host is None:
        return None
    found = state.hosts.get(host)
    if found is None:
        found = state.learn_host(host)
    return found or None


def lookup_url(url: str) -> tuple[Host, str] | None:
    """Return the :class:`Host` and path of an absolute URL to a billed host, else None.

    None is the common case. The path has no query string.
    """
    state = _state
    if state is None:
        return None
    # The common case first: an http(s) URL with a path whose authority was seen
    # before. One split costs half of the regex match: "http:", "", authority, rest.
    parts = url.split("/", 3)
    if len(parts) == 4 and parts[0] in _WEB_SCHEMES and not parts[1]:
        cached = state.authorities.get(parts[2])
        if cached is False:
            return None
        if cached is not None:
            rest = parts[3]
            end = rest.find("?")
            if end != -1:
                rest = rest[:end]
            end = rest.find("#")
            if end != -1:
                rest = rest[:end]
            return cached, "/" + rest
    found = _URL.match(url)
    if found is None:
        return None
    authority = found[1]
    host = state.authorities.get(authority)
    if host is None:
        host = state.learn_authority(authority)
    if host is False:
        return None
    return host, found[2] or "/"


def plan(method: str, host: str | None, path: str | Callable[[], str]) -> Plan | None:
    """Return the plan of a billed request, or None to let it pass with no event.

    ``path`` may be a function, called only for a host the catalog lists, so an
    unmatched request never pays for parsing its path.
    """
    found = lookup(host)
    if found is None:
        return None
    return found.plan(method, path if isinstance(path, str) else path())


class Host:
    """A host some entry bills: its routes in matching order, with their entries' rules.

    The match result for each method and path is cached, so a request that repeats one
    (the common case: an API has a few endpoints) costs one dict lookup.
    """

    __slots__ = ("answers", "name", "routes", "state")

    def __init__(self, state: _State, host: str, routes: tuple[tuple[Route, _Rule], ...]) -> None:
        self.state = state
        self.name = host.lower()
        self.routes = routes
        # (method, path) -> the rule of the entry billing it, or False for none.
        self.answers: dict[tuple[str, str], _Rule | Literal[False]] = {}

    def plan(self, method: str, path: str) -> Plan | None:
        """Return the plan of a billed ``method`` ``path`` request, or None.

        ``path`` has no query string.
        """
        rule = self.answers.get((method, path))
        if rule is None:
            rule = self._answer(method, path)
        if rule is False:
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
        return Plan(runtime, self, rule, method.upper(), path, current)

    def _answer(self, method: str, path: str) -> _Rule | Literal[False]:
        upper = method.upper()
        found: _Rule | Literal[False] = False
        for route, rule in self.routes:
            if route.accepts(path, upper):
                found = rule
                break
        answers = self.answers
        if len(answers) >= _PATHS_PER_HOST:
            answers = self.answers = {}
        answers[method, path] = found
        return found


def _in_client_span(current: Context) -> bool:
    """Tell whether an HTTP client instrumentation above this call suppressed HTTP tracing.

    The OpenTelemetry requests instrumentation sets the HTTP suppression key around
    the call it traces, so the layers below do not trace the request twice. When it
    wraps dexcost's patch, that key must not stop dexcost from pricing the request.
    The span it started is then current: a recording client span.
    """
    span = get_current_span(current)
    return span.is_recording() and getattr(span, "kind", None) is SpanKind.CLIENT


class Plan(DeferredEvent):
    """A matched request in flight; records at most one ``external_cost`` event.

    ``sent`` and ``streamed`` are set by the client wrapper for its record function:
    what it sent (the request, or its body) and whether the caller streams the reply.

    The application's thread keeps the context and times of the request and the
    reply's status and body. When the event goes only to the buffer, the count, the
    price, the attribution and the task are worked out later (:class:`DeferredEvent`),
    else right away.
    """

    __slots__ = (
        "context",
        "counted",
        "end_ns",
        "error_type",
        "header",
        "host",
        "method",
        "path",
        "request_body",
        "response_body",
        "rule",
        "sent",
        "start_ns",
        "status",
        "streamed",
        "units",
    )

    def __init__(
        self,
        runtime: Runtime,
        host: Host,
        rule: _Rule,
        method: str,
        path: str,
        current: Context,
    ) -> None:
        self.start_ns = time.time_ns()
        # DeferredEvent's fields, set here: one call less per matched request.
        self.runtime = runtime
        self.event = None
        self.settled = False
        self.host = host
        self.rule = rule
        self.method = method
        self.path = path
        self.context = current
        self.sent: Any = None
        self.streamed = False

    @property
    def entry(self) -> CatalogEntry:
        return self.rule.entry

    @property
    def units_from(self) -> UnitsFrom:
        return self.rule.units_from

    def wants_response_body(self, status: int) -> bool:
        """Tell whether the unit count needs the response body of a ``status`` reply."""
        rule = self.rule
        return rule.reads_response and (status < FIRST_FAILED_STATUS or rule.bills_failed)

    def wants_request_body(self) -> bool:
        return self.rule.reads_request

    def header_name(self) -> str | None:
        return self.rule.header

    def record_response(
        self,
        status: int,
        *,
        headers: Mapping[str, Any] | None = None,
        response_json: Any = None,
        request_json: Any = None,
        response_body: bytes | str | None = None,
        request_body: bytes | str | None = None,
    ) -> None:
        """Record a request that got a response with ``status``.

        The count comes from ``headers``, the decoded ``response_json`` or
        ``request_json``, or the raw ``response_body`` or ``request_body``, which are
        decoded only when the event is worked out. Only what the entry's rule reads
        is needed.
        """
        self.end_ns = time.time_ns()
        self.status: int | None = status
        self.error_type: str | None = str(status) if status >= FIRST_FAILED_STATUS else None
        name = self.rule.header
        header = headers.get(name) if name is not None and headers is not None else None
        self.header = header if isinstance(header, str) else None
        self.counted = False
        if response_json is not None or request_json is not None:
            # Decoded documents belong to the caller, who may change them after the
            # call (reuse a payload dict, pop a field of the reply), so they are read now.
            self.units = read_units(
                self.rule.units_from,
                header=self.header,
                response_json=response_json,
                request_json=request_json,
            )
            self.counted = True
        body_bytes = 0
        if response_body is not None:
            body_bytes = len(response_body)
            if body_bytes > MAX_BODY_BYTES:
                # Too large to read a count from: usage_unknown, as decode_json gives.
                response_body, body_bytes = None, 0
        if request_body is not None and len(request_body) <= MAX_BODY_BYTES:
            body_bytes += len(request_body)
        else:
            request_body = None
        self.response_body = response_body
        self.request_body = request_body
        self._submit(body_bytes)

    def record_failure(self, exc: BaseException) -> None:
        """Record a request that raised before a response, if the service bills those.

        Without a response the units are unknown, even for a fixed count: whether
        the service charged a request that never got an answer is not known.
        """
        if not self.rule.bills_failed:
            return
        self.end_ns = time.time_ns()
        self.status = None
        self.error_type = type(exc).__qualname__
        self.header = None
        self.counted = False
        self.response_body = self.request_body = None
        self._submit(0)

    def _submit(self, held_bytes: int) -> None:
        # The request, with its body, is the caller's: only what the count needs is kept.
        self.sent = None
        runtime = current_runtime() or self.runtime
        self.runtime = runtime
        if runtime.event_sink is not None:
            runtime.defer(self, held_bytes)
            return
        # A console, an export or an in-memory processor reads the span as it ends.
        self.settled = True
        event = self.work_out()
        runtime.span_processor.on_end(build_span(event))

    def work_out(self) -> PendingEvent:
        """Price the request, add its cost to its task and return its event."""
        rule = self.rule
        entry = rule.entry
        status = self.status
        units: Decimal | None
        if status is None:
            units = None
        elif status >= FIRST_FAILED_STATUS and not rule.bills_failed:
            units = _NOTHING
        else:
            units = rule.fixed_units
            if units is None and self.counted:
                units = self.units
            elif units is None:
                response_body = self.response_body
                request_body = self.request_body
                units = read_units(
                    rule.units_from,
                    header=self.header,
                    response_json=None if response_body is None else decode_json(response_body),
                    request_json=None if request_body is None else decode_json(request_body),
                )
        attributes: dict[str, AttributeValue] = {
            SERVICE: entry.id,
            UNIT: entry.unit,
            HTTP_REQUEST_METHOD: self.method,
            SERVER_ADDRESS: self.host.name,
            URL_PATH: self.path,
        }
        if status is not None:
            attributes[HTTP_STATUS_CODE] = status
        cost: Decimal | None = None
        source: str | None = None
        if units is not None:
            if units is rule.fixed_units and not self.host.state.user_services:
                # Priced once per entry.
                cost, source = rule.fixed_cost, self.host.state.source
                attributes[UNITS] = rule.fixed_units_attribute
            else:
                cost, source = self._price(units)
                attributes[UNITS] = units_attribute(units)
        runtime = self.runtime
        current = self.context
        attribution = current_attribution(current)
        task = resolve_task(runtime, current, attribution)
        cost_status = PRICED if cost is not None else USAGE_UNKNOWN
        event = make_event(
            runtime,
            name=rule.event_name,
            event_type=EXTERNAL_COST,
            attributes=attributes,
            attribution=attribution,
            task=task,
            cost=cost,
            cost_status=cost_status,
            pricing_source=source,
            parent=task.event_parent(current),
            start_ns=self.start_ns,
            end_ns=self.end_ns,
            error_type=self.error_type,
        )
        task.add_event(cost, cost_status, EXTERNAL, NO_TOKENS)
        if task.auto and runtime.stopped:
            task.end()
        # The queue may keep this object a while, so the bodies are released now.
        self.response_body = self.request_body = None
        return event

    def _price(self, units: Decimal) -> tuple[Decimal, str]:
        entry = self.rule.entry
        state = self.host.state
        user_services = state.user_services
        if user_services:
            for name in (entry.id, self.host.name):
                if name in user_services:
                    priced = rates_registry.price_service_usage(name, units)
                    if priced is not None:
                        return priced
        return cost_of(entry, units), state.source


_NOTHING: Final = Decimal(0)


def units_attribute(units: Decimal) -> int | float:
    """Return the ``dexcost.units`` attribute of ``units``: an int when it is whole."""
    return int(units) if units == units.to_integral_value() else float(units)


def decode_json(body: bytes | str | None) -> Any:
    """Decode a JSON body of at most MAX_BODY_BYTES; None when it is absent or not JSON."""
    if body is None or len(body) > MAX_BODY_BYTES or not body:
        return None
    try:
        if isinstance(body, bytes):
            # An object or array starts with "{" or "[": such a body has no byte order
            # mark and no NUL byte in front, so json.loads would read it as UTF-8 too.
            if body[0] in _OPENING_BYTES and body[1:2] != b"\x00":
                return _decode_text(body.decode("utf-8", "surrogatepass"))
        elif body[0] in "{[":
            return _decode_text(body)
        return json.loads(body)
    except (ValueError, RecursionError):
        # RecursionError: nesting deeper than the interpreter's recursion limit.
        return None


_OPENING_BYTES: Final = frozenset(b"{[")
# The scanner json.loads uses, which the stubs do not declare on JSONDecoder.
_scan_json: Final[Callable[[str, int], tuple[Any, int]]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _decode_text(text: str) -> Any:
    """Decode JSON text starting with "{" or "[", as ``json.loads`` would, in fewer steps.

    ``json.loads`` calls the same scanner after a few layers of Python that a body
    starting with "{" or "[" does not need.
    """
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        return None
    if end != len(text) and text[end:].strip(" \t\n\r"):
        return None  # Text follows the value, so this is not one JSON document.
    return value


def guarded(step: str, action: Callable[..., None], *args: Any) -> None:
    """Run dexcost's own ``action(*args)``, logging a failure instead of raising it."""
    try:
        action(*args)
    except Exception:
        errors.log_internal_error(step)


Record = Callable[[Plan, Any], None]
RecordFailure = Callable[[Plan, BaseException], None]


def send_captured(
    wrapped: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    matched: Plan,
    record: Record,
    steps: tuple[str, str],
    record_failure: RecordFailure = Plan.record_failure,
) -> Any:
    """Call ``wrapped`` with the context marked as in capture, then record the outcome.

    ``record(matched, result)`` receives the result and ``record_failure(matched, exc)``
    the exception, which is then re-raised. Both run only after the mark is cleared,
    and a failure of either is logged with ``steps`` (after a result, after an
    exception) instead of raised. They are module functions, not closures made per
    request.
    """
    token = IN_CAPTURE.set(True)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        IN_CAPTURE.reset(token)
        try:
            record_failure(matched, exc)
        except Exception:
            errors.log_internal_error(steps[1])
        raise
    IN_CAPTURE.reset(token)
    try:
        record(matched, result)
    except Exception:
        errors.log_internal_error(steps[0])
    return result


async def send_captured_async(
    wrapped: Callable[..., Coroutine[Any, Any, Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    matched: Plan,
    record: Record,
    steps: tuple[str, str],
    record_failure: RecordFailure = Plan.record_failure,
) -> Any:
    """Await ``wrapped`` like :func:`send_captured` calls it, with the same recording."""
    token = IN_CAPTURE.set(True)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        IN_CAPTURE.reset(token)
        try:
            record_failure(matched, exc)
        except Exception:
            errors.log_internal_error(steps[1])
        raise
    IN_CAPTURE.reset(token)
    try:
        record(matched, result)
    except Exception:
        errors.log_internal_error(steps[0])
    return result
