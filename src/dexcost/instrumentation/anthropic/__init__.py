"""Anthropic instrumentation: the Messages API, sync and async.

Supported: anthropic 0.43 through 2.x (2.x runs on httpx2). Patched methods, when the
installed release has them: ``messages.create`` and ``.parse`` and the
``messages.stream()`` helper, each on the sync and async resource classes, plus
``Stream.close`` / ``AsyncStream.close`` to see early closes, and the decoders of
Message Batches results (see ``batches.py``). The
``with_raw_response`` and ``with_streaming_response`` wrappers call the patched
``create`` and are priced through it. ``messages.count_tokens`` is free and is not
patched. The Bedrock and Vertex clients share these classes; their calls are recorded
under the provider names ``aws.bedrock`` and ``gcp.vertex_ai``.

anthropic 2.x emits its own OpenTelemetry spans to the global tracer provider. dexcost
keeps its own provider, so those spans never become a second cost event.

The tests run against the newest 2.x and the newest 0.x release; 0.43.0 passed them once
when the range was set.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from dexcost.instrumentation.anthropic.batches import make_decode_wrapper
from dexcost.instrumentation.anthropic.patch import (
    SDKTypes,
    close_wrapper,
    make_async_wrapper,
    make_stream_helper_wrapper,
    make_sync_wrapper,
)
from dexcost.instrumentation.registry import Instrumentor

_MESSAGES_MODULES = ("anthropic.resources.messages.messages", "anthropic.resources.messages")
# Decoders of the Message Batches results download (JSON Lines).
_JSONL_MODULE = "anthropic._decoders.jsonl"


class AnthropicInstrumentor(Instrumentor):
    """Patch the anthropic SDK; every patch is undone by ``uninstrument``."""

    def _patch(self, module: ModuleType) -> None:
        sdk = SDKTypes(module)
        resources = _messages_module()
        if resources is not None:
            for class_name, is_async in (("Messages", False), ("AsyncMessages", True)):
                cls = getattr(resources, class_name, None)
                if not isinstance(cls, type):
                    continue
                factory = make_async_wrapper if is_async else make_sync_wrapper
                for method in ("create", "parse"):
                    self._wrap(cls, method, factory(sdk))
                self._wrap(cls, "stream", make_stream_helper_wrapper(sdk, is_async=is_async))
        self._wrap(sdk.stream, "close", close_wrapper)
        self._wrap(sdk.async_stream, "close", close_wrapper)
        decoders = _optional_module(_JSONL_MODULE)
        if decoders is not None:
            for class_name, is_async in (("JSONLDecoder", False), ("AsyncJSONLDecoder", True)):
                cls = getattr(decoders, class_name, None)
                if isinstance(cls, type):
                    self._wrap(cls, "__decode__", make_decode_wrapper(is_async=is_async))


def _optional_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _messages_module() -> ModuleType | None:
    # anthropic 2.x defines Messages in resources/messages/messages.py; the package
    # itself is the fallback for a release that keeps it elsewhere and re-exports it.
    for name in _MESSAGES_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if isinstance(getattr(module, "Messages", None), type):
            return module
    return None
