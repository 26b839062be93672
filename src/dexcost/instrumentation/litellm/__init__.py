"""litellm instrumentation: completion and embedding, sync and async, streamed or not.

Supported: litellm 1.40 through 1.x. Patched: ``completion``, ``acompletion``,
``embedding`` and ``aembedding``, plus ``CustomStreamWrapper.__next__``,
``__anext__``, ``close`` and ``aclose`` to follow streams. ``litellm.Router`` looks
these functions up on the ``litellm`` module for every attempt, so its calls are
recorded too, one event per attempt.

Where the patch goes: litellm 1.110 serves ``litellm.completion`` from a dispatch
module that calls the Python implementation it keeps in a module global
(``_PYTHON_COMPLETION`` and its siblings). dexcost wraps those globals, so a
``from litellm import completion`` made before ``dexcost.init()`` is recorded as
well. A release without that dispatch layer gets its ``litellm`` and ``litellm.main``
module attributes wrapped instead. There, a name imported from litellm before
``init()`` keeps the unpatched function, so its calls are not recorded.

A request litellm sends through an SDK dexcost instruments (the ``openai`` SDK, for
OpenAI and Azure) is recorded by that SDK's instrumentation, with the attribute
``dexcost.routed_by = "litellm"``; every other request is recorded here from
litellm's response. Either way one request gives one event.

NOTE: the tests run against litellm 1.110 only. Older releases in the supported
range were checked by reading their attribute names, not by running them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from dexcost.instrumentation.litellm.extract import CHAT, EMBEDDINGS
from dexcost.instrumentation.litellm.patch import (
    LiteLLMTypes,
    make_async_wrapper,
    make_sync_wrapper,
)
from dexcost.instrumentation.litellm.stream import (
    close_wrapper,
    make_anext_wrapper,
    make_next_wrapper,
)
from dexcost.instrumentation.registry import Instrumentor

# (public name, dispatch module, global holding the Python implementation, API, async)
_ENTRY_POINTS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("completion", "litellm.chat_completions.dispatch", "_PYTHON_COMPLETION", CHAT, False),
    ("acompletion", "litellm.chat_completions.dispatch", "_PYTHON_ACOMPLETION", CHAT, True),
    ("embedding", "litellm.embeddings.dispatch", "_PYTHON_EMBEDDING", EMBEDDINGS, False),
    ("aembedding", "litellm.embeddings.dispatch", "_PYTHON_AEMBEDDING", EMBEDDINGS, True),
)

# Modules that define CustomStreamWrapper: its own module in 1.110, litellm.utils in 1.40.
_STREAM_MODULES = ("litellm.litellm_core_utils.streaming_handler", "litellm.utils")


class LiteLLMInstrumentor(Instrumentor):
    """Patch litellm; every patch is undone by ``uninstrument``."""

    def _patch(self, module: ModuleType) -> None:
        openai = importlib.import_module("openai")  # a dependency of litellm, already loaded
        stream = _stream_class(module)
        lib = LiteLLMTypes(
            module,
            openai.APIStatusError,
            _transport_errors(openai),
            stream if stream is not None else _NoStream,
        )
        for public, dispatch_name, python_name, api, is_async in _ENTRY_POINTS:
            factory = make_async_wrapper if is_async else make_sync_wrapper
            wrapper = factory(lib, api)
            dispatch = _import(dispatch_name)
            if dispatch is not None and callable(getattr(dispatch, python_name, None)):
                self._wrap(dispatch, python_name, wrapper)
            else:
                self._wrap_public(module, public, wrapper)
        if stream is not None:
            self._wrap(stream, "__next__", make_next_wrapper(lib.is_error_reply))
            self._wrap(stream, "__anext__", make_anext_wrapper(lib.is_error_reply))
            self._wrap(stream, "close", close_wrapper)
            self._wrap(stream, "aclose", close_wrapper)

    def _wrap_public(self, module: ModuleType, name: str, wrapper: Callable[..., Any]) -> None:
        # litellm.completion and litellm.main.completion are one function here; both
        # names get the wrapper, and each wraps the original, so a call records once.
        original = vars(module).get(name)
        main = _import("litellm.main")
        self._wrap(module, name, wrapper)
        if main is not None and original is not None and vars(main).get(name) is original:
            self._wrap(main, name, wrapper)


class _NoStream:
    """Stands in for CustomStreamWrapper in a release where it was not found."""


def _import(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _transport_errors(openai: ModuleType) -> tuple[type[BaseException], ...]:
    """Exception classes of a failed connection, from the HTTP clients litellm uses."""
    found: list[type[BaseException]] = [OSError, openai.APIConnectionError]
    for module_name, class_name in (
        ("httpx", "TransportError"),
        ("httpx2", "TransportError"),
        ("aiohttp", "ClientConnectionError"),
    ):
        # Only clients already loaded: litellm imported the ones it uses.
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


def _stream_class(module: ModuleType) -> type | None:
    for name in _STREAM_MODULES:
        found = getattr(_import(name), "CustomStreamWrapper", None)
        if isinstance(found, type):
            return found
    found = getattr(module, "CustomStreamWrapper", None)
    return found if isinstance(found, type) else None
