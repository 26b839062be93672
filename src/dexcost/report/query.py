"""Read cost totals from the local buffer, grouped as asked, with exact Decimal sums.

SQLite groups the rows and counts equal costs together, but it never adds money:
``cost_usd`` is exact decimal text, and every sum is done here with Decimal at a
precision that cannot round. The buffer is opened read-only and never migrated.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
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


# SQLite integers are signed 64-bit; nanoseconds since 1970 fit from 1677 to 2262.
_MIN_NS = -(2**63)
_MAX_NS = 2**63 - 1


def to_unix_ns(moment: datetime) -> int:
    """Return ``moment`` as integer nanoseconds since the epoch, with no float rounding.

    A date before 1677 or after 2262 is clamped to the range SQLite can compare, which
    selects the same events: the buffer holds no event outside that range.
    """
    nanoseconds = (moment - _EPOCH) // timedelta(microseconds=1) * 1000
    return max(_MIN_NS, min(_MAX_NS, nanoseconds))


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
                _collect(report, connection, names, since, until, split=True)
            except sqlite3.OperationalError as error:
                if "integer overflow" not in str(error):
                    raise
                report.groups = {}
                _collect(report, connection, names, since, until, split=False)
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
# The buffer stores only text that Decimal accepts, so a string made of digits and
# dots has at most one dot. Exponents and signs take the per-amount path.
_SPLIT_COST = f"""
    CASE WHEN cost_usd IS NULL THEN NULL
         WHEN ltrim(cost_usd, '0123456789.') = ''
              AND length(cost_usd) - dot <= {FRACTION_DIGITS} AND dot <= 19
         THEN '' ELSE cost_usd END"""
_INTEGER_PART = "CAST(substr(cost_usd, 1, dot - 1) AS INTEGER)"
_FRACTION_PART = (
    f"CAST(substr(substr(cost_usd, dot + 1) || '{'0' * FRACTION_DIGITS}', 1, "
    f"{FRACTION_DIGITS}) AS INTEGER)"
)


def _retry_expression() -> str:
    # The JSON is only parsed for rows that mention the retry flag at all.
    return (
        f"(event_type = '{semconv.RETRY_MARKER}' OR CASE WHEN instr(attributes, "
        f"'{semconv.RETRY_IS_RETRY}') > 0 THEN json_extract(attributes, "
        f"'$.\"{semconv.RETRY_IS_RETRY}\"') = 1 ELSE 0 END)"
    )


def _filter(since: datetime | None, until: datetime | None) -> tuple[str, list[object]]:
    # The unary + keeps SQLite off the (event_type, end_ns) index: nearly every row is a
    # cost event, and one pass over the table is several times faster than index lookups.
    where = [f"+event_type IN ({', '.join('?' for _ in COST_EVENT_TYPES)})"]
    params: list[object] = list(COST_EVENT_TYPES)
    if since is not None:
        where.append(f"{_EVENT_TIME} >= ?")
        params.append(to_unix_ns(since))
    if until is not None:
        where.append(f"{_EVENT_TIME} < ?")
        params.append(to_unix_ns(until))
    return " AND ".join(where), params


def _rows_sql(keys: list[str], where: str, split: bool) -> str:
    """Return a subquery of one row per cost event with its keys and amount columns.

    ``cost_group`` is NULL without a price, '' for an amount summed in SQL, and the
    amount itself otherwise. LIMIT -1 stops SQLite from inlining the subquery, which
    would compute each per-row expression once for every place that names it.
    """
    inner_keys = [f"{key} AS k{index}" for index, key in enumerate(keys)]
    events = (
        f"SELECT {', '.join([*inner_keys, 'cost_usd', 'cost_status'])}, "
        f"{_retry_expression()} AS retry, instr(cost_usd || '.', '.') AS dot, input_tokens, "
        f"output_tokens, cache_read_tokens, reasoning_tokens FROM spans WHERE {where} LIMIT -1"
    )
    cost_group = _SPLIT_COST if split else "cost_usd"
    return f"SELECT *, {cost_group} AS cost_group FROM ({events}) LIMIT -1"


def _collect(
    report: Report,
    connection: sqlite3.Connection,
    names: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    *,
    split: bool,
) -> None:
    """Fill ``report`` from two queries: sums per group, then the amounts SQL did not add."""
    keys = [GROUPINGS[name] for name in names]
    where, params = _filter(since, until)
    rows = _rows_sql(keys, where, split)
    key_columns = [f"k{index}" for index in range(len(keys))]
    group_by = f" GROUP BY {', '.join(key_columns)}" if key_columns else ""
    whole = f"CASE WHEN cost_group = '' THEN {_INTEGER_PART} END"
    fraction = f"CASE WHEN cost_group = '' THEN {_FRACTION_PART} END"
    sums = (
        f"SELECT {''.join(f'{column}, ' for column in key_columns)}COUNT(*), "
        f"SUM(cost_usd IS NULL AND cost_status = '{semconv.USAGE_UNKNOWN}'), "
        "SUM(cost_usd IS NULL), SUM(cost_group <> ''), "
        f"SUM({whole}), SUM({fraction}), SUM(retry), "
        f"SUM(CASE WHEN retry THEN {whole} END), SUM(CASE WHEN retry THEN {fraction} END), "
        "SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), "
        f"SUM(reasoning_tokens) FROM ({rows}){group_by}"
    )
    width = len(keys)
    odd_groups = 0
    with _exact():
        for row in connection.execute(sums, params):
            key = tuple(None if value is None else str(value) for value in row[:width])
            values = [0 if value is None else int(value) for value in row[width:]]
            (events, usage_unknown, missing, odd, whole_sum, fraction_sum, retries) = values[:7]
            retry_whole, retry_fraction = values[7:9]
            totals = report.groups.setdefault(key, Totals())
            totals.events += events
            totals.usage_unknown_events += usage_unknown
            totals.unpriced_events += missing - usage_unknown
            totals.priced_events += events - missing
            totals.retry_events += retries
            totals.cost_usd += _amount(whole_sum, fraction_sum)
            totals.retry_cost_usd += _amount(retry_whole, retry_fraction)
            tokens = values[9:]
            totals.input_tokens += tokens[0]
            totals.output_tokens += tokens[1]
            totals.cache_read_tokens += tokens[2]
            totals.reasoning_tokens += tokens[3]
            odd_groups += odd
        if odd_groups:
            _add_other_amounts(report, connection, key_columns, rows, params)
    report.groups = dict(sorted(report.groups.items(), key=lambda item: _sort_key(item[0])))
    report.total = Totals()
    for totals in report.groups.values():
        report.total.add(totals)


def _amount(whole: int, fraction: int) -> Decimal:
    return Decimal(whole) + Decimal(fraction).scaleb(-FRACTION_DIGITS)


def _add_other_amounts(
    report: Report,
    connection: sqlite3.Connection,
    key_columns: list[str],
    rows: str,
    params: list[object],
) -> None:
    """Add each amount that SQL did not sum, times the number of events that have it."""
    selected = [*key_columns, "cost_usd", "retry"]
    sql = (
        f"SELECT {', '.join(selected)}, COUNT(*) FROM ({rows}) "
        f"WHERE cost_group <> '' GROUP BY {', '.join(selected)}"
    )
    width = len(key_columns)
    for row in connection.execute(sql, params):
        key = tuple(None if value is None else str(value) for value in row[:width])
        cost_text, retry, count = row[width:]
        totals = report.groups[key]
        try:
            amount = Decimal(str(cost_text)) * int(count)
            totals.cost_usd += amount
            if retry:
                totals.retry_cost_usd += amount
        except (InvalidOperation, Inexact):
            raise ReportError(
                f"the buffer holds cost_usd={cost_text!r}, which is not a plausible amount; "
                "repair or remove that row, or pass --since to skip it"
            ) from None


def _sort_key(key: tuple[str | None, ...]) -> tuple[tuple[bool, str], ...]:
    # Missing values (no customer, no model) sort last.
    return tuple((value is None, value or "") for value in key)


def daily_costs(report_db: Path, since: datetime | None, until: datetime | None) -> Report:
    """Return a report grouped by day, for the chart of cost over time."""
    return build_report(report_db, ("day",), since, until)
