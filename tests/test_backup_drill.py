"""Restore drills for real: the dumps of tests/test_check_backup.py (real ``pg_dump`` and
``mysqldump`` output) are restored into scratch databases on the real PostgreSQL (127.0.0.1:5432,
postgres, trust) and MariaDB (127.0.0.1:3306, root, no password) servers, verified by row
counts, and the scratch databases are gone afterwards. Truncated dumps fail with the tool's
reason. Also the prefix guard, the SQL stream guard, a drill over SSH and the CLI end to end.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import test_check_backup as shared
import yaml
from conftest import need_executable
from sshd_fixtures import ClientKeys, SshServer
from test_check_backup import (
    ROWS,
    MyDumps,
    PgDumps,
    my_databases,
    my_scalar,
    pg_databases,
    pg_scalar,
    place,
    ssh_host,
)
from typer.testing import CliRunner

from checks.backup_drill import BackupDrillCheck, BackupDrillConfig
from opsctl.cli import app
from opsctl.contract import CheckResult, State
from opsctl.drill import (
    DrillIncomplete,
    DrillRefused,
    SqlGuard,
    guard_scratch,
    restore_command,
    scratch_name,
    valid_prefix,
)
from opsctl.inventory import Host, InventoryInvalid, load
from opsctl.ssh import SshPool

PREFIX = "opsctl_drill_"
PG_SERVER = {"engine": "postgresql", "host": "127.0.0.1", "port": 5432, "user": "postgres"}
MY_SERVER = {"engine": "mariadb", "host": "127.0.0.1", "port": 3306, "user": "root"}
ORDERS = {"query": "select count(*) from orders", "min": ROWS, "label": "orders"}

runner = CliRunner()

# The real dumps and the SSH pool are the fixtures of the backup check's tests.
pg_dumps = shared.pg_dumps
my_dumps = shared.my_dumps
pool = shared.pool


@pytest.fixture
def pg_tools() -> None:
    need_executable("pg_restore", "postgresql-client")
    need_executable("psql", "postgresql-client")


@pytest.fixture
def my_tools() -> None:
    need_executable("mysql", "mariadb-client")


def drill(
    path: Path | str,
    server: dict,
    host: Host | None = None,
    timeout: float = 120.0,
    previous: CheckResult | None = None,
    **config: object,
) -> CheckResult:
    settings = {"path": str(path), "server": server, "verify": [ORDERS], **config}
    check = BackupDrillCheck(
        BackupDrillConfig.model_validate(settings), timeout=timeout, previous=previous
    )
    return check.run(host or Host(name="near"))


def item(result: CheckResult, key: str):  # type: ignore[no-untyped-def]
    found = [i for i in result.items if i.key == key]
    assert found, f"no item {key} in {[i.key for i in result.items]}"
    return found[0]


def metric(result: CheckResult, name: str) -> float | None:
    return next((m.value for m in result.metrics if m.name == name), None)


def scratch_left(names: set[str]) -> set[str]:
    return {name for name in names if name.startswith(PREFIX)}


# --------------------------------------------------------------------------- guards


def test_the_prefix_guard_refuses_every_name_a_drill_did_not_make() -> None:
    made = scratch_name(PREFIX, datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    assert made.startswith("opsctl_drill_20261123020000_") and len(made) == len(PREFIX) + 21
    assert guard_scratch(made, PREFIX) == made
    for name in (
        "postgres",
        "his",
        "mysql",
        "opsctl_drill_",
        "opsctl_drill_his",
        "opsctl_drill_20261123020000",
        "opsctl_drill_20261123020000_abcdeg",
        made + "; DROP DATABASE his",
        made.upper(),
        "x" + made,
    ):
        with pytest.raises(DrillRefused, match="refusing to touch database"):
            guard_scratch(name, PREFIX)
    # a prefix that would make production names look like scratch ones is refused itself
    for prefix in ("", "p", "postgres;", "HIS_", "1drill_"):
        with pytest.raises(DrillRefused):
            guard_scratch(made, prefix)
        with pytest.raises(ValueError):
            valid_prefix(prefix)


def test_the_prefix_is_validated_with_the_inventory(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    drill_check = {"kind": "backup.drill", "path": "/b/*.dump", "server": PG_SERVER}
    path.write_text(
        yaml.safe_dump(
            {
                "sites": [
                    {
                        "name": "s",
                        "hosts": [
                            {
                                "name": "near",
                                "checks": [
                                    {**drill_check, "name": "a", "scratch_prefix": "p"},
                                    {**drill_check, "name": "b", "format": "mysqldump"},
                                    {**drill_check, "name": "c", "server": {"engine": "oracle"}},
                                ],
                            }
                        ],
                    }
                ]
            }
        )
    )
    with pytest.raises(InventoryInvalid) as invalid:
        load(path)
    messages = [f"{e.path}: {e.message}" for e in invalid.value.errors]
    assert any("checks[0].scratch_prefix" in m and "lower-case" in m for m in messages), messages
    assert any("a mysqldump dump restores into mysql or mariadb" in m for m in messages), messages
    assert any("checks[2].server.engine" in m for m in messages), messages


def test_the_sql_guard_keeps_a_plain_dump_in_the_scratch_database(pg_dumps: PgDumps) -> None:
    guard = SqlGuard("pg_plain")
    passed = [guard.line(line) for line in pg_dumps.plain_create.read_bytes().splitlines(True)]
    guard.finish()
    dropped = [
        line for line in pg_dumps.plain_create.read_bytes().splitlines(True) if line not in passed
    ]
    assert guard.database == pg_dumps.source.encode()
    assert any(line.startswith(b"CREATE DATABASE") for line in dropped)
    assert any(line.startswith(b"\\connect") for line in dropped)
    assert not any(line and line.startswith((b"CREATE DATABASE", b"\\connect")) for line in passed)

    for text, reason in (
        (b"\\! rm -rf /\n", "psql command"),
        (b"\\connect his\n\\connect lis\n", "second database 'lis'"),
        (b"CREATE DATABASE his\n  TEMPLATE template0;\n", "spans several lines"),
    ):
        guard = SqlGuard("pg_plain")
        with pytest.raises(DrillRefused, match=reason):
            for line in text.splitlines(True):
                guard.line(line)
    # data lines of a COPY are data, whatever they look like
    guard = SqlGuard("pg_plain")
    copy = b"COPY public.notes (body) FROM stdin;\n\\\\connect his\nCREATE DATABASE x\n\\.\n"
    assert all(guard.line(line) == line for line in copy.splitlines(True))
    with pytest.raises(DrillIncomplete, match="truncated"):
        guard.finish()


def test_the_sql_guard_on_mysqldump(my_dumps: MyDumps) -> None:
    guard = SqlGuard("mysqldump")
    lines = my_dumps.databases.read_bytes().splitlines(True)
    passed = [guard.line(line) for line in lines]
    guard.finish()
    assert guard.database == my_dumps.source.encode()
    assert sum(1 for line in passed if line is None) == 2  # CREATE DATABASE and USE
    for text, reason in (
        (b"USE `his`;\nUSE `lis`;\n", "second database 'lis'"),
        (b"USE his;\n/*!40000 DROP DATABASE IF EXISTS `lis`*/;\n", "second database 'lis'"),
        (b"\\! rm -rf /\n", "client command"),
    ):
        guard = SqlGuard("mysqldump")
        with pytest.raises(DrillRefused, match=reason):
            for line in text.splitlines(True):
                guard.line(line)


def test_restore_commands_never_carry_the_password() -> None:
    from opsctl.drill import DrillServer

    os.environ["OPSCTL_TEST_DRILL_PASSWORD"] = "s3cret-pw"
    try:
        for engine, fmt, tool in (
            ("postgresql", "pg_custom", "pg_restore"),
            ("postgresql", "pg_plain", "psql"),
            ("mariadb", "mysqldump", "mysql"),
        ):
            server = DrillServer(engine=engine, password="env:OPSCTL_TEST_DRILL_PASSWORD")
            assert server.secret() == "s3cret-pw"
            command = restore_command(tool, fmt, server, "opsctl_drill_20261123020000_abcdef", "/d")
            assert all("s3cret" not in part for part in command)
            assert any("opsctl_drill_20261123020000_abcdef" in part for part in command)
    finally:
        del os.environ["OPSCTL_TEST_DRILL_PASSWORD"]


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.parametrize("kind", ["custom", "plain", "plain_create", "plain_gz", "custom_gz"])
def test_a_real_postgresql_dump_restores_verifies_and_is_dropped(
    tmp_path: Path, pg_dumps: PgDumps, pg_tools: None, kind: str
) -> None:
    source = {
        "custom": pg_dumps.custom,
        "custom_gz": pg_dumps.custom,
        "plain": pg_dumps.plain,
        "plain_gz": pg_dumps.plain,
        "plain_create": pg_dumps.plain_create,
    }[kind]
    content = source.read_bytes()
    if kind.endswith("_gz"):
        content = gzip.compress(content)
    place(tmp_path, "his_1.bak", b"an older backup", timedelta(days=1))
    place(tmp_path, "his_2.bak", content, timedelta(hours=3))
    before = scratch_left(pg_databases())
    result = drill(
        tmp_path / "his_*.bak",
        PG_SERVER,
        verify=[
            ORDERS,
            {"query": "select sum(amount) from orders", "min": 750_000, "max": 751_000},
            {"query": "select patient from orders where id = 7", "label": "patient 7"},
        ],
    )
    assert result.state == State.OK, result.summary
    assert item(result, "backup.drill.verify.1").value == str(ROWS)
    assert item(result, "backup.drill.verify.2").threshold == "750000..751000"
    assert item(result, "backup.drill.verify.3").value == "患者7"
    scratch = result.details["scratch"]
    assert scratch.startswith(PREFIX)
    assert item(result, "backup.drill.cleanup").value == f"{scratch} dropped"
    assert scratch not in pg_databases()
    assert scratch_left(pg_databases()) == before
    rpo, rto = metric(result, "rpo"), metric(result, "rto")
    assert rpo is not None and abs(rpo - 3 * 3600) < 120
    assert rto is not None and 0 < rto < 120
    assert "restored, 3 verifications passed" in result.summary
    # the source database (one row more since the dump) was never touched
    assert pg_scalar(pg_dumps.source, "select count(*) from orders") == ROWS + 1


@pytest.mark.parametrize("kind", ["custom", "plain", "plain_gz"])
def test_a_truncated_postgresql_dump_fails_the_drill_with_the_reason(
    tmp_path: Path, pg_dumps: PgDumps, pg_tools: None, kind: str
) -> None:
    content = (pg_dumps.custom if kind == "custom" else pg_dumps.plain).read_bytes()
    cut = len(content) * 2 // 3
    if kind == "plain":
        # inside the data of row 700, after its first column: psql must complain
        cut = content.index(b"\n700\t") + len(b"\n700\t")
    if kind == "plain_gz":
        content = gzip.compress(content)
        cut = len(content) * 2 // 3
    place(tmp_path, "his.bak", content[:cut], timedelta(hours=1))
    before = scratch_left(pg_databases())
    result = drill(tmp_path / "his.bak", PG_SERVER)
    restore = item(result, "backup.drill.restore")
    assert result.state == State.CRITICAL and restore.verdict == State.CRITICAL
    expected = {
        "custom": "pg_restore: error:",
        "plain": "psql:<stdin>:",
        "plain_gz": "the gzip stream is truncated",
    }[kind]
    assert expected in restore.value, restore.value
    assert result.summary == f"his.bak: restore failed: {restore.value}"
    assert metric(result, "rto") is None
    assert result.details["scratch"] not in pg_databases()
    assert scratch_left(pg_databases()) == before


def test_a_dump_reaching_for_another_database_is_refused(
    tmp_path: Path, pg_dumps: PgDumps, pg_tools: None
) -> None:
    lines = pg_dumps.plain_create.read_bytes().splitlines(True)
    at = next(i for i, line in enumerate(lines) if line.startswith(b"CREATE TABLE"))
    lines.insert(at, b"\\connect postgres\n")  # as a cluster dump (pg_dumpall) would
    place(tmp_path, "all.sql", b"".join(lines), timedelta(hours=1))
    result = drill(tmp_path / "all.sql", PG_SERVER)
    restore = item(result, "backup.drill.restore")
    assert result.state == State.CRITICAL
    assert "second database 'postgres'" in restore.value, restore.value
    assert pg_scalar("postgres", "select to_regclass('public.orders') is null") is True
    assert result.details["scratch"] not in pg_databases()


def test_a_plain_dump_cut_at_a_line_end_fails_by_its_missing_trailer(
    tmp_path: Path, pg_dumps: PgDumps, pg_tools: None
) -> None:
    lines = pg_dumps.plain.read_bytes().splitlines(True)
    # cut right after the orders data: psql would restore it all without a word
    end = next(i for i, line in enumerate(lines) if line == b"\\.\n" and i > len(lines) // 2)
    place(tmp_path, "his.sql", b"".join(lines[: end + 1]), timedelta(hours=1))
    result = drill(tmp_path / "his.sql", PG_SERVER)
    assert result.state == State.CRITICAL
    assert "without its completion trailer" in item(result, "backup.drill.restore").value


def test_a_failed_verification_is_critical_and_the_scratch_database_still_goes(
    tmp_path: Path, pg_dumps: PgDumps, pg_tools: None
) -> None:
    place(tmp_path, "his.dump", pg_dumps.custom.read_bytes(), timedelta(hours=1))
    result = drill(
        tmp_path / "his.dump",
        PG_SERVER,
        verify=[
            {"query": "select count(*) from orders", "min": 5000, "label": "orders"},
            {"query": "select count(*) from prescriptions", "min": 1},
        ],
        max_rpo="30m",
    )
    assert result.state == State.CRITICAL
    orders = item(result, "backup.drill.verify.1")
    assert orders.verdict == State.CRITICAL and orders.value == "1000: 1000 is below 5000"
    missing = item(result, "backup.drill.verify.2")
    assert missing.verdict == State.CRITICAL and "prescriptions" in missing.value
    assert item(result, "backup.drill.rpo").verdict == State.WARNING
    assert metric(result, "rto") is None
    assert result.details["scratch"] not in pg_databases()


def test_a_recent_drill_is_repeated_not_restored_again(
    tmp_path: Path, pg_dumps: PgDumps, pg_tools: None
) -> None:
    place(tmp_path, "his.dump", pg_dumps.custom.read_bytes(), timedelta(hours=1))
    first = drill(tmp_path / "his.dump", PG_SERVER)
    assert first.state == State.OK
    stored = CheckResult(first.state, first.summary, details=json.loads(json.dumps(first.details)))
    again = drill(tmp_path / "his.dump", PG_SERVER, previous=stored)
    assert again.summary.startswith("last drill ") and first.summary in again.summary
    assert [i.key for i in again.items] == [i.key for i in first.items]
    assert again.details["repeat_of"] == first.details["counters"]["last_drill"]
    assert again.details["scratch"] == first.details["scratch"]
    fresh = drill(tmp_path / "his.dump", PG_SERVER, previous=stored, min_interval="0s")
    assert fresh.details["scratch"] != first.details["scratch"]


# --------------------------------------------------------------------------- MariaDB


@pytest.mark.parametrize("kind", ["plain", "databases", "plain_gz"])
def test_a_real_mysqldump_restores_verifies_and_is_dropped(
    tmp_path: Path, my_dumps: MyDumps, my_tools: None, kind: str
) -> None:
    content = (my_dumps.databases if kind == "databases" else my_dumps.plain).read_bytes()
    if kind == "plain_gz":
        content = gzip.compress(content)
    place(
        tmp_path, "his_1.sql.gz" if kind == "plain_gz" else "his_1.sql", content, timedelta(hours=5)
    )
    before = scratch_left(my_databases())
    result = drill(
        tmp_path / "his_*",
        MY_SERVER,
        verify=[ORDERS, {"query": "select patient from orders where id = 9", "label": "patient"}],
    )
    assert result.state == State.OK, result.summary
    assert item(result, "backup.drill.verify.1").value == str(ROWS)
    assert item(result, "backup.drill.verify.2").value == "患者9"
    scratch = result.details["scratch"]
    assert scratch not in my_databases()
    assert scratch_left(my_databases()) == before
    assert metric(result, "rpo") == pytest.approx(5 * 3600, abs=120)
    # a --databases dump names the source database: it was not restored into
    assert my_scalar(my_dumps.source, "select count(*) from orders") == ROWS + 1


def test_a_truncated_mysqldump_fails_the_drill_with_the_reason(
    tmp_path: Path, my_dumps: MyDumps, my_tools: None
) -> None:
    content = my_dumps.plain.read_bytes()
    place(tmp_path, "his.sql", content[: len(content) * 2 // 3], timedelta(hours=1))
    result = drill(tmp_path / "his.sql", MY_SERVER)
    restore = item(result, "backup.drill.restore")
    assert result.state == State.CRITICAL
    assert restore.value.startswith("ERROR "), restore.value
    assert result.details["scratch"] not in my_databases()


def test_a_missing_client_tool_is_unknown_naming_the_package(
    tmp_path: Path, my_dumps: MyDumps, monkeypatch: pytest.MonkeyPatch
) -> None:
    place(tmp_path, "his.sql", my_dumps.plain.read_bytes(), timedelta(hours=1))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    from opsctl.drill import DrillUnavailable

    with pytest.raises(DrillUnavailable, match=r"mysql is not installed .*mariadb-client"):
        drill(tmp_path / "his.sql", MY_SERVER)


def test_no_backup_to_drill_is_critical(tmp_path: Path) -> None:
    result = drill(tmp_path / "none_*.dump", PG_SERVER)
    assert result.state == State.CRITICAL
    assert result.summary == f"no backup matches {tmp_path / 'none_*.dump'}"


# --------------------------------------------------------------------------- over SSH


def test_a_remote_dump_is_downloaded_then_restored(
    tmp_path: Path,
    pool: SshPool,
    sshd: SshServer,
    ssh_client_keys: ClientKeys,
    pg_dumps: PgDumps,
    pg_tools: None,
) -> None:
    pool.user_known_hosts.write_text(sshd.known_hosts_line())
    remote = tmp_path / "remote"
    remote.mkdir()
    place(remote, "his.dump", pg_dumps.custom.read_bytes(), timedelta(hours=2))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    result = drill(
        remote / "*.dump",
        PG_SERVER,
        host=ssh_host(sshd, ssh_client_keys),
        download_dir=str(downloads),
    )
    assert result.state == State.OK, result.summary
    assert item(result, "backup.drill.download").verdict == State.OK
    assert item(result, "backup.drill.verify.1").value == str(ROWS)
    assert list(downloads.iterdir()) == []  # the copy is gone too
    assert result.details["scratch"] not in pg_databases()


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def drill_inventory(tmp_path: Path, pg_dumps: PgDumps, my_dumps: MyDumps) -> Iterator[Path]:
    backups = tmp_path / "backups"
    backups.mkdir()
    place(backups, "his_1.dump", pg_dumps.custom.read_bytes(), timedelta(hours=4))
    content = my_dumps.plain.read_bytes()
    place(backups, "lis_1.sql", content[: len(content) // 2], timedelta(hours=4))
    checks = [
        {"kind": "backup", "path": str(backups / "his_*.dump")},
        {
            "kind": "backup.drill",
            "name": "his-drill",
            "timeout": "10m",
            "interval": "90d",
            "path": str(backups / "his_*.dump"),
            "server": PG_SERVER,
            "verify": [ORDERS],
        },
        {
            "kind": "backup.drill",
            "name": "lis-drill",
            "timeout": "10m",
            "enabled": False,
            "path": str(backups / "lis_*.sql"),
            "server": MY_SERVER,
            "verify": [ORDERS],
        },
    ]
    path = tmp_path / "inventory.yaml"
    path.write_text(
        yaml.safe_dump(
            {"sites": [{"name": "s", "hosts": [{"name": "db1", "checks": checks}]}]},
            allow_unicode=True,
        )
    )
    yield path


def test_opsctl_backup_drill_end_to_end(
    tmp_path: Path, drill_inventory: Path, pg_tools: None, my_tools: None
) -> None:
    store = str(tmp_path / "store.sqlite")
    result = runner.invoke(
        app, ["--db", store, "backup", "drill", "his-drill", "-i", str(drill_inventory)]
    )
    assert result.exit_code == 0, result.output
    assert "Drill / verify orders" in result.output and ">= 1000" in result.output
    assert "Drill / RTO (restore and verify)" in result.output
    assert result.output.splitlines()[-1].startswith(
        "OK: his_1.dump restored, 1 verification passed"
    )

    # a disabled drill (kept out of scheduled runs) still runs by hand; this dump is cut
    result = runner.invoke(
        app,
        ["--db", store, "backup", "drill", "s/db1/lis-drill", "-i", str(drill_inventory), "--json"],
    )
    assert result.exit_code == 2, result.output
    data = json.loads(result.output)
    assert data["id"] == "s/db1/lis-drill" and data["state"] == "CRITICAL"
    assert "restore failed" in data["summary"]
    assert data["details"]["scratch"] not in my_databases()

    history = runner.invoke(app, ["--db", store, "check", "history", "db1", "--json"])
    assert history.exit_code == 0, history.output
    rows = json.loads(history.output)["results"]
    assert [(r["check_id"], r["kind"], r["state"]) for r in rows] == [
        ("s/db1/lis-drill", "backup.drill", "CRITICAL"),
        ("s/db1/his-drill", "backup.drill", "OK"),
    ]
    listing = runner.invoke(app, ["--db", store, "backup", "list", "-i", str(drill_inventory)])
    assert listing.exit_code == 0, listing.output
    lines = {line.split()[1]: line for line in listing.output.splitlines()[1:]}
    assert lines["s/db1/backup"].split()[0] == "-" and "never run" in lines["s/db1/backup"]
    assert lines["s/db1/his-drill"].startswith("OK")
    assert "(disabled)" in lines["s/db1/lis-drill"]


def test_opsctl_backup_drill_refuses_unknown_names(tmp_path: Path, drill_inventory: Path) -> None:
    store = str(tmp_path / "store.sqlite")
    result = runner.invoke(
        app, ["--db", store, "backup", "drill", "nope", "-i", str(drill_inventory)]
    )
    assert result.exit_code == 2
    assert "no backup.drill check named 'nope'" in result.output
    assert "s/db1/his-drill" in result.output
    result = runner.invoke(
        app, ["--db", store, "backup", "drill", "backup", "-i", str(drill_inventory)]
    )
    assert result.exit_code == 2  # a backup check is not a drill


def test_opsctl_backup_drill_without_the_client_is_unknown(
    tmp_path: Path, drill_inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    store = str(tmp_path / "store.sqlite")
    result = runner.invoke(
        app, ["--db", store, "backup", "drill", "his-drill", "-i", str(drill_inventory), "--json"]
    )
    assert result.exit_code == 3, result.output
    summary = json.loads(result.output)["summary"]
    assert "pg_restore is not installed" in summary and "postgresql-client" in summary
    assert shutil.which("pg_restore") is None
