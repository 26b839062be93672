"""A real OTLP/HTTP trace receiver on 127.0.0.1 that records spans and can misbehave.

It decodes requests with opentelemetry-proto, as a collector would, keeps every span
id it accepted (so duplicates are dropped, as the Control Layer drops them) and
responds from a script of faults: one entry per request, then normal responses.
"""

from __future__ import annotations

import gzip
import socket
import struct
import threading
import time
from collections import deque
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

# A span whose request model is this is refused with a 400, like a malformed event.
POISON_MODEL = "poisoned-model"


def attribute_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return None if kind is None else getattr(value, kind)


class Receiver:
    """OTLP/HTTP receiver with a fault script; ``up()`` starts accepting connections.

    Until ``up()`` its port is bound but not listening, so connections are refused.
    Fault entries: ``("status", code)``, ``("retry_after", code, header)``,
    ``("slow", seconds)`` (accepts the spans, responds late), ``("reset",)`` (reads
    part of the body, then resets the connection), ``("partial", rejected, message)``.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.faults: deque[tuple[Any, ...]] = deque()
        self.spans: dict[str, dict[str, Any]] = {}  # span id (hex) -> attributes
        self.resources: list[dict[str, Any]] = []
        self.deliveries = 0  # spans received in accepted requests, duplicates included
        self.request_spans: list[int] = []  # spans in each accepted request, in order
        self.requests: list[tuple[float, int, dict[str, str]]] = []  # time, status, headers
        self.in_flight: set[str] = set()
        self.concurrent_duplicates = 0
        self.handle_delay = 0.0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler, bind_and_activate=False)
        self.server.daemon_threads = True
        self.server.receiver = self  # type: ignore[attr-defined]
        self.server.server_bind()
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    def up(self) -> None:
        self.server.server_activate()
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(5)
        self.server.server_close()

    # --- what the tests read ---

    def event_ids(self) -> set[str]:
        with self.lock:
            return {
                span_id
                for span_id, attributes in self.spans.items()
                if attributes.get("dexcost.event_type") != "task"
            }

    def span_ids(self) -> set[str]:
        with self.lock:
            return set(self.spans)

    def event_cost(self) -> Decimal:
        with self.lock:
            return sum(
                (
                    Decimal(attributes["dexcost.cost_usd"])
                    for attributes in self.spans.values()
                    if attributes.get("dexcost.event_type") != "task"
                    and "dexcost.cost_usd" in attributes
                ),
                Decimal(0),
            )

    def statuses(self) -> list[int]:
        with self.lock:
            return [status for _, status, _ in self.requests]

    # --- request handling ---

    def next_fault(self) -> tuple[Any, ...] | None:
        with self.lock:
            return self.faults.popleft() if self.faults else None

    def accept(self, request: ExportTraceServiceRequest) -> set[str]:
        ids = set()
        with self.lock:
            for resource_spans in request.resource_spans:
                resource = {
                    kv.key: attribute_value(kv.value) for kv in resource_spans.resource.attributes
                }
                self.resources.append(resource)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        span_id = span.span_id.hex()
                        ids.add(span_id)
                        self.deliveries += 1
                        if span_id in self.in_flight:
                            self.concurrent_duplicates += 1
                        self.spans.setdefault(
                            span_id,
                            {kv.key: attribute_value(kv.value) for kv in span.attributes},
                        )
            self.request_spans.append(
                sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)
            )
            self.in_flight |= ids
        return ids


def rpc_status(code: int, message: str) -> bytes:
    """Encode a google.rpc.Status (code = field 1, message = field 2), as OTLP errors carry."""
    text = message.encode()
    return bytes((0x08, code, 0x12, len(text))) + text


def is_poisoned(request: ExportTraceServiceRequest) -> bool:
    return any(
        kv.key == "gen_ai.request.model" and kv.value.string_value == POISON_MODEL
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
        for kv in span.attributes
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    @property
    def receiver(self) -> Receiver:
        return self.server.receiver  # type: ignore[attr-defined, no-any-return]

    def do_POST(self) -> None:
        receiver = self.receiver
        fault = receiver.next_fault()
        length = int(self.headers.get("Content-Length", "0"))
        if fault is not None and fault[0] == "reset":
            self.rfile.read(min(length, 10))
            # SO_LINGER with a zero timeout makes close() send a TCP reset.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            self._log(0)
            return
        body = self.rfile.read(length)
        if fault is not None and fault[0] in ("status", "retry_after"):
            headers = {}
            if fault[0] == "retry_after":
                # A callable header is made when the response is sent, e.g. a date.
                value = fault[2]
                headers["Retry-After"] = value() if callable(value) else value
            self._answer(fault[1], b"", "text/plain", headers)
            return
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest.FromString(body)
        if is_poisoned(request):
            self._answer(400, rpc_status(3, "poisoned event refused"), "application/x-protobuf")
            return
        ids = receiver.accept(request)
        try:
            if receiver.handle_delay:
                time.sleep(receiver.handle_delay)
            if fault is not None and fault[0] == "slow":
                time.sleep(fault[1])
            response = ExportTraceServiceResponse()
            if fault is not None and fault[0] == "partial":
                response.partial_success.CopyFrom(
                    ExportTracePartialSuccess(rejected_spans=fault[1], error_message=fault[2])
                )
            self._answer(200, response.SerializeToString(), "application/x-protobuf")
        finally:
            with receiver.lock:
                receiver.in_flight -= ids

    def _answer(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self._log(status)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True  # the client gave up waiting

    def _log(self, status: int) -> None:
        with self.receiver.lock:
            self.receiver.requests.append((time.monotonic(), status, dict(self.headers)))
