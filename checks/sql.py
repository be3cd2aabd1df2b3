"""The ``sql`` check kind: a read-only query whose rows are the findings (R-15).

"Next morning, review the abnormal order records": the query selects the records that should
not exist (orders paid but not dispensed, appointments without a visit...); each row it
returns becomes one item of the result, and the row count (or one value of the first row,
with ``value_column``) is judged with Nagios ranges.

Three guards keep the check from writing: the configuration refuses a query that does not
start with SELECT, WITH, SHOW, VALUES, TABLE or EXPLAIN, that holds more than one statement
or that writes a file (``INTO OUTFILE``); the engine module runs it in a READ ONLY
transaction with a statement timeout and rolls back (the real guard: it also stops a
``WITH ... DELETE`` or a function that writes, as a DbError of stage ``readonly``); and the
monitoring user should hold only the grants ``opsctl db privileges ENGINE`` prints.

Personal data (ID-card and mobile numbers, names, e-mail addresses, bank cards) is masked
in every cell shown, unless ``mask: false``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, cast

from pydantic import Field, field_validator

from opsctl.contract import (
    Check,
    CheckConfig,
    CheckError,
    CheckResult,
    Item,
    Metric,
    Range,
    RangeField,
    State,
    describe_thresholds,
    evaluate,
    worst,
)
from opsctl.databases import default_pool, engine_module
from opsctl.masking import mask as mask_text, mask_value

#: The most rows a query is read for: the row count stops here (shown as "more than 10000
#: rows"), so that a query that forgot its WHERE clause cannot exhaust the monitoring host.
ROW_CAP = 10_000

#: The first keywords of a statement that reads.
READING_KEYWORDS = ("SELECT", "WITH", "SHOW", "VALUES", "TABLE", "EXPLAIN")

# A cell longer than this is cut in items and summaries (after masking, never before: a
# cut ID number would no longer be recognised).
_CELL_CHARS = 200
_SUMMARY_CHARS = 240

# Comments, quoted strings and identifiers (SQL standard, MySQL backquotes and backslash
# escapes, PostgreSQL dollar quoting), semicolons, and everything else.
_LEXEME = re.compile(
    r"""
    (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<quoted>'(?:[^'\\]|\\.|'')*(?:'|\Z)
             | "(?:[^"\\]|\\.|"")*(?:"|\Z)
             | `(?:[^`]|``)*(?:`|\Z)
             | \$(?P<tag>[A-Za-z_]\w*)?\$.*?(?:\$(?P=tag)\$|\Z))
  | (?P<semicolon>;)
  | (?P<code>[^-/'"`$;]+|.)
    """,
    re.VERBOSE | re.DOTALL,
)
_LEADING_HASH_COMMENTS = re.compile(r"\A(?:\s*#[^\n]*(?:\n|\Z))+")
_FIRST_WORD = re.compile(r"[\s(]*([A-Za-z]+)")
_WRITES_FILE = re.compile(r"\bINTO\s+(?:OUTFILE|DUMPFILE)\b", re.IGNORECASE)


def reading_problem(query: str) -> str | None:
    """Given a query, return why the sql check refuses it (one line), or None if it reads.

    The query must be one statement whose first keyword (after comments) is one of
    ``READING_KEYWORDS``, and must not write a file. This is a first line of defence that
    gives a clear message when the inventory is loaded; the engine's READ ONLY transaction
    is the guard that holds.
    """
    # A "#" starts a comment in MySQL but is an operator in PostgreSQL: only leading ones
    # are taken as comments.
    text = _LEADING_HASH_COMMENTS.sub("", query)
    code: list[str] = []
    statements = 1
    pending_semicolon = False
    for lexeme in _LEXEME.finditer(text):
        kind = lexeme.lastgroup if lexeme.lastgroup != "tag" else "quoted"
        piece = lexeme.group(0)
        if kind == "comment":
            if piece.startswith(("/*!", "/*M!")):
                return "MySQL executable comments (/*! ... */) are not allowed in the sql check"
            code.append(" ")
            continue
        if kind == "semicolon":
            pending_semicolon = True
            continue
        if pending_semicolon and piece.strip():
            statements += 1
            pending_semicolon = False
        if statements > 1:
            return "the sql check runs one statement: remove everything after the first ';'"
        code.append(" " if kind == "quoted" else piece)
    body = "".join(code)
    found = _FIRST_WORD.match(body)
    if found is None:
        return "the query is empty"
    keyword = found.group(1).upper()
    if keyword not in READING_KEYWORDS:
        allowed = ", ".join(READING_KEYWORDS[:-1]) + " or " + READING_KEYWORDS[-1]
        return f"the sql check only reads: the query must start with {allowed} (it starts with {keyword})"
    if _WRITES_FILE.search(body):
        return "the sql check only reads: INTO OUTFILE / INTO DUMPFILE writes a file"
    return None


def _plain_number(value: Range | None) -> Range | None:
    if value is not None and value.unit:
        raise ValueError(
            f'expected a plain number range like "0" or "5:", got a unit ({value.unit})'
        )
    return value


class SqlConfig(CheckConfig):
    """Configuration of the ``sql`` check kind."""

    query: str = Field(
        description="one read-only statement (SELECT, WITH, SHOW, VALUES, TABLE or EXPLAIN) "
        "whose rows are the findings, e.g. orders paid but not dispensed by this morning",
        min_length=1,
    )
    title: str | None = Field(
        None, description='what the rows are, as reports name them, e.g. "abnormal orders"'
    )
    warn: RangeField | None = Field(
        None,
        description="warning range (Nagios) on the row count, or on value_column's value: "
        '"0" warns when there is any row, "5" when more than 5, "1:" when there is none; '
        "none: the rows are informational",
    )
    crit: RangeField | None = Field(
        None,
        description='critical range (Nagios) on the row count or value_column\'s value: "0" is '
        "critical when there is any row; none: the rows are informational",
    )
    value_column: str | None = Field(
        None,
        description="judge this column of the first row (a number, e.g. a count(*) or a "
        "delay) instead of the row count",
    )
    max_rows: int = Field(
        100,
        ge=1,
        le=ROW_CAP,
        description=f"rows shown as items; the row count reads up to {ROW_CAP} rows",
    )
    columns: list[str] | None = Field(
        None, min_length=1, description="columns shown for each row (default: all)"
    )
    label_column: str | None = Field(
        None, description='column whose value names each row item (default: "row N")'
    )
    mask: bool = Field(
        True,
        description="mask personal data (ID-card and mobile numbers, names, e-mail, bank "
        "cards) in every cell shown",
    )

    @field_validator("query")
    @classmethod
    def _reads(cls, query: str) -> str:
        problem = reading_problem(query)
        if problem is not None:
            raise ValueError(problem)
        return query

    @field_validator("warn", "crit")
    @classmethod
    def _unitless(cls, value: Range | None) -> Range | None:
        return _plain_number(value)


class SqlCheck(Check):
    """A read-only SQL query whose rows are findings: row count or one value against thresholds, rows listed (masked)."""

    kind = "sql"
    Config = SqlConfig
    targets = frozenset({"database"})

    def run(self, target: Any) -> CheckResult:
        """Given a Database target, run the query read-only and return the result.

        Raise DbError if the query cannot run (stage ``readonly`` if it tried to write,
        ``timeout`` if it ran longer than the check's timeout), CheckError if a configured
        column is not in its result.
        """
        config = cast(SqlConfig, self.config)
        module = engine_module(target.engine)
        columns, rows = default_pool().run(
            target,
            self.timeout,
            lambda connection: module.read_only(
                connection, config.query, self.timeout, ROW_CAP + 1
            ),
        )
        return evaluate_rows(config, list(columns), list(rows), engine=target.engine)


def evaluate_rows(
    config: SqlConfig, columns: list[str], rows: Sequence[Sequence[Any]], engine: str = ""
) -> CheckResult:
    """Given the config, the result's column names and its rows (at most ``ROW_CAP + 1``),
    return the CheckResult. Raise CheckError if a configured column is not in the result.
    """
    index = _column_index(columns)
    shown = (
        [_find(index, name, "columns", columns) for name in config.columns]
        if config.columns
        else list(range(len(columns)))
    )
    label = (
        _find(index, config.label_column, "label_column", columns) if config.label_column else None
    )
    value_at = (
        _find(index, config.value_column, "value_column", columns) if config.value_column else None
    )
    truncated = len(rows) > ROW_CAP
    count = min(len(rows), ROW_CAP)
    title = f"Query {config.title}" if config.title else "Query"
    count_text = _count_text(count, truncated)
    listed_text = count_text + (f", {config.max_rows} listed" if count > config.max_rows else "")
    threshold = describe_thresholds(config.warn, config.crit)

    metrics: list[Metric] = []
    items: list[Item] = []
    if value_at is None:
        rows_metric = Metric("rows", float(count), "", config.warn, config.crit, min=0.0)
        state = rows_metric.state
        metrics.append(rows_metric)
        items.append(
            Item(
                "sql.rows",
                f"{title} / rows",
                listed_text,
                state,
                threshold,
                _ROWS_ADVICE if state != State.OK else "",
            )
        )
        headline = count_text + _breach(state, config.warn, config.crit)
        row_verdict = state
    else:
        name = columns[value_at]
        raw = rows[0][value_at] if rows else None
        value = _number(raw)
        judged = config.warn is not None or config.crit is not None
        state = evaluate(value, config.warn, config.crit) if judged else State.OK
        if value is not None:
            metrics.append(
                Metric("value", value, "", config.warn, config.crit, labels={"column": name})
            )
        metrics.append(Metric("rows", float(count), "", min=0.0))
        shown_value = _value_text(raw, name, config.mask) if rows else "no rows"
        advice = ""
        if state == State.UNKNOWN:
            advice = f"The query must return a number in column {name} of its first row."
        elif state != State.OK:
            advice = _VALUE_ADVICE
        items.append(Item("sql.value", f"{title} / {name}", shown_value, state, threshold, advice))
        items.append(Item("sql.rows", f"{title} / rows", listed_text))
        headline = f"{name} = {shown_value}{_breach(state, config.warn, config.crit)}; {count_text}"
        row_verdict = State.OK

    previews: list[str] = []
    for number, row in enumerate(rows[: config.max_rows], start=1):
        text = ", ".join(
            f"{columns[at]}={_value_text(row[at], columns[at], config.mask)}" for at in shown
        )
        named = label is not None and row[label] is not None
        name = _value_text(row[label], columns[label], config.mask) if named else f"row {number}"
        items.append(Item("sql.row", name, text, row_verdict))
        previews.append(text)

    summary = headline
    if previews and value_at is None:
        summary += ": " + _preview(previews, count)
    details = {
        "engine": engine,
        "columns": list(columns),
        "rows": count,
        "shown": min(count, config.max_rows),
        "truncated": truncated,
        "masked": config.mask,
    }
    result_state = worst([state, *(item.verdict for item in items)])
    return CheckResult(result_state, summary, tuple(metrics), tuple(items), details)


_ROWS_ADVICE = (
    "Review the rows listed: correct the records at their source, or the query if they are "
    "expected."
)
_VALUE_ADVICE = "Review the value and the rows listed; correct the records at their source."


def _column_index(columns: list[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for at, name in enumerate(columns):
        index.setdefault(str(name).lower(), at)
    return index


def _find(index: dict[str, int], name: str, field: str, columns: list[str]) -> int:
    at = index.get(name.lower())
    if at is None:
        listed = ", ".join(str(c) for c in columns) or "none"
        raise CheckError(f"{field}: the query has no column {name!r} (its columns: {listed})")
    return at


def _count_text(count: int, truncated: bool) -> str:
    if truncated:
        return f"more than {ROW_CAP} rows"
    if count == 0:
        return "no rows"
    return "1 row" if count == 1 else f"{count} rows"


def _breach(state: State, warn: Range | None, crit: Range | None) -> str:
    breached = crit if state == State.CRITICAL else warn if state == State.WARNING else None
    if breached is None:
        return ""
    if breached == Range(0.0, 0.0):
        return f" ({state.name}: expected none)"
    return f" ({state.name}: {breached.describe()})"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            return None
    return number if math.isfinite(number) else None


def _value_text(value: Any, column: str, mask: bool) -> str:
    """Given a cell, return it as one line of text, masked unless ``mask`` is False, and
    cut to ``_CELL_CHARS`` (after masking)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, datetime):
        text = value.isoformat(sep=" ")
    elif isinstance(value, date | time):
        text = value.isoformat()
    elif isinstance(value, bytes | bytearray | memoryview):
        text = f"<{len(bytes(value))} bytes>"
    else:
        text = " ".join(str(value).split())
    if mask:
        # Names are recognised by their column only when the cell is text; a number in
        # any column may still be an ID or a mobile number stored as a number.
        text = mask_value(text, column) if isinstance(value, str) else mask_text(text)
    return text if len(text) <= _CELL_CHARS else text[: _CELL_CHARS - 1] + "…"


def _preview(rows: list[str], count: int) -> str:
    shown: list[str] = []
    length = 0
    for text in rows:
        if shown and length + len(text) > _SUMMARY_CHARS:
            break
        shown.append(text if len(text) <= _SUMMARY_CHARS else text[: _SUMMARY_CHARS - 1] + "…")
        length += len(text) + 2
    more = count - len(shown)
    return "; ".join(shown) + (f" (+{more} more)" if more > 0 else "")


__all__ = ["ROW_CAP", "SqlCheck", "SqlConfig", "evaluate_rows", "reading_problem"]
