"""AWS services called through botocore are priced once, and Bedrock is left to its own pricing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

from .fake_paid_api import FakePaidAPI

Rows = Callable[[], list[dict[str, Any]]]

pytestmark = pytest.mark.usefixtures("dx")


@pytest.fixture(autouse=True)
def _offline_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give botocore explicit credentials so it never looks for them on the network."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def aws(api: FakePaidAPI) -> Callable[[str], Any]:
    session = botocore.session.get_session()

    def client(service: str) -> Any:
        return session.create_client(service, region_name="us-east-1", endpoint_url=api.base_url)

    return client


@pytest.fixture
def translate(aws: Callable[[str], Any]) -> Iterator[Any]:
    client = aws("translate")
    yield client
    client.close()


def test_botocore_request_priced_per_character(translate: Any, costs: Rows) -> None:
    reply = translate.translate_text(
        Text="hello world", SourceLanguageCode="en", TargetLanguageCode="es"
    )

    assert reply["TranslatedText"] == "hola mundo"
    (event,) = costs()
    # 11 characters at $15 per million characters: 11 * 15 / 1e6.
    assert Decimal(event["cost_usd"]) == Decimal("0.000165")


def test_botocore_error_reply_costs_zero(translate: Any, costs: Rows) -> None:
    with pytest.raises(ClientError):
        translate.translate_text(Text="hello", SourceLanguageCode="en", TargetLanguageCode="xx")

    (event,) = costs()
    assert Decimal(event["cost_usd"]) == 0


def test_bedrock_runtime_request_not_priced(
    aws: Callable[[str], Any], stored: Callable[..., Any]
) -> None:
    client = aws("bedrock-runtime")
    client.converse(modelId="amazon.nova-micro-v1:0", messages=[])
    client.close()

    assert stored("external_cost") == []
