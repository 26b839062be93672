"""Ollama instrumentation: chat, generate, embed and embeddings, sync and async.

Supported: ollama 0.4 through 0.x. Patched methods: ``Client._request`` and
``AsyncClient._request``, which every API method sends its request through (see
``patch.py``). Only the chat, generate, embed and embeddings paths are recorded.

Ollama runs models on the caller's own hardware and has no list price, so its calls
are recorded with their tokens and stay ``unpriced`` until the application registers
a price with ``dexcost.register_model_price(model, provider="ollama", ...)``. An
OpenAI-compatible Ollama server called through the openai SDK is recorded by the
openai instrumentation instead.
"""

from __future__ import annotations

from types import ModuleType

from dexcost.instrumentation.ollama.patch import make_async_wrapper, make_sync_wrapper
from dexcost.instrumentation.registry import Instrumentor

# The one method both client classes define for sending any request.
_METHOD = "_request"


class OllamaInstrumentor(Instrumentor):
    """Patch the ollama SDK. ``uninstrument`` undoes every patch."""

    def _patch(self, module: ModuleType) -> None:
        response_error = module.ResponseError
        self._wrap(module.Client, _METHOD, make_sync_wrapper(response_error))
        self._wrap(module.AsyncClient, _METHOD, make_async_wrapper(response_error))
