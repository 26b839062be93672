from __future__ import annotations

from pathlib import Path

import ollama
import pytest
import wrapt

import dexcost
from dexcost.instrumentation.ollama import OllamaInstrumentor
from dexcost.runtime import instrumented_libraries

MESSAGES = [{"role": "user", "content": "Reset my password"}]
CLIENT_CLASSES = (ollama.Client, ollama.AsyncClient)


def _originals() -> list[object]:
    return [cls.__dict__["_request"] for cls in CLIENT_CLASSES]


def test_instrumentor_patches_both_clients() -> None:
    instrumentor = OllamaInstrumentor()
    instrumentor.instrument(ollama)
    try:
        for cls in CLIENT_CLASSES:
            assert isinstance(cls.__dict__["_request"], wrapt.FunctionWrapper), cls.__name__
    finally:
        instrumentor.uninstrument()


def test_public_methods_left_unpatched() -> None:
    instrumentor = OllamaInstrumentor()
    instrumentor.instrument(ollama)
    try:
        for name in ("chat", "generate", "embed", "embeddings"):
            assert not isinstance(ollama.Client.__dict__[name], wrapt.FunctionWrapper), name
    finally:
        instrumentor.uninstrument()


def test_instrument_twice_wraps_once() -> None:
    instrumentor = OllamaInstrumentor()
    instrumentor.instrument(ollama)
    first = _originals()
    instrumentor.instrument(ollama)
    try:
        assert _originals() == first
        assert not isinstance(ollama.Client.__dict__["_request"].__wrapped__, wrapt.ObjectProxy)
    finally:
        instrumentor.uninstrument()


def test_uninstrument_restores_exact_originals() -> None:
    before = _originals()
    instrumentor = OllamaInstrumentor()
    instrumentor.instrument(ollama)
    instrumentor.uninstrument()
    instrumentor.uninstrument()
    after = _originals()
    assert all(new is old for new, old in zip(after, before, strict=True))


def test_shutdown_restores_original(dx) -> None:
    patched = ollama.Client.__dict__["_request"]
    dexcost.shutdown()
    assert ollama.Client.__dict__["_request"] is patched.__wrapped__


def test_init_twice_records_each_call_once(dx, buffer_path: Path, client, llm_events) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["ollama"])
    client.chat(model="llama3.2", messages=MESSAGES)
    assert len(llm_events()) == 1


def test_calls_after_shutdown_still_work(dx, client) -> None:
    dexcost.shutdown()
    response = client.chat(model="llama3.2", messages=MESSAGES)
    assert response.eval_count == 1200


@pytest.mark.usefixtures("dx")
def test_init_lists_ollama_as_instrumented() -> None:
    assert instrumented_libraries() == ["ollama"]
