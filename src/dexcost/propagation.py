"""Keeping dexcost attribution out of requests to other companies' servers.

Attribution lives in OpenTelemetry baggage. The application's own propagators would
copy it into the ``baggage`` header of every outgoing request its HTTP
instrumentation traces, including requests to LLM providers and paid APIs.

dexcost wraps ``W3CBaggagePropagator.inject``, the one place W3C baggage is written
whichever composite propagator the application configured. Entries named
``dexcost.*`` are left out unless the destination host is on the
``propagate_context_to`` allowlist. Other baggage is untouched.

The destination comes from the current client span, which the OpenTelemetry HTTP
instrumentations start before they inject (``server.address``, or the host of
``url.full`` / ``http.url``). When no host is known (a non-recording span, a
propagator called outside an HTTP client), dexcost's entries are left out.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context

from dexcost import errors

_PREFIX = "dexcost."
_HOST_ATTRIBUTES = ("server.address", "net.peer.name")
_URL_ATTRIBUTES = ("url.full", "http.url")

_lock = threading.Lock()
_allowed: tuple[str, ...] = ()
_original_inject: Any = None


# One DNS label: letters, digits and inner hyphens, at most 63 characters.
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_MAX_HOST_LENGTH = 253


def _is_host_name(text: str) -> bool:
    """Tell whether ``text`` is a host name (dot-separated DNS labels) or an IP address."""
    if not text or len(text) > _MAX_HOST_LENGTH:
        return False
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        pass
    return all(_LABEL.fullmatch(label) for label in text.split("."))


def check_host_pattern(pattern: str) -> str | None:
    """Return ``pattern`` normalised, or None when it is not a valid host pattern.

    Valid patterns: an exact host (``billing.internal.example.com``, ``10.0.0.7``),
    ``*.`` followed by a host (every subdomain of it, not the host itself), or ``*``.
    """
    text = pattern.strip().lower()
    if text == "*":
        return text
    if text.startswith("*."):
        suffix = text[2:].rstrip(".")
        return f"*.{suffix}" if _is_host_name(suffix) else None
    host = text.rstrip(".")
    return host if _is_host_name(host) else None


def normalise_patterns(patterns: Iterable[str]) -> tuple[str, ...]:
    """Return the valid patterns of ``patterns`` normalised; invalid ones are left out."""
    checked = (check_host_pattern(pattern) for pattern in patterns)
    return tuple(pattern for pattern in checked if pattern is not None)


def host_allowed(host: str | None, patterns: tuple[str, ...]) -> bool:
    """Tell whether ``host`` matches one of ``patterns`` (``api.example.com``, ``*.internal``).

    ``*.example.com`` matches every subdomain of example.com but not example.com
    itself; ``*`` matches every host. Nothing else is a wildcard.
    """
    if not host or not patterns:
        return False
    host = host.lower().rstrip(".")
    for pattern in patterns:
        if pattern == "*" or pattern == host:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def destination_host(ctx: otel_context.Context | None) -> str | None:
    """Return the host of the client request whose span is current in ``ctx``, if known."""
    span = trace.get_current_span(ctx)
    attributes = getattr(span, "attributes", None)
    if not attributes:
        return None
    for key in _HOST_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return value
    for key in _URL_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return urlsplit(value).hostname
    return None


def _without_dexcost(ctx: otel_context.Context | None) -> otel_context.Context | None:
    """Return ``ctx`` with the ``dexcost.*`` baggage removed, or None if it has none."""
    entries = baggage.get_all(ctx)
    ours = [key for key in entries if key.startswith(_PREFIX)]
    if not ours:
        return None
    stripped = ctx if ctx is not None else otel_context.get_current()
    for key in ours:
        stripped = baggage.remove_baggage(key, stripped)
    return stripped


def _filtered_inject(original: Callable[..., None]) -> Callable[..., None]:
    def inject(
        self: Any, carrier: Any, context: otel_context.Context | None = None, *args: Any, **kw: Any
    ) -> None:
        try:
            # Most requests carry no dexcost baggage: leave them as fast as possible.
            stripped = _without_dexcost(context)
            if stripped is not None:
                allowed = _allowed
                if not (allowed and host_allowed(destination_host(context), allowed)):
                    context = stripped
        except Exception:
            errors.log_internal_error("filtering outbound baggage")
            # Never send attribution on an error path: fall back to no baggage at all.
            return None
        return original(self, carrier, context, *args, **kw)

    inject.__wrapped__ = original  # type: ignore[attr-defined]
    return inject


def install(allowed_hosts: Iterable[str]) -> None:
    """Filter dexcost's baggage out of outbound requests, except to ``allowed_hosts``."""
    global _allowed, _original_inject
    from opentelemetry.baggage.propagation import W3CBaggagePropagator

    with _lock:
        _allowed = normalise_patterns(allowed_hosts)
        if _original_inject is None:
            _original_inject = W3CBaggagePropagator.inject
            W3CBaggagePropagator.inject = _filtered_inject(_original_inject)  # type: ignore[method-assign]


def uninstall() -> None:
    """Restore the propagator; dexcost's baggage then goes wherever the app sends baggage."""
    global _allowed, _original_inject
    from opentelemetry.baggage.propagation import W3CBaggagePropagator

    with _lock:
        _allowed = ()
        if _original_inject is not None:
            W3CBaggagePropagator.inject = _original_inject  # type: ignore[method-assign]
            _original_inject = None
