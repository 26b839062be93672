"""Seconds that ``dexcost report`` takes over a buffer of one million cost events.

The buffer is made with dexcost's own migrations and filled with generated rows in
the real ``spans`` layout. Budget: a few seconds (5 s) per report. The total is
also checked against a Decimal sum of the generated amounts.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import time
from contextlib import closing
from decimal import Decimal
from pathlib import Path

from _common import machine_header, table

from dexcost.buffer import Buffer
from dexcost.buffer_schema import INSERT_SPAN_SQL, SPAN_COLUMNS
from dexcost.report import build_report

BUDGET_SECONDS = 5.0
_DAY_NS = 86_400 * 1_000_000_000
_START_NS = 1_772_323_200 * 1_000_000_000  # 2026-03-01T00:00:00Z


def _rows(count: int, seed: int, amounts: list[Decimal]):  # type: ignore[no-untyped-def]
    generator = random.Random(seed)
    customers = [f"customer-{n}" for n in range(200)] + [None]
    models = ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash", None]
    for number in range(count):
        kind = generator.random()
        event_type = (
            "llm_call" if kind < 0.8 else "external_cost" if kind < 0.97 else "retry_marker"
        )
        priced = generator.random() > 0.05
        cost = f"0.{generator.randrange(0, 10**9):09d}" if priced else None
        if cost is not None:
            amounts.append(Decimal(cost))
        retry = event_type == "llm_call" and generator.random() < 0.02
        end_ns = _START_NS + generator.randrange(0, 30 * _DAY_NS)
        attributes = {"dexcost.event_type": event_type}
        if retry:
            attributes["dexcost.retry.is_retry"] = True
        values = {
            "trace_id": f"{number:032x}",
            "span_id": f"{number:016x}",
            "parent_span_id": None,
            "name": event_type,
            "kind": 0,
            "start_ns": end_ns - 1_000_000,
            "end_ns": end_ns,
            "status_code": 0,
            "status_message": None,
            "event_type": event_type,
            "task_id": None,
            "task_type": generator.choice(["support_ticket", "research", None]),
            "customer_id": generator.choice(customers),
            "project_id": None,
            "agent": None,
            "cost_usd": cost,
            "cost_status": "priced" if priced else "unpriced",
            "provider": "openai" if event_type == "llm_call" else None,
            "model": generator.choice(models) if event_type == "llm_call" else None,
            "service": "serpapi" if event_type == "external_cost" else None,
            "input_tokens": generator.randrange(0, 4000),
            "output_tokens": generator.randrange(0, 800),
            "cache_read_tokens": 0,
            "reasoning_tokens": 0,
            "attributes": json.dumps(attributes, sort_keys=True),
            "resource": '{"service.name": "bench"}',
            "scope_name": "dexcost",
            "scope_version": "0.1.0",
            "created_at": end_ns,
        }
        yield tuple(values[column] for column in SPAN_COLUMNS)


def make_buffer(path: Path, count: int) -> Decimal:
    """Fill a new buffer at ``path`` and return the exact sum of its amounts."""
    Buffer.open(path).close()
    amounts: list[Decimal] = []
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.executemany(INSERT_SPAN_SQL, _rows(count, 1, amounts))
    return sum(amounts, start=Decimal(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    options = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "buffer.db"
        start = time.perf_counter()
        expected = make_buffer(path, options.events)
        fill_seconds = time.perf_counter() - start
        for by in ((), ("customer",), ("customer", "model"), ("day",), ("service",)):
            start = time.perf_counter()
            report = build_report(path, by)
            seconds = time.perf_counter() - start
            exact = report.total.cost_usd == expected
            results.append((" ".join(by) or "(total)", len(report.groups), seconds, exact))
    print(machine_header())
    print(f"buffer filled with {options.events:,} events in {fill_seconds:.1f} s")
    rows = [
        (
            by,
            groups,
            f"{seconds:.2f}",
            f"<= {BUDGET_SECONDS}",
            "yes" if exact else "NO",
            "PASS" if seconds <= BUDGET_SECONDS and exact else "FAIL",
        )
        for by, groups, seconds, exact in results
    ]
    print(table(("--by", "groups", "seconds", "budget", "exact", "result"), rows))
    if options.json:
        options.json.write_text(
            json.dumps([{"by": by, "groups": g, "seconds": s} for by, g, s, _ in results])
        )


if __name__ == "__main__":
    main()
