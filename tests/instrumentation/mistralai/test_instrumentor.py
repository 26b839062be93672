from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import wrapt
from mistralai.client._version import __version__
from mistralai.client.chat import Chat
from mistralai.client.embeddings import Embeddings
from mistralai.client.fim import Fim
from mistralai.client.utils.eventstreaming import EventStream, EventStreamAsync

import dexcost
from dexcost.instrumentation import registry
from dexcost.instrumentation.mistralai import MistralInstrumentor

MESSAGES = [{"role": "user", "content": "Reset my password"}]
PATCHED = [
    (Chat, "complete"),
    (Chat, "complete_async"),
    (Chat, "stream"),
    (Chat, "stream_async"),
    (Fim, "complete"),
    (Fim, "complete_async"),
    (Fim, "stream"),
    (Fim, "stream_async"),
    (Embeddings, "create"),
    (Embeddings, "create_async"),
    (EventStream, "close"),
    (EventStreamAsync, "close"),
]


def test_installed_version_supported() -> None:
    spec = registry.LIBRARIES["mistralai"]
    assert registry.is_supported(spec, __version__)
    assert not registry.is_supported(spec, "0.4.2")
    assert not registry.is_supported(spec, "4.0.0")


@pytest.mark.parametrize(("cls", "name"), PATCHED)
def test_methods_patched_after_init(dx, cls, name) -> None:
    assert isinstance(cls.__dict__[name], wrapt.FunctionWrapper)


def test_parse_not_patched(dx) -> None:
    assert not isinstance(Chat.__dict__["parse"], wrapt.FunctionWrapper)


def test_shutdown_restores_originals(dx) -> None:
    patched = {(cls, name): cls.__dict__[name] for cls, name in PATCHED}
    dexcost.shutdown()
    for (cls, name), wrapper in patched.items():
        assert cls.__dict__[name] is wrapper.__wrapped__


def test_instrument_twice_patches_once() -> None:
    import mistralai

    originals = {(cls, name): cls.__dict__[name] for cls, name in PATCHED}
    first, second = MistralInstrumentor(), MistralInstrumentor()
    first.instrument(mistralai)
    first.instrument(mistralai)
    second.instrument(mistralai)
    try:
        for cls, name in PATCHED:
            assert cls.__dict__[name].__wrapped__ is originals[(cls, name)]
    finally:
        second.uninstrument()
        first.uninstrument()
        first.uninstrument()
    assert all(cls.__dict__[name] is originals[(cls, name)] for cls, name in PATCHED)


def test_reinit_without_mistral_unpatches(dx, buffer_path: Path) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["openai"])
    assert not isinstance(Chat.__dict__["complete"], wrapt.FunctionWrapper)


def test_init_twice_records_each_call_once(dx, buffer_path, client, llm_events) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["mistralai"])
    client.chat.complete(model="mistral-large-2411", messages=MESSAGES)
    assert len(llm_events()) == 1


def test_mistral_imported_after_init_is_patched(tmp_path: Path) -> None:
    script = """
        import json, sys
        import dexcost
        dexcost.init(storage="local", buffer_path="buffer.db")
        imported_early = "mistralai" in sys.modules
        import wrapt
        from mistralai.client import Mistral
        from mistralai.client.chat import Chat
        patched = isinstance(Chat.__dict__["complete"], wrapt.FunctionWrapper)
        dexcost.shutdown()
        print(json.dumps({"patched": patched, "imported_early": imported_early}))
    """
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": "", "HOME": str(tmp_path), "PYTHONPATH": ":".join(sys.path)},
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result == {"patched": True, "imported_early": False}
