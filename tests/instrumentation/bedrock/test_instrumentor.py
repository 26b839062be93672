from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import botocore
import pytest
import wrapt
from botocore.client import BaseClient
from botocore.eventstream import EventStream

import dexcost
from dexcost.instrumentation import registry
from dexcost.instrumentation.bedrock import patch

from .conftest import make_client

MESSAGES = [{"role": "user", "content": [{"text": "Reset my password"}]}]
SONNET_4 = "anthropic.claude-sonnet-4-20250514-v1:0"
PATCHED = ((BaseClient, "_make_api_call"), (EventStream, "close"))


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


def test_installed_version_supported() -> None:
    spec = registry.LIBRARIES["bedrock"]
    assert registry.is_supported(spec, botocore.__version__)
    assert registry.is_supported(spec, "1.34.116")
    assert not registry.is_supported(spec, "1.34.115")
    assert not registry.is_supported(spec, "2.0.0")


@pytest.mark.parametrize(("cls", "name"), PATCHED)
def test_methods_patched_after_init(dx, cls, name) -> None:
    assert isinstance(cls.__dict__[name], wrapt.FunctionWrapper)


def test_shutdown_restores_originals(dx) -> None:
    patched = {(cls, name): cls.__dict__[name] for cls, name in PATCHED}
    dexcost.shutdown()
    for (cls, name), wrapper in patched.items():
        assert cls.__dict__[name] is wrapper.__wrapped__


def test_reinit_without_bedrock_unpatches(dx, buffer_path: Path) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["openai"])
    assert not isinstance(BaseClient.__dict__["_make_api_call"], wrapt.FunctionWrapper)


def test_init_twice_records_each_call_once(dx, buffer_path: Path, client, llm_events) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["bedrock"])
    client.converse(modelId=SONNET_4, messages=MESSAGES)
    assert len(llm_events()) == 1


def test_client_created_before_init_recorded(buffer_path: Path, client, llm_events) -> None:
    dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["bedrock"])
    client.converse(modelId=SONNET_4, messages=MESSAGES)
    (event,) = llm_events()
    # 1,000 x $3 + 300 x $15 per million tokens.
    assert Decimal(event["cost_usd"]) == Decimal("0.0075")


def test_response_is_sdk_object(dx, client) -> None:
    # botocore hands its parsed response to after-call handlers before returning it.
    parsed: list[object] = []

    def keep(parsed_response: object = None, **_: object) -> None:
        parsed.append(parsed_response)

    client.meta.events.register(
        "after-call.bedrock-runtime.Converse", lambda parsed=None, **kw: keep(parsed)
    )
    response = client.converse(modelId=SONNET_4, messages=MESSAGES)
    assert response is parsed[0]


def test_other_service_not_recorded(dx, fake, llm_events) -> None:
    sts = make_client(fake.endpoint_url, service="sts")
    assert sts.get_caller_identity()["Account"] == "123456789012"
    assert llm_events() == []


def test_other_service_skips_dexcost_work(dx, fake, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("a non-Bedrock call reached dexcost")

    monkeypatch.setattr(patch, "_prepare", fail)
    sts = make_client(fake.endpoint_url, service="sts")
    assert sts.get_caller_identity()["Account"] == "123456789012"


def test_count_tokens_not_recorded(dx, client, llm_events) -> None:
    # The fake has no count-tokens route, so the call fails. Either way it is not recorded.
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.count_tokens(modelId=SONNET_4, input={"converse": {"messages": MESSAGES}})
    assert llm_events() == []


def test_calls_before_init_not_recorded(client, fake) -> None:
    response = client.converse(modelId=SONNET_4, messages=MESSAGES)
    assert response["usage"]["outputTokens"] == 300
    assert len(fake.requests) == 1


def test_another_wrapper_kept_and_restored(buffer_path: Path, client, llm_events) -> None:
    """A tool that wrapped the same method first (as OpenTelemetry does) keeps working."""
    original = BaseClient.__dict__["_make_api_call"]
    seen: list[str] = []

    def other(wrapped, instance, args, kwargs):
        seen.append(args[0])
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(BaseClient, "_make_api_call", other)
    theirs = BaseClient.__dict__["_make_api_call"]
    try:
        dexcost.init(storage="local", buffer_path=str(buffer_path), auto_instrument=["bedrock"])
        client.converse(modelId=SONNET_4, messages=MESSAGES)
        assert seen == ["Converse"]
        assert len(llm_events()) == 1
        dexcost.shutdown()
        assert BaseClient.__dict__["_make_api_call"] is theirs
    finally:
        BaseClient._make_api_call = original


def test_init_does_not_import_botocore(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        """
        import json, sys
        import dexcost
        dexcost.init(storage="local", buffer_path="buffer.db")
        print(json.dumps({"imported": "botocore" in sys.modules}))
        """,
    )
    assert result["imported"] is False


def test_botocore_imported_after_init_patched(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        """
        import json
        import dexcost
        dexcost.init(storage="local", buffer_path="buffer.db")
        import boto3
        import wrapt
        from botocore.client import BaseClient
        patched = isinstance(BaseClient.__dict__["_make_api_call"], wrapt.FunctionWrapper)
        print(json.dumps({"patched": patched}))
        """,
    )
    assert result["patched"] is True
