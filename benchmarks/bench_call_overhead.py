"""Time added by dexcost to one LLM SDK call, against the bare SDK on a mock transport.

One process, one ``openai.OpenAI`` client on ``FakeOpenAI``'s httpx2 mock transport (no
socket). ``--provider anthropic`` and ``--provider groq`` run the same method on an
``anthropic.Anthropic`` client (``FakeAnthropic``, httpx2 mock transport) or a
``groq.Groq`` client (``FakeGroq`` from the groq tests, httpx mock transport);
``--provider all`` runs the three one after the other. ``init()`` instruments only the
SDK under test. Bare and instrumented blocks alternate: an instrumented block runs between
``dexcost.init(...)`` and ``dexcost.shutdown()``, which removes the patches, so a bare
block runs the unpatched SDK. Each pair swaps which mode goes first, so drift in the
machine's load hits both modes alike. The default is many short blocks (24 pairs of 250
calls) rather than a few long ones. On a shared machine the speed of the same bare call
drifts by 2x within seconds, and short blocks spread that drift over both modes.

Per call it records the wall time, and the part of it spent inside the SDK: a thin
timer replaces ``Completions.create`` (``Messages.create`` for anthropic, and groq's own
``Completions.create`` for groq) before dexcost patches it (dexcost then wraps the timer)
and times ``create`` plus every read of the stream's own item iterator. The timer runs
in both modes, so it cancels out of the difference. Per block it also records the
CPU time of the calling thread and of the whole process (the second includes dexcost's
writer thread). The budget is on the added median wall time: instrumented median minus
bare median. The split shows where that time goes: dexcost's own code on the calling
thread (wall minus SDK time) and extra SDK work (the usage chunk dexcost asks for, GIL
waits on the writer thread).

Two workloads per provider. OpenAI: a non-streaming chat completion, and a streamed one
without ``stream_options`` read to the end (dexcost then asks for the usage chunk and
hides it). Anthropic: ``messages.create`` and ``messages.create(stream=True)`` read to the
end. Groq: ``chat.completions.create`` and a stream read to the end (sent unchanged:
Groq puts the usage in the last chunk). For context, the script also times the floor:
one OTel span with 15 attributes on a private TracerProvider with one processor that
queues the span.

    python benchmarks/bench_call_overhead.py                 # about 1-2 minutes
    python benchmarks/bench_call_overhead.py --calls 100 --pairs 4   # quick look
    python benchmarks/bench_call_overhead.py --provider anthropic    # or groq, or all
    python benchmarks/bench_call_overhead.py --profile --calls 2000     # cProfile of dexcost
    python benchmarks/bench_call_overhead.py --breakdown --calls 3000   # µs per part of dexcost
    python benchmarks/bench_call_overhead.py --export-to-otel  # with export_to_otel=True

``--export-to-otel`` sets a global SDK TracerProvider with a BatchSpanProcessor and an
exporter that drops what it gets, as an application with its own tracing would have,
and starts dexcost with ``export_to_otel=True``: the difference from a run without the
flag is the cost of the copy.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import io
import pstats
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import _common

BUDGET_ADDED_MEDIAN_US = 40.0
# Set by --export-to-otel.
EXPORT_TO_OTEL = False
MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "I cannot sign in, please reset my password."}]
KINDS = ("chat", "stream")
ANTHROPIC_MODEL = "claude-sonnet-4"
ANTHROPIC_MAX_TOKENS = 256
GROQ_MODEL = "llama-3.3-70b-versatile"
# The mock transports handle every request in-process, so no connection to these hosts is made.
ANTHROPIC_BASE_URL = "http://fake.test"
GROQ_BASE_URL = "http://127.0.0.1:8"


@dataclass
class Block:
    kind: str
    mode: str  # "bare" or "dexcost"
    pair: int
    wall_us: list[float]
    sdk_us: list[float]  # of wall_us, the time spent inside the SDK itself
    thread_cpu_us: float  # per call, calling thread
    process_cpu_us: float  # per call, every thread
    gc_collections: tuple[int, int, int] = (0, 0, 0)  # per generation, during the block
    backlog: int = 0  # spans still queued for the writer when the block ended
    flush_ms: float = 0.0  # time dexcost.flush() took after the block


@dataclass
class Results:
    provider: str = "openai"
    blocks: list[Block] = field(default_factory=list)
    floor_us: list[float] = field(default_factory=list)

    def of(self, kind: str, mode: str) -> list[Block]:
        return [b for b in self.blocks if b.kind == kind and b.mode == mode]


def build_client() -> tuple[object, object]:
    import httpx2
    import openai

    from dexcost.demo.fake_openai import FakeOpenAI, FakeUsage

    fake = FakeOpenAI(usage=FakeUsage(prompt_tokens=1200, completion_tokens=300))
    client = openai.OpenAI(
        api_key="sk-bench",
        base_url="http://fake.test/v1",
        http_client=httpx2.Client(transport=fake.httpx2_transport()),
        max_retries=0,
    )
    return fake, client


def build_anthropic_client() -> tuple[object, object]:
    import anthropic
    import httpx2

    from dexcost.demo.fake_anthropic import AnthropicUsage, FakeAnthropic

    fake = FakeAnthropic(usage=AnthropicUsage(input_tokens=1200, output_tokens=300))
    client = anthropic.Anthropic(
        api_key="sk-ant-bench",
        base_url=ANTHROPIC_BASE_URL,
        http_client=httpx2.Client(transport=fake.httpx2_transport()),
        max_retries=0,
    )
    return fake, client


def build_groq_client() -> tuple[object, object]:
    import importlib.util

    import groq
    import httpx

    # The fake Groq API is part of the groq tests, which are not a package, so load it by path.
    path = _common.REPO / "tests" / "instrumentation" / "groq" / "fake_groq.py"
    spec = importlib.util.spec_from_file_location("bench_fake_groq", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    fake = module.FakeGroq()  # every reply: 1,000 input and 500 output tokens
    client = groq.Groq(
        api_key="gsk-bench",
        base_url=GROQ_BASE_URL,
        http_client=httpx.Client(transport=fake.httpx_transport()),
        max_retries=0,
    )
    return fake, client


class SDKTimer:
    """Time spent inside the SDK's ``create`` and the stream's own iterator, per call.

    Installed on the class before dexcost patches it, so dexcost wraps the timer and
    the timer wraps the SDK: wall time minus this is the code around the SDK.
    """

    def __init__(
        self,
        module_name: str = "openai.resources.chat.completions.completions",
        class_name: str = "Completions",
    ) -> None:
        import importlib

        self.cls = getattr(importlib.import_module(module_name), class_name)
        self.original = self.cls.__dict__["create"]
        self.spent_ns = 0
        clock = time.perf_counter_ns
        original = self.original
        timer = self

        def timed_iterator(inner: Iterator[object]) -> Iterator[object]:
            while True:
                start = clock()
                try:
                    item = next(inner)
                except StopIteration:
                    timer.spent_ns += clock() - start
                    return
                timer.spent_ns += clock() - start
                yield item

        @functools.wraps(original)
        def create(self: object, *args: object, **kwargs: object) -> object:
            start = clock()
            result = original(self, *args, **kwargs)
            timer.spent_ns += clock() - start
            inner = getattr(result, "_iterator", None)
            if inner is not None:
                result._iterator = timed_iterator(inner)  # type: ignore[attr-defined]
            return result

        self.timed = create

    def install(self) -> None:
        self.cls.create = self.timed

    def remove(self) -> None:
        self.cls.create = self.original


def workloads(client: object) -> dict[str, Callable[[], None]]:
    # Look the method up on every call, as applications do: the patch lives on the class.
    def chat() -> None:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[attr-defined]

    def stream() -> None:
        for _chunk in client.chat.completions.create(  # type: ignore[attr-defined]
            model=MODEL, messages=MESSAGES, stream=True
        ):
            pass

    def stream_with_usage() -> None:
        for _chunk in client.chat.completions.create(  # type: ignore[attr-defined]
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ):
            pass

    return {"chat": chat, "stream": stream, "stream_with_usage": stream_with_usage}


def anthropic_workloads(client: object) -> dict[str, Callable[[], None]]:
    def chat() -> None:
        client.messages.create(  # type: ignore[attr-defined]
            model=ANTHROPIC_MODEL, max_tokens=ANTHROPIC_MAX_TOKENS, messages=MESSAGES
        )

    def stream() -> None:
        for _event in client.messages.create(  # type: ignore[attr-defined]
            model=ANTHROPIC_MODEL, max_tokens=ANTHROPIC_MAX_TOKENS, messages=MESSAGES, stream=True
        ):
            pass

    return {"chat": chat, "stream": stream}


def groq_workloads(client: object) -> dict[str, Callable[[], None]]:
    def chat() -> None:
        client.chat.completions.create(model=GROQ_MODEL, messages=MESSAGES)  # type: ignore[attr-defined]

    def stream() -> None:
        for _chunk in client.chat.completions.create(  # type: ignore[attr-defined]
            model=GROQ_MODEL, messages=MESSAGES, stream=True
        ):
            pass

    return {"chat": chat, "stream": stream}


@dataclass(frozen=True)
class Provider:
    """One SDK under test: its client on a mock transport, workloads and timed method."""

    name: str  # also the name given to auto_instrument
    title: str
    build_client: Callable[[], tuple[object, object]]
    workloads: Callable[[object], dict[str, Callable[[], None]]]
    timed_class: tuple[str, str]  # (module, class) whose create() the SDK timer wraps
    describe: dict[str, str]  # workload kind -> what it calls


PROVIDERS: dict[str, Provider] = {
    "openai": Provider(
        "openai",
        "OpenAI (openai SDK on httpx2)",
        build_client,
        workloads,
        ("openai.resources.chat.completions.completions", "Completions"),
        {"chat": "chat.completions.create", "stream": "chat.completions.create(stream=True)"},
    ),
    "anthropic": Provider(
        "anthropic",
        "Anthropic (anthropic SDK on httpx2)",
        build_anthropic_client,
        anthropic_workloads,
        ("anthropic.resources.messages.messages", "Messages"),
        {"chat": "messages.create", "stream": "messages.create(stream=True)"},
    ),
    "groq": Provider(
        "groq",
        "Groq (groq SDK on httpx)",
        build_groq_client,
        groq_workloads,
        ("groq.resources.chat.completions", "Completions"),
        {"chat": "chat.completions.create", "stream": "chat.completions.create(stream=True)"},
    ),
}


def providers_of(args: argparse.Namespace) -> list[Provider]:
    return list(PROVIDERS.values()) if args.provider == "all" else [PROVIDERS[args.provider]]


def run_block(
    call: Callable[[], None], timer: SDKTimer, calls: int, warmup: int
) -> tuple[list[float], list[float], float, float, tuple[int, int, int]]:
    for _ in range(warmup):
        call()
    gc.collect()
    wall = [0.0] * calls
    sdk = [0.0] * calls
    clock = time.perf_counter_ns
    gc0 = [generation["collections"] for generation in gc.get_stats()]
    thread_cpu0, process_cpu0 = time.thread_time_ns(), time.process_time_ns()
    for i in range(calls):
        timer.spent_ns = 0
        start = clock()
        call()
        wall[i] = (clock() - start) / 1000
        sdk[i] = timer.spent_ns / 1000
    thread_cpu = (time.thread_time_ns() - thread_cpu0) / 1000 / calls
    process_cpu = (time.process_time_ns() - process_cpu0) / 1000 / calls
    gc1 = [generation["collections"] for generation in gc.get_stats()]
    collections = (gc1[0] - gc0[0], gc1[1] - gc0[1], gc1[2] - gc0[2])
    return wall, sdk, thread_cpu, process_cpu, collections


def start_dexcost(buffer_path: Path, provider: str = "openai") -> None:
    import dexcost

    dexcost.init(
        storage="local",
        buffer_path=str(buffer_path),
        auto_instrument=[provider],
        export_to_otel=EXPORT_TO_OTEL,
    )


def writer_backlog() -> int:
    from dexcost.runtime import current_runtime

    runtime = current_runtime()
    return runtime.processor.queued if runtime is not None else 0


def check_recorded(buffer_path: Path) -> str:
    """Return a one-line summary of the stored llm_call rows, to prove calls were priced."""
    import sqlite3

    with sqlite3.connect(buffer_path) as db:
        rows = db.execute(
            "SELECT cost_status, count(*), min(cost_usd), max(cost_usd) FROM spans "
            "WHERE event_type = 'llm_call' GROUP BY cost_status"
        ).fetchall()
    return ", ".join(
        f"{status}: {count} rows (cost {low}..{high})" for status, count, low, high in rows
    )


def floor_tracer() -> tuple[object, dict[str, object], Callable[[], None]]:
    """Build a private tracer whose one processor queues spans.

    Returns the tracer, 15 span attributes and the function that shuts the provider down.
    """
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    class QueueProcessor(SpanProcessor):
        def __init__(self) -> None:
            self.queue: deque[object] = deque(maxlen=10_000)

        def on_end(self, span: object) -> None:
            self.queue.append(span)

    provider = TracerProvider(sampler=ALWAYS_ON, shutdown_on_exit=False)
    provider.add_span_processor(QueueProcessor())
    attributes: dict[str, object] = {
        f"bench.attr_{i}": (i if i % 3 else f"value-{i}") for i in range(15)
    }
    return provider.get_tracer("bench"), attributes, provider.shutdown


def span_floor(iterations: int, repeats: int) -> list[float]:
    """Per-span times (µs) of one span with 15 attributes in a tight loop (warm caches)."""
    tracer, attributes, close = floor_tracer()
    samples: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(repeats):
        for _ in range(iterations):
            start = clock()
            tracer.start_span("chat gpt-4o-mini", attributes=attributes).end()
            samples.append((clock() - start) / 1000)
    close()
    return samples


def span_floor_in_context(call: Callable[[], None], iterations: int) -> list[float]:
    """Time the floor span right after each bare SDK call, with the caches the call left."""
    tracer, attributes, close = floor_tracer()
    samples: list[float] = []
    clock = time.perf_counter_ns
    for _ in range(iterations):
        call()
        start = clock()
        tracer.start_span("chat gpt-4o-mini", attributes=attributes).end()  # type: ignore[attr-defined]
        samples.append((clock() - start) / 1000)
    close()
    return samples


def run(args: argparse.Namespace, provider: Provider = PROVIDERS["openai"]) -> Results:
    import dexcost

    fake, client = provider.build_client()
    calls = provider.workloads(client)
    timer = SDKTimer(*provider.timed_class)
    timer.install()
    kinds = [k for k in KINDS if args.kind in (k, "both")]
    tmp = Path(tempfile.mkdtemp(prefix="dexcost-bench-"))
    buffer_path = tmp / "buffer.db"
    results = Results(provider=provider.name)
    deadline = time.monotonic() + args.max_seconds
    try:
        # One untimed instrumented round first: genai-prices loads and the model's rate
        # card is compiled, so no timed block pays for the first price lookup.
        start_dexcost(buffer_path, provider.name)
        for kind in kinds:
            for _ in range(args.warmup):
                calls[kind]()
        dexcost.flush()
        dexcost.shutdown()
        fake.reset()  # type: ignore[attr-defined]

        for pair in range(args.pairs):
            if pair and time.monotonic() > deadline:
                print(f"stopping after {pair} pairs: --max-seconds {args.max_seconds} reached")
                break
            order = ("bare", "dexcost") if pair % 2 == 0 else ("dexcost", "bare")
            for kind in kinds:
                for mode in order:
                    if mode == "dexcost":
                        start_dexcost(buffer_path, provider.name)
                    samples, sdk, thread_cpu, process_cpu, collections = run_block(
                        calls[kind], timer, args.calls, args.warmup
                    )
                    block = Block(
                        kind, mode, pair, samples, sdk, thread_cpu, process_cpu, collections
                    )
                    if mode == "dexcost":
                        block.backlog = writer_backlog()
                        flush_start = time.perf_counter()
                        dexcost.flush(30)
                        block.flush_ms = (time.perf_counter() - flush_start) * 1000
                        dexcost.shutdown()
                    fake.reset()  # type: ignore[attr-defined]
                    results.blocks.append(block)
                    print(
                        f"  pair {pair} {kind:6} {mode:7} median {_common.median(samples):8.1f} µs"
                        f"  p90 {_common.percentile(samples, 90):8.1f} µs"
                        f"  thread cpu {thread_cpu:7.1f} µs/call",
                        flush=True,
                    )
            # The floor under the same load as this pair's blocks.
            results.floor_us.extend(span_floor(iterations=1000, repeats=1))
        print(f"\nstored rows: {check_recorded(buffer_path)}")
    finally:
        dexcost.shutdown()
        timer.remove()
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def summarize(results: Results) -> dict[str, object]:
    summary: dict[str, object] = {}
    rows, verdicts, splits = [], [], []
    floor_med = _common.median(results.floor_us)
    for kind in KINDS:
        bare, inst = results.of(kind, "bare"), results.of(kind, "dexcost")
        if not bare or not inst:
            continue
        bare_all = [s for b in bare for s in b.wall_us]
        inst_all = [s for b in inst for s in b.wall_us]
        bare_med, inst_med = _common.median(bare_all), _common.median(inst_all)
        bare_p90, inst_p90 = _common.percentile(bare_all, 90), _common.percentile(inst_all, 90)
        added = inst_med - bare_med
        # Added median per pair of adjacent blocks, to show the spread between pairs.
        pair_deltas = [
            _common.median(i.wall_us) - _common.median(b.wall_us)
            for b in bare
            for i in inst
            if i.pair == b.pair
        ]
        thread_added = _common.median([b.thread_cpu_us for b in inst]) - _common.median(
            [b.thread_cpu_us for b in bare]
        )
        process_added = _common.median([b.process_cpu_us for b in inst]) - _common.median(
            [b.process_cpu_us for b in bare]
        )
        # CPU of every thread but the caller's: dexcost's writer thread, mostly.
        other_added = _common.median(
            [b.process_cpu_us - b.thread_cpu_us for b in inst]
        ) - _common.median([b.process_cpu_us - b.thread_cpu_us for b in bare])

        def gc_per_1000(blocks: list[Block]) -> str:
            calls_total = sum(len(b.wall_us) for b in blocks)
            totals = [sum(b.gc_collections[g] for b in blocks) for g in range(3)]
            return "/".join(f"{1000 * t / calls_total:.0f}" for t in totals)

        # Split: time outside the SDK (the wrapper, stream observer, pricing, span) and
        # time inside it, each as the median over calls of that call's share.
        bare_sdk = _common.median([x for b in bare for x in b.sdk_us])
        inst_sdk = _common.median([x for b in inst for x in b.sdk_us])
        bare_self = _common.median(
            [w - x for b in bare for w, x in zip(b.wall_us, b.sdk_us, strict=True)]
        )
        inst_self = _common.median(
            [w - x for b in inst for w, x in zip(b.wall_us, b.sdk_us, strict=True)]
        )
        inst_self_p90 = _common.percentile(
            [w - x for b in inst for w, x in zip(b.wall_us, b.sdk_us, strict=True)], 90
        )
        rows.append([f"{kind} bare", len(bare_all), bare_med, bare_p90, "", ""])
        rows.append(
            [
                f"{kind} dexcost",
                len(inst_all),
                inst_med,
                inst_p90,
                added,
                f"{inst_med / bare_med:.3f}",
            ]
        )
        verdicts.append(
            [
                kind,
                added,
                _common.median(pair_deltas),
                min(pair_deltas),
                max(pair_deltas),
                thread_added,
                other_added,
                BUDGET_ADDED_MEDIAN_US,
                _common.verdict(added, BUDGET_ADDED_MEDIAN_US),
            ]
        )
        splits.append(
            [
                kind,
                bare_self,
                inst_self,
                inst_self - bare_self,
                inst_self_p90 - bare_self,
                bare_sdk,
                inst_sdk,
                inst_sdk - bare_sdk,
                (inst_self - bare_self) / floor_med,
                gc_per_1000(bare),
                gc_per_1000(inst),
            ]
        )
        summary[kind] = {
            "calls_per_mode": len(bare_all),
            "bare_median_us": bare_med,
            "bare_p90_us": bare_p90,
            "dexcost_median_us": inst_med,
            "dexcost_p90_us": inst_p90,
            "added_median_us": added,
            "ratio": inst_med / bare_med,
            "pair_added_medians_us": pair_deltas,
            "added_thread_cpu_us": thread_added,
            "added_process_cpu_us": process_added,
            "added_other_threads_cpu_us": other_added,
            "gc_per_1000_calls": {"bare": gc_per_1000(bare), "dexcost": gc_per_1000(inst)},
            "outside_sdk_median_us": {"bare": bare_self, "dexcost": inst_self},
            "outside_sdk_p90_us_dexcost": inst_self_p90,
            "inside_sdk_median_us": {"bare": bare_sdk, "dexcost": inst_sdk},
            "backlog_at_block_end": [b.backlog for b in inst],
            "flush_ms_after_block": [round(b.flush_ms, 1) for b in inst],
        }
    print("\nper call, all blocks pooled (µs)")
    print(_common.table(["workload", "calls", "median", "p90", "added", "ratio"], rows))
    print(
        "\nadded time per call vs budget (µs; CPU columns: CPU time per call, dexcost minus bare,"
        "\nof the calling thread and of all other threads, the writer thread mostly)"
    )
    print(
        _common.table(
            [
                "workload",
                "added median",
                "pair median",
                "pair min",
                "pair max",
                "caller CPU",
                "other threads CPU",
                "budget",
                "",
            ],
            verdicts,
        )
    )
    print(
        "\nwhere it goes (µs, medians over calls): outside = wall - time inside the SDK;"
        "\n'dexcost own' = outside(dexcost) - outside(bare),"
        " the code dexcost runs on the calling thread;"
        "\nGC = garbage collections per 1,000 calls, generations 0/1/2"
    )
    print(
        _common.table(
            [
                "workload",
                "outside bare",
                "outside dexcost",
                "dexcost own",
                "own p90",
                "SDK bare",
                "SDK dexcost",
                "SDK added",
                "own/floor",
                "GC bare",
                "GC dexcost",
            ],
            splits,
        )
    )
    for kind in KINDS:
        info = summary.get(kind)
        if isinstance(info, dict):
            print(
                f"{kind}: writer backlog at block end {info['backlog_at_block_end']}, "
                f"flush after block {info['flush_ms_after_block']} ms"
            )
    floor_p90 = _common.percentile(results.floor_us, 90)
    print(
        f"\nfloor: one OTel span with 15 attributes, queued, measured after each pair: "
        f"median {floor_med:.1f} µs, p90 {floor_p90:.1f} µs"
    )
    summary["span_floor_us"] = {"median": floor_med, "p90": floor_p90}
    return summary


def profile(args: argparse.Namespace, provider: Provider = PROVIDERS["openai"]) -> None:
    """cProfile the instrumented loop and list the costliest dexcost and OTel functions."""
    import dexcost

    fake, client = provider.build_client()
    calls = provider.workloads(client)
    tmp = Path(tempfile.mkdtemp(prefix="dexcost-bench-"))
    try:
        start_dexcost(tmp / "buffer.db", provider.name)
        for kind in KINDS:
            if args.kind not in (kind, "both"):
                continue
            for _ in range(args.warmup):
                calls[kind]()
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.calls):
                calls[kind]()
            profiler.disable()
            fake.reset()  # type: ignore[attr-defined]
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("tottime").print_stats(r"dexcost/(?!demo)|opentelemetry|wrapt", 25)
            stats.sort_stats("cumulative").print_stats(r"dexcost/(?!demo)", 25)
            label = kind if provider.name == "openai" else f"{provider.name} {kind}"
            print(f"\n===== profile: {label}, {args.calls} instrumented calls =====")
            print(out.getvalue().replace(str(_common.REPO) + "/", ""))
        dexcost.flush()
    finally:
        dexcost.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


# (label, module, attribute, method or None). Module-level functions are timed where
# they are looked up at call time: in the module that calls them.
SECTIONS: tuple[tuple[str, str, str, str | None], ...] = (
    ("patch._plan (LLMCall, task, kwargs)", "dexcost.instrumentation.openai.patch", "_plan", None),
    ("  LLMCall.__init__", "dexcost.llm", "LLMCall", "__init__"),
    ("patch._handle_result", "dexcost.instrumentation.openai.patch", "_handle_result", None),
    ("  extract.read_result", "dexcost.instrumentation.openai.patch", "read_result", None),
    (
        "StreamObserver.observe (all chunks)",
        "dexcost.instrumentation.openai.stream",
        "StreamObserver",
        "observe",
    ),
    ("LLMCall.finish", "dexcost.llm", "LLMCall", "finish"),
    ("  price_llm", "dexcost.llm", "price_llm", None),
    ("  emit_event", "dexcost.llm", "emit_event", None),
    ("    DexcostSpanProcessor.on_event", "dexcost.processor", "DexcostSpanProcessor", "on_event"),
    ("    TrackedTask.add_event", "dexcost.tasks", "TrackedTask", "add_event"),
)


# groq runs through the openai wrappers, so it shares the openai sections.
ANTHROPIC_SECTIONS: tuple[tuple[str, str, str, str | None], ...] = (
    (
        "patch._plan (LLMCall, task, kwargs)",
        "dexcost.instrumentation.anthropic.patch",
        "_plan",
        None,
    ),
    ("  LLMCall.__init__", "dexcost.llm", "LLMCall", "__init__"),
    ("patch._handle_result", "dexcost.instrumentation.anthropic.patch", "_handle_result", None),
    ("  extract.read_message", "dexcost.instrumentation.anthropic.patch", "read_message", None),
    (
        "StreamObserver.observe (all events)",
        "dexcost.instrumentation.anthropic.stream",
        "StreamObserver",
        "observe",
    ),
    *SECTIONS[5:],
)


def sections_of(provider: Provider) -> tuple[tuple[str, str, str, str | None], ...]:
    return ANTHROPIC_SECTIONS if provider.name == "anthropic" else SECTIONS


def install_section_timers(
    spent: dict[str, int], sections: tuple[tuple[str, str, str, str | None], ...] = SECTIONS
) -> list[tuple[object, str, object]]:
    """Wrap each section with a perf_counter timer; return what to restore."""
    import importlib

    restore: list[tuple[object, str, object]] = []
    clock = time.perf_counter_ns
    for label, module_name, attribute, method in sections:
        try:
            owner: object = importlib.import_module(module_name)
            if method is not None:
                owner = getattr(owner, attribute)
                name = method
            else:
                name = attribute
            original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        except (ImportError, AttributeError, KeyError):
            print(f"  (section {label.strip()!r} not found in this version, skipped)")
            continue

        def timed(
            *a: object,
            __original: Callable[..., object] = original,
            __label: str = label,
            **k: object,
        ) -> object:
            start = clock()
            try:
                return __original(*a, **k)
            finally:
                spent[__label] = spent.get(__label, 0) + clock() - start

        setattr(owner, name, timed)
        restore.append((owner, name, original))
    return restore


def breakdown(args: argparse.Namespace, provider: Provider = PROVIDERS["openai"]) -> None:
    """Time each part of dexcost's work per call with perf_counter wrappers (µs per call).

    Each timer adds a fraction of a microsecond; nested sections include their children.
    """
    import dexcost

    fake, client = provider.build_client()
    calls = provider.workloads(client)
    timer = SDKTimer(*provider.timed_class)
    timer.install()
    sections = sections_of(provider)
    tmp = Path(tempfile.mkdtemp(prefix="dexcost-bench-"))
    spent: dict[str, int] = {}
    restore: list[tuple[object, str, object]] = []
    try:
        start_dexcost(tmp / "buffer.db", provider.name)
        restore = install_section_timers(spent, sections)
        for kind in KINDS:
            if args.kind not in (kind, "both"):
                continue
            for _ in range(args.warmup):
                calls[kind]()
            per_call: dict[str, list[float]] = {label: [] for label, *_ in sections}
            own: list[float] = []
            clock = time.perf_counter_ns
            for _ in range(args.calls):
                spent.clear()
                timer.spent_ns = 0
                start = clock()
                calls[kind]()
                own.append((clock() - start - timer.spent_ns) / 1000)
                for label in per_call:
                    per_call[label].append(spent.get(label, 0) / 1000)
            fake.reset()  # type: ignore[attr-defined]
            floor = span_floor(iterations=2000, repeats=1)
            # Same span after bare calls: dexcost's own patches and timers are removed first.
            dexcost.shutdown()
            for owner, name, original in reversed(restore):
                setattr(owner, name, original)
            restore = []
            floor_in_context = span_floor_in_context(calls[kind], min(args.calls, 1000))
            fake.reset()  # type: ignore[attr-defined]
            start_dexcost(tmp / "buffer.db", provider.name)
            restore = install_section_timers(spent, sections)
            rows = [
                [label, _common.median(v), _common.percentile(v, 90)]
                for label, v in per_call.items()
                if any(v)
            ]
            rows.append(
                [
                    "all code outside the SDK (wall - SDK)",
                    _common.median(own),
                    _common.percentile(own, 90),
                ]
            )
            rows.append(
                [
                    "floor: OTel span, 15 attributes, tight loop",
                    _common.median(floor),
                    _common.percentile(floor, 90),
                ]
            )
            rows.append(
                [
                    "floor: same span after each bare call",
                    _common.median(floor_in_context),
                    _common.percentile(floor_in_context, 90),
                ]
            )
            label = kind if provider.name == "openai" else f"{provider.name} {kind}"
            print(
                f"\n{label}: {args.calls} instrumented calls, µs per call"
                " (nested rows include their children)"
            )
            print(_common.table(["section", "median", "p90"], rows))
        dexcost.flush()
        dexcost.shutdown()
        for owner, name, original in reversed(restore):
            setattr(owner, name, original)
        restore = []
        # Only the openai SDK gets a stream request changed by dexcost (stream_options).
        if provider.name == "openai" and args.kind in ("stream", "both"):
            usage_chunk_cost(calls, fake, rounds=max(args.calls // 2, 100))
    finally:
        for owner, name, original in reversed(restore):
            setattr(owner, name, original)
        dexcost.shutdown()
        timer.remove()
        shutil.rmtree(tmp, ignore_errors=True)


def usage_chunk_cost(calls: dict[str, Callable[[], None]], fake: object, rounds: int) -> None:
    """Bare SDK: a stream without stream_options vs the same stream with include_usage.

    dexcost requests the usage chunk, so the SDK parses one more chunk per stream. That
    part of the stream overhead is spent in the SDK, not in dexcost's code.
    """
    samples: dict[str, list[float]] = {"stream": [], "stream_with_usage": []}
    clock = time.perf_counter_ns
    # The two kinds alternate call by call, so both see the same machine load.
    for index in range(rounds):
        order = (
            ("stream", "stream_with_usage") if index % 2 == 0 else ("stream_with_usage", "stream")
        )
        for name in order:
            start = clock()
            calls[name]()
            samples[name].append((clock() - start) / 1000)
    fake.reset()  # type: ignore[attr-defined]
    plain, with_usage = samples["stream"], samples["stream_with_usage"]
    print(f"\nbare SDK, no dexcost: the usage chunk's own cost ({len(plain)} streams each, µs)")
    print(
        _common.table(
            ["stream", "median", "p90"],
            [
                ["without stream_options", _common.median(plain), _common.percentile(plain, 90)],
                [
                    "with include_usage",
                    _common.median(with_usage),
                    _common.percentile(with_usage, 90),
                ],
                ["difference", _common.median(with_usage) - _common.median(plain), ""],
            ],
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--calls", type=int, default=250, help="timed calls per block (default 250)"
    )
    parser.add_argument(
        "--pairs", type=int, default=24, help="bare/dexcost block pairs (default 24)"
    )
    parser.add_argument("--warmup", type=int, default=25, help="untimed calls before each block")
    parser.add_argument("--kind", choices=("chat", "stream", "both"), default="both")
    parser.add_argument(
        "--provider",
        choices=(*PROVIDERS, "all"),
        default="openai",
        help="SDK to measure (default openai). 'all' measures each SDK in turn, each with"
        " its own --max-seconds",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=100.0, help="start no new pair after this"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile dexcost instead of timing")
    parser.add_argument(
        "--breakdown", action="store_true", help="time each part of dexcost's work per call"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--export-to-otel",
        action="store_true",
        help="set an application TracerProvider and copy each cost span to it",
    )
    args = parser.parse_args(argv)
    if args.export_to_otel:
        set_application_provider()

    print(_common.machine_header())
    providers = providers_of(args)
    if args.provider != "openai":
        print(f"sdk versions: {sdk_versions(providers)}")
    if args.profile or args.breakdown:
        for provider in providers:
            if args.provider != "openai":
                print(f"\n########## {provider.title} ##########")
            (profile if args.profile else breakdown)(args, provider)
        return 0
    print(
        f"\n{args.pairs} pairs x {args.calls} calls per block, {args.warmup} warm-up calls, "
        f"workloads: {args.kind}\n"
    )
    started = time.monotonic()
    summaries: dict[str, object] = {}
    for provider in providers:
        if args.provider != "openai":
            kinds = ", ".join(f"{k} = {provider.describe[k]}" for k in KINDS)
            print(f"\n########## {provider.title}: {kinds} ##########\n")
        provider_started = time.monotonic()
        results = run(args, provider)
        summaries[provider.name] = summarize(results)
        if args.provider != "openai":
            print(f"\n{provider.name} took {time.monotonic() - provider_started:.0f} s")
    took = time.monotonic() - started
    print(f"\nload average at the end: {_common.load_average()}, took {took:.0f} s")
    # One provider keeps the JSON shape of the OpenAI-only script. Several map name to summary.
    summary = summaries[providers[0].name] if len(providers) == 1 else summaries
    assert isinstance(summary, dict)
    summary["machine"] = _common.machine_header()
    if args.provider != "openai":
        summary["sdk_versions"] = sdk_versions(providers)
    _common.write_json(args.json, summary)
    return 0


def set_application_provider() -> None:
    """Set a global SDK provider that batches spans and drops them, and turn on the copy."""
    global EXPORT_TO_OTEL
    from collections.abc import Sequence

    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class DropExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    trace.set_tracer_provider(provider)
    EXPORT_TO_OTEL = True
    print("export_to_otel=True, application provider: SDK TracerProvider + BatchSpanProcessor")


def sdk_versions(providers: list[Provider]) -> str:
    from importlib import metadata

    names = [p.name for p in providers] + ["httpx"] * any(p.name == "groq" for p in providers)
    return ", ".join(f"{name} {metadata.version(name)}" for name in names)


if __name__ == "__main__":
    sys.exit(main())
