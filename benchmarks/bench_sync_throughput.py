"""Sustained upload throughput: events per second from a full buffer to an OTLP receiver.

The buffer is filled first (``--events`` priced gpt-4o-mini calls recorded with
``record_llm_call`` in local mode). Then a ``SyncWorker`` uploads it to a receiver
on 127.0.0.1, started in its own process so it does not compete for this one's GIL.
The receiver decodes every request with opentelemetry-proto and counts the spans.
The clock runs from the worker's start until no row is pending. That is checked every
20 ms with a query that stops at the first pending row, so the check itself costs the
worker next to nothing. Reported per batch size and run: events per second, requests
sent, the receiver's span count (every event plus its session task span, so at least
``--events``), and the CPU time per event of this process (the worker's threads) and of
the receiver. CPU time varies less than events per second on a shared machine.

Target: at least 20,000 events/s with the default batch size of 100.

    python benchmarks/bench_sync_throughput.py                  # ~1 minute
    python benchmarks/bench_sync_throughput.py --events 20000 --batch-sizes 500 --runs 1

The receiver alone, posting one stored 100-span batch over one connection from this
process, is measured with ``--receiver-only``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common

TARGET_EVENTS_PER_SECOND = 20_000

# The receiver: counts decoded spans and answers 200 with an empty response body.
RECEIVER = """
import gzip, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    spans = 0
    requests = 0

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = f"{Handler.spans} {Handler.requests}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            Handler.spans += sum(len(scope.spans) for scope in resource.scope_spans)
        Handler.requests += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def fill(path: Path, events: int) -> None:
    import dexcost

    dexcost.init(storage="local", buffer_path=str(path))
    with dexcost.task("bench"):
        for index in range(events):
            dexcost.record_llm_call("openai", "gpt-4o-mini", 1200, 300)
            if index % 5_000 == 4_999:
                # Keep the writer's queue under its bound: nothing may be dropped.
                dexcost.flush(timeout=60)
    dexcost.shutdown()


def receiver_counts(port: int) -> tuple[int, int]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/")
        spans, requests = connection.getresponse().read().split()
    finally:
        connection.close()
    return int(spans), int(requests)


def pending(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return int(
            connection.execute(
                "SELECT EXISTS (SELECT 1 FROM spans WHERE sync_state = 0)"
            ).fetchone()[0]
        )
    finally:
        connection.close()


def cpu_seconds(scope: int) -> float:
    usage = resource.getrusage(scope)
    return usage.ru_utime + usage.ru_stime


def one_run(template: Path, work: Path, batch_size: int, events: int) -> dict[str, float]:
    from dexcost.sync import SyncWorker

    shutil.copy(template, work)
    receiver_cpu_before = cpu_seconds(resource.RUSAGE_CHILDREN)
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline())
        spans_before, requests_before = receiver_counts(port)
        worker = SyncWorker(
            work,
            endpoint=f"http://127.0.0.1:{port}",
            api_key="dx_test_" + "b" * 24,
            batch_size=batch_size,
            flush_interval=0.05,
        )
        started = time.perf_counter()
        cpu_started = cpu_seconds(resource.RUSAGE_SELF)
        worker.start()
        while pending(work):
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(resource.RUSAGE_SELF) - cpu_started
        worker.shutdown(1000)
        spans, requests = receiver_counts(port)
    finally:
        receiver.terminate()
        receiver.wait(5)
        receiver.stdout.close()  # type: ignore[union-attr]
    # The receiver is a finished child now, so its CPU time is in RUSAGE_CHILDREN.
    receiver_cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - receiver_cpu_before
    return {
        "batch_size": batch_size,
        "seconds": elapsed,
        "events_per_second": events / elapsed,
        "requests": requests - requests_before,
        "spans_received": spans - spans_before,
        "worker_cpu_us_per_event": cpu / events * 1e6,
        "receiver_cpu_us_per_event": receiver_cpu / events * 1e6,
        "load": _common.load_average(),
    }


def receiver_only(template: Path, requests: int = 2_000) -> float:
    """Return spans per second that the receiver takes from one connection, 100 per request."""
    import gzip
    import http.client

    from dexcost.buffer import SYNC_ROW_COLUMNS
    from dexcost.sync.otlp import encode_request, encode_span

    connection = sqlite3.connect(template)
    try:
        rows = connection.execute(
            f"SELECT {', '.join(SYNC_ROW_COLUMNS)} FROM spans LIMIT 100"
        ).fetchall()
    finally:
        connection.close()
    body = gzip.compress(encode_request([encode_span(row) for row in rows]), 1, mtime=0)
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline())
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        started = time.perf_counter()
        for _ in range(requests):
            client.request("POST", "/v1/traces", body, headers)
            answer = client.getresponse()
            answer.read()
            assert answer.status == 200
        elapsed = time.perf_counter() - started
        client.close()
    finally:
        receiver.terminate()
        receiver.wait(5)
        receiver.stdout.close()  # type: ignore[union-attr]
    return requests * len(rows) / elapsed


def encode_cost(template: Path) -> float:
    """Return µs per span to encode stored rows and build one request, without HTTP."""
    from dexcost.buffer import SYNC_ROW_COLUMNS
    from dexcost.sync.otlp import encode_request, encode_span

    connection = sqlite3.connect(template)
    try:
        rows = connection.execute(
            f"SELECT {', '.join(SYNC_ROW_COLUMNS)} FROM spans LIMIT 20000"
        ).fetchall()
    finally:
        connection.close()
    started = time.perf_counter()
    encode_request([encode_span(row) for row in rows])
    return (time.perf_counter() - started) / len(rows) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--runs", type=int, default=2, help="runs per batch size")
    parser.add_argument(
        "--receiver-only", action="store_true", help="also time the receiver on its own"
    )
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    options = parser.parse_args()

    print(f"machine: {os.cpu_count()} cores, {_common.cpu_model()}, load {_common.load_average()}")
    folder = Path(tempfile.mkdtemp(prefix="dexcost-bench-sync-"))
    try:
        template = folder / "filled.db"
        fill(template, options.events)
        encode_us = encode_cost(template)
        receiver_rate = receiver_only(template) if options.receiver_only else None
        # Runs alternate between batch sizes, so a burst of load elsewhere hits all of them.
        results = [
            one_run(template, folder / f"run-{size}.db", size, options.events)
            for _ in range(options.runs)
            for size in options.batch_sizes
        ]
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print(f"encode only: {encode_us:.1f} µs per span")
    if receiver_rate is not None:
        print(f"receiver alone, one connection: {receiver_rate:,.0f} spans/s")
    print(
        f"{'batch':>6} {'seconds':>8} {'events/s':>10} {'requests':>9} {'spans rx':>9} "
        f"{'worker µs/ev':>13} {'receiver µs/ev':>15}  load at end"
    )
    for row in results:
        print(
            f"{row['batch_size']:>6} {row['seconds']:>8.2f} {row['events_per_second']:>10,.0f} "
            f"{row['requests']:>9} {row['spans_received']:>9} "
            f"{row['worker_cpu_us_per_event']:>13.1f} {row['receiver_cpu_us_per_event']:>15.1f}"
            f"  {row['load']}"
        )
    for size in options.batch_sizes:
        rates = [row["events_per_second"] for row in results if row["batch_size"] == size]
        verdict = "PASS" if _common.median(rates) >= TARGET_EVENTS_PER_SECOND else "FAIL"
        print(
            f"batch {size}: median {_common.median(rates):,.0f} events/s, runs "
            f"{min(rates):,.0f}-{max(rates):,.0f}; target ≥ {TARGET_EVENTS_PER_SECOND:,} {verdict}"
        )
    if options.json:
        _common.write_json(
            str(options.json),
            {
                "encode_us_per_span": encode_us,
                "receiver_spans_per_second": receiver_rate,
                "runs": results,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
