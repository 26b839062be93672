"""A small application with no dexcost code, run under ``opentelemetry-instrument``.

It records the spans of its own global TracerProvider as JSON lines in the file named
by ``APP_SPANS_FILE``. It makes one chat completion against the fake OpenAI server on
127.0.0.1 inside a span of its own. Its last output line is a JSON summary.

Arguments (any order): ``init-again`` calls ``dexcost.init()`` in code as well, after
auto-launch; ``sqlite`` runs a query of the app's own and starts a thread, so the
sqlite3 and threading instrumentations have something of the app's to trace.
"""

from __future__ import annotations

import http.server
import json
import os
import sqlite3
import sys
import threading
from collections.abc import Sequence
from typing import Any

import openai
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from dexcost.demo.fake_openai import FakeOpenAIServer, FakeUsage


class JsonLinesExporter(SpanExporter):
    """Exporter that appends each span to a file at once, also after the provider shut down."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a", encoding="utf-8") as file:
            for span in spans:
                record = {
                    "name": span.name,
                    "scope": span.instrumentation_scope.name
                    if span.instrumentation_scope
                    else None,
                    "attributes": {
                        key: str(value) for key, value in (span.attributes or {}).items()
                    },
                }
                file.write(json.dumps(record) + "\n")
        return SpanExportResult.SUCCESS


class _PaidAPI(http.server.BaseHTTPRequestHandler):
    """A paid API on 127.0.0.1; the test stores a rate per request for its host."""

    def do_GET(self) -> None:
        body = b'{"results": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


def _call_paid_api() -> int:
    """Send one requests call to a paid API served on 127.0.0.1; return its status."""
    import requests

    import dexcost

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PaidAPI)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        port = server.server_address[1]
        with dexcost.context(customer_id="acme"):
            return requests.get(f"http://127.0.0.1:{port}/search?q=x", timeout=10).status_code
    finally:
        server.shutdown()
        server.server_close()


def main(arguments: list[str]) -> dict[str, Any]:
    provider = trace.get_tracer_provider()
    summary: dict[str, Any] = {"provider": type(provider).__name__}
    if hasattr(provider, "add_span_processor"):
        provider.add_span_processor(
            SimpleSpanProcessor(JsonLinesExporter(os.environ["APP_SPANS_FILE"]))
        )

    import dexcost
    from dexcost import runtime

    started = runtime.current_runtime()
    # After a bad configuration the distro leaves a runtime that stores nothing.
    summary["started_by_auto_launch"] = started is not None and started.buffer_path is not None
    if "init-again" in arguments:
        dexcost.init(auto_instrument=["openai"])

    tracer = trace.get_tracer("instrumented_app")
    with FakeOpenAIServer() as server:
        server.usage = FakeUsage(prompt_tokens=1200, completion_tokens=300)
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        with tracer.start_as_current_span("handle_ticket"), dexcost.context(customer_id="acme"):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
            )
        if "paid" in arguments:
            summary["paid_status"] = _call_paid_api()
        if "task" in arguments:
            with dexcost.task("answer_ticket", customer_id="acme"):
                dexcost.record_cost("geocoder", "0.005")
        client.close()
        summary["requests_to_fake"] = len(server.requests)

    if "sqlite" in arguments:
        connection = sqlite3.connect(":memory:")
        connection.cursor().execute("SELECT 1").fetchall()
        connection.close()
        worker = threading.Thread(target=lambda: None)
        worker.start()
        worker.join()

    summary["flushed"] = dexcost.flush(timeout=10)
    summary["instrumented"] = dexcost.runtime.instrumented_libraries()
    return summary


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])), flush=True)
