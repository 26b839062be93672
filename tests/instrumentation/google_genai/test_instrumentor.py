from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
import wrapt
from google import genai
from google.genai.models import AsyncModels, Models

import dexcost
from dexcost.instrumentation import registry

PATCHED = tuple(
    (cls, name)
    for cls in (Models, AsyncModels)
    for name in ("_generate_content", "_generate_content_stream", "_embed_content")
)


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


def test_installed_version_supported() -> None:
    spec = registry.LIBRARIES["google_genai"]
    assert spec.module == "google.genai"
    assert registry.is_supported(spec, genai.__version__)
    assert registry.is_supported(spec, "2.25.0")
    assert not registry.is_supported(spec, "2.24.0")
    assert not registry.is_supported(spec, "4.0.0")


@pytest.mark.parametrize(("cls", "name"), PATCHED)
def test_methods_patched_after_init(dx, cls, name) -> None:
    assert isinstance(cls.__dict__[name], wrapt.FunctionWrapper)


def test_shutdown_restores_originals(dx) -> None:
    patched = {(cls, name): cls.__dict__[name] for cls, name in PATCHED}
    dexcost.shutdown()
    for (cls, name), wrapper in patched.items():
        assert cls.__dict__[name] is wrapper.__wrapped__


def test_calls_work_after_shutdown(dx, client, fake) -> None:
    dexcost.shutdown()
    client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert len(fake.requests) == 1


def test_init_twice_records_each_call_once(dx, buffer_path: Path, client, llm_events) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["google_genai"])
    client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    (event,) = llm_events()
    assert Decimal(event["cost_usd"]) == Decimal("0.00155")


def test_google_genai_imported_after_init_is_patched(tmp_path: Path) -> None:
    """The post-import hook matches the dotted module name google.genai."""
    result = _run(
        tmp_path,
        """
        import json, sys
        import dexcost
        dexcost.init(storage="local", buffer_path="buffer.db")
        imported_by_init = "google.genai" in sys.modules
        import wrapt
        from google import genai
        from google.genai.models import Models
        patched = isinstance(Models.__dict__["_generate_content"], wrapt.FunctionWrapper)
        dexcost.shutdown()
        print(json.dumps({"imported_by_init": imported_by_init, "patched": patched}))
        """,
    )
    assert result == {"imported_by_init": False, "patched": True}


def test_real_server_on_loopback(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        """
        import json, sqlite3
        import dexcost
        dexcost.init(storage="local", buffer_path="buffer.db", auto_instrument=["google_genai"])
        from google import genai
        from google.genai import types
        from dexcost.demo.fake_gemini import FakeGeminiServer, GeminiUsage
        with FakeGeminiServer(usage=GeminiUsage(1_000, 500)) as server:
            client = genai.Client(
                api_key="gemini-test-key", http_options=types.HttpOptions(base_url=server.base_url)
            )
            client.models.generate_content(model="gemini-2.5-flash", contents="hi")
            for _ in client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"):
                pass
        dexcost.flush(timeout=10)
        costs = [row[0] for row in sqlite3.connect("buffer.db").execute(
            "SELECT cost_usd FROM spans WHERE event_type = 'llm_call' ORDER BY id"
        )]
        dexcost.shutdown()
        print(json.dumps({"costs": costs}))
        """,
    )
    assert [Decimal(cost) for cost in result["costs"]] == [Decimal("0.00155")] * 2
