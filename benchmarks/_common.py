"""Helpers shared by the benchmark scripts: statistics, machine facts and tables.

The scripts run as ``python benchmarks/<name>.py``, so this folder is on
``sys.path`` and they import this module as ``_common``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("openai", "httpx2", "opentelemetry-sdk", "genai-prices", "wrapt", "dexcost")


def percentile(values: Sequence[float], q: float) -> float:
    """Return the q-th percentile (0-100) by linear interpolation between ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    try:
        one_minute, five_minutes, fifteen_minutes = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one_minute:.2f} {five_minutes:.2f} {fifteen_minutes:.2f}"


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def machine_header() -> str:
    """Return one paragraph that describes where the numbers came from."""
    versions = ", ".join(f"{name} {version}" for name, version in package_versions().items())
    return (
        f"machine: {os.cpu_count()} cores, {cpu_model()}, load average {load_average()}\n"
        f"python:  {platform.python_implementation()} {platform.python_version()} ({sys.executable})\n"
        f"packages: {versions}"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Format rows as a plain-text table with right-aligned numeric columns."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(cells):
        parts = [
            value.ljust(widths[i]) if i == 0 else value.rjust(widths[i])
            for i, value in enumerate(row)
        ]
        lines.append("  ".join(parts).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def verdict(value: float, budget: float) -> str:
    return "PASS" if value <= budget else "FAIL"


def write_json(path: str | None, data: object) -> None:
    """Write results as JSON when ``--json PATH`` was given."""
    if path:
        Path(path).write_text(json.dumps(data, indent=2, default=str) + "\n")
        print(f"\nresults written to {path}")


def child_env(pycache_prefix: str | None = None) -> dict[str, str]:
    """Environment for benchmark subprocesses: the repo's src first, bytecode cached.

    ``PYTHONDONTWRITEBYTECODE`` is dropped and, with ``pycache_prefix``, every
    ``.pyc`` goes to that private folder, so a warm-up run compiles each module
    once and timed runs read bytecode, as an installed wheel would.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONSTARTUP", None)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    if pycache_prefix is not None:
        env["PYTHONPYCACHEPREFIX"] = pycache_prefix
    return env
