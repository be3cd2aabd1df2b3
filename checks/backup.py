"""The ``backup`` check: the newest file of a backup set — its age, its size against the
set's median, its completeness markers and its checksum — and how many files are kept.

A backup set is a glob on a host, read through ``opsctl.files`` (locally or over SFTP).
Nothing is remembered between runs: the size history is the listing itself.

Reading is bounded. Head and tail markers are read with two small reads; only a checksum, or
the trailer of a gzip-compressed dump (a gzip stream has no index to seek by), needs one
streaming pass over the file, and that pass stops at 80 % of the check's timeout, leaving the
item UNKNOWN with the advice to raise ``timeout:``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import posixpath
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, Literal

from pydantic import BeforeValidator, Field, model_validator

from opsctl.contract import (
    Check,
    CheckConfig,
    CheckResult,
    Item,
    Metric,
    Range,
    State,
    utc_now,
    worst,
)
from opsctl.drill import (
    MYDUMPER_FINISHED,
    MYSQLDUMP_TRAILER,
    PG_CUSTOM_MAGIC,
    PG_PLAIN_TRAILER,
    TOOL_PACKAGES,
    DumpFormat,
    detect_format,
    first_error_line,
    gunzip_head,
    is_checksum_name,
    is_gzip,
)
from opsctl.duration import Duration, format_duration
from opsctl.files import FileInfo, Files, files_for
from opsctl.sources import format_bytes

if TYPE_CHECKING:
    from opsctl.inventory import Host

Schedule = Literal["hourly", "daily", "weekly"]

#: Default age limits (warning, critical) of the newest backup, by schedule: a run missed,
#: then two runs missed, with slack for a slow backup.
AGE_LIMITS: dict[str, tuple[timedelta, timedelta]] = {
    "hourly": (timedelta(hours=2), timedelta(hours=4)),
    "daily": (timedelta(hours=26), timedelta(hours=50)),
    "weekly": (timedelta(days=8), timedelta(days=15)),
}

#: A backup smaller than this is near zero whatever its history says.
NEAR_ZERO_BYTES = 1024
#: Bytes of a dump's end searched for its completion trailer.
TAIL_BYTES = 4096
#: Bytes of a dump's start read to recognise it.
HEAD_BYTES = 65536
#: A checksum file larger than this is not a list of checksums.
CHECKSUM_FILE_LIMIT = 4 * 1024**2

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$")
_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _parse_size(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f'expected a size like "64MB" or a number of bytes, got {value!r}')
    unit = (match.group(2) or "B").replace("iB", "B")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


class BackupConfig(CheckConfig):
    """Configuration of the ``backup`` check."""

    path: str = Field(
        description="glob of the backup set's files on the host, e.g. /backup/his/his_*.dump "
        "(checksum files such as *.sha256 and SHA256SUMS are left out of the set)"
    )
    schedule: Schedule = Field(
        "daily", description="how often a backup is made; sets the default age limits"
    )
    max_age_warn: Duration | None = Field(
        None, description="warning when the newest backup is older (default 2h/26h/8d by schedule)"
    )
    max_age_crit: Duration | None = Field(
        None,
        description="critical when the newest backup is older (default 4h/50h/15d by schedule)",
    )
    size_history: int = Field(
        14,
        ge=1,
        le=1000,
        description="the newest file's size is compared with the median of this many earlier "
        "files: warning beyond ±50 %, critical near zero (< 1 % of the median or < 1 KiB)",
    )
    format: Literal["auto", "pg_custom", "pg_plain", "mysqldump", "mydumper", "any"] = Field(
        "auto",
        description="dump format whose completeness markers are checked; auto recognises "
        "pg_dump custom/plain and mysqldump by content, mydumper by its metadata file; "
        "any checks none",
    )
    checksum: str | None = Field(
        None,
        description='sha256sum-format files listing the newest file: a suffix (".sha256": '
        'the file next to it), a name or glob in its directory ("SHA256SUMS", "*.sha256") '
        "or a path glob",
    )
    retention: int | None = Field(
        None, ge=1, description="files the set should keep; fewer, or more than twice as many, warn"
    )
    toc_download_limit: Annotated[int, BeforeValidator(_parse_size)] = Field(
        64 * 1024**2,
        description='a remote pg_dump custom archive up to this size ("64MB") is downloaded '
        "so that pg_restore --list can read it; larger ones are judged by opsctl's own reading",
    )

    @model_validator(mode="after")
    def _age_order(self) -> BackupConfig:
        warn, crit = self.age_limits
        if warn > crit:
            raise ValueError(
                f"max_age_warn ({format_duration(warn)}) is longer than max_age_crit "
                f"({format_duration(crit)})"
            )
        return self

    @property
    def age_limits(self) -> tuple[timedelta, timedelta]:
        """The (warning, critical) age limits, the schedule's defaults filling what is unset."""
        warn, crit = AGE_LIMITS[self.schedule]
        return (self.max_age_warn or warn, self.max_age_crit or crit)


# --------------------------------------------------------------------------- the set


def backup_files(found: list[FileInfo], checksum: str | None = None) -> list[FileInfo]:
    """Given the files a backup glob matched (oldest first) and the ``checksum`` setting,
    return the backups: without checksum files and without files the setting names."""
    kept = []
    for info in found:
        name = posixpath.basename(info.path)
        if is_checksum_name(info.path):
            continue
        if checksum is not None:
            pattern = posixpath.basename(checksum)
            if checksum.startswith(".") and name.endswith(checksum):
                continue
            if not checksum.startswith(".") and fnmatchcase(name, pattern):
                continue
        kept.append(info)
    return kept


def judge_age(
    newest: FileInfo, now: datetime, warn: timedelta, crit: timedelta
) -> tuple[Metric, Item]:
    """Given the newest backup, the time and the age limits, return the age metric and item."""
    age = (now - newest.mtime).total_seconds()
    metric = Metric(
        "age",
        max(0.0, age),
        "s",
        warn=Range(0, warn.total_seconds()),
        crit=Range(0, crit.total_seconds()),
        min=0,
    )
    when = newest.mtime.strftime("%Y-%m-%d %H:%M UTC")
    if age < -60:
        value = f"dated {format_duration(-age)} in the future ({when}): is a clock wrong?"
    else:
        value = f"{format_duration(max(0.0, age))} ({when})"
    state = metric.state
    advice = ""
    if state != State.OK:
        advice = (
            "the backup job has not written a new file on schedule: check its log, the cron "
            "or scheduler entry, and the space on the backup disk"
        )
    threshold = f"warn > {format_duration(warn)}, crit > {format_duration(crit)}"
    return metric, Item("backup.age", "Backup / age of newest", value, state, threshold, advice)


def judge_size(backups: list[FileInfo], history: int) -> tuple[list[Metric], Item]:
    """Given the backups (oldest first) and how many earlier ones to compare with, return the
    size metrics and the size item: the newest size against the median of the earlier ones."""
    newest = backups[-1]
    earlier = [info.size for info in backups[-history - 1 : -1]]
    metrics = [Metric("size", newest.size, "B", min=0)]
    shown = format_bytes(newest.size)
    tiny = newest.size < NEAR_ZERO_BYTES
    threshold = "±50 % of the median; crit < 1 % or < 1 KB"
    if not earlier:
        state = State.CRITICAL if tiny else State.OK
        value = f"{shown} (no earlier backup to compare with)"
    else:
        median = statistics.median(earlier)
        if median > 0:
            ratio = newest.size / median * 100
            ratio_metric = Metric(
                "size_ratio", round(ratio, 2), "%", warn=Range(50, 150), crit=Range(1), min=0
            )
            metrics.append(ratio_metric)
            state = worst([ratio_metric.state, State.CRITICAL if tiny else State.OK])
            value = f"{shown}, {ratio:.0f} % of the median {format_bytes(median)} of {len(earlier)}"
        else:
            state = State.CRITICAL if tiny else State.OK
            value = f"{shown} (the earlier {len(earlier)} are empty)"
    advice = ""
    if state == State.CRITICAL:
        advice = (
            "the newest backup is (nearly) empty: the dump failed or the disk filled up; "
            "run the backup job by hand and read its errors"
        )
    elif state == State.WARNING:
        advice = (
            "the size changed sharply: confirm a large data change (archiving, purge, new "
            "module) or look for tables missing from the dump"
        )
    return metrics, Item("backup.size", "Backup / size of newest", value, state, threshold, advice)


def judge_retention(count: int, retention: int | None) -> tuple[Metric, Item]:
    """Given the number of backups and the expected retention, return the count metric and
    the retention item."""
    if retention is None:
        metric = Metric("count", count, min=0)
        return metric, Item("backup.retention", "Backup / files retained", str(count))
    metric = Metric("count", count, warn=Range(retention, 2 * retention), min=0)
    if count < retention:
        value = f"only {count} of {retention} retained"
        advice = (
            "fewer backups are kept than the policy says: check that the job runs on every "
            "schedule, and that cleanup does not delete too much"
        )
    elif count > 2 * retention:
        value = f"{count} files, {retention} expected: retention cleanup not running?"
        advice = "old backups are not removed: check the cleanup job before the disk fills"
    else:
        value, advice = f"{count} of {retention}", ""
    return metric, Item(
        "backup.retention",
        "Backup / files retained",
        value,
        metric.state,
        f"{retention}..{2 * retention}",
        advice,
    )


# --------------------------------------------------------------------------- checksums

_SHA256_LINE = re.compile(r"^\\?([0-9a-fA-F]{64}) [ *](.+)$")
_BSD_LINE = re.compile(r"^SHA256 \((.+)\) = ([0-9a-fA-F]{64})$")


def parse_checksums(text: str) -> dict[str, str]:
    """Given the text of a sha256sum-format file (GNU ``hash  name`` or ``hash *name``, or
    BSD ``SHA256 (name) = hash``), return {file name as written: lower-case hash}."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        line = line.rstrip("\r")
        match = _SHA256_LINE.match(line)
        if match:
            found[match.group(2)] = match.group(1).lower()
            continue
        match = _BSD_LINE.match(line)
        if match:
            found[match.group(1)] = match.group(2).lower()
    return found


def checksum_pattern(setting: str, newest: str) -> str:
    """Given the ``checksum`` setting and the newest backup's path, return the path or glob
    of the checksum files to look in."""
    if setting.startswith(".") and "/" not in setting:
        return newest + setting
    if "/" in setting:
        return setting
    return posixpath.join(posixpath.dirname(newest), setting)


def expected_hash(listings: dict[str, str], newest: str) -> str | None:
    """Given {name: hash} from checksum files and the newest backup's path, return its hash:
    listed under its full path, else under its base name (None if not listed)."""
    if newest in listings:
        return listings[newest]
    name = posixpath.basename(newest)
    for listed, digest in listings.items():
        if posixpath.basename(listed.lstrip("*")) == name:
            return digest
    return None


# --------------------------------------------------------------------------- pg_dump -Fc

#: ``K_OFFSET_*`` of pg_backup_archiver.h: where a TOC entry's data block is.
OFFSET_NOT_SET, OFFSET_SET, OFFSET_NO_DATA = 1, 2, 3
_OLDEST_ARCHIVE, _NEWEST_ARCHIVE = (1, 10, 0), (1, 16, 255)


class PgArchiveError(ValueError):
    """Raised when a pg_dump custom archive cannot be read."""


@dataclass(frozen=True)
class PgArchiveEntry:
    """One entry of a custom archive's table of contents."""

    dump_id: int
    desc: str
    tag: str
    data_state: int | None
    data_offset: int | None


@dataclass(frozen=True)
class PgArchive:
    """The header and table of contents of a pg_dump custom archive."""

    version: tuple[int, int, int]
    int_size: int
    database: str
    entries: tuple[PgArchiveEntry, ...]
    toc_end: int

    @property
    def data_entries(self) -> list[PgArchiveEntry]:
        return [e for e in self.entries if e.data_state in (OFFSET_SET, OFFSET_NOT_SET)]


class _ArchiveReader:
    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self.stream = stream
        self.position = 0
        self.limit = limit
        self.int_size = 4
        self.offset_size = 8

    def bytes(self, count: int) -> bytes:
        if count < 0 or self.position + count > self.limit:
            raise PgArchiveError(f"an implausible length {count} at byte {self.position}")
        data = self.stream.read(count)
        while len(data) < count:
            more = self.stream.read(count - len(data))
            if not more:
                raise PgArchiveError(
                    f"the file ends at byte {self.position + len(data)}, inside the table of contents"
                )
            data += more
        self.position += count
        return data

    def byte(self) -> int:
        return self.bytes(1)[0]

    def int(self) -> int:
        sign = self.byte()
        value = int.from_bytes(self.bytes(self.int_size), "little")
        return -value if sign else value

    def str(self) -> str | None:
        length = self.int()
        if length < 0:
            return None
        return self.bytes(length).decode("utf-8", "replace")


def read_pg_archive(stream: BinaryIO, limit: int = 1024**3) -> PgArchive:
    """Given a stream at the start of a pg_dump custom-format archive, read its header and
    table of contents (as pg_restore's ReadHead and ReadToc do) and return them; ``limit``
    caps the bytes read. Raise PgArchiveError if it is not one or it ends inside the TOC.
    """
    reader = _ArchiveReader(stream, limit)
    if reader.bytes(5) != PG_CUSTOM_MAGIC:
        raise PgArchiveError("no PGDMP header: not a pg_dump custom archive")
    version = (reader.byte(), reader.byte(), reader.byte())
    if not _OLDEST_ARCHIVE <= version <= _NEWEST_ARCHIVE:
        raise PgArchiveError(
            f"archive version {'.'.join(map(str, version))} is not one opsctl reads"
        )
    reader.int_size = reader.byte()
    reader.offset_size = reader.byte()
    if not (1 <= reader.int_size <= 8 and 1 <= reader.offset_size <= 8):
        raise PgArchiveError("implausible integer sizes in the header")
    archive_format = reader.byte()
    if archive_format != 1:
        raise PgArchiveError(f"archive format {archive_format} is not the custom format (1)")
    at_least = version.__ge__
    if at_least((1, 15, 0)):
        reader.byte()  # compression algorithm
    else:
        reader.int()  # compression level
    for _ in range(7):  # creation time: sec, min, hour, mday, mon, year, isdst
        reader.int()
    database = reader.str() or ""
    reader.str()  # server version
    reader.str()  # pg_dump version
    count = reader.int()
    if count < 0:
        raise PgArchiveError(f"a negative TOC count {count}")
    entries = []
    for _ in range(count):
        dump_id = reader.int()
        if dump_id <= 0:
            raise PgArchiveError(f"entry ID {dump_id} out of range: a corrupt TOC")
        reader.int()  # had dumper
        reader.str()  # table oid
        reader.str()  # oid
        tag = reader.str() or ""
        desc = reader.str() or ""
        if at_least((1, 11, 0)):
            reader.int()  # section
        for _name in ("defn", "drop", "copy", "namespace", "tablespace"):
            reader.str()
        if at_least((1, 14, 0)):
            reader.str()  # table access method
        if at_least((1, 16, 0)):
            reader.int()  # relkind
        reader.str()  # owner
        reader.str()  # "false": WITH OIDS
        while reader.str() is not None:  # dependencies, ended by a NULL string
            pass
        state = reader.byte()
        offset = int.from_bytes(reader.bytes(reader.offset_size), "little")
        entries.append(PgArchiveEntry(dump_id, desc, tag, state, offset))
    return PgArchive(version, reader.int_size, database, tuple(entries), reader.position)


def judge_pg_archive(archive: PgArchive, size: int, tail: bytes) -> tuple[State, str]:
    """Given a custom archive's TOC, the archive's size and its last bytes, return whether
    its data is all there: every data block starts inside the file and the last one ends
    with the zero-length chunk that closes a block."""
    entries = len(archive.entries)
    data = archive.data_entries
    if not data:
        return State.OK, f"pg_dump custom archive, TOC of {entries} entries, no table data"
    outside = [e for e in data if e.data_state == OFFSET_SET and (e.data_offset or 0) >= size]
    if outside:
        first = min(outside, key=lambda e: e.data_offset or 0)
        return State.CRITICAL, (
            f"truncated: the data of {first.desc} {first.tag} starts at byte {first.data_offset}, "
            f"but the file has {size} bytes"
        )
    if not tail.endswith(b"\x00" * (archive.int_size + 1)):
        return State.CRITICAL, "truncated: the file ends inside a data block"
    return State.OK, f"pg_dump custom archive, TOC of {entries} entries, {len(data)} data blocks"


# --------------------------------------------------------------------------- reading


@dataclass
class Scan:
    """One streaming pass over a file: its hash, the end of its (decompressed) content."""

    sha256: str | None = None
    raw_bytes: int = 0
    plain_bytes: int = 0
    tail: bytes = b""
    gzip_error: str | None = None
    finished: bool = True


def scan_stream(
    stream: BinaryIO,
    *,
    gunzip: bool,
    want_hash: bool,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    chunk_size: int = 1024 * 1024,
) -> Scan:
    """Read ``stream`` to its end once: hash it (sha256 of the bytes as stored) if
    ``want_hash``, decompress it if ``gunzip`` (every gzip member in turn), and keep the last
    ``TAIL_BYTES`` of the content. Stop with ``finished`` False once ``clock()`` passes
    ``deadline``."""
    scan = Scan()
    digest = hashlib.sha256() if want_hash else None
    decompressor = zlib.decompressobj(wbits=31) if gunzip else None
    member_open = False
    tail = bytearray()
    while chunk := stream.read(chunk_size):
        scan.raw_bytes += len(chunk)
        if digest is not None:
            digest.update(chunk)
        if decompressor is None:
            tail += chunk
        elif scan.gzip_error is None:
            data = chunk
            while data:
                if decompressor.eof:
                    if not data.startswith(b"\x1f"):
                        if data.strip(b"\x00"):
                            scan.gzip_error = "bytes after the last gzip member"
                        break
                    decompressor = zlib.decompressobj(wbits=31)
                try:
                    out = decompressor.decompress(data)
                except zlib.error as error:
                    scan.gzip_error = f"corrupt gzip data: {error}"
                    break
                member_open = not decompressor.eof
                scan.plain_bytes += len(out)
                tail += out[-TAIL_BYTES:]
                data = decompressor.unused_data if decompressor.eof else b""
        if len(tail) > TAIL_BYTES:
            del tail[:-TAIL_BYTES]
        if clock() > deadline:
            scan.finished = False
            break
    if decompressor is None:
        scan.plain_bytes = scan.raw_bytes
    elif scan.finished and scan.gzip_error is None and (member_open or scan.raw_bytes == 0):
        scan.gzip_error = "the gzip stream is truncated (no end-of-stream marker)"
    scan.tail = bytes(tail)
    if digest is not None and scan.finished:
        scan.sha256 = digest.hexdigest()
    return scan


# --------------------------------------------------------------------------- completeness


def judge_trailer(dump_format: DumpFormat, tail: bytes) -> tuple[State, str]:
    """Given a plain dump's format and the last bytes of its content, return whether its
    completion trailer is there."""
    marker = PG_PLAIN_TRAILER if dump_format == "pg_plain" else MYSQLDUMP_TRAILER
    tool = "pg_dump" if dump_format == "pg_plain" else "mysqldump"
    if marker in tail:
        return State.OK, f"{tool} dump, ends with {marker.decode()!r}"
    return State.CRITICAL, (
        f"truncated: the {tool} dump does not end with {marker.decode()!r} "
        "(the dump was cut off or is still being written)"
    )


def judge_mydumper(metadata: bytes | None) -> tuple[State, str]:
    """Given the content of a mydumper ``metadata`` file (None if missing), return whether the
    dump finished."""
    if metadata is None:
        return State.CRITICAL, "no mydumper metadata file next to the newest file"
    if MYDUMPER_FINISHED in metadata:
        return State.OK, "mydumper metadata says the dump finished"
    return State.CRITICAL, "mydumper metadata has no 'Finished dump at': unfinished or failed"


def pg_restore_list(path: str, timeout: float) -> tuple[State, str] | None:
    """Run ``pg_restore --list`` on a local archive; return (state, reason) if it fails, None
    if it reads it (or pg_restore is not installed: opsctl's own reading then stands)."""
    tool = shutil.which("pg_restore")
    if tool is None:
        return None
    try:
        done = subprocess.run(
            [tool, "--list", path],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=max(1.0, timeout),
            env={**os.environ, "LC_MESSAGES": "C"},
            check=False,
        )
    except subprocess.TimeoutExpired:
        return State.UNKNOWN, "pg_restore --list did not finish within the check's timeout"
    if done.returncode == 0:
        return None
    line = first_error_line(done.stderr.decode("utf-8", "replace"), tool, done.returncode)
    if "unsupported version" in line:
        return State.WARNING, (
            f"pg_restore on this machine cannot read it ({line}); upgrade "
            f"{TOOL_PACKAGES['pg_restore']} to restore it here"
        )
    return State.CRITICAL, f"pg_restore --list fails: {line}"


# --------------------------------------------------------------------------- the check


@dataclass
class _Content:
    """What was read of the newest file, for the completeness and checksum items."""

    format: str = "any"
    compressed: bool = False
    completeness: tuple[State, str] = (State.OK, "")
    checksum: tuple[State, str] | None = None
    notes: list[str] = field(default_factory=list)


class BackupCheck(Check):
    """Backup files on a host: newest age, size against the median, completeness markers, checksum, retention."""

    kind = "backup"
    Config = BackupConfig
    targets = frozenset({"host"})

    config: BackupConfig

    def run(self, target: Host) -> CheckResult:
        config = self.config
        files = files_for(target, self.timeout)
        found = files.glob(config.path)
        backups = backup_files(found, config.checksum)
        if not backups:
            item = Item(
                "backup.newest",
                "Backup / newest file",
                f"no file matches {config.path}",
                State.CRITICAL,
                advice="no backup at all: check the path, then the backup job and its target disk",
            )
            return CheckResult(
                State.CRITICAL,
                f"no backup matches {config.path}",
                (Metric("count", 0, min=0),),
                (item,),
            )
        newest = backups[-1]
        now = utc_now()
        deadline = time.monotonic() + self.timeout * 0.8
        warn, crit = config.age_limits
        age_metric, age_item = judge_age(newest, now, warn, crit)
        size_metrics, size_item = judge_size(backups, config.size_history)
        count_metric, retention_item = judge_retention(len(backups), config.retention)
        content = self._content(files, newest, target, deadline)
        name = posixpath.basename(newest.path)
        state, reason = content.completeness
        items = [
            Item("backup.newest", "Backup / newest file", newest.path),
            age_item,
            size_item,
            Item(
                "backup.completeness",
                "Backup / completeness",
                reason,
                state,
                "",
                _completeness_advice(state, content.format),
            ),
        ]
        if content.checksum is not None:
            checksum_state, checksum_text = content.checksum
            items.append(
                Item(
                    "backup.checksum",
                    "Backup / checksum",
                    checksum_text,
                    checksum_state,
                    "sha256 as listed",
                    _checksum_advice(checksum_state),
                )
            )
        items.append(retention_item)
        metrics = [age_metric, *size_metrics, count_metric]
        result = CheckResult.from_metrics(metrics, "", items)
        return CheckResult(
            result.state,
            _summary(result.state, name, items, age_metric, newest),
            result.metrics,
            result.items,
            {"newest": newest.path, "format": content.format, "notes": content.notes},
        )

    def _content(self, files: Files, newest: FileInfo, host: Host, deadline: float) -> _Content:
        config = self.config
        content = _Content()
        head = files.read(newest.path, 0, HEAD_BYTES)
        content.compressed = is_gzip(head)
        plain_head = gunzip_head(head) if content.compressed else head
        detected = detect_format(newest.path, plain_head)
        if detected is None and config.format == "auto" and _has_mydumper_metadata(files, newest):
            detected = "mydumper"
        chosen = detected if config.format == "auto" else config.format
        content.format = chosen or "unrecognised"
        expected: str | None = None
        checksum_file = ""
        if config.checksum is not None:
            expected, checksum_file = self._expected(files, newest)
        needs_tail = chosen in ("pg_plain", "mysqldump", "pg_custom")
        scan: Scan | None = None
        want_hash = expected is not None
        if want_hash or (content.compressed and (needs_tail or chosen in (None, "any"))):
            with files.open(newest.path) as stream:
                scan = scan_stream(
                    stream, gunzip=content.compressed, want_hash=want_hash, deadline=deadline
                )
        if scan is not None and not scan.finished:
            unread = (
                f"read {format_bytes(scan.raw_bytes)} of {format_bytes(newest.size)} before the "
                "time ran out; give the check a longer timeout:"
            )
            content.notes.append(unread)
        if content.compressed and scan is not None and scan.gzip_error is not None:
            content.completeness = (State.CRITICAL, scan.gzip_error)
        elif chosen in ("pg_plain", "mysqldump"):
            content.completeness = self._trailer(files, newest, chosen, content, scan)
        elif chosen == "pg_custom":
            content.completeness = self._pg_custom(files, newest, host, content, scan, deadline)
        elif chosen == "mydumper":
            metadata_path = posixpath.join(posixpath.dirname(newest.path), "metadata")
            try:
                metadata: bytes | None = files.read(metadata_path, 0, 65536)
            except FileNotFoundError:
                metadata = None
            content.completeness = judge_mydumper(metadata)
        elif chosen == "any":
            content.completeness = (State.OK, "not checked (format: any)")
        else:
            content.completeness = (
                State.OK,
                "format not recognised; no completeness marker checked (set format:)",
            )
        if config.checksum is not None:
            content.checksum = _judge_checksum(expected, checksum_file, scan, newest)
        return content

    def _expected(self, files: Files, newest: FileInfo) -> tuple[str | None, str]:
        """Return the newest file's listed hash and the checksum file that lists it."""
        assert self.config.checksum is not None
        pattern = checksum_pattern(self.config.checksum, newest.path)
        candidates = sorted(files.glob(pattern), key=lambda info: info.mtime, reverse=True)
        for info in candidates:
            if info.size > CHECKSUM_FILE_LIMIT:
                continue
            text = files.read(info.path, 0, CHECKSUM_FILE_LIMIT).decode("utf-8", "replace")
            digest = expected_hash(parse_checksums(text), newest.path)
            if digest is not None:
                return digest, info.path
        return None, pattern

    def _trailer(
        self, files: Files, newest: FileInfo, chosen: str, content: _Content, scan: Scan | None
    ) -> tuple[State, str]:
        if content.compressed:
            if scan is None or not scan.finished:
                return State.UNKNOWN, "the end of the compressed dump was not read in time"
            tail = scan.tail
        else:
            tail = files.read(newest.path, max(0, newest.size - TAIL_BYTES), TAIL_BYTES)
        return judge_trailer(chosen, tail)  # type: ignore[arg-type]

    def _pg_custom(
        self,
        files: Files,
        newest: FileInfo,
        host: Host,
        content: _Content,
        scan: Scan | None,
        deadline: float,
    ) -> tuple[State, str]:
        try:
            with files.open(newest.path) as raw:
                stream: Any = gzip.GzipFile(fileobj=raw) if content.compressed else raw
                archive = read_pg_archive(stream)
        except (PgArchiveError, EOFError, gzip.BadGzipFile, zlib.error) as error:
            return State.CRITICAL, f"the table of contents cannot be read: {error}"
        if content.compressed:
            if scan is None or not scan.finished:
                return State.OK, (
                    f"pg_dump custom archive, TOC of {len(archive.entries)} entries "
                    "(data blocks not read in time)"
                )
            size, tail = scan.plain_bytes, scan.tail
        else:
            size = newest.size
            tail = files.read(newest.path, max(0, size - TAIL_BYTES), TAIL_BYTES)
        state, reason = judge_pg_archive(archive, size, tail)
        if state != State.OK or content.compressed or shutil.which("pg_restore") is None:
            return state, reason
        if _is_local(host):
            problem = pg_restore_list(newest.path, deadline - time.monotonic())
        elif newest.size <= self.config.toc_download_limit:
            with tempfile.NamedTemporaryFile(prefix="opsctl-backup-", suffix=".dump") as copy:
                with files.open(newest.path) as source:
                    shutil.copyfileobj(source, copy, 1024 * 1024)
                copy.flush()
                problem = pg_restore_list(copy.name, deadline - time.monotonic())
        else:
            return state, reason
        return problem if problem is not None else (state, f"{reason}, pg_restore --list reads it")


def _has_mydumper_metadata(files: Files, newest: FileInfo) -> bool:
    """True if the newest file's directory holds a ``metadata`` file, as mydumper writes."""
    try:
        files.stat(posixpath.join(posixpath.dirname(newest.path), "metadata"))
    except FileNotFoundError:
        return False
    return True


def _is_local(host: Host | None) -> bool:
    return host is None or host.transport == "local"


def _judge_checksum(
    expected: str | None, where: str, scan: Scan | None, newest: FileInfo
) -> tuple[State, str]:
    name = posixpath.basename(newest.path)
    if expected is None:
        return State.WARNING, f"no checksum of {name} in {where}"
    if scan is None or scan.sha256 is None:
        return State.UNKNOWN, f"{name} was not read to its end in time; checksum not verified"
    if scan.sha256 == expected:
        return State.OK, f"sha256 matches {posixpath.basename(where)}"
    return State.CRITICAL, (
        f"sha256 mismatch: {posixpath.basename(where)} lists {expected[:12]}…, "
        f"the file hashes to {scan.sha256[:12]}…"
    )


def _completeness_advice(state: State, dump_format: str) -> str:
    if state == State.OK:
        return ""
    if state == State.UNKNOWN:
        return "give the check a longer timeout: so that the whole file can be read"
    if dump_format == "mydumper":
        return "the dump did not finish: read mydumper's log and run it again"
    return (
        "the newest dump is incomplete: the backup job failed or was killed, or the disk "
        "filled up; run it again by hand and keep the previous good backup"
    )


def _checksum_advice(state: State) -> str:
    if state == State.CRITICAL:
        return (
            "the file changed after its checksum was written: it was copied incompletely or "
            "is corrupt; copy it again from the source or run a new backup"
        )
    if state == State.WARNING:
        return "the backup job did not write a checksum for its newest file: check its last step"
    if state == State.UNKNOWN:
        return "give the check a longer timeout: so that the whole file can be hashed"
    return ""


def _summary(state: State, name: str, items: list[Item], age: Metric, newest: FileInfo) -> str:
    if state != State.OK:
        problems = [
            f"{item.item.split(' / ', 1)[-1]}: {item.value}"
            for item in sorted(items, key=lambda i: -int(i.verdict))
            if item.verdict == state
        ]
        return f"{name}: " + "; ".join(problems)
    return f"{name}: {format_duration(age.value)} old, {format_bytes(newest.size)}, complete"
