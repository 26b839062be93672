from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import openai
import pytest
import wrapt
from openai.resources.chat import Completions

import dexcost
from dexcost.instrumentation import registry

MESSAGES = [{"role": "user", "content": "Reset my password"}]


def _run(tmp_path: Path, *parts: str) -> dict:
    """Run the script made of ``parts`` in a fresh interpreter; it prints JSON last."""
    script = "\n".join(textwrap.dedent(part) for part in parts)
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": "", "HOME": str(tmp_path), "PYTHONPATH": ":".join(sys.path)},
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_create_patched_after_init(dx) -> None:
    assert isinstance(Completions.__dict__["create"], wrapt.FunctionWrapper)


def test_shutdown_restores_original(dx) -> None:
    patched = Completions.__dict__["create"]
    dexcost.shutdown()
    assert Completions.__dict__["create"] is patched.__wrapped__


def test_stream_close_restored(dx) -> None:
    dexcost.shutdown()
    assert not isinstance(openai.Stream.__dict__["close"], wrapt.FunctionWrapper)


def test_init_twice_records_each_call_once(dx, buffer_path: Path, client, llm_events) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["openai"])
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(llm_events()) == 1


def test_init_twice_keeps_earlier_events(dx, buffer_path: Path, client, llm_events) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["openai"])
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(llm_events()) == 2


def test_empty_instrument_list_patches_nothing(buffer_path: Path, client, llm_events) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert not isinstance(Completions.__dict__["create"], wrapt.FunctionWrapper)
    assert llm_events() == []


def test_reinit_without_openai_unpatches(dx, buffer_path: Path) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=[])
    assert not isinstance(Completions.__dict__["create"], wrapt.FunctionWrapper)


def test_unsupported_version_skipped_with_warning(
    monkeypatch: pytest.MonkeyPatch, buffer_path: Path
) -> None:
    spec = registry.LIBRARIES["openai"]
    future_only = registry.LibrarySpec(
        name=spec.name,
        module=spec.module,
        distribution=spec.distribution,
        min_version=(99,),
        max_version_exclusive=(100,),
        instrumentor=spec.instrumentor,
    )
    monkeypatch.setitem(registry.LIBRARIES, "openai", future_only)
    with pytest.warns(RuntimeWarning, match=r"supported versions are >=99,<100"):
        dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["openai"])
    assert not isinstance(Completions.__dict__["create"], wrapt.FunctionWrapper)


def test_init_does_not_import_openai(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        """
        import json, sys
        import dexcost
        dexcost.init(storage="local", buffer_path="buffer.db")
        print(json.dumps({"openai_imported": "openai" in sys.modules}))
        """,
    )
    assert result["openai_imported"] is False


def test_openai_imported_after_init_is_patched(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        """
        import json
        import dexcost
        dexcost.init(storage="local", buffer_path="buffer.db")
        import wrapt
        from openai.resources.chat import Completions
        print(json.dumps({"patched": isinstance(Completions.__dict__["create"], wrapt.FunctionWrapper)}))
        """,
    )
    assert result["patched"] is True


CALL_WITH_MOCK_TRANSPORT = """
    from dexcost.demo.fake_openai import FakeOpenAI, FakeUsage
    import openai
    fake = FakeOpenAI(usage=FakeUsage(prompt_tokens=1200, completion_tokens=300))
    if openai.__version__.startswith(("1.", "2.")):
        import httpx
        http_client = httpx.Client(transport=fake.httpx_transport())
    else:
        import httpx2
        http_client = httpx2.Client(transport=fake.httpx2_transport())
    client = openai.OpenAI(api_key="sk-test", base_url="http://fake.test/v1", http_client=http_client)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
"""


def test_no_connection_attempt_at_import_or_init(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        """
        import json, socket
        attempts = []
        def refuse(self, address, *args):
            attempts.append(repr(address))
            raise OSError("network disabled in this test")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        import dexcost
        dexcost.init(storage="local", buffer_path="buffer.db")
        """,
        CALL_WITH_MOCK_TRANSPORT,
        """
        dexcost.flush()
        import sqlite3
        (cost,) = sqlite3.connect("buffer.db").execute(
            "SELECT cost_usd FROM spans WHERE event_type = 'llm_call'").fetchone()
        print(json.dumps({"attempts": attempts, "cost": cost}))
        """,
    )
    assert result["attempts"] == []
    assert Decimal(result["cost"]) == Decimal("0.00036")


def test_event_stored_at_exit_without_flush(tmp_path: Path) -> None:
    _run(
        tmp_path,
        """
        import dexcost
        dexcost.init(storage="local", buffer_path="buffer.db")
        """,
        CALL_WITH_MOCK_TRANSPORT,
        """
        print("{}")
        """,
    )
    import sqlite3

    rows = sqlite3.connect(tmp_path / "buffer.db").execute(
        "SELECT cost_usd FROM spans WHERE event_type = 'llm_call'"
    ).fetchall()
    assert [Decimal(cost) for (cost,) in rows] == [Decimal("0.00036")]
