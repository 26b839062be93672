"""OTLP/protobuf encoding of stored buffer rows, written straight from the row values.

Rebuilding SDK spans for the OTLP exporter's encoder would add object construction
to every span. Writing the protobuf wire format from the stored columns costs 11-16 µs
a span on a 2-core AMD EPYC (``benchmarks/bench_sync_throughput.py``). Only the messages and
fields that stored rows fill are written (OTLP trace v1: ExportTraceServiceRequest,
ResourceSpans, ScopeSpans, Span, Status, KeyValue, AnyValue, ArrayValue). Field
numbers come from opentelemetry-proto's ``trace.proto`` and ``common.proto``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, NamedTuple

# Tags are (field number << 3) | wire type: 0 varint, 1 fixed64, 2 length-delimited.
_SPAN_TRACE_ID: Final = b"\x0a\x10"  # field 1, 16 bytes
_SPAN_SPAN_ID: Final = b"\x12\x08"  # field 2, 8 bytes
_SPAN_PARENT_SPAN_ID: Final = b"\x22\x08"  # field 4, 8 bytes
_SPAN_NAME: Final = b"\x2a"  # field 5
_SPAN_KIND: Final = b"\x30"  # field 6
_SPAN_START: Final = b"\x39"  # field 7, fixed64
_SPAN_END: Final = b"\x41"  # field 8, fixed64
_SPAN_ATTRIBUTE: Final = b"\x4a"  # field 9
_SPAN_STATUS: Final = b"\x7a"  # field 15
_STATUS_MESSAGE: Final = b"\x12"  # field 2
_STATUS_CODE: Final = b"\x18"  # field 3
_KEY: Final = b"\x0a"  # KeyValue.key, field 1
_VALUE: Final = b"\x12"  # KeyValue.value, field 2
_STRING: Final = b"\x0a"  # AnyValue.string_value, field 1
_BOOL: Final = b"\x10"  # AnyValue.bool_value, field 2
_INT: Final = b"\x18"  # AnyValue.int_value, field 3
_DOUBLE: Final = b"\x21"  # AnyValue.double_value, field 4
_ARRAY: Final = b"\x2a"  # AnyValue.array_value, field 5
_ARRAY_VALUE: Final = b"\x0a"  # ArrayValue.values, field 1
_RESOURCE_ATTRIBUTE: Final = b"\x0a"  # Resource.attributes, field 1
_SCOPE_NAME: Final = b"\x0a"  # InstrumentationScope.name, field 1
_SCOPE_VERSION: Final = b"\x12"  # InstrumentationScope.version, field 2
_RESOURCE_SPANS_RESOURCE: Final = b"\x0a"  # field 1
_RESOURCE_SPANS_SCOPE_SPANS: Final = b"\x12"  # field 2
_SCOPE_SPANS_SCOPE: Final = b"\x0a"  # field 1
_SCOPE_SPANS_SPAN: Final = b"\x12"  # field 2
_REQUEST_RESOURCE_SPANS: Final = b"\x0a"  # ExportTraceServiceRequest, field 1

_FIXED64: Final = struct.Struct("<Q")
# Span.start_time_unix_nano and end_time_unix_nano with their tags, in one call.
_START_AND_END: Final = struct.Struct("<BQBQ")
_DOUBLE_BITS: Final = struct.Struct("<d")
_SMALL_VARINTS: Final = tuple(bytes((value,)) for value in range(128))

# Encoded span attribute fields by (key, value type, value). Attribute values repeat
# a lot (provider, model, cost status, often the cost itself), so most attributes of
# a batch are one dictionary lookup. Each cache is cleared when it reaches this size.
_CACHE_LIMIT: Final = 50_000
_span_attribute_fields: dict[tuple[str, type, object], bytes] = {}
_resources: dict[str, bytes] = {}
# Encoded Span.name and Span.kind fields by stored (name, kind): a few distinct pairs.
_names_and_kinds: dict[tuple[object, object], bytes] = {}
_scan_json: Final = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


class EncodedSpan(NamedTuple):
    """One stored row as an encoded OTLP ``Span``, with what groups it into a request."""

    row_id: int
    resource: str  # the row's resource attributes as stored (JSON text)
    scope_name: str
    scope_version: str
    data: bytes  # the span as a ScopeSpans.spans field: tag, length, message


def varint(value: int) -> bytes:
    """Encode ``value`` as a protobuf varint; negative values as 64-bit two's complement."""
    if value < 0:
        value += 1 << 64
    if value < 0x80:
        return _SMALL_VARINTS[value]
    if value < 0x4000:  # two bytes: the length of most spans and attribute fields
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def _any_value(value: object) -> bytes:
    """Encode an attribute value (as JSON gave it back) as an ``AnyValue`` message."""
    if isinstance(value, str):
        return _field(_STRING, value.encode())
    if isinstance(value, bool):
        return _BOOL + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        if -(2**63) <= value < 2**63:
            return _INT + varint(value)
        # OTLP int_value is 64-bit; a larger count keeps its digits as a string.
        return _field(_STRING, str(value).encode())
    if isinstance(value, float):
        return _DOUBLE + _DOUBLE_BITS.pack(value)
    if isinstance(value, (list, tuple)):
        items = b"".join(_field(_ARRAY_VALUE, _any_value(item)) for item in value)
        return _field(_ARRAY, items)
    return _field(_STRING, str(value).encode())


def key_value(key: str, value: object) -> bytes:
    """Return the encoded ``KeyValue`` message for one attribute."""
    return _field(_KEY, key.encode()) + _field(_VALUE, _any_value(value))


def _span_attributes(attributes: Mapping[str, object]) -> bytes:
    """Return the span's attribute fields, each from the cache when seen before.

    The cache key contains the value's type because ``True == 1 == 1.0`` in Python.
    When every attribute is cached (the common case once a batch is under way), one
    comprehension does all the lookups.
    """
    cache = _span_attribute_fields
    try:
        return b"".join([cache[(key, value.__class__, value)] for key, value in attributes.items()])
    except (KeyError, TypeError):  # not cached yet, or a list value
        pass
    out = []
    for key, value in attributes.items():
        kind = type(value)
        hashable = tuple(value) if isinstance(value, list) else value
        cache_key = (key, kind, hashable)
        try:
            out.append(cache[cache_key])
            continue
        except KeyError:
            pass
        except TypeError:  # a list that contains lists is not hashable
            out.append(_field(_SPAN_ATTRIBUTE, key_value(key, value)))
            continue
        encoded = b"" if value is None else _field(_SPAN_ATTRIBUTE, key_value(key, value))
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        if kind is not list:
            cache[cache_key] = encoded
        out.append(encoded)
    return b"".join(out)


def _load_attributes(text: str) -> Mapping[str, object]:
    """Parse a stored attributes column, calling the C scanner without ``json.loads``'s layers."""
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        value, end = None, -1
    if end != len(text):
        value = json.loads(text)  # leading or trailing text: json.loads says what is wrong
    return value  # type: ignore[no-any-return]


def _attributes(tag: bytes, attributes: Mapping[str, object]) -> bytes:
    return b"".join(
        _field(tag, key_value(key, value)) for key, value in attributes.items() if value is not None
    )


def encode_span(row: Sequence[object]) -> EncodedSpan:
    """Encode one row, in ``buffer.SYNC_ROW_COLUMNS`` order, as an OTLP ``Span``.

    The trace and span ids are the stored ones, so a receiver can drop a span it
    has already accepted. Raises ``ValueError`` for a row whose ids are not hex.
    """
    (
        row_id,
        trace_id,
        span_id,
        parent_span_id,
        name,
        kind,
        start_ns,
        end_ns,
        status_code,
        status_message,
        attributes,
        resource,
        scope_name,
        scope_version,
    ) = row
    parts = [
        _SPAN_TRACE_ID,
        bytes.fromhex(str(trace_id)),
        _SPAN_SPAN_ID,
        bytes.fromhex(str(span_id)),
    ]
    if parent_span_id:
        parts += (_SPAN_PARENT_SPAN_ID, bytes.fromhex(str(parent_span_id)))
    name_and_kind = _names_and_kinds.get((name, kind))
    if name_and_kind is None:
        # The SDK's SpanKind starts at INTERNAL = 0, but OTLP's has UNSPECIFIED = 0,
        # INTERNAL = 1.
        name_and_kind = (
            _field(_SPAN_NAME, str(name).encode()) + _SPAN_KIND + varint(int(kind) + 1)  # type: ignore[call-overload]
        )
        if len(_names_and_kinds) >= 1_000:
            _names_and_kinds.clear()
        _names_and_kinds[(name, kind)] = name_and_kind
    parts.append(name_and_kind)
    if start_ns is not None and end_ns is not None:
        parts.append(_START_AND_END.pack(0x39, start_ns, 0x41, end_ns))
    else:
        if start_ns is not None:
            parts += (_SPAN_START, _FIXED64.pack(start_ns))
        if end_ns is not None:
            parts += (_SPAN_END, _FIXED64.pack(end_ns))
    parts.append(_span_attributes(_load_attributes(str(attributes))))
    # The SDK's StatusCode values (UNSET 0, OK 1, ERROR 2) are OTLP's.
    status = b""
    if status_message:
        status += _field(_STATUS_MESSAGE, str(status_message).encode())
    if status_code:
        status += _STATUS_CODE + varint(int(status_code))  # type: ignore[call-overload]
    if status:
        parts.append(_field(_SPAN_STATUS, status))
    return EncodedSpan(
        int(row_id),  # type: ignore[call-overload]
        str(resource),
        scope_name if isinstance(scope_name, str) else "",
        scope_version if isinstance(scope_version, str) else "",
        _field(_SCOPE_SPANS_SPAN, b"".join(parts)),
    )


def _resource(resource_json: str) -> bytes:
    """Return the encoded attributes of a stored resource; one encoding per distinct text."""
    encoded = _resources.get(resource_json)
    if encoded is None:
        if len(_resources) >= 1_000:
            _resources.clear()
        encoded = _attributes(_RESOURCE_ATTRIBUTE, json.loads(resource_json))
        _resources[resource_json] = encoded
    return encoded


def encode_request(
    spans: Iterable[EncodedSpan], extra_resource: Mapping[str, object] | None = None
) -> bytes:
    """Return an ``ExportTraceServiceRequest`` with ``spans`` grouped by resource and scope.

    ``extra_resource`` attributes are added to every resource, e.g. a count of events
    the buffer had to drop, so the receiver learns of the loss.
    """
    groups: dict[str, dict[tuple[str, str], list[bytes]]] = {}
    for span in spans:
        scopes = groups.setdefault(span.resource, {})
        scopes.setdefault((span.scope_name, span.scope_version), []).append(span.data)
    extra = _attributes(_RESOURCE_ATTRIBUTE, extra_resource or {})
    out = []
    for resource_json, scopes in groups.items():
        scope_spans = []
        for (scope_name, scope_version), datas in scopes.items():
            scope = b""
            if scope_name:
                scope += _field(_SCOPE_NAME, scope_name.encode())
            if scope_version:
                scope += _field(_SCOPE_VERSION, scope_version.encode())
            body = _field(_SCOPE_SPANS_SCOPE, scope) + b"".join(datas)
            scope_spans.append(_field(_RESOURCE_SPANS_SCOPE_SPANS, body))
        resource = _field(_RESOURCE_SPANS_RESOURCE, _resource(resource_json) + extra)
        out.append(_field(_REQUEST_RESOURCE_SPANS, resource + b"".join(scope_spans)))
    return b"".join(out)


class PartialSuccess(NamedTuple):
    """The spans an ``ExportTraceServiceResponse`` reports as rejected, and why."""

    rejected_spans: int
    error_message: str


def decode_partial_success(body: bytes) -> PartialSuccess | None:
    """Read ``partial_success`` from an ``ExportTraceServiceResponse``; None when absent.

    Raises ``ValueError`` for a body that is not valid protobuf.
    """
    for number, value in _fields(body):
        if number == 1 and isinstance(value, bytes):
            rejected = 0
            message = ""
            for inner_number, inner in _fields(value):
                if inner_number == 1 and isinstance(inner, int):
                    # int64 on the wire: values above 2**63 are negative numbers.
                    rejected = inner - (1 << 64) if inner >= 1 << 63 else inner
                elif inner_number == 2 and isinstance(inner, bytes):
                    message = inner.decode("utf-8", "replace")
            return PartialSuccess(rejected, message)
    return None


def decode_status_message(body: bytes) -> str:
    """Return the ``message`` of a ``google.rpc.Status`` body, as OTLP error answers carry.

    Raises ``ValueError`` for a body that is not valid protobuf.
    """
    for number, value in _fields(body):
        if number == 2 and isinstance(value, bytes):
            return value.decode("utf-8", "replace")
    return ""


def _fields(data: bytes) -> Iterable[tuple[int, int | bytes]]:
    """Yield (field number, value) pairs of one message: varints as int, others as bytes."""
    position = 0
    while position < len(data):
        tag, position = _read_varint(data, position)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, position = _read_varint(data, position)
            yield number, value
        elif wire_type == 1:
            yield number, data[position : position + 8]
            position += 8
        elif wire_type == 2:
            length, position = _read_varint(data, position)
            if position + length > len(data):
                raise ValueError("protobuf field runs past the end of the message")
            yield number, data[position : position + length]
            position += length
        elif wire_type == 5:
            yield number, data[position : position + 4]
            position += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
    if position != len(data):
        raise ValueError("protobuf message ends inside a field")


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise ValueError("truncated or oversized protobuf varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
