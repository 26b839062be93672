"""Mistral instrumentation: chat, FIM and embeddings, sync and async, streams included.

Supported: mistralai 1.x through 3.x (``Mistral`` client; 3.x keeps it in
``mistralai.client``, 1.x in ``mistralai``). Patched methods: ``chat.complete``,
``chat.stream``, ``fim.complete``, ``fim.stream``, ``embeddings.create`` and their
``*_async`` forms, plus ``EventStream.close`` / ``EventStreamAsync.close`` to see early
closes. ``chat.parse`` and ``chat.parse_stream`` call ``complete`` / ``stream`` and are
recorded through them. The SDK has no raw-response variants.

NOTE: the tests run against mistralai 3.7 only. 1.x was neither read nor run: the
instrumentor looks for the same class and method names in the ``mistralai`` package.
The Azure and Google Cloud clients are not patched.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from dexcost.instrumentation.mistralai.extract import CHAT, EMBEDDINGS, TEXT_COMPLETION
from dexcost.instrumentation.mistralai.patch import (
    SDKTypes,
    async_close_wrapper,
    close_wrapper,
    make_async_wrapper,
    make_sync_wrapper,
)
from dexcost.instrumentation.registry import Instrumentor

# Package of the generated client: 2.x and later, then 1.x.
_PACKAGES = ("mistralai.client", "mistralai")
# Resource module, class, operation name, and its (method, streaming) pairs.
_RESOURCES = (
    ("chat", "Chat", CHAT, (("complete", False), ("stream", True))),
    ("fim", "Fim", TEXT_COMPLETION, (("complete", False), ("stream", True))),
    ("embeddings", "Embeddings", EMBEDDINGS, (("create", False),)),
)


def _client_package() -> str | None:
    for package in _PACKAGES:
        try:
            importlib.import_module(f"{package}.chat")
        except ImportError:
            continue
        return package
    return None


class MistralInstrumentor(Instrumentor):
    """Patch the mistralai SDK; every patch is undone by ``uninstrument``."""

    def _patch(self, module: ModuleType) -> None:
        package = _client_package()
        if package is None:
            return
        streaming = importlib.import_module(f"{package}.utils.eventstreaming")
        sdk = SDKTypes(
            importlib.import_module(f"{package}.errors").MistralError,
            streaming.EventStream,
            streaming.EventStreamAsync,
        )
        for module_name, class_name, operation, methods in _RESOURCES:
            cls = getattr(importlib.import_module(f"{package}.{module_name}"), class_name, None)
            if not isinstance(cls, type):
                continue
            for method, is_stream in methods:
                self._wrap(cls, method, make_sync_wrapper(sdk, operation, streaming=is_stream))
                self._wrap(
                    cls,
                    f"{method}_async",
                    make_async_wrapper(sdk, operation, streaming=is_stream),
                )
        self._wrap(sdk.stream, "close", close_wrapper)
        self._wrap(sdk.async_stream, "close", async_close_wrapper)
