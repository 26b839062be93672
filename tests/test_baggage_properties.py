"""Any attribution value gives a valid W3C baggage header that reads back to it."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator

import dexcost
from dexcost import propagation

# W3C Baggage: list-member = key OWS "=" OWS value *( OWS ";" OWS property ), key is an
# RFC 7230 token, value is a string of baggage-octets.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_VALUE = r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*"
_MEMBER = re.compile(rf"{_TOKEN}\s*=\s*{_VALUE}")

ids = st.text(min_size=1, max_size=300)
metadata = st.dictionaries(st.text(min_size=1, max_size=40), st.text(max_size=80), max_size=40)


def _survives_trimming(text: str) -> bool:
    return text == text.strip() and text.isprintable()


@pytest.fixture(scope="module")
def raw_baggage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """dexcost initialised, with the outbound filter off so the raw header can be read."""
    buffer = tmp_path_factory.mktemp("baggage") / "buffer.db"
    dexcost.init(storage="local", buffer_path=str(buffer), auto_instrument=[])
    propagation.uninstall()
    yield
    dexcost.shutdown()
    propagation.uninstall()


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(customer_id=ids, project_id=ids, metadata=metadata)
def test_baggage_header_valid_and_round_trips(
    raw_baggage: None, customer_id: str, project_id: str, metadata: dict[str, str]
) -> None:
    token = otel_context.attach(otel_context.Context())
    try:
        with warnings.catch_warnings():
            # Over-long ids and too many metadata entries warn; the values are still set.
            warnings.simplefilter("ignore", RuntimeWarning)
            attribution = dexcost.set_context(
                customer_id=customer_id, project_id=project_id, metadata=metadata
            )
        carrier: dict[str, str] = {}
        W3CBaggagePropagator().inject(carrier)
        header = carrier.get("baggage", "")
        members = [member for member in header.split(",") if member]

        for member in members:
            assert _MEMBER.fullmatch(member.strip()), member
        extracted = baggage.get_all(W3CBaggagePropagator().extract(carrier))
        expected = {
            "dexcost.customer_id": attribution.customer_id,
            "dexcost.project_id": attribution.project_id,
            **{f"dexcost.metadata.{k}": v for k, v in attribution.metadata.items()},
        }
        for key, value in expected.items():
            # The W3C parser trims whitespace around keys and values after decoding, so
            # only names and values without it read back exactly.
            if value is None or not _survives_trimming(key) or not _survives_trimming(value):
                continue
            assert extracted.get(key) == value, key
    finally:
        otel_context.detach(token)
