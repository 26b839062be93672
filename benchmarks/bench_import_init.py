"""Start-up cost: ``import dexcost`` + ``dexcost.init(storage="local", ...)`` in a fresh process.

Each variant runs in its own fresh interpreter, many times, round-robin so that load on
the machine hits every variant alike. Two numbers per variant:

- process: wall time of the whole ``python -c ...`` run, start to exit, measured by the
  parent process;
- in-process: time from the first line of the script to the end of the measured
  statements, read inside the child (excludes interpreter start and exit).

The budget is on the process median of ``import dexcost; dexcost.init(...)`` minus the
process median of ``python -c pass``. No provider SDK is imported; the child checks that
``openai`` and ``genai_prices`` are not in ``sys.modules`` when ``init()`` returns
(genai-prices loads in a background thread, so it may arrive later).

Children get ``PYTHONPYCACHEPREFIX`` set to a private temp folder and one untimed
warm-up run per variant, so every timed run reads bytecode, as an installed wheel does,
whatever the state of the repo's ``__pycache__`` folders.

    python benchmarks/bench_import_init.py             # 30 runs per variant, about a minute
    python benchmarks/bench_import_init.py --runs 10
    python benchmarks/bench_import_init.py --importtime  # top modules by -X importtime
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

BUDGET_ADDED_MS = 120.0

# Each child prints one JSON line: in-process milliseconds plus a few facts.
_PROBE = """
__ms = (time.perf_counter() - __t0) * 1000
import sys
__facts = ("openai" in sys.modules, "genai_prices" in sys.modules, len(sys.modules))
import json
print(json.dumps({"ms": __ms, "openai": __facts[0], "genai_prices": __facts[1], "modules": __facts[2]}))
"""

VARIANTS: dict[str, str] = {
    "pass": "pass",
    "import opentelemetry.sdk.trace": "import opentelemetry.sdk.trace",
    "import dexcost": "import dexcost",
    "import dexcost + init": (
        "import dexcost\n"
        "dexcost.init(storage='local', buffer_path={buffer!r})"
    ),
    "import dexcost + init + prices loaded": (
        "import dexcost\n"
        "dexcost.init(storage='local', buffer_path={buffer!r})\n"
        "from dexcost.pricing.library import wait_for_library\n"
        "assert wait_for_library() is not None"
    ),
}
BASELINE = "pass"
TARGET = "import dexcost + init"


def child_code(body: str, buffer: str) -> str:
    head = "import time\n__t0 = time.perf_counter()\n"
    return head + body.format(buffer=buffer) + "\n" + _PROBE


def run_child(code: str, env: dict[str, str]) -> tuple[float, dict[str, object]]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=_common.REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}):\n{code}\n{done.stderr}")
    return elapsed, json.loads(done.stdout.strip().splitlines()[-1])


def import_time_report(env: dict[str, str], buffer: str, top: int, runs: int = 5) -> None:
    """Print -X importtime's view of ``import dexcost`` + ``init``, medians of ``runs`` runs.

    Two tables: the modules with the largest cumulative time, and self time summed per
    top-level package (which package's own code the time goes to).
    """
    code = "import dexcost\ndexcost.init(storage='local', buffer_path=%r)" % buffer
    cumulative: dict[str, list[int]] = {}
    by_package: dict[str, list[int]] = {}
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            env=env,
            cwd=_common.REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        package_self: dict[str, int] = {}
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "cumulative" in line:
                continue
            self_us, cumulative_us, name = line.split(":", 1)[1].split("|")
            cumulative.setdefault(name.rstrip(), []).append(int(cumulative_us))
            package = name.strip().split(".")[0]
            package_self[package] = package_self.get(package, 0) + int(self_us)
        for package, spent in package_self.items():
            by_package.setdefault(package, []).append(spent)

    slowest = sorted(cumulative.items(), key=lambda item: -_common.median(item[1]))[:top]
    print(f"\n-X importtime, import dexcost + init, median of {runs} runs (ms; -X importtime adds its own overhead)")
    print(_common.table(["module (indent = import depth)", "cumulative"],
                        [[name, _common.median(v) / 1000] for name, v in slowest]))
    packages = sorted(by_package.items(), key=lambda item: -_common.median(item[1]))[:top]
    print("\nself time summed per top-level package (ms)")
    print(_common.table(["package", "self"], [[name, _common.median(v) / 1000] for name, v in packages]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs per variant (default 30)")
    parser.add_argument("--importtime", action="store_true", help="also show -X importtime's top modules")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    print(_common.machine_header())
    tmp = Path(tempfile.mkdtemp(prefix="dexcost-bench-"))
    env = _common.child_env(pycache_prefix=str(tmp / "pycache"))
    buffer = str(tmp / "buffer.db")
    process: dict[str, list[float]] = {name: [] for name in VARIANTS}
    inside: dict[str, list[float]] = {name: [] for name in VARIANTS}
    facts: dict[str, dict[str, object]] = {}
    started = time.monotonic()
    try:
        # Warm-up: writes bytecode to the private cache and creates the buffer file,
        # so timed runs find an existing buffer, as every start after the first does.
        for body in VARIANTS.values():
            run_child(child_code(body, buffer), env)
        for _ in range(args.runs):
            for name, body in VARIANTS.items():
                elapsed, probe = run_child(child_code(body, buffer), env)
                process[name].append(elapsed)
                inside[name].append(float(probe["ms"]))  # type: ignore[arg-type]
                facts[name] = probe
        if args.importtime:
            import_time_report(env, buffer, top=15)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base = _common.median(process[BASELINE])
    rows = []
    for name in VARIANTS:
        med = _common.median(process[name])
        rows.append(
            [
                name,
                med,
                _common.percentile(process[name], 90),
                med - base,
                _common.median(inside[name]),
                "yes" if facts[name]["openai"] else "no",
                "yes" if facts[name]["genai_prices"] else "no",
                facts[name]["modules"],
            ]
        )
    print(f"\n{args.runs} fresh processes per variant, round-robin (ms)")
    print(
        _common.table(
            ["variant", "process median", "p90", "added vs pass", "in-process median",
             "openai loaded", "genai_prices loaded", "modules"],
            rows,
        )
    )
    target_added = _common.median(process[TARGET]) - base
    otel_added = _common.median(process["import opentelemetry.sdk.trace"]) - base
    print(
        f"\nbudget: {TARGET} adds {target_added:.1f} ms over `python -c pass` "
        f"(budget {BUDGET_ADDED_MS:.0f} ms): {_common.verdict(target_added, BUDGET_ADDED_MS)}"
        f"\ncontext: import opentelemetry.sdk.trace alone adds {otel_added:.1f} ms"
    )
    print(f"load average at the end: {_common.load_average()}, took {time.monotonic() - started:.0f} s")
    _common.write_json(
        args.json,
        {
            "runs": args.runs,
            "process_ms": {name: {"median": _common.median(v), "p90": _common.percentile(v, 90)}
                           for name, v in process.items()},
            "in_process_median_ms": {name: _common.median(v) for name, v in inside.items()},
            "added_ms": target_added,
            "budget_ms": BUDGET_ADDED_MS,
            "machine": _common.machine_header(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
