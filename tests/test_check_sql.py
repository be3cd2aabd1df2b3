"""The sql check kind: configuration guards, and real queries on PostgreSQL and MariaDB.

Each database gets an ``orders`` table in which two paid orders were never dispensed (the
"abnormal order records" reviewed the next morning); one of them holds a resident ID number
and a mobile number, the other a mobile number with a country prefix.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import need, port_open
from pydantic import ValidationError

from checks.sql import ROW_CAP, SqlCheck, SqlConfig, evaluate_rows, reading_problem
from opsctl.contract import CheckError, Range, State
from opsctl.databases import DbError
from opsctl.inventory import Database
from opsctl.masking import id_check_digit

MARIADB_HOST, MARIADB_PORT = "127.0.0.1", 3306

ID_NUMBER = "33010219900307123" + id_check_digit("33010219900307123")
ID_MASKED = "330102********" + ID_NUMBER[-4:]
MOBILE = "13812345678"
MOBILE_MASKED = "138****5678"

ORDERS = [
    # order_no, patient_name, id_card, mobile, amount, status, dispensed
    ("SO1001", "张三丰", ID_NUMBER, MOBILE, Decimal("128.50"), "paid", False),
    ("SO1002", "李四", None, "+86 139 1234 5678", Decimal("36.00"), "paid", False),
    ("SO1003", "王五", None, "15900001111", Decimal("12.00"), "paid", True),
    ("SO1004", "赵六", None, None, Decimal("80.00"), "refunded", False),
    ("SO1005", "钱七", None, None, Decimal("5.00"), "paid", True),
]
ABNORMAL = (
    "SELECT order_no, patient_name, id_card, mobile, amount FROM orders "
    "WHERE status = 'paid' AND NOT dispensed ORDER BY order_no"
)


def config(**values: Any) -> SqlConfig:
    return SqlConfig.model_validate({"query": ABNORMAL, **values})


# --- configuration: what the check refuses before any database is asked -----------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("UPDATE orders SET status = 'paid'", "it starts with UPDATE"),
        ("delete from orders", "it starts with DELETE"),
        ("-- tidy up\n/* nightly */ DROP TABLE orders", "it starts with DROP"),
        ("# MySQL comment\nINSERT INTO orders VALUES (1)", "it starts with INSERT"),
        ("CALL purge_orders()", "it starts with CALL"),
        ("SELECT 1; DELETE FROM orders", "runs one statement"),
        ("SELECT ';'; COMMIT; DELETE FROM orders", "runs one statement"),
        ("SELECT * FROM orders INTO OUTFILE '/tmp/orders.csv'", "writes a file"),
        ("/*!50000 DELETE FROM orders */ SELECT 1", "executable comments"),
        ("  -- nothing\n", "the query is empty"),
    ],
)
def test_config_refuses_statements_that_do_not_read(query: str, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        SqlConfig(query=query)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    "query",
    [
        ABNORMAL,
        "select 1;",
        "SELECT 1; -- done",
        "-- abnormal orders\n/* reviewed each morning */\nSELECT 1",
        "# MariaDB comment\nSHOW SLAVE STATUS",
        "WITH late AS (SELECT 1 AS n) SELECT n FROM late",
        "(SELECT 1) UNION (SELECT 2)",
        "VALUES (1), (2)",
        "TABLE orders",
        "EXPLAIN SELECT 1",
        "SELECT 'a;b', \"odd;name\", $$x;y$$ FROM orders",
        "SELECT /*+ PARALLEL(4) */ count(*) FROM orders",
    ],
)
def test_config_accepts_reading_statements(query: str) -> None:
    assert reading_problem(query) is None
    assert SqlConfig(query=query).query == query


def test_config_defaults_and_ranges() -> None:
    parsed = config(crit="0", warn="5")
    assert parsed.crit == Range(0.0, 0.0)
    assert parsed.warn == Range(0.0, 5.0)
    assert parsed.max_rows == 100 and parsed.mask is True and parsed.value_column is None
    with pytest.raises(ValidationError, match="plain number"):
        config(crit="80%")
    with pytest.raises(ValidationError):
        config(max_rows=0)
    with pytest.raises(ValidationError):
        config(max_rows=ROW_CAP + 1)
    with pytest.raises(ValidationError):
        config(unknown_key=1)


# --- judging rows, without a database (Oracle's upper-case column names) ----------------

COLUMNS = ["ORDER_NO", "PATIENT_NAME", "ID_CARD", "MOBILE", "AMOUNT"]
ROWS = [row[:5] for row in ORDERS[:2]]


@pytest.mark.parametrize(
    ("crit", "warn", "rows", "state"),
    [
        (None, None, ROWS, State.OK),  # informational
        ("0", None, ROWS, State.CRITICAL),  # any row is critical
        ("0", None, [], State.OK),
        ("2", None, ROWS, State.OK),  # more than 2 rows is critical
        ("2", "1", ROWS, State.WARNING),
        ("1:", None, [], State.CRITICAL),  # expected at least one row
        ("1:", None, ROWS[:1], State.OK),
    ],
)
def test_row_count_thresholds(
    crit: str | None, warn: str | None, rows: list[tuple[Any, ...]], state: State
) -> None:
    result = evaluate_rows(config(crit=crit, warn=warn), COLUMNS, rows, "oracle")
    assert result.state == state
    assert result.metrics[0].name == "rows" and result.metrics[0].value == len(rows)
    assert result.items[0].key == "sql.rows" and result.items[0].verdict == state
    assert [item.key for item in result.items[1:]] == ["sql.row"] * len(rows)


def test_summary_names_the_breach_and_the_masked_rows() -> None:
    result = evaluate_rows(config(crit="0", title="abnormal orders"), COLUMNS, ROWS, "oracle")
    assert result.summary.startswith("2 rows (CRITICAL: expected none): ORDER_NO=SO1001, ")
    assert f"ID_CARD={ID_MASKED}" in result.summary
    assert result.items[0].item == "Query abnormal orders / rows"
    assert result.items[0].threshold == "critical > 0"
    assert result.items[0].advice.startswith("Review the rows listed")
    assert result.items[1].item == "row 1"
    assert result.items[1].verdict == State.CRITICAL
    empty = evaluate_rows(config(crit="1:"), COLUMNS, [], "oracle")
    assert empty.summary == "no rows (CRITICAL: < 1)"


def test_only_max_rows_are_listed_but_all_are_counted() -> None:
    rows = [(f"SO{n}", "x", None, None, n) for n in range(250)]
    result = evaluate_rows(config(max_rows=3, warn="10"), COLUMNS, rows)
    assert result.metrics[0].value == 250
    assert result.items[0].value == "250 rows, 3 listed"
    assert len(result.items) == 1 + 3
    assert result.details["shown"] == 3 and result.details["truncated"] is False


def test_row_count_stops_at_the_cap() -> None:
    rows = [("SO", "x", None, None, 1)] * (ROW_CAP + 1)
    result = evaluate_rows(config(crit="0", max_rows=1), COLUMNS, rows)
    assert result.metrics[0].value == ROW_CAP
    assert result.items[0].value == f"more than {ROW_CAP} rows, 1 listed"
    assert result.details["truncated"] is True


def test_configured_columns_must_exist() -> None:
    with pytest.raises(CheckError, match="value_column: the query has no column 'total'"):
        evaluate_rows(config(value_column="total"), COLUMNS, ROWS)
    with pytest.raises(CheckError, match="columns: the query has no column 'nope'"):
        evaluate_rows(config(columns=["order_no", "nope"]), COLUMNS, ROWS)
    with pytest.raises(CheckError, match="label_column"):
        evaluate_rows(config(label_column="nope"), COLUMNS, ROWS)


@pytest.mark.parametrize(
    ("value", "state", "shown"),
    [
        (3, State.CRITICAL, "3"),
        (Decimal("1.5"), State.WARNING, "1.5"),
        (0, State.OK, "0"),
        ("2", State.WARNING, "2"),
        (None, State.UNKNOWN, "NULL"),
        ("n/a", State.UNKNOWN, "n/a"),
    ],
)
def test_value_column_thresholds(value: Any, state: State, shown: str) -> None:
    result = evaluate_rows(
        config(value_column="late", warn="1", crit="2"), ["late", "oldest"], [(value, "SO1")]
    )
    assert result.state == state
    assert result.items[0].key == "sql.value"
    assert result.items[0].value == shown
    assert result.items[0].item == "Query / late"
    assert result.items[1].key == "sql.rows" and result.items[1].verdict == State.OK
    assert result.summary.startswith(f"late = {shown}")
    numbers = {metric.name: metric.value for metric in result.metrics}
    assert numbers["rows"] == 1
    assert ("value" in numbers) == (state != State.UNKNOWN)


def test_value_column_without_rows_or_thresholds() -> None:
    assert evaluate_rows(config(value_column="late"), ["late"], []).state == State.OK
    unknown = evaluate_rows(config(value_column="late", crit="0"), ["late"], [])
    assert unknown.state == State.UNKNOWN
    assert unknown.items[0].value == "no rows"


def test_cells_are_one_line_and_cut_after_masking() -> None:
    long = "备注 " + "很长" * 200 + "\n" + ID_NUMBER
    result = evaluate_rows(config(), ["note", "blob"], [(f"{ID_NUMBER}\n{long}", b"\x00\x01")])
    row = result.items[1].value
    assert "\n" not in row and "…" in row and "blob=<2 bytes>" in row
    assert row.startswith(f"note={ID_MASKED} 备注")
    # An ID number at the cut: masked first, so no prefix of it leaks.
    near_cut = "x" * 190 + ID_NUMBER
    cut = evaluate_rows(config(), ["note"], [(near_cut,)]).items[1].value
    assert ID_NUMBER[:12] not in cut and cut.endswith("…")


# --- real databases ---------------------------------------------------------------------


@dataclass
class Server:
    """A scratch database with the orders table, and a way to run admin SQL on it."""

    target: Database
    execute: Callable[[str], list[tuple[Any, ...]]]


def _orders_rows() -> list[tuple[Any, ...]]:
    return [tuple(row) for row in ORDERS]


@pytest.fixture(scope="module")
def postgresql(postgres_url: str) -> Iterator[Server]:
    import psycopg

    database = urlsplit(postgres_url).path.lstrip("/")
    dsn = f"host=127.0.0.1 port=5432 user=postgres dbname={database}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(
            "CREATE TABLE orders (order_no text PRIMARY KEY, patient_name text, id_card text, "
            "mobile text, amount numeric(10, 2), status text, dispensed boolean)"
        )
        with admin.cursor() as cursor:
            cursor.executemany("INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s, %s)", ORDERS)
        admin.execute(
            "CREATE FUNCTION purge_orders() RETURNS bigint LANGUAGE sql AS "
            "$$ WITH gone AS (DELETE FROM orders RETURNING 1) SELECT count(*) FROM gone $$"
        )

        def execute(sql: str) -> list[tuple[Any, ...]]:
            return admin.execute(sql).fetchall()

        target = Database(
            name="vaccine", engine="postgresql", host="127.0.0.1", port=5432,
            database=database, user="postgres",
        )  # fmt: skip
        yield Server(target, execute)


@pytest.fixture(scope="module")
def mariadb() -> Iterator[Server]:
    need(
        port_open(MARIADB_HOST, MARIADB_PORT),
        f"MariaDB not reachable at {MARIADB_HOST}:{MARIADB_PORT}",
    )
    import pymysql

    schema = f"opsctl_test_{uuid.uuid4().hex[:12]}"
    admin = pymysql.connect(
        host=MARIADB_HOST, port=MARIADB_PORT, user="root", password="", autocommit=True
    )

    def execute(sql: str) -> list[tuple[Any, ...]]:
        with admin.cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall())

    try:
        execute(f"CREATE DATABASE `{schema}` CHARACTER SET utf8mb4")
        admin.select_db(schema)
        execute(
            "CREATE TABLE orders (order_no varchar(20) PRIMARY KEY, patient_name varchar(40), "
            "id_card varchar(18), mobile varchar(24), amount decimal(10, 2), status varchar(16), "
            "dispensed boolean)"
        )
        with admin.cursor() as cursor:
            cursor.executemany("INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s, %s)", ORDERS)
        execute(
            "CREATE FUNCTION purge_orders() RETURNS int MODIFIES SQL DATA "
            "BEGIN DELETE FROM orders; RETURN 1; END"
        )
        target = Database(
            name="his", engine="mariadb", host=MARIADB_HOST, port=MARIADB_PORT,
            database=schema, user="root",
        )  # fmt: skip
        yield Server(target, execute)
    finally:
        execute(f"DROP DATABASE IF EXISTS `{schema}`")
        admin.close()


@pytest.fixture(params=["postgresql", "mariadb"])
def server(request: pytest.FixtureRequest) -> Server:
    return request.getfixturevalue(request.param)


def run(server: Server, timeout: float = 10.0, **values: Any) -> Any:
    return SqlCheck(config(**values), timeout=timeout).run(server.target)


def test_abnormal_orders_are_critical_and_masked(server: Server) -> None:
    result = run(server, crit="0", title="abnormal orders", label_column="order_no")
    assert result.state == State.CRITICAL
    assert [metric.value for metric in result.metrics if metric.name == "rows"] == [2]
    summary, first, second = result.items
    assert (summary.key, summary.item, summary.value) == (
        "sql.rows",
        "Query abnormal orders / rows",
        "2 rows",
    )
    assert summary.verdict == State.CRITICAL and summary.threshold == "critical > 0"
    assert (first.key, first.item, second.item) == ("sql.row", "SO1001", "SO1002")
    assert first.value == (
        f"order_no=SO1001, patient_name=张**, id_card={ID_MASKED}, mobile={MOBILE_MASKED}, "
        "amount=128.50"
    )
    assert second.value == (
        "order_no=SO1002, patient_name=李*, id_card=NULL, mobile=+86 139 **** 5678, amount=36.00"
    )
    assert result.summary.startswith("2 rows (CRITICAL: expected none): order_no=SO1001, ")
    assert ID_MASKED in result.summary
    assert result.details["engine"] == server.target.engine


def test_personal_data_never_leaves_unmasked(server: Server) -> None:
    result = run(server, crit="0")
    whole = json.dumps(result.to_dict(), ensure_ascii=False, default=str)
    for raw in (ID_NUMBER, MOBILE, "139 1234", "张三丰", "李四"):
        assert raw not in whole
    assert ID_MASKED in whole and MOBILE_MASKED in whole


def test_mask_false_shows_the_cells_as_stored(server: Server) -> None:
    result = run(server, mask=False, columns=["order_no", "id_card"])
    assert result.state == State.OK
    assert result.items[1].value == f"order_no=SO1001, id_card={ID_NUMBER}"


def test_without_thresholds_rows_are_informational(server: Server) -> None:
    result = run(server, columns=["ORDER_NO", "amount"])
    assert result.state == State.OK
    assert result.items[0].advice == "" and result.items[0].threshold == ""
    assert [item.value for item in result.items[1:]] == [
        "order_no=SO1001, amount=128.50",
        "order_no=SO1002, amount=36.00",
    ]


def test_no_abnormal_rows_is_ok(server: Server) -> None:
    result = SqlCheck(
        SqlConfig(query="SELECT order_no FROM orders WHERE amount > 1000", crit="0")
    ).run(server.target)
    assert result.state == State.OK
    assert result.summary == "no rows"
    assert len(result.items) == 1


def test_value_column_on_a_real_count(server: Server) -> None:
    query = (
        "SELECT count(*) AS undispensed, sum(amount) AS total FROM orders "
        "WHERE status = 'paid' AND NOT dispensed"
    )
    critical = SqlCheck(SqlConfig(query=query, value_column="undispensed", crit="1")).run(
        server.target
    )
    assert critical.state == State.CRITICAL
    assert critical.summary == "undispensed = 2 (CRITICAL: > 1); 1 row"
    assert {m.name: m.value for m in critical.metrics} == {"value": 2, "rows": 1}
    warning = SqlCheck(SqlConfig(query=query, value_column="total", warn="100", crit="500")).run(
        server.target
    )
    assert warning.state == State.WARNING
    assert warning.items[0].value == "164.50"


def test_max_rows_lists_fewer_than_it_counts(server: Server) -> None:
    result = SqlCheck(
        SqlConfig(query="SELECT order_no FROM orders ORDER BY order_no", max_rows=2, warn="3")
    ).run(server.target)
    assert result.state == State.WARNING
    assert result.items[0].value == "5 rows, 2 listed"
    assert [item.item for item in result.items[1:]] == ["row 1", "row 2"]


def test_a_function_that_writes_is_stopped_by_the_read_only_transaction(server: Server) -> None:
    with pytest.raises(DbError) as raised:
        SqlCheck(SqlConfig(query="SELECT purge_orders()")).run(server.target)
    assert raised.value.stage == "readonly"
    assert server.execute("SELECT count(*) FROM orders")[0][0] == len(ORDERS)
    # The connection was rolled back and is still usable.
    assert run(server).metrics[0].value == 2


def test_postgresql_data_modifying_cte_is_refused(postgresql: Server) -> None:
    query = "WITH gone AS (DELETE FROM orders RETURNING order_no) SELECT order_no FROM gone"
    assert reading_problem(query) is None  # starts with WITH: only the engine can tell
    with pytest.raises(DbError) as raised:
        SqlCheck(SqlConfig(query=query)).run(postgresql.target)
    assert raised.value.stage == "readonly"
    assert "only reads" in str(raised.value)
    assert postgresql.execute("SELECT count(*) FROM orders")[0][0] == len(ORDERS)


def test_postgresql_select_for_update_is_refused(postgresql: Server) -> None:
    with pytest.raises(DbError) as raised:
        SqlCheck(SqlConfig(query="SELECT order_no FROM orders FOR UPDATE")).run(postgresql.target)
    assert raised.value.stage == "readonly"


@pytest.mark.parametrize(
    ("engine", "query"), [("postgresql", "SELECT pg_sleep(5)"), ("mariadb", "SELECT SLEEP(5)")]
)
def test_statement_timeout(engine: str, query: str, request: pytest.FixtureRequest) -> None:
    server: Server = request.getfixturevalue(engine)
    started = time.monotonic()
    with pytest.raises(DbError) as raised:
        SqlCheck(SqlConfig(query=query), timeout=1.0).run(server.target)
    assert raised.value.stage == "timeout"
    assert time.monotonic() - started < 4
    # The pool dropped the connection; the next run connects again.
    assert run(server).metrics[0].value == 2


def test_duplicate_column_names_keep_their_own_cells() -> None:
    result = evaluate_rows(config(), ["id", "id"], [(1, 2)])
    assert result.items[1].value == "id=1, id=2"
