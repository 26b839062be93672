"""Time added by dexcost's HTTP capture to one request, bare client against instrumented.

A fake paid API runs on 127.0.0.1 in a child process, so it never waits for this
process's GIL: a threaded ``http.server`` with keep-alive connections that sends each
reply in one write with Nagle's algorithm off (a reply split over two writes waits
~40 ms for a delayed ACK, which would hide everything). A small catalog, built through
the same validator as the bundled one, bills two of its paths: ``/paid/...`` per
request (fixed count) and ``/paid-json/...`` from a field of the JSON reply. ``/free``
is in no entry. The "other host" workload sends it while the catalog bills another
host only, as most requests an application makes are to hosts no entry lists. Each
client sends the same GET in both modes:

- bare: dexcost initialised with its HTTP patches removed, so the client is unpatched;
- dexcost: the HTTP patches installed, as ``dexcost.init(track_http=True)`` leaves them.

Short blocks of the two modes alternate, and each pair swaps which mode goes first.
On a shared machine the speed of the same bare request drifts by 10-20% within
seconds, far more than the budget, so the figure is computed per pair of adjacent
blocks (instrumented block median minus bare block median), and the median of those
differences is reported. Budgets on that added wall time: 10 µs for an unmatched
request, 40 µs for a matched one. Each request is also timed in CPU time of the
calling thread: the part of the added time that is dexcost's own code there, as
opposed to the writer thread storing events, which shares the GIL.

The loopback round trip is noisy next to a 10 µs budget, so the script also times
``httpx.Client`` on an in-process mock transport, where the client and dexcost are
all there is to measure.

    python benchmarks/bench_http_overhead.py                        # about a minute
    python benchmarks/bench_http_overhead.py --calls 10 --pairs 20  # quick look
    python benchmarks/bench_http_overhead.py --clients requests --workloads unmatched
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

import _common
import httpx
import requests
import urllib3

import dexcost
from dexcost import http as http_capture
from dexcost.catalog import parse_catalog

BUDGET_UNMATCHED_US = 10.0
BUDGET_MATCHED_US = 40.0
# Requests sent and not timed at the start of each block.
_WARM_UP = 3

_REPLY = json.dumps({"results": [], "usage": {"credits": 2}}).encode()
_HEADERS = {"content-type": "application/json"}


_WIRE_REPLY = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    + f"content-length: {len(_REPLY)}\r\n\r\n".encode()
    + _REPLY
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self.wfile.write(_WIRE_REPLY)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the access log would cost more than the request."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def _mock_reply(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers=_HEADERS, content=_REPLY)


def _catalog(host: str) -> Any:
    def entry(entry_id: str, path: str, units_from: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": entry_id,
            "name": entry_id,
            "category": "search",
            "hosts": [host],
            "paths": [path],
            "pricing_model": "per_request",
            "unit": "request",
            "units_from": units_from,
            "price_usd": "5",
            "per": 1000,
            "bills_failed_requests": False,
            "source_url": "https://example.com/pricing",
            "checked": "2026-12-01",
        }

    return parse_catalog(
        {
            "schema_version": 1,
            "catalog_version": "bench",
            "services": [
                entry("bench_fixed", "/paid/*", {"kind": "fixed", "units": 1}),
                entry(
                    "bench_json",
                    "/paid-json/*",
                    {"kind": "response_json", "field": "usage.credits"},
                ),
            ],
        }
    )


WORKLOADS = {
    "unmatched": "/free",
    "other host": "/free",
    "matched fixed": "/paid/search",
    "matched json": "/paid-json/search",
}
# Host the catalog bills during the "other host" workload, so that 127.0.0.1 is a host
# no entry lists: the common unmatched request. "unmatched" is a path no entry bills
# on a billed host, which also looks up the path.
OTHER_HOST: Final = "paid.invalid"


def _senders(base_url: str) -> dict[str, Callable[[str], Any]]:
    session = requests.Session()
    client = httpx.Client()
    mock = httpx.Client(transport=httpx.MockTransport(_mock_reply))
    pool = urllib3.PoolManager()
    return {
        "requests": lambda path: session.get(base_url + path),
        "httpx": lambda path: client.get(base_url + path),
        "urllib3": lambda path: pool.request("GET", base_url + path),
        "httpx mock transport": lambda path: mock.get("http://127.0.0.1" + path),
    }


def _serve(ready: Any) -> None:
    """Run the fake paid API in a child process, so it never competes for our GIL."""
    server = _Server(("127.0.0.1", 0), _Handler)
    ready.send(server.server_address[1])
    server.serve_forever()


@dataclass
class Samples:
    """Per-request wall time and calling-thread CPU time, in microseconds."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def _block(send: Callable[[str], Any], path: str, calls: int, into: Samples) -> None:
    wall_clock = time.perf_counter_ns
    cpu_clock = time.thread_time_ns
    for _ in range(calls):
        wall, cpu = wall_clock(), cpu_clock()
        send(path)
        into.cpu.append((cpu_clock() - cpu) / 1000)
        into.wall.append((wall_clock() - wall) / 1000)


def _measure(
    send: Callable[[str], Any], path: str, calls: int, pairs: int
) -> tuple[Samples, Samples, list[float]]:
    """Return the bare and instrumented samples and the added wall time of each pair."""
    bare, instrumented = Samples(), Samples()
    added: list[float] = []
    for _ in range(3):  # warm connections and caches
        send(path)
    for pair in range(pairs):
        order = ("bare", "dexcost") if pair % 2 == 0 else ("dexcost", "bare")
        blocks: dict[str, Samples] = {}
        for mode in order:
            # Both modes patch and unpatch before their block, so the disturbance of
            # patching (imports, wrapt, a fresh host cache) hits both alike; the first
            # requests of a block warm up again and are left out.
            http_capture.start()
            send(path)
            http_capture.stop()
            if mode == "dexcost":
                http_capture.start()
            for _ in range(_WARM_UP):
                send(path)
            blocks[mode] = Samples()
            _block(send, path, calls, blocks[mode])
            if mode == "dexcost":
                http_capture.stop()
        added.append(
            statistics.median(blocks["dexcost"].wall) - statistics.median(blocks["bare"].wall)
        )
        for mode, into in (("bare", bare), ("dexcost", instrumented)):
            into.wall.extend(blocks[mode].wall)
            into.cpu.extend(blocks[mode].cpu)
    return bare, instrumented, added


def _floor_us(samples: int = 2000) -> float:
    """Median time of one OTel span with 10 attributes on a private provider, for scale.

    The budgets were set on a machine where this takes a few µs; on a loaded shared
    machine it can take ten times as long, and so does everything measured here.
    """
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("bench")
    attributes = {f"key.{n}": n for n in range(10)}
    timings = []
    for _ in range(samples):
        started = time.perf_counter_ns()
        tracer.start_span("floor", attributes=attributes).end()
        timings.append((time.perf_counter_ns() - started) / 1000)
    return statistics.median(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=25, help="requests per block")
    parser.add_argument("--pairs", type=int, default=120, help="bare/dexcost block pairs")
    parser.add_argument(
        "--clients",
        nargs="+",
        metavar="CLIENT",
        help="only these: requests httpx urllib3 httpx-mock-transport",
    )
    parser.add_argument(
        "--workloads",
        nargs="+",
        metavar="WORKLOAD",
        help="only these (unmatched, host, fixed, json)",
    )
    options = parser.parse_args()

    receive, send_port = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=_serve, args=(send_port,), daemon=True)
    server.start()
    base_url = f"http://127.0.0.1:{receive.recv()}"
    http_capture.use_catalog(_catalog("127.0.0.1"))
    buffer = Path(tempfile.mkdtemp(prefix="dexcost-bench-")) / "buffer.db"
    dexcost.init(storage="local", buffer_path=str(buffer), auto_instrument=[])
    http_capture.stop()
    print(f"CPU: {_common.cpu_model()}; load average: {_common.load_average()}")
    print(f"{options.pairs} pairs of blocks of {options.calls} requests per mode")
    print(
        "µs; 'added' is the median over pairs of (dexcost block median - bare block median);\n"
        "'added cpu' is the same on the calling thread's CPU time, overall medians\n"
    )
    header = (
        f"{'client':<22}{'workload':<15}{'bare wall':>10}{'added':>8}"
        f"{'bare cpu':>10}{'added cpu':>10}  budget"
    )
    print(header)
    print("-" * len(header))
    failed = False
    try:
        for client, send in _senders(base_url).items():
            if options.clients and client.replace(" ", "-") not in options.clients:
                continue
            for workload, path in WORKLOADS.items():
                if options.workloads and workload.split()[-1] not in options.workloads:
                    continue
                if workload == "other host":
                    http_capture.use_catalog(_catalog(OTHER_HOST))
                try:
                    bare, instrumented, pair_added = _measure(
                        send, path, options.calls, options.pairs
                    )
                finally:
                    http_capture.use_catalog(_catalog("127.0.0.1"))
                median = statistics.median
                added_wall = median(pair_added)
                added_cpu = median(instrumented.cpu) - median(bare.cpu)
                matched = workload.startswith("matched")
                budget = BUDGET_MATCHED_US if matched else BUDGET_UNMATCHED_US
                verdict = "ok" if added_wall <= budget else "OVER"
                failed = failed or added_wall > budget
                print(
                    f"{client:<22}{workload:<15}{median(bare.wall):>10.1f}{added_wall:>8.1f}"
                    f"{median(bare.cpu):>10.1f}{added_cpu:>10.1f}  {verdict} (≤ {budget:g})"
                )
    finally:
        dexcost.shutdown()
        server.terminate()
        server.join(timeout=5)
        http_capture.use_catalog(None)
    print(f"\nfloor: one OTel span with 10 attributes, median {_floor_us():.1f} µs")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
