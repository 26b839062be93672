"""Cohere instrumentation: chat, chat streams, embed and rerank, v1 and v2, sync and async.

Supported: cohere 5 through 7.x. The patched methods are those of the raw clients
(``RawV2Client``, ``AsyncRawV2Client``, ``RawBaseCohere``, ``AsyncRawBaseCohere``):
``chat``, ``chat_stream``, ``embed`` and ``rerank``. ``ClientV2``, ``Client``, their
async forms, ``client.v2`` and ``with_raw_response`` all send their requests through
these classes, so each request is recorded once. ``Client.embed`` splits a long list of
texts into batches sent in parallel; each batch is a request and an event.

NOTE: the tests run against cohere 7.3 only. A release without the raw client modules
(``cohere.raw_base_client``, ``cohere.v2.raw_client``) is not patched at all.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from dexcost.instrumentation.cohere.patch import (
    SDKTypes,
    make_async_wrapper,
    make_stream_wrapper,
    make_sync_wrapper,
)
from dexcost.instrumentation.registry import Instrumentor

# Module -> (sync class, async class) of the raw clients.
RAW_CLIENTS = (
    ("cohere.v2.raw_client", "RawV2Client", "AsyncRawV2Client"),
    ("cohere.raw_base_client", "RawBaseCohere", "AsyncRawBaseCohere"),
)
REQUEST_METHODS = ("chat", "embed", "rerank")


class CohereInstrumentor(Instrumentor):
    """Patch the cohere SDK; every patch is undone by ``uninstrument``."""

    def _patch(self, module: ModuleType) -> None:
        sdk = SDKTypes(importlib.import_module("cohere.core.api_error").ApiError)
        for module_name, sync_name, async_name in RAW_CLIENTS:
            try:
                raw = importlib.import_module(module_name)
            except ImportError:
                continue
            for class_name, is_async in ((sync_name, False), (async_name, True)):
                cls = getattr(raw, class_name, None)
                if not isinstance(cls, type):
                    continue
                factory = make_async_wrapper if is_async else make_sync_wrapper
                for method in REQUEST_METHODS:
                    self._wrap(cls, method, factory(sdk, method))
                self._wrap(cls, "chat_stream", make_stream_wrapper(sdk, is_async=is_async))
