"""Read cost totals from the local buffer, grouped as asked, with exact Decimal sums.

SQLite groups the rows and counts equal costs together, but it never adds money:
``cost_usd`` is exact decimal text, and every sum is done here with Decimal at a
precision that cannot round. The buffer is opened read-only and never migrated.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Context, Decimal, Inexact, InvalidOperation, localcontext
from pathlib import Path
from typing import Final

from dexcost import semconv
from dexcost.buffer import suppressed_instrumentation
from dexcost.buffer_schema import SCHEMA_VERSION, read_schema_version

# --by name -> SQL expression over the spans table. LLM calls have no service, so
# --by service shows their provider instead.
_EVENT_TIME = "COALESCE(end_ns, start_ns)"
GROUPINGS: Final[dict[str, str]] = {
    "customer": "customer_id",
    "project": "project_id",
    "task_type": "task_type",
    "agent": "agent",
    "model": "model",
    "service": "COALESCE(service, provider)",
    "day": f"date({_EVENT_TIME} / 1000000000, 'unixepoch')",
}
COST_EVENT_TYPES: Final = (semconv.LLM_CALL, semconv.EXTERNAL_COST, semconv.RETRY_MARKER)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Enough digits for any sum of buffer amounts; Inexact is trapped, so a sum that would
# still need rounding raises instead of silently losing a digit.
_PRECISION = 200


DATE_HINT: Final = "use YYYY-MM-DD or an ISO 8601 date-time such as 2026-03-01T12:00:00Z"


class ReportError(Exception):
    """Raised when the report cannot be made. Its message names the value and the fix."""


@dataclass
class Totals:
    """Sums of one group of cost events. Unpriced events add no cost, only counts."""

    events: int = 0
    cost_usd: Decimal = Decimal(0)
    priced_events: int = 0
    unpriced_events: int = 0  # cost_status unpriced: tokens known, no price
    usage_unknown_events: int = 0  # usage never arrived: cost unknown
    retry_events: int = 0
    retry_cost_usd: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    reasoning_tokens: int = 0

    def add(self, other: Totals) -> None:
        with _exact():
            self.cost_usd += other.cost_usd
            self.retry_cost_usd += other.retry_cost_usd
        self.events += other.events
        self.priced_events += other.priced_events
        self.unpriced_events += other.unpriced_events
        self.usage_unknown_events += other.usage_unknown_events
        self.retry_events += other.retry_events
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.reasoning_tokens += other.reasoning_tokens

    @property
    def not_priced_events(self) -> int:
        return self.unpriced_events + self.usage_unknown_events


@dataclass
class Report:
    """Groups in key order, the grand total and what was asked."""

    db_path: str
    by: tuple[str, ...]
    since: datetime | None
    until: datetime | None
    groups: dict[tuple[str | None, ...], Totals] = field(default_factory=dict)
    total: Totals = field(default_factory=Totals)


def _exact() -> AbstractContextManager[Context]:
    context = Context(prec=_PRECISION, traps=[Inexact, InvalidOperation])
    return localcontext(context)


def parse_when(value: str, option: str) -> datetime:
    """Parse ``YYYY-MM-DD`` or an ISO 8601 date-time as UTC; a bare date is midnight.

    A time without an offset is taken as UTC. Raises ReportError naming the value.
    """
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReportError(f"{option} {value!r} is not a date; {DATE_HINT}") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def to_unix_ns(moment: datetime) -> int:
    """Return ``moment`` as integer nanoseconds since the epoch, with no float rounding."""
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def check_groupings(by: Sequence[str]) -> tuple[str, ...]:
    """Return ``by`` without repeats, or raise ReportError for an unknown name."""
    unknown = [name for name in by if name not in GROUPINGS]
    if unknown:
        raise ReportError(
            f"cannot group by {unknown[0]!r}; use one of {', '.join(GROUPINGS)} "
            "(repeat --by to group by several)"
        )
    return tuple(dict.fromkeys(by))


def open_buffer(db_path: Path) -> sqlite3.Connection:
    """Open the buffer read-only and check it is one this release can read."""
    if not db_path.exists():
        raise ReportError(
            f"no dexcost buffer at {db_path}: nothing has been recorded there yet. "
            "Pass --db PATH (or set DEXCOST_BUFFER_PATH) to read another buffer"
        )
    if not db_path.is_file():
        raise ReportError(f"{db_path} is a folder, not a dexcost buffer; pass --db a .db file")
    # mode=ro never creates or changes the file; as_uri() escapes '?' and '#'.
    uri = db_path.resolve().as_uri() + "?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True)
        tables = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        version = read_schema_version(connection)
    except sqlite3.DatabaseError as error:
        raise ReportError(
            f"cannot read {db_path} as a dexcost buffer ({error}). Pass --db the buffer "
            "file that dexcost.init() writes, and check this user can read it"
        ) from error
    if "spans" not in tables:
        connection.close()
        raise ReportError(
            f"{db_path} is not a dexcost buffer: it has no spans table. Pass --db the "
            "buffer file that dexcost.init() writes"
        )
    if version > SCHEMA_VERSION:
        connection.close()
        raise ReportError(
            f"{db_path} has buffer schema version {version}, newer than the "
            f"{SCHEMA_VERSION} this dexcost reads. Upgrade dexcost (pip install -U dexcost)"
        )
    return connection


def build_report(
    db_path: Path,
    by: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
) -> Report:
    """Sum the cost events of the buffer at ``db_path`` per group of ``by``.

    ``since`` is inclusive and ``until`` exclusive, both compared with the time an
    event ended. Task rows are summaries of events, so they are never counted.
    """
    names = check_groupings(by)
    if since is not None and until is not None and since >= until:
        raise ReportError(
            f"--since {since.isoformat()} is not before --until {until.isoformat()}; "
            "pass a --since earlier than --until"
        )
    report = Report(str(db_path), names, since, until)
    with suppressed_instrumentation(), closing(open_buffer(db_path)) as connection:
        try:
            try:
                rows = connection.execute(*_query(names, since, until, split=True)).fetchall()
            except sqlite3.OperationalError as error:
                if "integer overflow" not in str(error):
                    raise
                rows = connection.execute(*_query(names, since, until, split=False)).fetchall()
            _fold(report, rows, len(names))
        except sqlite3.DatabaseError as error:
            raise ReportError(
                f"cannot read {db_path}: {error}. Check the file is a dexcost buffer "
                "that is not being replaced"
            ) from error
    return report


# Amounts of up to 18 integer and 12 fraction digits, written as plain decimals, are
# summed by SQLite as two integers: the integer parts and the fractions in units of
# 1e-12 USD. Integer sums are exact, and SQLite raises on overflow instead of wrapping,
# so a huge buffer falls back to summing each distinct amount in Python.
FRACTION_DIGITS: Final = 12
_SPLIT_COST = f"""
    CASE WHEN cost_usd IS NULL THEN NULL
         WHEN cost_usd NOT GLOB '*[^0-9.]*' AND cost_usd GLOB '*[0-9]*'
              AND length(cost_usd) - dot <= {FRACTION_DIGITS} AND dot <= 19
              AND instr(substr(cost_usd, dot + 1), '.') = 0
         THEN '' ELSE cost_usd END"""
_INTEGER_PART = "CAST(substr(cost_usd, 1, dot - 1) AS INTEGER)"
_FRACTION_PART = (
    f"CAST(substr(substr(cost_usd, dot + 1) || '{'0' * FRACTION_DIGITS}', 1, "
    f"{FRACTION_DIGITS}) AS INTEGER)"
)


def _query(
    names: tuple[str, ...], since: datetime | None, until: datetime | None, *, split: bool
) -> tuple[str, list[object]]:
    """Return SQL whose rows are: keys, cost group, status, retry, count, sums, tokens.

    The cost group is NULL for events without a price, '' for amounts summed in
    SQL (``split``), and otherwise the amount itself, counted ``count`` times.
    """
    keys = [GROUPINGS[name] for name in names]
    # The JSON is only parsed for rows that mention the retry flag at all.
    is_retry = (
        f"(event_type = '{semconv.RETRY_MARKER}' OR CASE WHEN instr(attributes, "
        f"'{semconv.RETRY_IS_RETRY}') > 0 THEN json_extract(attributes, "
        f"'$.\"{semconv.RETRY_IS_RETRY}\"') = 1 ELSE 0 END)"
    )
    where = [f"event_type IN ({', '.join('?' for _ in COST_EVENT_TYPES)})"]
    params: list[object] = list(COST_EVENT_TYPES)
    if since is not None:
        where.append(f"{_EVENT_TIME} >= ?")
        params.append(to_unix_ns(since))
    if until is not None:
        where.append(f"{_EVENT_TIME} < ?")
        params.append(to_unix_ns(until))
    inner_keys = [f"{key} AS k{index}" for index, key in enumerate(keys)]
    inner = (
        f"SELECT {', '.join([*inner_keys, 'cost_usd', 'cost_status'])}, {is_retry} AS retry, "
        "instr(cost_usd || '.', '.') AS dot, input_tokens, output_tokens, "
        f"cache_read_tokens, reasoning_tokens FROM spans WHERE {' AND '.join(where)}"
    )
    cost_group = _SPLIT_COST if split else "cost_usd"
    sums = (
        f"SUM(CASE WHEN cost_group = '' THEN {_INTEGER_PART} END), "
        f"SUM(CASE WHEN cost_group = '' THEN {_FRACTION_PART} END)"
        if split
        else "NULL, NULL"
    )
    selected = [*(f"k{index}" for index in range(len(keys))), "cost_group", "cost_status", "retry"]
    sql = (
        f"SELECT {', '.join(selected)}, COUNT(*), {sums}, SUM(input_tokens), "
        "SUM(output_tokens), SUM(cache_read_tokens), SUM(reasoning_tokens) FROM ("
        f"SELECT *, {cost_group} AS cost_group FROM ({inner})) "
        f"GROUP BY {', '.join(selected)}"
    )
    return sql, params


def _fold(report: Report, rows: Iterable[tuple[object, ...]], width: int) -> None:
    groups = report.groups
    with _exact():
        for row in rows:
            key = tuple(None if value is None else str(value) for value in row[:width])
            cost_text, status, retry, count, whole, fraction = row[width : width + 6]
            tokens = row[width + 6 :]
            totals = groups.get(key)
            if totals is None:
                totals = groups[key] = Totals()
            events = int(count)  # type: ignore[call-overload]
            totals.events += events
            if cost_text is None:
                if status == semconv.USAGE_UNKNOWN:
                    totals.usage_unknown_events += events
                else:
                    totals.unpriced_events += events
            else:
                try:
                    if cost_text == "":
                        amount = Decimal(str(whole)) + Decimal(str(fraction)).scaleb(
                            -FRACTION_DIGITS
                        )
                    else:
                        amount = Decimal(str(cost_text)) * events
                except InvalidOperation:
                    raise ReportError(
                        f"the buffer holds cost_usd={cost_text!r}, which is not an amount; "
                        "repair or remove that row, or pass --since to skip it"
                    ) from None
                totals.cost_usd += amount
                totals.priced_events += events
                if retry:
                    totals.retry_cost_usd += amount
            if retry:
                totals.retry_events += events
            totals.input_tokens += int(tokens[0] or 0)  # type: ignore[call-overload]
            totals.output_tokens += int(tokens[1] or 0)  # type: ignore[call-overload]
            totals.cache_read_tokens += int(tokens[2] or 0)  # type: ignore[call-overload]
            totals.reasoning_tokens += int(tokens[3] or 0)  # type: ignore[call-overload]
    report.groups = dict(sorted(groups.items(), key=lambda item: _sort_key(item[0])))
    for totals in report.groups.values():
        report.total.add(totals)


def _sort_key(key: tuple[str | None, ...]) -> tuple[tuple[bool, str], ...]:
    # Missing values (no customer, no model) sort last.
    return tuple((value is None, value or "") for value in key)


def daily_costs(report_db: Path, since: datetime | None, until: datetime | None) -> Report:
    """Return a report grouped by day, for the chart of cost over time."""
    return build_report(report_db, ("day",), since, until)
