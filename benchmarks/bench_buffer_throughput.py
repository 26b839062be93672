"""Sustained buffer throughput: spans per second stored in SQLite, fed from 4 threads.

Three modes (``--modes``, all by default):

- tight: each of ``--threads`` threads opens a ``dexcost.task`` and calls
  ``TrackedTask.record_llm_call`` (a priced gpt-4o-mini call) in a loop for ``--seconds``,
  then ``dexcost.flush()``. Reported per run: spans recorded and the recording rate,
  ``llm_call`` rows stored, the ``dropped_events`` counter (stored plus dropped must
  equal the spans recorded), spans written while the threads recorded, the drain rate
  once they stopped, and the peak queue. The recording threads and the writer share one
  GIL, so this shows that limit: the writer cannot store more than is recorded, and
  gets little GIL time while 4 threads record without pause.
- drain: 19,000 captured ``record_llm_call`` events are queued while the writer is held
  off its I/O lock, then ``force_flush`` is timed, ``--runs`` times into a fresh file and
  ``--runs`` times into a copy of a file that already holds ``--populated-rows`` rows.
- paced: the budget. ``--threads`` threads hand pre-built events (copies of the captured
  ones with their own attributes and later end times) to the processor's ``on_event`` at
  ``--rate`` events/s in total for ``--seconds``, alternating a fresh file and a
  populated one, ``--runs`` times each. PASS needs no drop, every event stored, the queue
  empty within ``--grace`` seconds of the feed stopping, and stored/s (events stored
  over the feeding time) at least ``--rate``. It also reports the writer's time per
  event in the processor's ``_store`` (conversion and SQLite), wall and CPU, and the
  share of the run it spent there.

By default the drain and paced modes queue events as ``emit_event`` queues them when
the buffer is their only reader, and the writer turns each into a row. ``--feed spans``
queues finished spans instead, as with the development console or ``export_to_otel``.

The populated file is built with SQL from one stored span: random ids, end times 1 ms
apart, all rows synced. ``--migration`` also times opening a version 4 buffer of
``--populated-rows`` rows, which rebuilds its spans table.

    python benchmarks/bench_buffer_throughput.py             # a few minutes
    python benchmarks/bench_buffer_throughput.py --modes paced --rate 20000 --runs 1
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import _common
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

TARGET_SPANS_PER_SECOND = 30_000


def one_run(buffer_path: Path, threads: int, seconds: float) -> dict[str, float]:
    import dexcost
    from dexcost.runtime import current_runtime

    dexcost.init(storage="local", buffer_path=str(buffer_path))
    # Price table loaded and the rate card compiled before the clock starts.
    from dexcost.pricing import TokenUsage, price_llm

    price_llm("openai", "gpt-4o-mini", TokenUsage(input_tokens=1, output_tokens=1))
    runtime = current_runtime()
    assert runtime is not None
    processor = runtime.processor

    counts = [0] * threads
    stop = threading.Event()
    ready = threading.Barrier(threads + 1)

    def produce(index: int) -> None:
        with dexcost.task("bench_buffer", customer_id=f"customer-{index}") as tracked:
            ready.wait()
            n = 0
            while not stop.is_set():
                for _ in range(50):
                    tracked.record_llm_call("openai", "gpt-4o-mini", 1200, 300, cached_tokens=200)
                n += 50
            counts[index] = n

    workers = [threading.Thread(target=produce, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    ready.wait()
    started = time.perf_counter()
    peak_queue = 0
    while time.perf_counter() - started < seconds:
        peak_queue = max(peak_queue, processor.queued)
        time.sleep(0.01)
    stop.set()
    for worker in workers:
        worker.join()
    produced_at = time.perf_counter()
    backlog = processor.queued
    flushed = dexcost.flush(120)
    stored_at = time.perf_counter()
    dexcost.shutdown()

    with sqlite3.connect(buffer_path) as db:
        stored = db.execute("SELECT count(*) FROM spans WHERE event_type = 'llm_call'").fetchone()[
            0
        ]
        priced = db.execute(
            "SELECT count(*) FROM spans WHERE event_type = 'llm_call' AND cost_status = 'priced'"
        ).fetchone()[0]
        all_spans = db.execute("SELECT count(*) FROM spans").fetchone()[0]
        row = db.execute("SELECT value FROM counters WHERE name = 'dropped_events'").fetchone()
    dropped = row[0] if row else 0
    produced = sum(counts)
    return {
        "produced": produced,
        "produce_rate": produced / (produced_at - started),
        "backlog_after_producers": backlog,
        "flush_s": stored_at - produced_at,
        "flushed": flushed,
        "stored": stored,
        "stored_all_spans": all_spans,
        # The recorded llm_call events plus one task span per thread.
        "expected_all_spans": produced + threads,
        "priced": priced,
        "dropped": dropped,
        "peak_queue": peak_queue,
        "elapsed_s": stored_at - started,
        # Spans the writer took off the queue while the producers ran (the in-flight batch
        # of at most 500 counts as taken).
        "write_rate_under_load": (produced + threads - dropped - backlog) / (produced_at - started),
        "drain_rate": backlog / (stored_at - produced_at) if stored_at > produced_at else 0.0,
        "stored_rate": stored / (stored_at - started),
    }


def capture_events(folder: Path, count: int) -> list[Any]:
    """Return ``count`` ``record_llm_call`` events as queued, captured instead of stored.

    Each is the tuple ``emit_event`` hands to the processor's ``on_event``; the writer
    thread turns it into a row (``event_to_row``).
    """
    import dexcost
    from dexcost import semconv
    from dexcost.runtime import current_runtime

    dexcost.init(storage="local", buffer_path=str(folder / "capture.db"))
    runtime = current_runtime()
    assert runtime is not None
    captured: list[Any] = []
    runtime.processor.on_event = captured.append  # type: ignore[attr-defined]
    with dexcost.task("bench_buffer", customer_id="customer-0") as tracked:
        for _ in range(count):
            tracked.record_llm_call("openai", "gpt-4o-mini", 1200, 300, cached_tokens=200)
    dexcost.shutdown()
    return [item for item in captured if type(item) is tuple and item[2] == semconv.LLM_CALL]


def event_copy(template: Any, end_ns: int | None = None) -> Any:
    """Return a copy of a queued event with its own attributes, ending at ``end_ns``."""
    start, end = template[11], template[12]
    if end_ns is not None:
        start, end = end_ns - (end - start), end_ns
    return (*template[:3], dict(template[3]), *template[4:11], start, end, *template[13:])


def fresh_events(templates: list[Any], count: int, first_end_ns: int, step_ns: int) -> list[Any]:
    """Return ``count`` copies of the templates, ending ``step_ns`` apart.

    The writer gives each a new span id (and trace id, as the events have no parent
    span), as it does for every event.
    """
    return [
        event_copy(templates[index % len(templates)], first_end_ns + index * step_ns)
        for index in range(count)
    ]


def span_templates(events: list[Any]) -> list[ReadableSpan]:
    """Return the spans the first few events make, as a console or export would see them."""
    from dexcost.events import build_span

    return [build_span(event_copy(event)) for event in events[:16]]


def fresh_copies(
    templates: list[ReadableSpan], count: int, first_end_ns: int, step_ns: int
) -> list[ReadableSpan]:
    """Return ``count`` copies of the templates, each with new ids and a later end time.

    The copies share the templates' attribute dicts, resource and scope, as the spans
    of one process do. Each gets a random trace and span id, and the end times grow by
    ``step_ns``, as they would for spans that end one after another.
    """
    copies = []
    flags = TraceFlags(TraceFlags.SAMPLED)
    bits = random.getrandbits
    for index in range(count):
        template = templates[index % len(templates)]
        end = first_end_ns + index * step_ns
        copies.append(
            ReadableSpan(
                name=template.name,
                context=SpanContext(bits(128), bits(64), False, flags),
                parent=template.parent,
                resource=template.resource,
                attributes=template._attributes,  # shared, as the stored text is the same
                kind=template.kind,
                instrumentation_scope=template.instrumentation_scope,
                status=template.status,
                start_time=end - (template.end_time or 0) + (template.start_time or 0),
                end_time=end,
            )
        )
    return copies


def populate(path: Path, rows: int, template: ReadableSpan) -> None:
    """Add ``rows`` synced rows to the buffer at ``path``, which must have its tables.

    One row is stored from ``template``; SQL then copies it with random ids and end times
    1 ms apart, the newest one second ago, and deletes the first. The rows are marked
    synced, as in a buffer that has been uploading for a while.
    """
    from dexcost.buffer_schema import INSERT_SPAN_SQL, span_to_row

    now = time.time_ns()
    newest = now - 1_000_000_000
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("BEGIN IMMEDIATE")
        first = db.execute(INSERT_SPAN_SQL, span_to_row(template, now)).lastrowid
        columns = [row[1] for row in db.execute("PRAGMA table_info(spans)") if row[1] != "id"]
        generated = {
            "trace_id": "lower(hex(randomblob(16)))",
            "span_id": "lower(hex(randomblob(8)))",
            "end_ns": f"{newest} - ({rows} - n.value) * 1000000",
            "start_ns": f"{newest} - ({rows} - n.value) * 1000000 - 800000000",
            "created_at": f"{newest} - ({rows} - n.value) * 1000000",
            "sync_state": "1",
            "synced_at": str(now),
        }
        select = ", ".join(generated.get(column, f"spans.{column}") for column in columns)
        db.execute(
            f"WITH RECURSIVE n(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM n "
            f"WHERE value < {rows}) INSERT INTO spans ({', '.join(columns)}) "
            f"SELECT {select} FROM spans, n WHERE spans.id = ?",
            (first,),
        )
        db.execute("DELETE FROM spans WHERE id = ?", (first,))
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def populated_file(path: Path, rows: int, template: ReadableSpan) -> float:
    """Create a buffer of this release's schema holding ``rows`` rows; return seconds."""
    from dexcost.buffer import Buffer

    started = time.perf_counter()
    Buffer.open(path).close()
    populate(path, rows, template)
    return time.perf_counter() - started


def start_file(folder: Path, name: str, populated: Path | None) -> Path:
    """Return a new buffer path: a copy of ``populated``, or a file not yet created."""
    path = folder / name
    if populated is not None:
        shutil.copyfile(populated, path)
        # Write the copy to disk now. Otherwise the first checkpoint's fsync would write
        # the whole copied file inside the measurement, which a buffer that grew to this
        # size over time never pays.
        with open(path, "rb+") as copy:
            os.fsync(copy.fileno())
    return path


def queued_drain(
    folder: Path, items: list[Any], runs: int, populated: Path | None = None
) -> list[float]:
    """Return items/s for the writer to store ``items`` queued at once, once per run.

    ``items`` are queued events or spans; events are copied per run, because storing
    one completes its attributes in place.
    """
    from dexcost.processor import DexcostSpanProcessor

    rates = []
    for run in range(runs):
        batch = [event_copy(item) if type(item) is tuple else item for item in items]
        processor = DexcostSpanProcessor(start_file(folder, f"drain-{run}.db", populated))
        processor.force_flush()
        with processor._io_lock:  # the writer waits here until every item is queued
            for item in batch:
                processor.on_event(item)
        started = time.perf_counter()
        assert processor.force_flush(120_000)
        rates.append(len(batch) / (time.perf_counter() - started))
        processor.shutdown()
    return rates


def paced(
    path: Path,
    templates: list[Any],
    rate: float,
    seconds: float,
    threads: int,
    feed_spans: bool,
) -> dict[str, float]:
    """Hand events to the processor's ``on_event`` from ``threads`` threads at ``rate`` in total.

    The events are queued ``record_llm_call`` events, or with ``feed_spans`` finished
    spans built from them (what the writer receives with a console or an export on).

    Each thread feeds its share on a fixed schedule: every ~2 ms it hands over the spans
    that are due by then, so a thread that was held up catches up. The spans are built
    before the clock starts. Returns the fed and stored counts and rates, the drops (the
    ``dropped_events`` counter), the peak queue and the flush time after feeding stops.
    """
    from dexcost.processor import DexcostSpanProcessor

    # Time each store on the writer thread: wall time, the thread's CPU time and spans.
    stores: list[tuple[float, float, int]] = []
    store = DexcostSpanProcessor._store

    def timed_store(processor: DexcostSpanProcessor, buffer: Any, batch: list[Any]) -> bool:
        count = len(batch)
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return store(processor, buffer, batch)
        finally:
            stores.append((time.perf_counter() - wall, time.thread_time() - cpu, count))

    per_thread = int(rate * seconds / threads)
    step_ns = int(1e9 / rate)
    first_end = time.time_ns()
    feeds = []
    for index in range(threads):
        first = first_end + index * step_ns
        if feed_spans:
            feeds.append(
                fresh_copies(span_templates(templates), per_thread, first, threads * step_ns)
            )
        else:
            feeds.append(fresh_events(templates, per_thread, first, threads * step_ns))
    processor = DexcostSpanProcessor(path)
    processor.force_flush()  # the file is open and migrated before the clock starts
    DexcostSpanProcessor._store = timed_store  # type: ignore[method-assign]
    fed = [0] * threads
    finished = [0.0] * threads
    ready = threading.Barrier(threads + 1)
    started = 0.0

    def feed(index: int) -> None:
        items = feeds[index]
        on_event = processor.on_event
        thread_rate = rate / threads
        ready.wait()
        done = 0
        while done < per_thread:
            # Span k is due k / thread_rate seconds after the start.
            due = min(per_thread, int((time.perf_counter() - started) * thread_rate) + 1)
            while done < due:
                on_event(items[done])
                done += 1
            fed[index] = done
            if done < per_thread:
                time.sleep(0.002)
        finished[index] = time.perf_counter()

    workers = [threading.Thread(target=feed, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    started = time.perf_counter()
    ready.wait()
    peak_queue = 0
    while any(worker.is_alive() for worker in workers):
        peak_queue = max(peak_queue, processor.queued)
        time.sleep(0.01)
    fed_at = time.perf_counter()
    for worker in workers:
        worker.join()
    backlog = processor.queued
    flushed = processor.force_flush(120_000)
    flushed_at = time.perf_counter()
    processor.shutdown()
    DexcostSpanProcessor._store = store  # type: ignore[method-assign]
    stored_spans = sum(count for _, _, count in stores) or 1
    with closing(sqlite3.connect(path)) as db:
        stored = db.execute(
            "SELECT count(*) FROM spans WHERE sync_state = 0 AND event_type = 'llm_call'"
        ).fetchone()[0]
        row = db.execute("SELECT value FROM counters WHERE name = 'dropped_events'").fetchone()
    dropped = row[0] if row else 0
    total_fed = sum(fed)
    return {
        "fed": total_fed,
        "stored": stored,
        "dropped": dropped,
        "peak_queue": peak_queue,
        "queued_at_stop": backlog,
        # How long after the scheduled end the last span was handed over: the feeders'
        # lag, which grows when the writer keeps them from the GIL.
        "feed_lag_s": max(finished) - started - seconds,
        "fed_rate": total_fed / (max(finished) - started),
        "flush_s": flushed_at - fed_at,
        "flushed": flushed,
        # Spans stored over the scheduled feeding time. It reaches the offered rate only
        # when every fed span was stored; the verdict also bounds the lag and the flush.
        "stored_rate": stored / seconds,
        "stored_rate_to_flush": stored / (flushed_at - started),
        # The writer's cost per span in _store (conversion and SQLite), and the
        # share of the run it spent there: near 1 means it never waited for spans.
        "writer_us_per_span": sum(wall for wall, _, _ in stores) / stored_spans * 1e6,
        "writer_cpu_us_per_span": sum(cpu for _, cpu, _ in stores) / stored_spans * 1e6,
        "writer_busy": sum(wall for wall, _, _ in stores) / (flushed_at - started),
    }


def time_migration(folder: Path, rows: int, template: ReadableSpan) -> float | None:
    """Return seconds to open a version 4 buffer of ``rows`` rows with this release.

    None when this release has no migration past version 4.
    """
    from dexcost.buffer import Buffer
    from dexcost.buffer_schema import MIGRATIONS, SCHEMA_VERSION

    if SCHEMA_VERSION <= 4:
        return None
    path = folder / "v4.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("BEGIN")
        for migration in MIGRATIONS[:4]:
            for statement in migration:
                db.execute(statement)
        db.execute("PRAGMA user_version = 4")
        db.execute("COMMIT")
    populate(path, rows, template)
    started = time.perf_counter()
    Buffer.open(path).close()
    return time.perf_counter() - started


def tight_loop(args: argparse.Namespace, folder: Path, report: dict[str, object]) -> bool:
    """Run and print the recording runs; return True when the tight-loop budget was met."""
    print(
        f"\n{args.runs} runs, {args.threads} threads recording for {args.seconds:g} s each, "
        "fresh buffer file per run\n"
    )
    results = []
    for run in range(args.runs):
        result = one_run(folder / f"buffer-{run}.db", args.threads, args.seconds)
        results.append(result)
        print(
            f"  run {run}: produced {result['produced']:.0f}, stored {result['stored']:.0f}, "
            f"dropped {result['dropped']:.0f}, {result['stored_rate']:,.0f} stored/s",
            flush=True,
        )
    rows = [
        [
            f"run {i}",
            r["produced"],
            r["produce_rate"],
            r["peak_queue"],
            r["backlog_after_producers"],
            r["flush_s"],
            r["stored"],
            r["dropped"],
            r["elapsed_s"],
            r["write_rate_under_load"],
            r["drain_rate"],
            r["stored_rate"],
        ]
        for i, r in enumerate(results)
    ]
    print()
    print(
        _common.table(
            [
                "run",
                "recorded",
                "recorded/s",
                "peak queue",
                "queued at stop",
                "flush s",
                "stored",
                "dropped",
                "total s",
                "written/s recording",
                "drain/s",
                "stored/s overall",
            ],
            [[c if not isinstance(c, int) else f"{c:,}" for c in row] for row in rows],
        )
    )
    median_rate = _common.median([r["stored_rate"] for r in results])
    written = _common.median([r["write_rate_under_load"] for r in results])
    print(
        f"\nmedian: {median_rate:,.0f} spans/s stored overall (until flush() returned); "
        f"{written:,.0f}/s written while recording, "
        f"{_common.median([r['drain_rate'] for r in results]):,.0f}/s draining alone"
    )
    print(
        f"tight loop, {args.threads} threads recording as fast as they can: {written:,.0f}/s "
        f"written while recording, against {TARGET_SPANS_PER_SECOND:,}/s: "
        + ("PASS" if written >= TARGET_SPANS_PER_SECOND else "FAIL")
        + " (bounded by the recording rate, which shares the GIL with the writer)"
    )
    bad = [
        r
        for r in results
        if r["stored_all_spans"] + r["dropped"] != r["expected_all_spans"] or not r["flushed"]
    ]
    if bad:
        print(f"WARNING: {len(bad)} runs lost spans without counting them, or flush timed out")
    else:
        print("every span was either stored or counted in dropped_events (task spans included)")
    unpriced = [r for r in results if r["priced"] != r["stored"]]
    if unpriced:
        print(f"WARNING: {len(unpriced)} runs stored rows that are not priced")
    report["tight"] = results
    return not bad and not unpriced


def print_paced(results: list[tuple[str, dict[str, float]]], rate: float, grace: float) -> bool:
    """Print the paced runs and return True when every run met the target."""
    print(
        _common.table(
            [
                "file",
                "fed",
                "fed/s",
                "feed lag s",
                "stored",
                "dropped",
                "peak queue",
                "queued at stop",
                "flush s",
                "stored/s",
                "stored/s to flush",
                "writer µs/span",
                "writer CPU µs/span",
                "writer busy",
                "load",
                "verdict",
            ],
            [
                [
                    name,
                    f"{r['fed']:,.0f}",
                    r["fed_rate"],
                    r["feed_lag_s"],
                    f"{r['stored']:,.0f}",
                    f"{r['dropped']:,.0f}",
                    f"{r['peak_queue']:,.0f}",
                    f"{r['queued_at_stop']:,.0f}",
                    r["flush_s"],
                    r["stored_rate"],
                    r["stored_rate_to_flush"],
                    r["writer_us_per_span"],
                    r["writer_cpu_us_per_span"],
                    r["writer_busy"],
                    r["load_at_end"],
                    paced_verdict(r, rate, grace),
                ]
                for name, r in results
            ],
        )
    )
    return all(paced_verdict(r, rate, grace) == "PASS" for _, r in results)


def paced_verdict(result: dict[str, float], rate: float, grace: float) -> str:
    """PASS when nothing was dropped or lost, the feeders kept to their schedule and the
    queue emptied within ``grace`` seconds each, and stored/s reaches ``rate``."""
    kept_up = (
        result["dropped"] == 0
        and result["stored"] == result["fed"]
        and result["flushed"]
        and result["feed_lag_s"] <= grace
        and result["flush_s"] <= grace
    )
    return "PASS" if kept_up and result["stored_rate"] >= rate else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="producing time per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--modes",
        default="tight,drain,paced",
        help="comma-separated: tight (record in a loop), drain (queued drains), paced",
    )
    parser.add_argument(
        "--rate", type=float, default=TARGET_SPANS_PER_SECOND, help="paced mode: spans/s in total"
    )
    parser.add_argument(
        "--populated-rows", type=int, default=200_000, help="rows in the populated file"
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=1.0,
        help="paced mode: seconds the queue may take to empty after the feed stops",
    )
    parser.add_argument(
        "--feed",
        choices=("events", "spans"),
        default="events",
        help="drain and paced modes: queued events as recorded (default), or finished spans",
    )
    parser.add_argument("--migration", action="store_true", help="also time the v4 migration")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    modes = {mode.strip() for mode in args.modes.split(",") if mode.strip()}
    unknown = modes - {"tight", "drain", "paced"}
    if unknown:
        parser.error(f"unknown --modes {', '.join(sorted(unknown))}; use tight, drain, paced")

    import dexcost.buffer_schema

    print(_common.machine_header())
    print(f"buffer schema version {dexcost.buffer_schema.SCHEMA_VERSION}")
    report: dict[str, object] = {"machine": _common.machine_header()}
    tmp = Path(tempfile.mkdtemp(prefix="dexcost-bench-"))
    ok = True
    try:
        if "tight" in modes:
            ok = tight_loop(args, tmp, report) and ok
        templates = capture_events(tmp, 19_000)
        template_span = span_templates(templates)[0]
        items = (
            templates
            if args.feed == "events"
            else fresh_copies(span_templates(templates), len(templates), time.time_ns(), 1_000)
        )
        populated = None
        if modes & {"drain", "paced"}:
            populated = tmp / "populated.db"
            built = populated_file(populated, args.populated_rows, template_span)
            print(f"\npopulated file: {args.populated_rows:,} rows built in {built:.1f} s")
        if "drain" in modes:
            assert populated is not None
            fresh = queued_drain(tmp, items, args.runs)
            full = queued_drain(tmp, items, args.runs, populated)
            for name, rates in (("fresh file", fresh), (f"{args.populated_rows:,} rows", full)):
                print(
                    f"queued drain of {len(items):,} {args.feed}, {name}: "
                    f"{_common.median(rates):,.0f} spans/s median, runs "
                    + ", ".join(f"{rate:,.0f}" for rate in rates)
                )
            report["queued_drain"] = fresh
            report["queued_drain_populated"] = full
        if "paced" in modes:
            assert populated is not None
            print(
                f"\npaced: {args.threads} threads hand {args.rate:,.0f} {args.feed}/s in total "
                f"to on_event for {args.seconds:g} s, {args.runs} runs per file, alternating"
            )
            paced_runs: list[tuple[str, dict[str, float]]] = []
            for run in range(args.runs):
                for name, source in (("fresh", None), ("populated", populated)):
                    path = start_file(tmp, f"paced-{name}-{run}.db", source)
                    result = paced(
                        path,
                        templates,
                        args.rate,
                        args.seconds,
                        args.threads,
                        feed_spans=args.feed == "spans",
                    )
                    result["load_at_end"] = os.getloadavg()[0]
                    paced_runs.append((name, result))
                    path.unlink()
            ok = print_paced(paced_runs, args.rate, args.grace) and ok
            print(
                f"budget: >= {args.rate:,.0f} spans/s stored from {args.threads} threads, no "
                f"drops, queue empty within {args.grace:g} s of the feed stopping: "
                + (
                    "PASS"
                    if all(paced_verdict(r, args.rate, args.grace) == "PASS" for _, r in paced_runs)
                    else "FAIL"
                )
            )
            report["paced"] = [{"file": name, **result} for name, result in paced_runs]
        if args.migration:
            seconds = time_migration(tmp, args.populated_rows, template_span)
            if seconds is not None:
                print(
                    f"\nopening a version 4 buffer of {args.populated_rows:,} rows (migration): "
                    f"{seconds:.1f} s"
                )
            report["migration_s"] = seconds
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average at the end: {_common.load_average()}")
    _common.write_json(args.json, report)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
