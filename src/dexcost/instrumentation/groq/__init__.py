"""Groq instrumentation: chat completions and embeddings, sync and async.

Supported: groq 0.9 through 1.x. Stainless generates the groq SDK from the same
templates as the openai SDK: ``Stream`` / ``AsyncStream`` with an ``_iterator``, the
``X-Stainless-Raw-Response`` header and ``APIStatusError``. The openai wrappers
therefore serve it with two settings. Every call is recorded under the provider
``groq``, whatever the client's ``base_url``. A stream's request is sent unchanged,
because Groq ends every chat stream with the usage in the last chunk's ``x_groq.usage``.

Patched methods: ``chat.completions.create`` and ``embeddings.create`` on the sync and
async resource classes, plus ``Stream.close`` / ``AsyncStream.close`` to see early
closes. ``with_raw_response`` and ``with_streaming_response`` call the patched
``create`` and are priced through it.
"""

from __future__ import annotations

from types import ModuleType
from typing import ClassVar

from dexcost.instrumentation.openai import OpenAIInstrumentor
from dexcost.instrumentation.openai.extract import CHAT, EMBEDDINGS
from dexcost.instrumentation.openai.patch import SDKTypes

GROQ = "groq"

# (module, sync class, async class, API kind, method names)
_TARGETS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("groq.resources.chat.completions", "Completions", "AsyncCompletions", CHAT, ("create",)),
    ("groq.resources.embeddings", "Embeddings", "AsyncEmbeddings", EMBEDDINGS, ("create",)),
)


class GroqInstrumentor(OpenAIInstrumentor):
    """Patch the groq SDK with the openai wrappers. ``uninstrument`` undoes every patch."""

    targets: ClassVar[tuple[tuple[str, str, str, str, tuple[str, ...]], ...]] = _TARGETS

    def sdk_types(self, module: ModuleType) -> SDKTypes:
        # groq 1.7's create() has no stream_options parameter, and Groq sends the usage
        # in x_groq.usage without it. So a stream's request stays as the caller wrote it.
        return SDKTypes(module, provider=GROQ, request_stream_usage=False)
