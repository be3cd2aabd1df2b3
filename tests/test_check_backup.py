"""The ``backup`` check on real dumps: ``pg_dump -Fc``/``-Fp`` of a real PostgreSQL database
and ``mysqldump`` of a real MariaDB database, made by these tests, laid out as backup sets
with controlled times (``os.utime``) and sizes; locally and over SSH to the loopback sshd.

The dump fixtures are shared with tests/test_backup_drill.py, which restores them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import need, need_executable, port_open
from sshd_fixtures import ClientKeys, SshServer

from checks.backup import (
    BackupCheck,
    BackupConfig,
    backup_files,
    checksum_pattern,
    judge_pg_archive,
    judge_retention,
    judge_size,
    parse_checksums,
    read_pg_archive,
    scan_stream,
)
from opsctl.contract import CheckResult, State
from opsctl.files import FileInfo
from opsctl.inventory import Host
from opsctl.ssh import SshPool

PG_HOST, PG_PORT = "127.0.0.1", 5432
MY_HOST, MY_PORT = "127.0.0.1", 3306
ROWS = 1000

# --------------------------------------------------------------------------- real dumps


@dataclass(frozen=True)
class PgDumps:
    """Dumps of a real PostgreSQL database whose ``orders`` table had 1000 rows when dumped
    (the source has one more row since, so that a restore into it would show)."""

    source: str
    custom: Path
    plain: Path
    plain_create: Path


@dataclass(frozen=True)
class MyDumps:
    """mysqldump files of a real MariaDB database (1000 rows in ``orders``; 1001 since)."""

    source: str
    plain: Path
    databases: Path


def _pg_admin():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres", autocommit=True
    )


def pg_scalar(database: str, sql: str) -> object:
    """The first value of a query on a database of the test PostgreSQL server."""
    import psycopg

    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname=database, autocommit=True
    ) as connection:
        cursor = connection.execute(sql)
        row = cursor.fetchone() if cursor.description is not None else None
    return None if row is None else row[0]


def pg_databases() -> set[str]:
    with _pg_admin() as connection:
        return {row[0] for row in connection.execute("SELECT datname FROM pg_database")}


def my_connect(database: str | None = None):  # type: ignore[no-untyped-def]
    import pymysql

    return pymysql.connect(
        host=MY_HOST, port=MY_PORT, user="root", password="", database=database, autocommit=True
    )


def my_databases() -> set[str]:
    with my_connect() as connection, connection.cursor() as cursor:
        cursor.execute("SHOW DATABASES")
        return {row[0] for row in cursor.fetchall()}


def my_scalar(database: str, sql: str) -> object:
    with my_connect(database) as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        row = cursor.fetchone() if cursor.description is not None else None
    return None if row is None else row[0]


@pytest.fixture(scope="session")
def pg_dumps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgDumps]:
    need(port_open(PG_HOST, PG_PORT), f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}")
    pg_dump = need_executable("pg_dump", "postgresql-client")
    name = f"opsctl_bksrc_{uuid.uuid4().hex[:10]}"
    with _pg_admin() as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        import psycopg

        with psycopg.connect(
            host=PG_HOST, port=PG_PORT, user="postgres", dbname=name, autocommit=True
        ) as connection:
            connection.execute(
                "CREATE TABLE orders (id serial PRIMARY KEY, patient text NOT NULL,"
                " amount numeric(10, 2) NOT NULL, created timestamptz NOT NULL DEFAULT now())"
            )
            connection.execute(
                "INSERT INTO orders (patient, amount) SELECT '患者' || g, g * 1.5"
                f" FROM generate_series(1, {ROWS}) g"
            )
            connection.execute("CREATE INDEX orders_patient ON orders (patient)")
        directory = tmp_path_factory.mktemp("pg-dumps")
        dumps = PgDumps(
            name, directory / "his.dump", directory / "his.sql", directory / "his_create.sql"
        )
        base = [pg_dump, "-h", PG_HOST, "-p", str(PG_PORT), "-U", "postgres"]
        subprocess.run([*base, "-Fc", "-f", str(dumps.custom), name], check=True)
        subprocess.run([*base, "-Fp", "-f", str(dumps.plain), name], check=True)
        subprocess.run([*base, "-Fp", "-C", "-f", str(dumps.plain_create), name], check=True)
        pg_scalar(name, "INSERT INTO orders (patient, amount) VALUES ('after the dump', 1)")
        yield dumps
    finally:
        with _pg_admin() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def my_dumps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MyDumps]:
    need(port_open(MY_HOST, MY_PORT), f"MariaDB not reachable at {MY_HOST}:{MY_PORT}")
    mysqldump = need_executable("mysqldump", "mariadb-client")
    name = f"opsctl_bksrc_{uuid.uuid4().hex[:10]}"
    with my_connect() as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        with my_connect(name) as connection, connection.cursor() as cursor:
            cursor.execute(
                "CREATE TABLE orders (id int PRIMARY KEY, patient varchar(40) NOT NULL,"
                " amount decimal(10, 2) NOT NULL) ENGINE=InnoDB"
            )
            cursor.executemany(
                "INSERT INTO orders VALUES (%s, %s, %s)",
                [(i, f"患者{i}", i * 1.5) for i in range(1, ROWS + 1)],
            )
        directory = tmp_path_factory.mktemp("my-dumps")
        dumps = MyDumps(name, directory / "his.sql", directory / "his_databases.sql")
        base = [mysqldump, "-h", MY_HOST, "-P", str(MY_PORT), "-u", "root", "--single-transaction"]
        with dumps.plain.open("wb") as out:
            subprocess.run([*base, name], check=True, stdout=out)
        with dumps.databases.open("wb") as out:
            subprocess.run([*base, "--databases", name], check=True, stdout=out)
        my_scalar(name, f"INSERT INTO orders VALUES ({ROWS + 1}, 'after the dump', 1)")
        yield dumps
    finally:
        with my_connect() as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


# --------------------------------------------------------------------------- sets


NOW = datetime.now(UTC)


def place(
    directory: Path, name: str, content: bytes, age: timedelta, *, when: datetime | None = None
) -> Path:
    """Write a backup file and date it ``age`` before now."""
    path = directory / name
    path.write_bytes(content)
    stamp = ((when or datetime.now(UTC)) - age).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def daily_set(
    directory: Path, content: bytes, count: int = 5, newest_age: timedelta | None = None
) -> list[Path]:
    """``count`` daily copies of ``content``, the newest ``newest_age`` old (default 1 h)."""
    newest_age = newest_age or timedelta(hours=1)
    return [
        place(
            directory,
            f"his_{index:02d}.dump",
            content,
            newest_age + timedelta(days=count - 1 - index),
        )
        for index in range(count)
    ]


def run_check(host: Host | None = None, timeout: float = 30.0, **config: object) -> CheckResult:
    check = BackupCheck(BackupConfig.model_validate(config), timeout=timeout)
    return check.run(host or Host(name="near"))


def item(result: CheckResult, key: str):  # type: ignore[no-untyped-def]
    found = [i for i in result.items if i.key == key]
    assert found, f"no item {key} in {[i.key for i in result.items]}"
    return found[0]


def metric(result: CheckResult, name: str) -> float:
    return next(m.value for m in result.metrics if m.name == name)


# --------------------------------------------------------------------------- local sets


def test_a_fresh_set_of_real_custom_dumps_is_ok(tmp_path: Path, pg_dumps: PgDumps) -> None:
    daily_set(tmp_path, pg_dumps.custom.read_bytes())
    result = run_check(path=str(tmp_path / "his_*.dump"), retention=5)
    assert result.state == State.OK, result.summary
    assert abs(metric(result, "age") - 3600) < 120
    assert metric(result, "size") == pg_dumps.custom.stat().st_size
    assert metric(result, "size_ratio") == 100
    assert metric(result, "count") == 5
    completeness = item(result, "backup.completeness").value
    assert "pg_dump custom archive" in completeness and "pg_restore --list reads it" in completeness
    assert item(result, "backup.newest").value.endswith("his_04.dump")
    assert result.summary.startswith("his_04.dump: 1h")


@pytest.mark.parametrize(
    ("schedule", "newest_age", "config", "state"),
    [
        ("daily", timedelta(hours=25), {}, State.OK),
        ("daily", timedelta(hours=30), {}, State.WARNING),
        ("daily", timedelta(hours=60), {}, State.CRITICAL),
        ("hourly", timedelta(hours=3), {}, State.WARNING),
        ("hourly", timedelta(hours=5), {}, State.CRITICAL),
        ("weekly", timedelta(days=9), {}, State.WARNING),
        (
            "daily",
            timedelta(hours=13),
            {"max_age_warn": "12h", "max_age_crit": "1d"},
            State.WARNING,
        ),
    ],
)
def test_age_against_the_schedule(
    tmp_path: Path,
    pg_dumps: PgDumps,
    schedule: str,
    newest_age: timedelta,
    config: dict,
    state: State,
) -> None:
    daily_set(tmp_path, pg_dumps.custom.read_bytes(), count=3, newest_age=newest_age)
    result = run_check(path=str(tmp_path / "*.dump"), schedule=schedule, **config)
    age = item(result, "backup.age")
    assert age.verdict == state, age
    assert result.state == state
    if state != State.OK:
        assert age.advice and "Backup / age" not in result.summary
        assert "age of newest" in result.summary


def test_the_age_limits_must_be_in_order() -> None:
    with pytest.raises(ValueError, match="longer than max_age_crit"):
        BackupConfig(path="/b/*", max_age_warn="3d", max_age_crit="1d")
    assert BackupConfig(path="/b/*", schedule="weekly").age_limits == (
        timedelta(days=8),
        timedelta(days=15),
    )


def test_a_dump_that_shrinks_to_nothing_is_critical(tmp_path: Path, my_dumps: MyDumps) -> None:
    content = my_dumps.plain.read_bytes()
    for index in range(4):
        place(tmp_path, f"his_{index}.sql", content, timedelta(days=5 - index))
    # the newest run failed after the header: a few hundred bytes
    place(tmp_path, "his_9.sql", content[:600], timedelta(hours=1))
    result = run_check(path=str(tmp_path / "his_*.sql"))
    size = item(result, "backup.size")
    assert size.verdict == State.CRITICAL and "% of the median" in size.value
    assert metric(result, "size_ratio") < 1 or metric(result, "size") < 1024
    assert item(result, "backup.completeness").verdict == State.CRITICAL
    assert result.state == State.CRITICAL


@pytest.mark.parametrize(
    ("newest", "state"),
    [
        (100, State.OK),
        (140, State.OK),
        (40, State.WARNING),
        (160, State.WARNING),
        (0.5, State.CRITICAL),
    ],
)
def test_size_against_the_median_of_the_history(newest: float, state: State) -> None:
    stamp = datetime(2026, 11, 1, tzinfo=UTC)
    # an old outlier beyond size_history=3 does not count; the median of the rest is 100_000
    sizes = [5, 90_000, 110_000, 100_000]
    earlier = [FileInfo(f"/b/{i}", size, stamp) for i, size in enumerate(sizes)]
    new_size = int(100_000 * newest / 100)
    metrics, size = judge_size([*earlier, FileInfo("/b/new", new_size, stamp)], history=3)
    assert size.verdict == state, size
    ratio = next(m for m in metrics if m.name == "size_ratio")
    assert ratio.value == pytest.approx(newest, abs=0.01)
    assert "of the median 98 KB of 3" in size.value
    assert bool(size.advice) == (state != State.OK)


def test_size_without_history_is_judged_only_near_zero() -> None:
    stamp = datetime(2026, 11, 1, tzinfo=UTC)
    _, alone = judge_size([FileInfo("/b/1", 50_000, stamp)], history=14)
    assert alone.verdict == State.OK and "no earlier backup" in alone.value
    _, empty = judge_size([FileInfo("/b/1", 10, stamp)], history=14)
    assert empty.verdict == State.CRITICAL


@pytest.mark.parametrize(
    ("kind", "cut"),
    [("custom", 0.5), ("custom", 0.97), ("plain", 0.5), ("mysql", 0.8)],
)
def test_a_truncated_real_dump_is_incomplete(
    tmp_path: Path, pg_dumps: PgDumps, my_dumps: MyDumps, kind: str, cut: float
) -> None:
    source = {"custom": pg_dumps.custom, "plain": pg_dumps.plain, "mysql": my_dumps.plain}[kind]
    content = source.read_bytes()
    for index in range(3):
        place(tmp_path, f"his_{index}.bak", content, timedelta(days=3 - index))
    place(tmp_path, "his_9.bak", content[: int(len(content) * cut)], timedelta(hours=1))
    result = run_check(path=str(tmp_path / "his_*.bak"))
    completeness = item(result, "backup.completeness")
    assert completeness.verdict == State.CRITICAL, completeness
    assert "truncated" in completeness.value
    assert completeness.advice
    assert result.state == State.CRITICAL
    # the complete file of the same kind is complete
    whole = run_check(path=str(tmp_path / "his_2.bak"))
    assert item(whole, "backup.completeness").verdict == State.OK


def test_gzip_dumps_are_read_through_their_compression(
    tmp_path: Path, pg_dumps: PgDumps, my_dumps: MyDumps
) -> None:
    for name, source in (("pg", pg_dumps.plain), ("my", my_dumps.plain), ("fc", pg_dumps.custom)):
        packed = gzip.compress(source.read_bytes())
        place(tmp_path, f"{name}_1.sql.gz", packed, timedelta(hours=2))
        place(tmp_path, f"{name}_cut.sql.gz", packed[: len(packed) * 3 // 4], timedelta(hours=1))
        good = run_check(path=str(tmp_path / f"{name}_1.sql.gz"))
        assert item(good, "backup.completeness").verdict == State.OK, good.summary
        cut = run_check(path=str(tmp_path / f"{name}_cut.sql.gz"))
        value = item(cut, "backup.completeness").value
        assert item(cut, "backup.completeness").verdict == State.CRITICAL
        assert "truncated" in value, value
    # gzip -c a b > c: several members in one file are one stream
    two = gzip.compress(b"-- MySQL dump 10.13\nINSERT 1;\n") + gzip.compress(
        b"INSERT 2;\n-- Dump completed on 2026-11-23 02:00:01\n"
    )
    place(tmp_path, "two.sql.gz", two, timedelta(hours=1))
    assert (
        item(run_check(path=str(tmp_path / "two.sql.gz")), "backup.completeness").verdict
        == State.OK
    )


def test_every_cut_of_a_real_custom_archive_is_caught(pg_dumps: PgDumps) -> None:
    data = pg_dumps.custom.read_bytes()
    archive = read_pg_archive(io.BytesIO(data))
    assert archive.database == pg_dumps.source
    assert {e.tag for e in archive.data_entries} == {"orders"}
    assert judge_pg_archive(archive, len(data), data[-4096:])[0] == State.OK
    missed = []
    for cut in range(5, len(data), 7):
        part = data[:cut]
        try:
            archive = read_pg_archive(io.BytesIO(part))
        except ValueError:
            continue
        if judge_pg_archive(archive, len(part), part[-4096:])[0] != State.CRITICAL:
            missed.append(cut)
    assert missed == []


def test_mydumper_metadata_tells_whether_the_dump_finished(tmp_path: Path) -> None:
    done, running = tmp_path / "2026-11-22", tmp_path / "2026-11-23"
    for directory in (done, running):
        directory.mkdir()
        place(
            directory,
            "his.orders.00000.sql.gz",
            gzip.compress(b"INSERT INTO orders VALUES (1);\n" * 500),
            timedelta(hours=2),
        )
    (done / "metadata").write_text(
        "Started dump at: 2026-11-22 02:00:01\nSHOW MASTER STATUS:\n\tLog: binlog.000042\n\n"
        "Finished dump at: 2026-11-22 02:13:45\n"
    )
    (running / "metadata").write_text("Started dump at: 2026-11-23 02:00:01\n")
    ok = run_check(path=str(done / "*.sql.gz"), format="mydumper")
    assert item(ok, "backup.completeness").verdict == State.OK
    assert run_check(path=str(done / "*.sql.gz")).details["format"] == "mydumper"  # auto
    bad = run_check(path=str(running / "*.sql.gz"))
    assert item(bad, "backup.completeness").verdict == State.CRITICAL
    assert "Finished dump at" in item(bad, "backup.completeness").value


def test_checksums_are_verified_against_sha256sum_files(tmp_path: Path, pg_dumps: PgDumps) -> None:
    sha256sum = need_executable("sha256sum", "coreutils")
    paths = daily_set(tmp_path, pg_dumps.custom.read_bytes(), count=3)
    listing = subprocess.run(
        [sha256sum, *[p.name for p in paths]], cwd=tmp_path, check=True, capture_output=True
    ).stdout
    (tmp_path / "SHA256SUMS").write_bytes(listing)
    for path in paths:  # and one file per dump, as many jobs write them
        (tmp_path / f"{path.name}.sha256").write_bytes(
            subprocess.run(
                [sha256sum, path.name], cwd=tmp_path, check=True, capture_output=True
            ).stdout
        )
    pattern = str(tmp_path / "his_*")  # matches the .sha256 files too: they are left out
    for setting in ("SHA256SUMS", ".sha256", "*.sha256", str(tmp_path / "SHA256SUMS")):
        result = run_check(path=pattern, checksum=setting, retention=3)
        assert item(result, "backup.checksum").verdict == State.OK, (setting, result.items)
        assert metric(result, "count") == 3
    # one byte of the newest dump changes after its checksum was written
    data = bytearray(paths[-1].read_bytes())
    data[len(data) // 2] ^= 0xFF
    stamp = paths[-1].stat().st_mtime
    paths[-1].write_bytes(bytes(data))
    os.utime(paths[-1], (stamp, stamp))
    result = run_check(path=pattern, checksum="SHA256SUMS")
    checksum = item(result, "backup.checksum")
    assert checksum.verdict == State.CRITICAL and "mismatch" in checksum.value
    assert result.state == State.CRITICAL and checksum.advice
    # a newest dump that no checksum file lists
    place(tmp_path, "his_99.dump", pg_dumps.custom.read_bytes(), timedelta(minutes=5))
    missing = item(run_check(path=pattern, checksum="SHA256SUMS"), "backup.checksum")
    assert missing.verdict == State.WARNING and "no checksum of his_99.dump" in missing.value


def test_checksum_listings_and_patterns() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    text = f"{digest}  his_1.dump\n{digest.upper()} *his_2.dump\nSHA256 (his 3.dump) = {digest}\njunk\n"
    assert parse_checksums(text) == {
        "his_1.dump": digest,
        "his_2.dump": digest,
        "his 3.dump": digest,
    }
    assert checksum_pattern(".sha256", "/b/his_1.dump") == "/b/his_1.dump.sha256"
    assert checksum_pattern("SHA256SUMS", "/b/his_1.dump") == "/b/SHA256SUMS"
    assert checksum_pattern("/sums/*.txt", "/b/his_1.dump") == "/sums/*.txt"
    stamp = datetime(2026, 11, 1, tzinfo=UTC)
    found = [
        FileInfo(p, 1, stamp)
        for p in ("/b/a.dump", "/b/a.dump.sha256", "/b/SHA256SUMS", "/b/a.dump.md5sum", "/b/a.chk")
    ]
    assert [f.path for f in backup_files(found)] == ["/b/a.dump", "/b/a.chk"]
    assert [f.path for f in backup_files(found, "*.chk")] == ["/b/a.dump"]


@pytest.mark.parametrize(
    ("count", "state", "words"),
    [
        (7, State.OK, "7 of 7"),
        (3, State.WARNING, "only 3 of 7 retained"),
        (15, State.WARNING, "retention cleanup not running?"),
        (14, State.OK, "14 of 7"),
    ],
)
def test_retention(count: int, state: State, words: str) -> None:
    metric_, retained = judge_retention(count, 7)
    assert retained.verdict == state and words in retained.value
    assert metric_.state == state


def test_retention_on_a_real_set(tmp_path: Path, my_dumps: MyDumps) -> None:
    content = my_dumps.plain.read_bytes()
    for index in range(3):
        place(tmp_path, f"his_{index}.sql", content, timedelta(days=2 - index, hours=1))
    result = run_check(path=str(tmp_path / "his_*.sql"), retention=7)
    assert result.state == State.WARNING
    assert "only 3 of 7 retained" in result.summary


def test_no_backup_at_all_is_critical(tmp_path: Path) -> None:
    result = run_check(path=str(tmp_path / "nothing_*.dump"))
    assert result.state == State.CRITICAL
    assert result.summary == f"no backup matches {tmp_path / 'nothing_*.dump'}"
    assert metric(result, "count") == 0


def test_an_unrecognised_file_is_judged_by_age_and_size_only(tmp_path: Path) -> None:
    daily_set(tmp_path, os.urandom(20_000), count=3)
    result = run_check(path=str(tmp_path / "*.dump"))
    assert result.state == State.OK
    assert "not recognised" in item(result, "backup.completeness").value


def test_a_read_that_runs_out_of_time_stops_and_says_so(pg_dumps: PgDumps) -> None:
    data = gzip.compress(pg_dumps.plain.read_bytes() * 50)
    ticks = iter(range(1000))
    scan = scan_stream(
        io.BytesIO(data),
        gunzip=True,
        want_hash=True,
        deadline=2,
        clock=lambda: next(ticks),
        chunk_size=4096,
    )
    assert not scan.finished and scan.sha256 is None
    assert scan.raw_bytes < len(data)
    whole = scan_stream(
        io.BytesIO(data), gunzip=True, want_hash=True, deadline=time.monotonic() + 60
    )
    assert whole.finished and whole.sha256 == hashlib.sha256(data).hexdigest()
    assert b"-- PostgreSQL database dump complete" in whole.tail
    assert whole.gzip_error is None


# --------------------------------------------------------------------------- over SSH


@pytest.fixture
def pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SshPool]:
    """The default SSH pool, with known_hosts files of the test's own."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    pool = SshPool(
        known_hosts=tmp_path / "opsctl_known_hosts", user_known_hosts=tmp_path / "known_hosts"
    )
    monkeypatch.setattr("opsctl.ssh.default_pool", lambda: pool)
    yield pool
    pool.close_all()


def ssh_host(sshd: SshServer, keys: ClientKeys) -> Host:
    return Host.model_validate(
        {
            "name": "far",
            "address": "127.0.0.1",
            "transport": "ssh",
            "ssh": {"user": "root", "port": sshd.port, "key": f"file:{keys.key}"},
        }
    )


def test_a_set_over_ssh_is_judged_as_the_local_one(
    tmp_path: Path,
    pool: SshPool,
    sshd: SshServer,
    ssh_client_keys: ClientKeys,
    pg_dumps: PgDumps,
    my_dumps: MyDumps,
) -> None:
    pool.user_known_hosts.write_text(sshd.known_hosts_line())
    far = ssh_host(sshd, ssh_client_keys)
    sets = tmp_path / "sets"
    sets.mkdir()
    paths = daily_set(sets, pg_dumps.custom.read_bytes(), count=4)
    for index in range(3):
        place(
            sets,
            f"my_{index}.sql.gz",
            gzip.compress(my_dumps.plain.read_bytes()),
            timedelta(days=3 - index),
        )
    (sets / "SHA256SUMS").write_text(
        "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in paths)
    )
    for pattern, extra in (
        (str(sets / "his_*.dump"), {"checksum": "SHA256SUMS", "retention": 4}),
        (str(sets / "my_*.sql.gz"), {}),
    ):
        near = run_check(path=pattern, **extra)
        remote = run_check(far, path=pattern, **extra)
        assert remote.state == near.state == State.OK, remote.summary
        assert [(i.key, i.verdict) for i in remote.items] == [
            (i.key, i.verdict) for i in near.items
        ]
        assert metric(remote, "size") == metric(near, "size")
        assert abs(metric(remote, "age") - metric(near, "age")) < 5
    # the remote custom archive was small enough to be read by pg_restore --list here
    remote = run_check(far, path=str(sets / "his_*.dump"))
    assert "pg_restore --list reads it" in item(remote, "backup.completeness").value
    # a truncated remote dump, and a remote checksum mismatch
    content = pg_dumps.custom.read_bytes()
    place(sets, "his_99.dump", content[: len(content) // 2], timedelta(minutes=1))
    cut = run_check(far, path=str(sets / "his_*.dump"), checksum="SHA256SUMS")
    assert item(cut, "backup.completeness").verdict == State.CRITICAL
    assert item(cut, "backup.checksum").verdict == State.WARNING  # not listed
    shutil.copy(sets / "his_00.dump", sets / "his_99.dump")
    (sets / "SHA256SUMS").write_text(f"{'0' * 64}  his_99.dump\n")
    os.utime(sets / "his_99.dump", None)
    mismatch = run_check(far, path=str(sets / "his_*.dump"), checksum="SHA256SUMS")
    assert item(mismatch, "backup.checksum").verdict == State.CRITICAL


def test_a_missing_remote_set_is_critical(
    tmp_path: Path, pool: SshPool, sshd: SshServer, ssh_client_keys: ClientKeys
) -> None:
    pool.user_known_hosts.write_text(sshd.known_hosts_line())
    result = run_check(ssh_host(sshd, ssh_client_keys), path=str(tmp_path / "none" / "*.dump"))
    assert result.state == State.CRITICAL and "no backup matches" in result.summary
