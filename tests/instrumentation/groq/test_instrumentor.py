from __future__ import annotations

from pathlib import Path

import groq
import openai
import pytest
import wrapt
from groq.resources.chat.completions import AsyncCompletions, Completions
from groq.resources.embeddings import AsyncEmbeddings, Embeddings

import dexcost
from dexcost.instrumentation.groq import GroqInstrumentor
from dexcost.runtime import instrumented_libraries

MESSAGES = [{"role": "user", "content": "Reset my password"}]
PATCHED = (
    (Completions, "create"),
    (AsyncCompletions, "create"),
    (Embeddings, "create"),
    (AsyncEmbeddings, "create"),
    (groq.Stream, "close"),
    (groq.AsyncStream, "close"),
)


def _originals() -> list[object]:
    return [cls.__dict__[name] for cls, name in PATCHED]


def test_instrumentor_patches_every_method() -> None:
    instrumentor = GroqInstrumentor()
    instrumentor.instrument(groq)
    try:
        for cls, name in PATCHED:
            assert isinstance(cls.__dict__[name], wrapt.FunctionWrapper), f"{cls.__name__}.{name}"
    finally:
        instrumentor.uninstrument()


def test_instrument_twice_wraps_once() -> None:
    instrumentor = GroqInstrumentor()
    instrumentor.instrument(groq)
    first = _originals()
    instrumentor.instrument(groq)
    try:
        assert _originals() == first
        assert not isinstance(Completions.__dict__["create"].__wrapped__, wrapt.FunctionWrapper)
    finally:
        instrumentor.uninstrument()


def test_uninstrument_restores_exact_originals() -> None:
    before = _originals()
    instrumentor = GroqInstrumentor()
    instrumentor.instrument(groq)
    instrumentor.uninstrument()
    instrumentor.uninstrument()
    after = _originals()
    assert all(new is old for new, old in zip(after, before, strict=True))


def test_groq_leaves_openai_unpatched(dx) -> None:
    assert not isinstance(
        openai.resources.chat.completions.Completions.__dict__["create"], wrapt.FunctionWrapper
    )


def test_shutdown_restores_original(dx) -> None:
    patched = Completions.__dict__["create"]
    dexcost.shutdown()
    assert Completions.__dict__["create"] is patched.__wrapped__


def test_init_twice_records_each_call_once(dx, buffer_path: Path, client, llm_events) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["groq"])
    client.chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES)
    assert len(llm_events()) == 1


def test_calls_after_shutdown_still_work(dx, client) -> None:
    dexcost.shutdown()
    response = client.chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES)
    assert response.usage.prompt_tokens == 1000
    assert not isinstance(Completions.__dict__["create"], wrapt.FunctionWrapper)


@pytest.mark.usefixtures("dx")
def test_init_lists_groq_as_instrumented() -> None:
    assert instrumented_libraries() == ["groq"]
