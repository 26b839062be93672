"""Real boto3 clients wired to a fake Bedrock runtime API on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

import dexcost

from .fake_bedrock import FakeBedrock

REGION = "us-east-1"
# One attempt per call, so an error reply is seen once and tests stay fast.
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture(autouse=True)
def _offline_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Give botocore dummy credentials and no config, so it never looks anywhere else."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
        "AWS_ENDPOINT_URL_STS",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def dx(buffer_path: Path) -> Iterator[dexcost.DexcostConfig]:
    """dexcost initialised in local mode on a temporary buffer, instrumenting bedrock."""
    config = dexcost.init(
        storage="local", buffer_path=str(buffer_path), auto_instrument=["bedrock"]
    )
    yield config
    dexcost.shutdown()


@pytest.fixture
def fake() -> Iterator[FakeBedrock]:
    with FakeBedrock() as server:
        yield server


def make_client(endpoint_url: str, service: str = "bedrock-runtime", **config: Any) -> Any:
    """Create a real boto3 client for ``service`` aimed at ``endpoint_url``."""
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint_url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=NO_RETRIES.merge(Config(**config)) if config else NO_RETRIES,
    )


@pytest.fixture
def client(fake: FakeBedrock) -> Iterator[Any]:
    sdk_client = make_client(fake.endpoint_url)
    yield sdk_client
    sdk_client.close()


@pytest.fixture
def llm_events(stored: Callable[..., list[dict[str, Any]]]) -> Callable[[], list[dict[str, Any]]]:
    """Return the stored llm_call rows."""
    return lambda: stored("llm_call")
