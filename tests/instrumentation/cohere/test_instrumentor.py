from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cohere
import pytest
import wrapt
from cohere.raw_base_client import AsyncRawBaseCohere, RawBaseCohere
from cohere.v2.raw_client import AsyncRawV2Client, RawV2Client

import dexcost
from dexcost.instrumentation import registry
from dexcost.instrumentation.cohere import CohereInstrumentor

MESSAGES = [{"role": "user", "content": "Reset my password"}]
PATCHED = [
    (cls, name)
    for cls in (RawV2Client, AsyncRawV2Client, RawBaseCohere, AsyncRawBaseCohere)
    for name in ("chat", "chat_stream", "embed", "rerank")
]


def test_installed_version_supported() -> None:
    spec = registry.LIBRARIES["cohere"]
    assert registry.is_supported(spec, cohere.__version__)
    assert not registry.is_supported(spec, "4.57.0")
    # Before 5.16 the SDK had no raw client classes to patch.
    assert not registry.is_supported(spec, "5.15.0")
    assert registry.is_supported(spec, "5.16.0")
    assert not registry.is_supported(spec, "8.0.0")


@pytest.mark.parametrize(("cls", "name"), PATCHED)
def test_raw_methods_patched_after_init(dx, cls, name) -> None:
    assert isinstance(cls.__dict__[name], wrapt.FunctionWrapper)


def test_high_level_classes_not_patched(dx) -> None:
    assert not isinstance(cohere.ClientV2.__dict__.get("chat"), wrapt.FunctionWrapper)
    assert not isinstance(cohere.client.Client.__dict__["embed"], wrapt.FunctionWrapper)


def test_shutdown_restores_originals(dx) -> None:
    patched = {(cls, name): cls.__dict__[name] for cls, name in PATCHED}
    dexcost.shutdown()
    for (cls, name), wrapper in patched.items():
        assert cls.__dict__[name] is wrapper.__wrapped__


def test_instrument_twice_patches_once() -> None:
    originals = {(cls, name): cls.__dict__[name] for cls, name in PATCHED}
    instrumentor = CohereInstrumentor()
    instrumentor.instrument(cohere)
    instrumentor.instrument(cohere)
    try:
        for cls, name in PATCHED:
            assert cls.__dict__[name].__wrapped__ is originals[(cls, name)]
    finally:
        instrumentor.uninstrument()
        instrumentor.uninstrument()
    assert all(cls.__dict__[name] is originals[(cls, name)] for cls, name in PATCHED)


def test_second_instrumentor_does_not_wrap_again() -> None:
    first, second = CohereInstrumentor(), CohereInstrumentor()
    first.instrument(cohere)
    second.instrument(cohere)
    try:
        wrapper = RawV2Client.__dict__["chat"]
        assert not isinstance(wrapper.__wrapped__, wrapt.FunctionWrapper)
    finally:
        second.uninstrument()
        first.uninstrument()


def test_reinit_without_cohere_unpatches(dx, buffer_path: Path) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["openai"])
    assert not isinstance(RawV2Client.__dict__["chat"], wrapt.FunctionWrapper)


def test_init_twice_records_each_call_once(dx, buffer_path, client_v2, llm_events) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["cohere"])
    client_v2.chat(model="command-a-03-2025", messages=MESSAGES)
    assert len(llm_events()) == 1


def _run(tmp_path: Path, script: str) -> dict:
    """Run ``script`` in a fresh interpreter; it prints JSON last."""
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": "", "HOME": str(tmp_path), "PYTHONPATH": ":".join(sys.path)},
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_cohere_imported_after_init_is_patched(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        """
        import json, sys
        import dexcost
        dexcost.init(storage="local", buffer_path="buffer.db")
        imported_early = "cohere" in sys.modules
        import wrapt
        import cohere
        from cohere.v2.raw_client import RawV2Client
        patched = isinstance(RawV2Client.__dict__["chat"], wrapt.FunctionWrapper)
        dexcost.shutdown()
        print(json.dumps({"patched": patched, "imported_early": imported_early}))
        """,
    )
    assert result == {"patched": True, "imported_early": False}
