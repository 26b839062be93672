"""Which spans the buffer treats as the same span: same end time, trace id and span id."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

import dexcost
from dexcost.buffer import Buffer

from .spans import END_NS, llm_span


@pytest.fixture
def buffer(tmp_path: Path) -> Iterator[Buffer]:
    with Buffer.open(tmp_path / "buffer.db") as opened:
        yield opened


def row_count(path: Path) -> int:
    with closing(sqlite3.connect(path)) as connection:
        return int(connection.execute("SELECT COUNT(*) FROM spans").fetchone()[0])


def test_retried_batch_reports_no_new_rows(buffer: Buffer) -> None:
    batch = [llm_span(span_id) for span_id in range(1, 41)]
    buffer.insert_spans(batch)
    assert buffer.insert_spans(batch) == 0


def test_retried_batch_adds_no_rows(buffer: Buffer) -> None:
    batch = [llm_span(span_id) for span_id in range(1, 41)]
    buffer.insert_spans(batch)
    buffer.insert_spans(batch)
    assert row_count(buffer.path) == 40


def test_partial_retry_stores_new_spans(buffer: Buffer) -> None:
    buffer.insert_spans([llm_span(span_id) for span_id in range(1, 11)])
    assert buffer.insert_spans([llm_span(span_id) for span_id in range(1, 21)]) == 10


def test_span_without_end_time_is_stored_once(buffer: Buffer) -> None:
    # A one-span batch is padded with copies of its span, and SQLite never finds two
    # NULL end times equal, so only the ids can catch the copies.
    unended = llm_span(7, end_ns=None)
    buffer.insert_spans([unended])
    buffer.insert_spans([unended])
    assert row_count(buffer.path) == 1


def test_same_ids_other_end_time_stored(buffer: Buffer) -> None:
    # Spans with the same ids but different end times are two calls whose ids collided
    # (a broken id generator). Dropping one would lose its cost.
    buffer.insert_spans([llm_span(9, end_ns=END_NS)])
    assert buffer.insert_spans([llm_span(9, end_ns=END_NS + 1)]) == 1


def test_same_span_id_in_another_trace_is_stored(buffer: Buffer) -> None:
    buffer.insert_spans([llm_span(9, trace_id=1)])
    assert buffer.insert_spans([llm_span(9, trace_id=2)]) == 1


def test_spans_with_equal_end_times_keep_batch_order(buffer: Buffer) -> None:
    span_ids = [0x30, 0x10, 0x50, 0x20, 0x40]
    buffer.insert_spans([llm_span(span_id) for span_id in span_ids])
    claimed = buffer.claim_pending("worker", 10, 60)
    assert [int(str(row[2]), 16) for row in claimed] == span_ids


def test_equal_end_times_get_increasing_row_ids(buffer: Buffer) -> None:
    buffer.insert_spans([llm_span(span_id) for span_id in (3, 1, 2)])
    with closing(sqlite3.connect(buffer.path)) as connection:
        rows = connection.execute("SELECT span_id FROM spans ORDER BY id").fetchall()
    assert rows == [("0000000000000003",), ("0000000000000001",), ("0000000000000002",)]


_STORE_ONCE = """
import sys
from pathlib import Path
from dexcost.buffer import Buffer
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

span = ReadableSpan(
    name="chat gpt-4o-mini",
    context=SpanContext(0xABC, 0xDEF, False, TraceFlags(TraceFlags.SAMPLED)),
    resource=Resource.create({"service.name": "checkout-api"}),
    attributes={"dexcost.event_type": "llm_call", "dexcost.cost_usd": "0.5"},
    start_time=1_767_225_599_000_000_000,
    end_time=1_767_225_600_000_000_000,
)
with Buffer.open(Path(sys.argv[1])) as buffer:
    print(buffer.insert_spans([span]))
"""


def store_in_two_processes(path: Path) -> list[int]:
    """Store one span from two processes started together; return their new-row counts."""
    source = Path(dexcost.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(source), sys.path[0]])}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _STORE_ONCE, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    counts = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        counts.append(json.loads(out))
    return sorted(counts)


def test_two_processes_store_one_row(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    store_in_two_processes(path)
    assert row_count(path) == 1


def test_two_processes_report_one_new_row(tmp_path: Path) -> None:
    assert store_in_two_processes(tmp_path / "shared.db") == [0, 1]
