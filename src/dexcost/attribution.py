"""Attribution: who a cost is for, carried in the OpenTelemetry context.

``set_context`` stores a :class:`DexcostContext` under a dexcost-private context key,
which no propagator reads or writes, and mirrors the values into W3C baggage as
``dexcost.*`` entries so other OTel tools in the process can see them. dexcost reads
attribution only from the private key, so baggage sent by a remote caller cannot
bill its work to another customer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from types import MappingProxyType

from opentelemetry import baggage
from opentelemetry import context as otel_context

from dexcost import semconv
from dexcost.errors import warn_user

_ATTRIBUTION_KEY = otel_context.create_key("dexcost.attribution")

# Bounds keep baggage valid under the W3C limits (8,192 bytes per header).
MAX_METADATA_ITEMS = 32
MAX_VALUE_LENGTH = 256


@dataclass(frozen=True)
class DexcostContext:
    """The attribution in effect: customer, project, agent and free-form metadata."""

    customer_id: str | None = None
    project_id: str | None = None
    agent: str | None = None
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def is_empty(self) -> bool:
        return not (self.customer_id or self.project_id or self.agent or self.metadata)


_EMPTY = DexcostContext()


def _as_string(name: str, value: object) -> str:
    if isinstance(value, str):
        return value
    warn_user(
        f"dexcost: {name} should be a string; {type(value).__name__} {value!r} was "
        f"converted with str()"
    )
    return str(value)


def _clean_id(name: str, value: object) -> str | None:
    """Return an attribution id as a string of at most MAX_VALUE_LENGTH characters.

    A longer id is replaced by ``sha256:<hex digest>`` rather than cut, because two
    ids that differ only past the cut would otherwise be billed as one customer.
    """
    if value is None:
        return None
    text = _as_string(name, value)
    if len(text) > MAX_VALUE_LENGTH:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        warn_user(
            f"dexcost: {name} is {len(text)} characters long (limit {MAX_VALUE_LENGTH}); it "
            f"is recorded as sha256:{digest[:12]}…, its SHA-256 digest"
        )
        return f"sha256:{digest}"
    return text


def _clean_value(name: str, value: object) -> str:
    """Return a metadata value as a string, cut to MAX_VALUE_LENGTH characters."""
    text = _as_string(name, value)
    if len(text) > MAX_VALUE_LENGTH:
        warn_user(
            f"dexcost: {name} is {len(text)} characters long; it was cut to {MAX_VALUE_LENGTH}"
        )
        text = text[:MAX_VALUE_LENGTH]
    return text


def _clean_metadata(metadata: object) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(
            f"metadata must be a dict of strings, got {type(metadata).__name__} {metadata!r}"
        )
    cleaned: dict[str, str] = {}
    for key, value in metadata.items():
        if len(cleaned) >= MAX_METADATA_ITEMS:
            warn_user(
                f"dexcost: metadata has {len(metadata)} entries; only the first "
                f"{MAX_METADATA_ITEMS} are kept"
            )
            break
        if value is None:
            continue
        clean_key = _clean_value("metadata key", key)
        if clean_key:
            cleaned[clean_key] = _clean_value(f"metadata[{key!r}]", value)
    return cleaned


def current_attribution(ctx: otel_context.Context | None = None) -> DexcostContext:
    """Return the attribution stored in ``ctx`` (the current context by default).

    Attribution set in this process always wins. Baggage that arrived with an inbound
    request counts only with ``trust_inbound_context=True``, because otherwise a
    client could bill its work to another customer by sending a header.
    """
    value = otel_context.get_value(_ATTRIBUTION_KEY, ctx)
    if isinstance(value, DexcostContext):
        return value
    if _privacy.trust_inbound_context:
        return inbound_attribution(ctx)
    return _EMPTY


def inbound_attribution(ctx: otel_context.Context | None = None) -> DexcostContext:
    """Return the attribution carried by ``dexcost.*`` baggage entries in ``ctx``.

    The values go through the same checks as :func:`set_context` (lengths, metadata
    count), so a remote caller cannot send what local code could not set.
    """
    entries = baggage.get_all(ctx)
    if not entries:
        return _EMPTY
    fields: dict[str, object] = {}
    metadata: dict[str, object] = {}
    for key, value in entries.items():
        if not key.startswith("dexcost."):
            continue
        if key.startswith(semconv.METADATA_PREFIX):
            metadata[key[len(semconv.METADATA_PREFIX) :]] = value
        elif key == semconv.CUSTOMER_ID:
            fields["customer_id"] = value
        elif key == semconv.PROJECT_ID:
            fields["project_id"] = value
        elif key == semconv.AGENT:
            fields["agent"] = value
    if not fields and not metadata:
        return _EMPTY
    return merged(_EMPTY, metadata=metadata or None, **fields)


def merged(
    base: DexcostContext,
    *,
    customer_id: object = None,
    project_id: object = None,
    agent: object = None,
    metadata: object = None,
) -> DexcostContext:
    """Return ``base`` with the given non-None fields replaced and metadata merged."""
    changes: dict[str, object] = {}
    if customer_id is not None:
        changes["customer_id"] = _clean_id("customer_id", customer_id)
    if project_id is not None:
        changes["project_id"] = _clean_id("project_id", project_id)
    if agent is not None:
        changes["agent"] = _clean_id("agent", agent)
    if metadata is not None:
        combined = dict(base.metadata)
        for key, value in _clean_metadata(metadata).items():
            if key in combined or len(combined) < MAX_METADATA_ITEMS:
                combined[key] = value
            else:
                # The cap holds for everything merged over several calls, not per call:
                # unbounded metadata would crowd the span's own attributes out.
                warn_user(
                    f"dexcost: metadata already has {MAX_METADATA_ITEMS} entries; {key!r} and "
                    "later new keys are not kept. Call clear_context() to start over"
                )
                break
        changes["metadata"] = MappingProxyType(combined)
    return replace(base, **changes) if changes else base  # type: ignore[arg-type]


@dataclass(frozen=True)
class Privacy:
    """The ``init()`` settings that change attribution values before they leave dexcost."""

    hash_customer_id: bool = False
    redacted_fields: frozenset[str] = frozenset()
    trust_inbound_context: bool = False


_privacy = Privacy()


def set_privacy(privacy: Privacy) -> None:
    """Apply ``privacy`` to attribution recorded or put in baggage from now on."""
    global _privacy
    _privacy = privacy


def privacy() -> Privacy:
    return _privacy


@lru_cache(maxsize=4096)
def hash_customer_id(customer_id: str) -> str:
    """Return the SHA-256 hex digest that replaces a customer id when hashing is on."""
    return hashlib.sha256(customer_id.encode("utf-8")).hexdigest()


def with_attribution(
    attribution: DexcostContext, ctx: otel_context.Context | None = None
) -> otel_context.Context:
    """Return a context carrying ``attribution`` under the private key and in baggage.

    Baggage gets the values as they would be stored: a hashed customer id when
    ``hash_customer_id`` is on, and no metadata entry named in ``redact_fields``,
    because baggage can be propagated out of the process by the app's own tracing.
    """
    ctx = otel_context.set_value(_ATTRIBUTION_KEY, attribution, ctx)
    for key in list(baggage.get_all(ctx)):
        if key.startswith("dexcost."):
            ctx = baggage.remove_baggage(key, ctx)
    settings = _privacy
    customer_id = attribution.customer_id
    if customer_id is not None and settings.hash_customer_id:
        customer_id = hash_customer_id(customer_id)
    pairs = (
        (semconv.CUSTOMER_ID, customer_id),
        (semconv.PROJECT_ID, attribution.project_id),
        (semconv.AGENT, attribution.agent),
    )
    for key, value in pairs:
        if value is not None:
            ctx = baggage.set_baggage(key, value, ctx)
    for meta_key, meta_value in attribution.metadata.items():
        if meta_key not in settings.redacted_fields:
            ctx = baggage.set_baggage(semconv.METADATA_PREFIX + meta_key, meta_value, ctx)
    return ctx


def set_context(
    customer_id: str | None = None,
    project_id: str | None = None,
    metadata: Mapping[str, str] | None = None,
    agent: str | None = None,
) -> DexcostContext:
    """Attach attribution to the current context; later calls in this thread or task inherit it.

    Fields left as None keep their current value and ``metadata`` is merged into the
    existing metadata. Use :func:`clear_context` to remove everything.
    """
    attribution = merged(
        current_attribution(),
        customer_id=customer_id,
        project_id=project_id,
        agent=agent,
        metadata=metadata,
    )
    # The token is dropped on purpose: set_context changes the context for the rest of
    # this thread or asyncio task, like assigning a variable.
    otel_context.attach(with_attribution(attribution))
    return attribution


class ContextScope:
    """The object :func:`context` returns: attribution for a ``with`` block, sync or async."""

    def __init__(
        self,
        customer_id: str | None,
        project_id: str | None,
        metadata: Mapping[str, str] | None,
        agent: str | None,
    ) -> None:
        self._fields = {
            "customer_id": customer_id,
            "project_id": project_id,
            "metadata": metadata,
            "agent": agent,
        }
        self._tokens: list[object] = []

    def __enter__(self) -> DexcostContext:
        attribution = merged(current_attribution(), **self._fields)
        self._tokens.append(otel_context.attach(with_attribution(attribution)))
        return attribution

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        otel_context.detach(self._tokens.pop())  # type: ignore[arg-type]

    async def __aenter__(self) -> DexcostContext:
        return self.__enter__()

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.__exit__(exc_type, exc, tb)


def context(
    customer_id: str | None = None,
    project_id: str | None = None,
    metadata: Mapping[str, str] | None = None,
    agent: str | None = None,
) -> ContextScope:
    """Set attribution for a block: ``with dexcost.context(customer_id="acme"):``.

    Inside the block the attribution is merged as by :func:`set_context`; on exit the
    attribution in effect before the block comes back, including after an exception.
    Call ``context(...)`` for each block: one returned object must not be entered by
    several threads or asyncio tasks at once.
    """
    return ContextScope(customer_id, project_id, metadata, agent)


def get_context() -> DexcostContext | None:
    """Return the attribution in effect, or None when none is set."""
    attribution = current_attribution()
    return None if attribution.is_empty() else attribution


def clear_context() -> None:
    """Remove dexcost attribution from the current context and its baggage."""
    otel_context.attach(with_attribution(_EMPTY))
