"""instrument / uninstrument of litellm: what is patched, and that it is undone exactly."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import litellm
import litellm.chat_completions.dispatch as chat_dispatch
import litellm.embeddings.dispatch as embedding_dispatch
import pytest
import wrapt
from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper

import dexcost
from dexcost.instrumentation import registry
from dexcost.instrumentation.litellm import LiteLLMInstrumentor
from dexcost.instrumentation.litellm.extract import CHAT
from dexcost.instrumentation.litellm.patch import LiteLLMTypes, make_sync_wrapper

from .conftest import LITELLM_WARNING_FILTERS, openai_kwargs

pytestmark = LITELLM_WARNING_FILTERS

PATCHED_GLOBALS = (
    (chat_dispatch, "_PYTHON_COMPLETION"),
    (chat_dispatch, "_PYTHON_ACOMPLETION"),
    (embedding_dispatch, "_PYTHON_EMBEDDING"),
    (embedding_dispatch, "_PYTHON_AEMBEDDING"),
)
PATCHED_METHODS = ("__next__", "__anext__", "close", "aclose")


def _snapshot() -> dict[str, Any]:
    state: dict[str, Any] = {f"{m.__name__}.{n}": getattr(m, n) for m, n in PATCHED_GLOBALS}
    for name in PATCHED_METHODS:
        state[f"CustomStreamWrapper.{name}"] = CustomStreamWrapper.__dict__[name]
    for name in ("completion", "acompletion", "embedding", "aembedding"):
        state[f"litellm.{name}"] = getattr(litellm, name)
    return state


def test_installed_version_supported() -> None:
    spec = registry.LIBRARIES["litellm"]
    assert registry.is_supported(spec, importlib.metadata.version("litellm"))
    assert registry.is_supported(spec, "1.40.0")
    assert not registry.is_supported(spec, "1.39.9")
    assert not registry.is_supported(spec, "2.0.0")


@pytest.mark.parametrize(("module", "name"), PATCHED_GLOBALS)
def test_dispatch_globals_patched_after_init(dx, module, name) -> None:
    assert isinstance(getattr(module, name), wrapt.FunctionWrapper)


@pytest.mark.parametrize("name", PATCHED_METHODS)
def test_stream_methods_patched_after_init(dx, name) -> None:
    assert isinstance(CustomStreamWrapper.__dict__[name], wrapt.FunctionWrapper)


def test_public_functions_left_alone(dx) -> None:
    # The dispatch layer calls the patched globals, so litellm.completion stays as is.
    assert not isinstance(litellm.completion, wrapt.ObjectProxy)


def test_instrument_uninstrument_round_trip() -> None:
    before = _snapshot()
    instrumentor = LiteLLMInstrumentor()
    instrumentor.instrument(litellm)
    instrumentor.instrument(litellm)
    patched = _snapshot()
    instrumentor.uninstrument()
    instrumentor.uninstrument()

    assert sum(patched[key] is not before[key] for key in before) == 8
    assert all(value is before[key] for key, value in _snapshot().items())


def test_shutdown_restores_originals(dx) -> None:
    patched = {(m, n): getattr(m, n) for m, n in PATCHED_GLOBALS}
    dexcost.shutdown()

    for (module, name), wrapper in patched.items():
        assert getattr(module, name) is wrapper.__wrapped__


def test_reinit_without_litellm_unpatches(dx, buffer_path: Path) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["openai"])

    assert not isinstance(chat_dispatch._PYTHON_COMPLETION, wrapt.ObjectProxy)


def test_init_twice_records_each_call_once(dx, buffer_path: Path, openai_api, llm_events) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["litellm"])
    litellm.completion(**openai_kwargs(openai_api))

    assert len(llm_events()) == 1


def test_wrapper_returns_result_object_itself(dx) -> None:
    result = object()
    lib = LiteLLMTypes(litellm, Exception, (OSError,), CustomStreamWrapper)
    wrapper = make_sync_wrapper(lib, CHAT)

    returned = wrapper(lambda **kwargs: result, None, (), {"model": "openai/gpt-4o-mini"})

    assert returned is result


def test_wrapper_reraises_the_same_exception(dx) -> None:
    error = litellm.APIConnectionError(message="down", llm_provider="openai", model="gpt-4o-mini")
    lib = LiteLLMTypes(litellm, Exception, (OSError,), CustomStreamWrapper)
    wrapper = make_sync_wrapper(lib, CHAT)

    def fail(**kwargs: Any) -> None:
        raise error

    with pytest.raises(litellm.APIConnectionError) as caught:
        wrapper(fail, None, (), {"model": "openai/gpt-4o-mini"})
    assert caught.value is error
