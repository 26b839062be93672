"""The OTLP encoder, checked by decoding its output with the official protobuf messages."""

from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from dexcost.sync import otlp

from .receiver import attribute_value

RESOURCE = json.dumps({"service.name": "billing", "dexcost.version": "0.1.0"})
ATTRIBUTES = {
    "dexcost.cost_usd": "0.00036",
    "dexcost.task.auto": True,
    "gen_ai.usage.input_tokens": 1200,
    "ratio": 0.25,
    "negative": -5,
    "huge": 2**70,
    "tags": ["a", "b"],
}


def make_row(row_id: int = 1, **changes: object) -> tuple[object, ...]:
    values: dict[str, object] = {
        "id": row_id,
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": f"{row_id:016x}",
        "parent_span_id": "b7ad6b7169203331",
        "name": "chat gpt-4o-mini",
        "kind": 2,  # SDK SpanKind.CLIENT
        "start_ns": 1_700_000_000_000_000_000,
        "end_ns": 1_700_000_000_500_000_000,
        "status_code": 2,
        "status_message": "boom",
        "attributes": json.dumps(ATTRIBUTES),
        "resource": RESOURCE,
        "scope_name": "dexcost",
        "scope_version": "0.1.0",
    }
    values.update(changes)
    return tuple(values.values())


def decode(*rows: tuple[object, ...]) -> ExportTraceServiceRequest:
    body = otlp.encode_request([otlp.encode_span(row) for row in rows])
    return ExportTraceServiceRequest.FromString(body)


def only_span(request: ExportTraceServiceRequest) -> Span:
    (resource_spans,) = request.resource_spans
    (scope_spans,) = resource_spans.scope_spans
    (span,) = scope_spans.spans
    return span


def test_encoded_span_keeps_stored_ids() -> None:
    span = only_span(decode(make_row(7)))
    assert (span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex()) == (
        "0af7651916cd43dd8448eb211c80319c",
        "0000000000000007",
        "b7ad6b7169203331",
    )


def test_encoded_span_maps_kind_to_otlp() -> None:
    assert only_span(decode(make_row())).kind == Span.SPAN_KIND_CLIENT


def test_encoded_span_keeps_times_and_name() -> None:
    span = only_span(decode(make_row()))
    assert (span.name, span.start_time_unix_nano, span.end_time_unix_nano) == (
        "chat gpt-4o-mini",
        1_700_000_000_000_000_000,
        1_700_000_000_500_000_000,
    )


def test_encoded_span_keeps_error_status() -> None:
    status = only_span(decode(make_row())).status
    assert (status.code, status.message) == (Status.STATUS_CODE_ERROR, "boom")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("dexcost.cost_usd", "0.00036"),
        ("dexcost.task.auto", True),
        ("gen_ai.usage.input_tokens", 1200),
        ("ratio", 0.25),
        ("negative", -5),
        ("huge", str(2**70)),
    ],
)
def test_encoded_attribute_keeps_value(key: str, expected: object) -> None:
    attributes = {kv.key: kv.value for kv in only_span(decode(make_row())).attributes}
    value = attribute_value(attributes[key])
    assert (type(value), value) == (type(expected), expected)


def test_encoded_array_attribute_keeps_items() -> None:
    attributes = {kv.key: kv.value for kv in only_span(decode(make_row())).attributes}
    assert [item.string_value for item in attributes["tags"].array_value.values] == ["a", "b"]


def test_cached_attribute_keeps_bool_apart_from_int() -> None:
    first = only_span(decode(make_row(attributes=json.dumps({"flag": 1}))))
    second = only_span(decode(make_row(attributes=json.dumps({"flag": True}))))
    assert (first.attributes[0].value.int_value, second.attributes[0].value.bool_value) == (
        1,
        True,
    )


def test_root_span_has_no_parent_id() -> None:
    assert only_span(decode(make_row(parent_span_id=None))).parent_span_id == b""


def test_request_groups_spans_by_resource() -> None:
    other = json.dumps({"service.name": "search"})
    request = decode(make_row(1), make_row(2, resource=other), make_row(3))
    counts = [len(resource.scope_spans[0].spans) for resource in request.resource_spans]
    assert counts == [2, 1]


def test_request_groups_spans_by_scope() -> None:
    request = decode(make_row(1), make_row(2, scope_version="0.2.0"))
    scopes = [(s.scope.name, s.scope.version) for s in request.resource_spans[0].scope_spans]
    assert scopes == [("dexcost", "0.1.0"), ("dexcost", "0.2.0")]


def test_request_resource_keeps_attributes() -> None:
    resource = decode(make_row()).resource_spans[0].resource
    attributes = {kv.key: kv.value.string_value for kv in resource.attributes}
    assert attributes == {"service.name": "billing", "dexcost.version": "0.1.0"}


def test_request_adds_extra_resource_attributes() -> None:
    body = otlp.encode_request([otlp.encode_span(make_row())], {"dexcost.buffer.evicted": 3})
    resource = ExportTraceServiceRequest.FromString(body).resource_spans[0].resource
    assert resource.attributes[-1].value.int_value == 3


def test_encode_span_rejects_non_hex_id() -> None:
    with pytest.raises(ValueError):
        otlp.encode_span(make_row(trace_id="not hex"))


def test_partial_success_decoded() -> None:
    response = ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=3, error_message="too old")
    )
    decoded = otlp.decode_partial_success(response.SerializeToString())
    assert decoded == otlp.PartialSuccess(3, "too old")


def test_empty_response_has_no_partial_success() -> None:
    assert otlp.decode_partial_success(b"") is None


def test_truncated_response_raises_value_error() -> None:
    with pytest.raises(ValueError, match="past the end"):
        otlp.decode_partial_success(b"\x0a\x05\x08")


def test_status_message_decoded() -> None:
    # google.rpc.Status: code (field 1) = 3, message (field 2) = "bad".
    assert otlp.decode_status_message(b"\x08\x03\x12\x03bad") == "bad"


@pytest.mark.parametrize(("value", "expected"), [(0, b"\x00"), (300, b"\xac\x02")])
def test_varint_encodes_protobuf_bytes(value: int, expected: bytes) -> None:
    assert otlp.varint(value) == expected


def test_varint_negative_is_ten_bytes() -> None:
    assert otlp.varint(-1) == b"\xff" * 9 + b"\x01"
