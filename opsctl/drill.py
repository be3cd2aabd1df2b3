"""Restore drills: restore the newest dump of a backup set into a scratch database, run the
set's verification queries, measure RTO and RPO, and drop the scratch database again.

Also what the ``backup`` check shares with the drill: recognising a dump's format from its
first bytes, and telling checksum files apart from the backups they describe.

The drill never touches a database it did not create. Every CREATE, restore, connection and
DROP goes through ``guard_scratch``, which accepts only ``<prefix><YYYYmmddHHMMSS>_<6 hex>``
— the names ``scratch_name`` makes. Plain SQL dumps pass through ``SqlGuard`` on their way to
``psql`` or ``mysql``: the statements of a dump made with ``pg_dump -C`` or ``mysqldump
--databases`` that would create or switch to the original database (``CREATE DATABASE``,
``\\connect``, ``USE``) are dropped, and a dump that reaches for a second database, or runs
psql meta-commands, is refused. Restore tools are run with argument lists, never a shell, and
get the password through ``PGPASSWORD``/``MYSQL_PWD``, never on the command line.

A MySQL statement that names another database explicitly (``INSERT INTO his.orders``) is not
caught by the stream guard; ``mysqldump`` never writes one, and the drill user should hold
privileges only on the scratch databases (``GRANT ALL ON `opsctl\\_drill\\_%`.*``).
"""

from __future__ import annotations

import gzip
import importlib
import os
import posixpath
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from opsctl.contract import CheckError, State, utc_now
from opsctl.inventory import Database, SecretRef

if TYPE_CHECKING:
    from opsctl.files import FileInfo, Files

# --------------------------------------------------------------------------- dump formats

DumpFormat = Literal["pg_custom", "pg_plain", "mysqldump", "mydumper"]

GZIP_MAGIC = b"\x1f\x8b"
PG_CUSTOM_MAGIC = b"PGDMP"
PG_PLAIN_HEADER = b"-- PostgreSQL database dump"
PG_PLAIN_TRAILER = b"-- PostgreSQL database dump complete"
MYSQLDUMP_HEADERS = (b"-- MySQL dump", b"-- MariaDB dump")
MYSQLDUMP_TRAILER = b"-- Dump completed"
MYDUMPER_FINISHED = b"Finished dump at"

#: Names of checksum files, never backups themselves: a backup glob such as ``db_*`` often
#: matches the ``db_1.dump.sha256`` written next to each dump.
CHECKSUM_SUFFIXES = (".sha256", ".sha256sum", ".sha512", ".sha1", ".md5", ".md5sum")
CHECKSUM_NAMES = ("SHA256SUMS", "SHA512SUMS", "SHA1SUMS", "MD5SUMS")

#: The Debian package of each client tool, named when the tool is missing.
TOOL_PACKAGES = {
    "pg_restore": "postgresql-client",
    "psql": "postgresql-client",
    "mysql": "mariadb-client",
}


def is_checksum_name(path: str) -> bool:
    """Given a path, return True if its name is that of a checksum file (``*.sha256``,
    ``SHA256SUMS``...)."""
    name = posixpath.basename(path)
    return name.endswith(CHECKSUM_SUFFIXES) or name.upper() in CHECKSUM_NAMES


def is_gzip(head: bytes) -> bool:
    """Given the first bytes of a file, return True if it is gzip-compressed."""
    return head.startswith(GZIP_MAGIC)


def gunzip_head(head: bytes) -> bytes:
    """Given the first bytes of a gzip file, return as much of its decompressed start as they
    hold (b"" if they are not gzip data)."""
    decompressor = zlib.decompressobj(wbits=31)
    try:
        return decompressor.decompress(head)
    except zlib.error:
        return b""


def detect_format(name: str, head: bytes) -> DumpFormat | None:
    """Given a file's name and the first (decompressed) bytes of its content, return the dump
    format they show, or None if none is recognised."""
    if head.startswith(PG_CUSTOM_MAGIC):
        return "pg_custom"
    start = head[:16384]
    if PG_PLAIN_HEADER in start:
        return "pg_plain"
    if any(header in start for header in MYSQLDUMP_HEADERS):
        return "mysqldump"
    if posixpath.basename(name) == "metadata" or b"Started dump at" in start[:512]:
        return "mydumper"
    return None


# --------------------------------------------------------------------------- scratch names


class DrillRefused(CheckError):
    """Raised when a drill would touch a database that is not its own scratch database, or a
    dump would take the restore elsewhere."""


_PREFIX = re.compile(r"^[a-z][a-z0-9_]{2,39}$")
_SUFFIX = re.compile(r"^\d{14}_[0-9a-f]{6}$")


def valid_prefix(prefix: str) -> str:
    """Given a scratch prefix, return it if it is lower-case letters, digits and ``_``,
    starting with a letter, 3 to 40 characters long. Raise ValueError otherwise."""
    if not _PREFIX.match(prefix):
        raise ValueError(
            "expected 3-40 lower-case letters, digits or '_', starting with a letter "
            f'(like "opsctl_drill_"), got {prefix!r}'
        )
    return prefix


def scratch_name(prefix: str, now: datetime) -> str:
    """Given the scratch prefix and the time, return a fresh scratch database name:
    ``<prefix><YYYYmmddHHMMSS>_<6 random hex digits>``."""
    return guard_scratch(f"{prefix}{now:%Y%m%d%H%M%S}_{secrets.token_hex(3)}", prefix)


def guard_scratch(name: str, prefix: str) -> str:
    """Given a database name and the scratch prefix, return the name if a drill may create,
    restore into, connect to and drop it: the prefix (itself valid) followed by exactly the
    suffix ``scratch_name`` makes. Raise DrillRefused otherwise."""
    try:
        valid_prefix(prefix)
    except ValueError as error:
        raise DrillRefused(f"refusing to touch database {name!r}: scratch prefix {error}") from None
    if not name.startswith(prefix) or not _SUFFIX.match(name[len(prefix) :]):
        raise DrillRefused(
            f"refusing to touch database {name!r}: a drill only creates, restores into and "
            f"drops databases named {prefix}<timestamp>_<id>"
        )
    return name


# --------------------------------------------------------------------------- configuration


class DrillServer(BaseModel):
    """The scratch server a drill restores into (never a production server): how to log in.

    The user needs CREATEDB (PostgreSQL) or CREATE/DROP on ``<prefix>%`` databases (MySQL,
    MariaDB), and nothing else.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    engine: Literal["postgresql", "mysql", "mariadb"]
    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535, description="default: the engine's usual port")
    user: str | None = Field(None, description="login; default: postgres / root")
    password: SecretRef | None = Field(
        None, description='a secret reference: "env:NAME" or "file:/path"'
    )
    database: str | None = Field(
        None,
        description="database to connect to for CREATE/DROP DATABASE (PostgreSQL: postgres)",
    )
    options: dict[str, str] = Field({}, description="libpq parameters such as sslmode")

    @property
    def login(self) -> str:
        return self.user or ("postgres" if self.engine == "postgresql" else "root")

    @property
    def effective_port(self) -> int:
        return self.port or (5432 if self.engine == "postgresql" else 3306)

    def target(self, database: str | None) -> Database:
        """Return the inventory Database the engine modules connect to, for ``database``
        (None: the administration database)."""
        if database is None and self.engine == "postgresql":
            database = self.database or "postgres"
        elif database is None:
            database = self.database
        return Database(
            name="drill-server",
            engine=self.engine,
            host=self.host,
            port=self.effective_port,
            database=database,
            user=self.login,
            password=self.password,
            options=self.options,
        )

    def secret(self) -> str | None:
        """The password, read now (None if none is configured). Raise CheckError if the
        reference cannot be resolved."""
        if self.password is None:
            return None
        from opsctl.inventory import SecretError

        try:
            return self.password.reveal()
        except SecretError as error:
            raise CheckError(str(error)) from None


class Verification(BaseModel):
    """One query run against the restored scratch database; its first column of its first
    row must lie within [min, max]."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    query: str = Field(description='e.g. "select count(*) from orders"')
    min: float | None = Field(None, description="the value must be at least this")
    max: float | None = Field(None, description="the value must be at most this")
    label: str = Field("", description="what the query shows, e.g. orders (default: the query)")

    @property
    def name(self) -> str:
        return self.label or self.query

    def threshold(self) -> str:
        """The bounds as a person reads them: ``>= 1000``, ``<= 5``, ``10..20`` or ''."""
        low, high = _number(self.min), _number(self.max)
        if self.min is not None and self.max is not None:
            return f"{low}..{high}"
        if self.min is not None:
            return f">= {low}"
        if self.max is not None:
            return f"<= {high}"
        return ""


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# --------------------------------------------------------------------------- the SQL guard


_COPY_FROM_STDIN = re.compile(rb"^COPY\s.+\sFROM\s+stdin\s*;\s*$", re.IGNORECASE | re.DOTALL)
_VERSIONED_COMMENT = re.compile(rb"^/\*M?!\d*\s*")
_MYSQL_NAME = re.compile(rb"`((?:[^`]|``)+)`|([A-Za-z0-9_$]+)")
_PSQL_CONNECT_NAME = re.compile(rb"dbname='((?:[^'\\]|\\.)*)'|\"((?:[^\"]|\"\")+)\"|(\S+)")
_PSQL_ALLOWED = (b"\\restrict", b"\\unrestrict")


class SqlGuard:
    """Passes a plain SQL dump (``pg_plain`` or ``mysqldump``) to the client line by line.

    ``line`` returns the line to pass on, or None for a line that must not reach the client
    (a statement creating, altering, dropping or switching to the dump's original database);
    it raises DrillRefused when the dump reaches for a second database or runs a psql
    meta-command other than ``\\restrict``. ``finish`` raises DrillIncomplete when the
    dump's completion trailer never came: a truncated dump restores "successfully" up to the
    cut, so the trailer is what tells.
    """

    def __init__(self, dump_format: DumpFormat) -> None:
        self.format = dump_format
        self.database: bytes | None = None
        self.in_copy = False
        self.complete = False
        self.lines = 0

    def line(self, line: bytes) -> bytes | None:
        self.lines += 1
        if self.format == "pg_plain":
            return self._postgres(line)
        return self._mysql(line)

    def finish(self) -> None:
        if not self.complete:
            trailer = (
                PG_PLAIN_TRAILER if self.format == "pg_plain" else MYSQLDUMP_TRAILER
            ).decode()
            raise DrillIncomplete(
                f"the dump ends after {self.lines} lines without its completion trailer "
                f"({trailer!r}): it is truncated"
            )

    def _same_database(self, name: bytes, what: str) -> None:
        if self.database is None:
            self.database = name
        elif name != self.database:
            raise DrillRefused(
                f"the dump {what} a second database {name.decode(errors='replace')!r} "
                f"(after {self.database.decode(errors='replace')!r}): a dump of several "
                "databases cannot be restored into one scratch database"
            )

    def _postgres(self, line: bytes) -> bytes | None:
        if self.in_copy:
            if line.rstrip(b"\r\n") == b"\\.":
                self.in_copy = False
            return line
        stripped = line.lstrip()
        if stripped.startswith(b"\\"):
            command = stripped.split(None, 1)[0]
            if command in _PSQL_ALLOWED:
                return line
            if command in (b"\\connect", b"\\c"):
                rest = stripped[len(command) :].strip()
                rest = rest.removeprefix(b"-reuse-previous=on").strip()
                match = _PSQL_CONNECT_NAME.search(rest)
                name = next((g for g in match.groups() if g is not None), b"") if match else b""
                self._same_database(name, "connects to")
                return None
            raise DrillRefused(
                f"the dump runs the psql command {command.decode(errors='replace')} "
                f"(line {self.lines}); a drill only runs what pg_dump writes"
            )
        upper = stripped[:24].upper()
        if upper.startswith(
            (b"CREATE DATABASE", b"ALTER DATABASE", b"DROP DATABASE", b"COMMENT ON DATABASE")
        ):
            return self._database_statement(stripped)
        if stripped.startswith(PG_PLAIN_TRAILER):
            self.complete = True
        elif upper.startswith(b"COPY ") and _COPY_FROM_STDIN.match(stripped):
            self.in_copy = True
        return line

    def _database_statement(self, stripped: bytes) -> None:
        if not stripped.rstrip().endswith(b";"):
            raise DrillRefused(
                f"a database statement spans several lines (line {self.lines}); "
                "it cannot be kept away from the original database"
            )
        return None

    def _mysql(self, line: bytes) -> bytes | None:
        stripped = line.lstrip()
        if stripped.startswith(MYSQLDUMP_TRAILER):
            self.complete = True
            return line
        if stripped.startswith(b"\\"):
            raise DrillRefused(
                f"the dump runs the mysql client command {stripped[:2].decode(errors='replace')} "
                f"(line {self.lines}); a drill only runs what mysqldump writes"
            )
        statement = _VERSIONED_COMMENT.sub(b"", stripped, count=1)
        upper = statement[:24].upper()
        for verb in (b"USE", b"CREATE DATABASE", b"CREATE SCHEMA", b"ALTER DATABASE",
                     b"ALTER SCHEMA", b"DROP DATABASE", b"DROP SCHEMA"):  # fmt: skip
            if upper.startswith(verb) and upper[len(verb) : len(verb) + 1] in (b" ", b"`", b"\t"):
                rest = statement[len(verb) :]
                rest = re.sub(rb"(?i)^\s*(/\*!\d+\s*)?IF\s+(NOT\s+)?EXISTS\s*(\*/)?", b"", rest)
                match = _MYSQL_NAME.search(rest)
                if match is None:
                    raise DrillRefused(f"cannot read the database name of line {self.lines}")
                name = (match.group(1) or match.group(2)).replace(b"``", b"`")
                self._same_database(name, "switches to" if verb == b"USE" else "names")
                return self._database_statement(stripped)
        return line


class DrillIncomplete(CheckError):
    """Raised when a plain dump ends before its completion trailer."""


class DrillUnavailable(CheckError):
    """Raised when the drill cannot run here (a client tool is missing); the result is
    UNKNOWN, not a verdict on the backup."""


# --------------------------------------------------------------------------- the report


@dataclass
class VerifyOutcome:
    """One verification query's answer and verdict."""

    verification: Verification
    value: Any = None
    state: State = State.OK
    error: str | None = None


@dataclass
class DrillReport:
    """What a drill did and saw. Times are seconds; ``rto`` is None unless the restore and
    every verification succeeded."""

    file: FileInfo
    format: DumpFormat | None = None
    compressed: bool = False
    scratch: str | None = None
    started: datetime = field(default_factory=utc_now)
    download_seconds: float | None = None
    restore_seconds: float | None = None
    restore_error: str | None = None
    verifications: list[VerifyOutcome] = field(default_factory=list)
    rto: float | None = None
    dropped: bool | None = None
    drop_error: str | None = None
    leftovers: list[str] = field(default_factory=list)

    @property
    def rpo(self) -> float:
        """The backup's age when the drill started: the data a restore would lose."""
        return max(0.0, (self.started - self.file.mtime).total_seconds())


class NoBackup(CheckError):
    """Raised when the glob matches no backup file."""


# --------------------------------------------------------------------------- the drill


def cleanup_reserve(budget: float) -> float:
    """Given the drill's time budget in seconds, return the seconds kept back to drop the
    scratch database whatever happens.

    The engine abandons a check shortly after its timeout, and an abandoned drill in a process
    that exits would leave its scratch database behind.
    """
    return min(30.0, max(3.0, budget * 0.1))


def newest_backup(files: Files, pattern: str) -> FileInfo:
    """Given Files and a glob, return the newest file that is not a checksum file.

    Raise NoBackup if there is none.
    """
    backups = [info for info in files.glob(pattern) if not is_checksum_name(info.path)]
    if not backups:
        raise NoBackup(f"no backup matches {pattern}")
    return backups[-1]


def run_drill(
    files: Files,
    *,
    path: str,
    dump_format: Literal["auto", "pg_custom", "pg_plain", "mysqldump"],
    server: DrillServer,
    prefix: str,
    verify: Sequence[Verification],
    budget: float,
    local: bool,
    download_dir: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> DrillReport:
    """Restore the newest backup matching ``path`` into a fresh scratch database on
    ``server``, run ``verify``, drop the scratch database (always), and return the report.

    ``local`` says the files are on this machine (restored in place); otherwise the dump is
    first copied to ``download_dir`` (default: the system's temporary directory). ``budget``
    is the time allowed in seconds. Raise NoBackup if no file matches, DrillUnavailable if
    a client tool is missing, CheckError for a configuration the dump does not fit, DbError
    if the scratch server cannot be reached.
    """
    started = clock()
    work_deadline = started + budget - cleanup_reserve(budget)
    newest = newest_backup(files, path)
    report = DrillReport(file=newest)
    head = files.read(newest.path, 0, 65536)
    report.compressed = is_gzip(head)
    detected = detect_format(newest.path, gunzip_head(head) if report.compressed else head)
    chosen = detected if dump_format == "auto" else dump_format
    if chosen is None or chosen == "mydumper":
        what = "a mydumper directory" if chosen == "mydumper" else "not a dump opsctl recognises"
        report.restore_error = (
            f"{posixpath.basename(newest.path)} is {what}; "
            "a drill restores pg_dump (custom or plain) and mysqldump files"
        )
        return report
    report.format = chosen
    wanted = "postgresql" if chosen.startswith("pg_") else "mysql"
    engine = "postgresql" if server.engine == "postgresql" else "mysql"
    if wanted != engine:
        raise CheckError(
            f"{posixpath.basename(newest.path)} is a {chosen} dump, but the scratch server is "
            f"{server.engine}"
        )
    tool = _tool_for(chosen)
    secret = server.secret()
    with _local_copy(files, newest, local, download_dir, work_deadline, clock) as (dump, fetched):
        report.download_seconds = fetched
        report.scratch = scratch_name(prefix, report.started)
        _create(server, report.scratch, prefix, max(5.0, work_deadline - clock()))
        try:
            restore_started = clock()
            report.restore_error = _restore(
                tool,
                chosen,
                report.compressed,
                dump,
                server,
                secret,
                report.scratch,
                prefix,
                work_deadline - clock(),
            )
            report.restore_seconds = clock() - restore_started
            if report.restore_error is None:
                report.verifications = _verify(
                    server, report.scratch, prefix, verify, max(5.0, work_deadline - clock())
                )
                if all(outcome.state == State.OK for outcome in report.verifications):
                    report.rto = clock() - restore_started
        finally:
            reserve = max(3.0, started + budget - clock())
            report.dropped, report.drop_error, report.leftovers = _drop(
                server, report.scratch, prefix, reserve
            )
    return report


def _tool_for(dump_format: DumpFormat) -> str:
    name = {"pg_custom": "pg_restore", "pg_plain": "psql", "mysqldump": "mysql"}[dump_format]
    found = shutil.which(name)
    if found is None:
        raise DrillUnavailable(
            f"{name} is not installed on this machine (Debian package {TOOL_PACKAGES[name]})"
        )
    return found


@contextmanager
def _local_copy(
    files: Files,
    info: FileInfo,
    local: bool,
    download_dir: str | None,
    deadline: float,
    clock: Callable[[], float],
) -> Iterator[tuple[str, float | None]]:
    """Yield a local path of the dump and the seconds its download took (None if local)."""
    if local:
        yield info.path, None
        return
    directory = tempfile.mkdtemp(prefix="opsctl-drill-", dir=download_dir)
    try:
        free = shutil.disk_usage(directory).free
        if free < info.size + 64 * 1024**2:
            raise CheckError(
                f"{directory} has {free // 1024**2} MB free; downloading "
                f"{posixpath.basename(info.path)} needs {info.size // 1024**2} MB (set download_dir)"
            )
        started = clock()
        target = os.path.join(directory, posixpath.basename(info.path) or "dump")
        with files.open(info.path) as source, open(target, "wb") as sink:
            while chunk := source.read(1024 * 1024):
                sink.write(chunk)
                if clock() > deadline:
                    raise CheckError(
                        f"downloading {info.path} did not finish within the check's timeout; "
                        "give the drill a longer timeout:"
                    )
        yield target, clock() - started
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _connect(server: DrillServer, database: str | None, timeout: float) -> Any:
    from opsctl.databases import ENGINE_MODULES

    module = importlib.import_module(ENGINE_MODULES[server.engine])
    return module.connect(server.target(database), timeout)


def _quote_mysql(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _create(server: DrillServer, scratch: str, prefix: str, timeout: float) -> None:
    guard_scratch(scratch, prefix)
    connection = _connect(server, None, timeout)
    try:
        if server.engine == "postgresql":
            # template0: a dump restores into an empty database, whatever template1 holds.
            connection.rows(f'CREATE DATABASE "{scratch}" TEMPLATE template0')
        else:
            connection.rows(f"CREATE DATABASE {_quote_mysql(scratch)} CHARACTER SET utf8mb4")
    finally:
        connection.close()


def _drop(
    server: DrillServer, scratch: str, prefix: str, timeout: float
) -> tuple[bool, str | None, list[str]]:
    """Drop the scratch database; return (dropped, error, other scratch databases left)."""
    try:
        guard_scratch(scratch, prefix)
        connection = _connect(server, None, timeout)
    except CheckError as error:
        return False, str(error), []
    try:
        try:
            if server.engine == "postgresql":
                if getattr(connection, "server_version", 130000) >= 130000:
                    connection.rows(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
                else:
                    connection.rows(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                        [scratch],
                    )
                    connection.rows(f'DROP DATABASE IF EXISTS "{scratch}"')
            else:
                connection.rows(f"DROP DATABASE IF EXISTS {_quote_mysql(scratch)}")
        except CheckError as error:
            return False, str(error), []
        names = _scratch_databases(connection, server, prefix)
    finally:
        connection.close()
    if scratch in names:
        return False, f"{scratch} is still there after DROP DATABASE", []
    return True, None, sorted(names)


def _scratch_databases(connection: Any, server: DrillServer, prefix: str) -> list[str]:
    """The databases on the server that carry a drill's scratch name."""
    if server.engine == "postgresql":
        rows = connection.rows("SELECT datname AS name FROM pg_database")
    else:
        rows = connection.rows("SHOW DATABASES")
    found = []
    for row in rows:
        name = str(next(iter(row.values())))
        with suppress(DrillRefused):
            found.append(guard_scratch(name, prefix))
    return found


def _conninfo(server: DrillServer, database: str) -> str:
    """A libpq connection string without the password."""

    def quoted(value: object) -> str:
        text = str(value).replace("\\", "\\\\").replace("'", "\\'")
        return f"'{text}'"

    parts = {
        "dbname": database,
        "host": server.host,
        "port": server.effective_port,
        "user": server.login,
        "application_name": "opsctl-drill",
        "connect_timeout": 10,
        **server.options,
    }
    return " ".join(f"{key}={quoted(value)}" for key, value in parts.items())


def restore_command(
    tool: str, dump_format: DumpFormat, server: DrillServer, scratch: str, dump: str | None
) -> list[str]:
    """Given the client tool, the dump format, the server, the scratch database and the dump
    path (None: the dump comes on standard input), return the argument list that restores."""
    if dump_format == "pg_custom":
        # --exit-on-error: a truncated archive fails at once instead of ignoring errors.
        command = [tool, "--no-owner", "--no-privileges", "--exit-on-error", "--no-password"]
        command += ["--dbname", _conninfo(server, scratch)]
        return [*command, dump] if dump is not None else command
    if dump_format == "pg_plain":
        return [tool, "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1",
                "--dbname", _conninfo(server, scratch), "-f", "-"]  # fmt: skip
    # --no-defaults first: no ~/.my.cnf may point the client elsewhere. --binary-mode turns
    # off the client's own commands (\!, source, connect) in what it reads.
    return [tool, "--no-defaults", "--binary-mode", "--batch",
            f"--host={server.host}", f"--port={server.effective_port}",
            f"--user={server.login}", "--connect-timeout=10",
            "--default-character-set=utf8mb4", scratch]  # fmt: skip


def _restore(
    tool: str,
    dump_format: DumpFormat,
    compressed: bool,
    dump: str,
    server: DrillServer,
    secret: str | None,
    scratch: str,
    prefix: str,
    timeout: float,
) -> str | None:
    """Run the restore; return None on success, else the reason in one line."""
    guard_scratch(scratch, prefix)
    feed = dump_format != "pg_custom" or compressed
    command = restore_command(tool, dump_format, server, scratch, None if feed else dump)
    environment = dict(os.environ)
    for name in ("PGPASSWORD", "PGSERVICE", "PGPASSFILE", "MYSQL_PWD", "MYSQL_HOST"):
        environment.pop(name, None)
    if secret is not None:
        environment["PGPASSWORD" if dump_format.startswith("pg_") else "MYSQL_PWD"] = secret
    environment["LC_MESSAGES"] = "C"  # error lines are matched in English
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            env=environment,
            start_new_session=True,
        )
        feeder: _Feeder | None = None
        if feed:
            assert process.stdin is not None
            feeder = _Feeder(dump, compressed, dump_format, process)
            feeder.start()
        try:
            code = process.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            if feeder is not None:
                feeder.join()
            return (
                f"{os.path.basename(tool)} did not finish within {timeout:.0f}s; "
                "give the drill a longer timeout:"
            )
        if feeder is not None:
            feeder.join()
            if feeder.problem is not None:
                return feeder.problem
        if code != 0:
            errors.seek(0)
            return first_error_line(errors.read().decode("utf-8", "replace"), tool, code)
        if feeder is not None and feeder.incomplete is not None:
            return feeder.incomplete
    return None


class _Feeder(threading.Thread):
    """Writes the dump into the restore tool's standard input, decompressing and guarding it."""

    def __init__(
        self, dump: str, compressed: bool, dump_format: DumpFormat, process: subprocess.Popen
    ) -> None:
        super().__init__(name="opsctl-drill-feed", daemon=True)
        self.dump = dump
        self.compressed = compressed
        self.format = dump_format
        self.process = process
        #: Why the restore was stopped (a refused statement, an unreadable dump).
        self.problem: str | None = None
        #: Why the dump is incomplete; the tool's own error, if it fails, says it better.
        self.incomplete: str | None = None

    def run(self) -> None:
        sink = self.process.stdin
        assert sink is not None
        try:
            with open(self.dump, "rb") as raw:
                source: IO[bytes] = gzip.GzipFile(fileobj=raw) if self.compressed else raw
                if self.format == "pg_custom":
                    shutil.copyfileobj(source, sink, 1024 * 1024)
                else:
                    guard = SqlGuard(self.format)
                    for line in source:
                        passed = guard.line(line)
                        if passed is not None:
                            sink.write(passed)
                    guard.finish()
        except DrillRefused as error:
            self.problem = str(error)
            self.process.kill()
        except DrillIncomplete as error:
            self.incomplete = str(error)
        except EOFError as error:  # gzip: "Compressed file ended before the end-of-stream marker"
            self.problem = f"the gzip stream is truncated: {error}"
            self.process.kill()
        except (gzip.BadGzipFile, zlib.error) as error:
            self.problem = f"the gzip stream is corrupt: {error}"
            self.process.kill()
        except BrokenPipeError:
            pass  # the tool stopped reading: its exit code and messages tell why
        except OSError as error:
            self.problem = f"reading the dump failed: {error}"
            self.process.kill()
        finally:
            with suppress(OSError):
                sink.close()


def first_error_line(messages: str, tool: str, code: int) -> str:
    """Given a client tool's error output, its path and exit code, return the first line that
    reports an error (else the first line, else the exit code)."""
    lines = [line.strip() for line in messages.splitlines() if line.strip()]
    for line in lines:
        if re.search(r"\b(error|fatal)\b", line, re.IGNORECASE):
            return line
    if lines:
        return lines[0]
    return f"{os.path.basename(tool)} exited with code {code}"


def _verify(
    server: DrillServer,
    scratch: str,
    prefix: str,
    verify: Sequence[Verification],
    timeout: float,
) -> list[VerifyOutcome]:
    if not verify:
        return []
    guard_scratch(scratch, prefix)
    outcomes = [VerifyOutcome(verification) for verification in verify]
    try:
        connection = _connect(server, scratch, timeout)
    except CheckError as error:
        for outcome in outcomes:
            outcome.state, outcome.error = State.CRITICAL, f"cannot connect: {error}"
        return outcomes
    try:
        for outcome in outcomes:
            try:
                outcome.value = connection.value(outcome.verification.query)
            except CheckError as error:
                outcome.state, outcome.error = State.CRITICAL, str(error)
                continue
            outcome.state, outcome.error = judge_value(outcome.verification, outcome.value)
    finally:
        connection.close()
    return outcomes


def judge_value(verification: Verification, value: Any) -> tuple[State, str | None]:
    """Given a verification and the value its query returned, return its state and, when it
    fails, why."""
    if verification.min is None and verification.max is None:
        return State.OK, None
    if value is None:
        return State.CRITICAL, "the query returned no value"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return State.CRITICAL, f"the query returned {value!r}, not a number"
    if verification.min is not None and number < verification.min:
        return State.CRITICAL, f"{_number(number)} is below {_number(verification.min)}"
    if verification.max is not None and number > verification.max:
        return State.CRITICAL, f"{_number(number)} is above {_number(verification.max)}"
    return State.OK, None
