"""Readers shared by the providers' extract modules.

SDK responses may be model objects or plain dicts (raw responses, ``.parse(to=dict)``,
proxies), so every read goes through :func:`field`. Token counts are validated by
:func:`token_count`: a negative or non-integer count is a provider or proxy bug, and
pricing around it would under- or over-bill, so callers treat the whole usage as
unknown when :class:`InvalidUsage` is raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def field(obj: Any, name: str) -> Any:
    """Return ``obj.name`` or ``obj[name]``, or None when absent."""
    if obj is None:
        return None
    # SDK models first: isinstance against the Mapping ABC is slow on the hot path.
    value = getattr(obj, name, None)
    if value is not None or (type(obj) is not dict and not isinstance(obj, Mapping)):
        return value
    return obj.get(name)


class InvalidUsage(Exception):
    """A usage field contains something other than a non-negative whole number."""


def token_count(value: Any) -> int:
    """Return a token count, or 0 when ``value`` is None.

    Raise InvalidUsage for a negative value or a non-int, ``bool`` included.
    """
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidUsage(value)
    return value
