"""Capture of AWS services through botocore: the wrapper of ``BaseClient._make_request``.

Every botocore client call sends its HTTP request through ``_make_request``, with
retries inside it, so one API call is one captured request, matched on the
endpoint host, path and method the same way as any other request. The units of a
``response_json`` entry come from the parsed response, which botocore builds
whatever the protocol. ``bedrock-runtime`` is an LLM and priced by the Bedrock
instrumentation, so it is skipped. ``_make_api_call`` is not used because the
Bedrock instrumentation already wraps it. aiobotocore clients override
``_make_request`` with a coroutine and are not captured. Tested with botocore 1.44.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any, Final

from dexcost import errors
from dexcost.http.capture import (
    IN_CAPTURE,
    Plan,
    decode_json,
    lookup_url,
    send_captured,
)
from dexcost.instrumentation.registry import Instrumentor

_SKIPPED_SERVICES: Final = frozenset({"bedrock-runtime"})
_STEPS: Final = ("recording a botocore call", "recording a failed botocore call")


class BotocoreCapture(Instrumentor):
    """Patch ``botocore.client.BaseClient._make_request``."""

    def _patch(self, module: ModuleType) -> None:
        del module
        client = importlib.import_module("botocore.client")
        self._wrap(client.BaseClient, "_make_request", make_request_wrapper)


def _plan(request_dict: Any) -> Plan | None:
    try:
        found = lookup_url(request_dict["url"])
        return None if found is None else found[0].plan(request_dict["method"], found[1])
    except Exception:
        errors.log_internal_error("matching a botocore call")
        return None


def _skipped(client: Any) -> bool:
    try:
        return client.meta.service_model.service_name in _SKIPPED_SERVICES
    except Exception:
        errors.log_internal_error("reading a botocore service name")
        return False


def make_request_wrapper(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if IN_CAPTURE.get():
        return wrapped(*args, **kwargs)
    if _skipped(instance):
        # Marked as captured so urllib3 underneath does not price it either.
        token = IN_CAPTURE.set(True)
        try:
            return wrapped(*args, **kwargs)
        finally:
            IN_CAPTURE.reset(token)
    request_dict = args[1] if len(args) > 1 else kwargs.get("request_dict")
    matched = _plan(request_dict)
    if matched is None:
        return wrapped(*args, **kwargs)
    matched.sent = request_dict
    return send_captured(wrapped, args, kwargs, matched, _record, _STEPS)


def _record(matched: Plan, result: Any) -> None:
    http, parsed = result
    status = http.status_code
    request_json = None
    if matched.wants_request_body():
        body = matched.sent.get("body")
        request_json = decode_json(body) if isinstance(body, (bytes, str)) else None
    matched.record_response(
        status,
        headers=http.headers,
        response_json=parsed if matched.wants_response_body(status) else None,
        request_json=request_json,
    )
