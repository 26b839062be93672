"""Buffers with the real schema, filled with generated cost events, for the report tests."""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dexcost import semconv
from dexcost.buffer import Buffer
from dexcost.buffer_schema import INSERT_SPAN_SQL, SPAN_COLUMNS


def ns(text: str) -> int:
    """Return an ISO UTC time as integer nanoseconds since the epoch."""
    moment = datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    return int(moment.timestamp()) * 1_000_000_000


@dataclass
class Event:
    event_type: str = semconv.LLM_CALL
    cost_usd: str | None = "0.001"
    cost_status: str = semconv.PRICED
    customer_id: str | None = "acme"
    project_id: str | None = None
    agent: str | None = None
    task_type: str | None = None
    model: str | None = "gpt-4o-mini"
    provider: str | None = "openai"
    service: str | None = None
    input_tokens: int | None = 10
    output_tokens: int | None = 5
    cache_read_tokens: int | None = None
    reasoning_tokens: int | None = None
    end_ns: int = ns("2026-03-01T12:00:00")
    is_retry: bool = False


def _row(event: Event, number: int) -> tuple[Any, ...]:
    attributes: dict[str, Any] = {semconv.EVENT_TYPE: event.event_type}
    if event.is_retry:
        attributes[semconv.RETRY_IS_RETRY] = True
    values = {
        "trace_id": f"{number:032x}",
        "span_id": f"{number:016x}",
        "parent_span_id": None,
        "name": event.event_type,
        "kind": 0,
        "start_ns": event.end_ns - 1000,
        "end_ns": event.end_ns,
        "status_code": 0,
        "status_message": None,
        "event_type": event.event_type,
        "task_id": None,
        "task_type": event.task_type,
        "customer_id": event.customer_id,
        "project_id": event.project_id,
        "agent": event.agent,
        "cost_usd": event.cost_usd,
        "cost_status": event.cost_status,
        "provider": event.provider,
        "model": event.model,
        "service": event.service,
        "input_tokens": event.input_tokens,
        "output_tokens": event.output_tokens,
        "cache_read_tokens": event.cache_read_tokens,
        "reasoning_tokens": event.reasoning_tokens,
        "attributes": json.dumps(attributes, sort_keys=True),
        "resource": "{}",
        "scope_name": "dexcost",
        "scope_version": "0",
        "created_at": event.end_ns,
    }
    return tuple(values[column] for column in SPAN_COLUMNS)


def write_buffer(path: Path, events: list[Event]) -> Path:
    """Create a buffer with dexcost's own migrations and insert ``events``."""
    Buffer.open(path).close()
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.executemany(
            INSERT_SPAN_SQL, [_row(event, number) for number, event in enumerate(events)]
        )
    return path


@pytest.fixture
def make_buffer(tmp_path: Path) -> Callable[[list[Event]], Path]:
    def make(events: list[Event]) -> Path:
        return write_buffer(tmp_path / "buffer.db", events)

    return make


def random_events(count: int, seed: int) -> list[Event]:
    """Events with varied amounts (up to 12 decimals), groups, statuses and days."""
    generator = random.Random(seed)
    events = []
    for _ in range(count):
        priced = generator.random() > 0.1
        events.append(
            Event(
                event_type=generator.choice(
                    [
                        semconv.LLM_CALL,
                        semconv.LLM_CALL,
                        semconv.EXTERNAL_COST,
                        semconv.RETRY_MARKER,
                    ]
                ),
                cost_usd=(
                    str(Decimal(generator.randrange(0, 10**9)).scaleb(-generator.randrange(3, 13)))
                    if priced
                    else None
                ),
                cost_status=semconv.PRICED if priced else semconv.UNPRICED,
                customer_id=generator.choice(["acme", "globex", None]),
                model=generator.choice(["gpt-4o-mini", "claude-sonnet-4-5", None]),
                input_tokens=generator.randrange(0, 5000),
                output_tokens=generator.randrange(0, 900),
                end_ns=ns(f"2026-03-{generator.randrange(1, 29):02d}T10:00:00"),
                is_retry=generator.random() < 0.05,
            )
        )
    return events
