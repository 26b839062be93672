"""Memory added by dexcost in a process that already uses openai.

Each run is a fresh child process that first imports ``openai`` and ``httpx2``, builds a
client on a small mock transport (a canned chat completion, defined here so that the
baseline imports nothing from dexcost) and makes 20 bare calls. Then it reads its RSS
(``VmRSS`` in ``/proc/self/status``) after each step:

1. ``import dexcost``
2. ``dexcost.init(storage="local", buffer_path=...)``
3. the first priced call (waits for genai-prices to load and compiles the rate card),
   then ``dexcost.flush()``, so the writer thread has opened SQLite and stored the span
4. after 500 and after 1,500 instrumented calls, each followed by a flush (steady
   state, for context: growth between the two would point at a leak)

A control child runs the same steps without dexcost, which separates the SDK's own
growth over the calls from dexcost's. The budget is on step 3 minus the baseline: 25 MB.

    python benchmarks/bench_memory.py           # 5 runs per mode, about a minute
    python benchmarks/bench_memory.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common

BUDGET_MB = 25.0
STEPS = (
    "baseline", "import dexcost", "init", "first priced call", "after 500 calls", "after 1,500 calls"
)

CHILD = r'''
import gc, json, sys

def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS line not found in /proc/self/status")

import httpx2
import openai

REPLY = {
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1733000000,
    "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_bench",
    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                 "message": {"role": "assistant", "content": "Your password is reset.",
                             "refusal": None}}],
    "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}},
}

def handler(request):
    return httpx2.Response(200, json=REPLY)

client = openai.OpenAI(api_key="sk-bench", base_url="http://fake.test/v1", max_retries=0,
                       http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
messages = [{"role": "user", "content": "I cannot sign in, please reset my password."}]

def call():
    return client.chat.completions.create(model="gpt-4o-mini", messages=messages)

for _ in range(20):
    call()
gc.collect()
use_dexcost = sys.argv[1] == "dexcost"
buffer_path = sys.argv[2]
rss = {"baseline": rss_mb()}
if use_dexcost:
    import dexcost
rss["import dexcost"] = rss_mb()
if use_dexcost:
    dexcost.init(storage="local", buffer_path=buffer_path)
rss["init"] = rss_mb()
call()
if use_dexcost:
    dexcost.flush()
gc.collect()
rss["first priced call"] = rss_mb()
for label, count in (("after 500 calls", 499), ("after 1,500 calls", 1000)):
    for _ in range(count):
        call()
    if use_dexcost:
        dexcost.flush()
    gc.collect()
    rss[label] = rss_mb()
facts = {"genai_prices": "genai_prices" in sys.modules}
if use_dexcost:
    import sqlite3
    with sqlite3.connect(buffer_path) as db:
        facts["priced_rows"] = db.execute(
            "SELECT count(*) FROM spans WHERE event_type = 'llm_call' AND cost_status = 'priced'"
        ).fetchone()[0]
    dexcost.shutdown()
print(json.dumps({"rss": rss, "facts": facts}))
'''


def run_child(mode: str, buffer_path: Path, env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(buffer_path)],
        env=env,
        cwd=_common.REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} child failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="child processes per mode (default 5)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    print(_common.machine_header())
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="dexcost-bench-"))
    env = _common.child_env(pycache_prefix=str(tmp / "pycache"))
    results: dict[str, list[dict[str, object]]] = {"control": [], "dexcost": []}
    try:
        run_child("dexcost", tmp / "warm-up.db", env)  # fills the bytecode cache
        for run in range(args.runs):
            for mode in ("control", "dexcost"):
                results[mode].append(run_child(mode, tmp / f"buffer-{run}.db", env))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def added(mode: str, step: str) -> list[float]:
        return [r["rss"][step] - r["rss"]["baseline"] for r in results[mode]]  # type: ignore[index]

    rows = []
    for step in STEPS:
        dex = added("dexcost", step)
        ctl = added("control", step)
        rows.append([step, _common.median(ctl), _common.median(dex), min(dex), max(dex),
                     _common.median(dex) - _common.median(ctl)])
    baseline = _common.median([r["rss"]["baseline"] for r in results["dexcost"]])  # type: ignore[index]
    print(f"\n{args.runs} fresh processes per mode; baseline RSS (openai imported, 20 calls made): {baseline:.1f} MB")
    print("RSS added over the baseline (MB):")
    print(
        _common.table(
            ["step", "control median", "dexcost median", "dexcost min", "dexcost max", "dexcost - control"],
            rows,
        )
    )
    first = _common.median(added("dexcost", "first priced call")) - _common.median(
        added("control", "first priced call")
    )
    priced = [r["facts"].get("priced_rows") for r in results["dexcost"]]  # type: ignore[union-attr]
    print(f"\npriced llm_call rows stored per dexcost run: {priced} (expected 1500)")
    print(
        f"budget: import + init + first priced call adds {first:.1f} MB "
        f"(budget {BUDGET_MB:.0f} MB): {_common.verdict(first, BUDGET_MB)}"
    )
    print(f"load average at the end: {_common.load_average()}, took {time.monotonic() - started:.0f} s")
    _common.write_json(args.json, {"results": results, "added_mb": first, "budget_mb": BUDGET_MB,
                                   "machine": _common.machine_header()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
