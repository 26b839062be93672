"""OpenAI instrumentation: chat completions, Responses and embeddings, sync and async.

Supported: openai 1.26 through 3.x (3.x runs on httpx2). Patched methods, when the
installed release has them: ``chat.completions.create`` and ``.parse``,
``responses.create`` and ``.parse``, ``embeddings.create``, each on the sync and async
resource classes, plus ``Stream.close`` / ``AsyncStream.close`` to see early closes.
The ``with_raw_response``, ``with_streaming_response`` and ``.stream()`` helpers call
the patched ``create`` and are priced through it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import ClassVar

from dexcost.instrumentation.openai.extract import CHAT, EMBEDDINGS, RESPONSES
from dexcost.instrumentation.openai.patch import (
    SDKTypes,
    close_wrapper,
    make_async_wrapper,
    make_sync_wrapper,
)
from dexcost.instrumentation.registry import Instrumentor

# (module, sync class, async class, API kind, method names)
_TARGETS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    (
        "openai.resources.chat.completions",
        "Completions",
        "AsyncCompletions",
        CHAT,
        ("create", "parse"),
    ),
    # openai 1.x kept the structured-output parse() under beta.
    ("openai.resources.beta.chat.completions", "Completions", "AsyncCompletions", CHAT, ("parse",)),
    ("openai.resources.responses", "Responses", "AsyncResponses", RESPONSES, ("create", "parse")),
    ("openai.resources.embeddings", "Embeddings", "AsyncEmbeddings", EMBEDDINGS, ("create",)),
)


class OpenAIInstrumentor(Instrumentor):
    """Patch the openai SDK. ``uninstrument`` undoes every patch.

    A subclass instruments another Stainless-generated SDK with the same wrappers by
    overriding ``targets`` and ``sdk_types``.
    """

    targets: ClassVar[tuple[tuple[str, str, str, str, tuple[str, ...]], ...]] = _TARGETS

    def sdk_types(self, module: ModuleType) -> SDKTypes:
        """Look up the SDK classes and settings the wrappers use."""
        return SDKTypes(module)

    def _patch(self, module: ModuleType) -> None:
        sdk = self.sdk_types(module)
        for module_name, sync_name, async_name, api, methods in self.targets:
            try:
                resources = importlib.import_module(module_name)
            except ImportError:
                continue
            for class_name, factory in (
                (sync_name, make_sync_wrapper),
                (async_name, make_async_wrapper),
            ):
                cls = getattr(resources, class_name, None)
                if not isinstance(cls, type):
                    continue
                for method in methods:
                    self._wrap(cls, method, factory(sdk, api))
        self._wrap(sdk.stream, "close", close_wrapper)
        self._wrap(sdk.async_stream, "close", close_wrapper)
