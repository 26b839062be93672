"""google-genai instrumentation: Gemini API and Vertex AI content and embeddings, sync and async.

Supported: google-genai 2.25 through 3.x. Patched, on ``Models`` and ``AsyncModels``
in ``google.genai.models``: ``_generate_content``, ``_generate_content_stream`` and
``_embed_content``, the methods that send one HTTP request each and that the public
``generate_content``, ``generate_content_stream`` and ``embed_content`` (and the chat
sessions built on them) call. See ``patch.py`` for why the per-request methods are
wrapped. Calls from clients created with ``vertexai=True`` are recorded under the
provider name ``gcp.vertex_ai``; the others under ``gcp.gemini``.

NOTE: the tests run against google-genai 3.6 only; 2.25 is covered by reading its
methods (same names, same sync generator and awaited async generator), not by running
it. Releases before 2.25 were not read. A release that renames the private methods
leaves its calls unrecorded.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from dexcost.instrumentation.google_genai.extract import EMBEDDINGS, GENERATE_CONTENT
from dexcost.instrumentation.google_genai.patch import (
    make_async_stream_wrapper,
    make_async_wrapper,
    make_sync_stream_wrapper,
    make_sync_wrapper,
)
from dexcost.instrumentation.registry import Instrumentor


class GoogleGenAIInstrumentor(Instrumentor):
    """Patch the google-genai SDK; every patch is undone by ``uninstrument``."""

    def _patch(self, module: ModuleType) -> None:
        models = importlib.import_module("google.genai.models")
        api_error: type[BaseException] = importlib.import_module("google.genai.errors").APIError
        sync_cls = getattr(models, "Models", None)
        if isinstance(sync_cls, type):
            self._wrap(
                sync_cls, "_generate_content", make_sync_wrapper(api_error, GENERATE_CONTENT)
            )
            self._wrap(sync_cls, "_embed_content", make_sync_wrapper(api_error, EMBEDDINGS))
            self._wrap(sync_cls, "_generate_content_stream", make_sync_stream_wrapper(api_error))
        async_cls = getattr(models, "AsyncModels", None)
        if isinstance(async_cls, type):
            self._wrap(
                async_cls, "_generate_content", make_async_wrapper(api_error, GENERATE_CONTENT)
            )
            self._wrap(async_cls, "_embed_content", make_async_wrapper(api_error, EMBEDDINGS))
            self._wrap(async_cls, "_generate_content_stream", make_async_stream_wrapper(api_error))
