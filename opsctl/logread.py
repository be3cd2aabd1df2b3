"""Incremental reading of log files: each run reads only the lines written since the last one.

``LogReader(files, pattern).blocks(state)`` yields blocks of whole lines from the files the
glob matches, and ``reader.state`` then holds the cursors to pass in next time (JSON-ready;
the checks keep them in ``details["counters"]["cursors"]``).

A cursor remembers, per file: its path, inode (None over SFTP), size, modification time,
the offset read up to, and a fingerprint of its first line (at most ``FINGERPRINT_BYTES``).
The fingerprint follows a file's content wherever it goes, which is what makes these cases
work without reading anything twice:

- rotation by rename (``upload.log`` → ``upload.log.1``, a new ``upload.log``): the old
  file's tail is finished under its new name, then the new file is read from 0. When the
  glob does not match the renamed file, it is looked for next to the old name
  (``upload.log.1``, ``upload.log-20261101``, ``upload.log.1.gz``);
- compression (``upload.log.1`` → ``upload.log.1.gz``): the content is the same, so the
  cursor carries over into the decompressed stream; a ``.gz`` never seen before is read
  whole once and then remembered as read;
- truncation and copy-truncate: the file at the same path got smaller than the offset, or
  starts with another first line: it is read from 0 (the copy, matched by fingerprint, gives
  the old tail);
- a partial last line (the writer is in the middle of it) is left for the next run; only
  files that will never grow again (compressed, or renamed out of the glob) give their
  last unterminated line, with a newline added;
- the first run (``state`` None) starts at the end of the existing files by default
  (``start_at_end``), so that it does not report a year of old logs.

A run reads at most ``max_bytes``; what is left is read by the next run, and a note says so.
"""

from __future__ import annotations

import glob as globbing
import gzip
import hashlib
import zlib
from collections.abc import Generator, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO

from opsctl.files import FileInfo, Files

#: The first line of a file, cut at this many bytes, identifies its content.
FINGERPRINT_BYTES = 1024
#: A line longer than this is cut (and the rest read as another line), so that a file
#: without newlines cannot make a reader hold it all in memory.
MAX_LINE_BYTES = 16 * 1024**2
#: On a first run, the end of a file is looked for in its last bytes, up to this many.
TAIL_PROBE_BYTES = 64 * 1024
#: Compressed bytes read to fingerprint a ``.gz`` file.
GZIP_PROBE_BYTES = 64 * 1024
STATE_VERSION = 1


@dataclass(frozen=True)
class Block:
    """Whole lines of one file, each ending in ``b"\\n"``."""

    path: str
    data: bytes


@dataclass
class _Cursor:
    """Where reading of one file's content stands (see the module's docstring)."""

    path: str
    inode: int | None
    size: int
    mtime: str
    offset: int
    fingerprint: str | None
    compressed: bool = False
    # Read to the end of the file as it was then (a partial last line may wait).
    eof: bool = False

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _Cursor:
        return cls(
            path=str(data["path"]),
            inode=None if data.get("inode") is None else int(data["inode"]),
            size=int(data["size"]),
            mtime=str(data["mtime"]),
            offset=int(data["offset"]),
            fingerprint=None if data.get("fingerprint") is None else str(data["fingerprint"]),
            compressed=bool(data.get("compressed", False)),
            eof=bool(data.get("eof", False)),
        )


@dataclass
class _Read:
    """One file to read this run: from ``start`` on, into ``cursor``."""

    info: FileInfo
    cursor: _Cursor
    start: int
    # The file will not grow again: its last line is given even without a newline, and its
    # cursor is dropped once it is read to the end (it is not matched by the glob).
    closed: bool = False


def _is_compressed(path: str) -> bool:
    return path.endswith(".gz")


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _size(size: float) -> str:
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


class LogReader:
    """Reads the lines added to the files matching ``pattern`` since the previous run.

    ``files`` gives access to the files (local or over SSH). ``max_bytes`` caps what one run
    reads; ``block_size`` is the size of the reads (a block holds whole lines, so it may be
    a little smaller, or longer when one line is). ``start_at_end``: on a first run, start
    at the end of the existing files (True) or read them whole (False).
    """

    def __init__(
        self,
        files: Files,
        pattern: str,
        *,
        max_bytes: int = 512 * 1024**2,
        block_size: int = 4 * 1024**2,
        start_at_end: bool = True,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        if block_size <= 0 or max_bytes <= 0:
            raise ValueError("block_size and max_bytes must be positive")
        self.files = files
        self.pattern = pattern
        self.max_bytes = max_bytes
        self.block_size = block_size
        self.start_at_end = start_at_end
        self.max_line_bytes = max(max_line_bytes, 1)
        self._cursors: list[_Cursor] = []
        self._notes: list[str] = []
        self._read = 0
        self._matched = 0

    @property
    def state(self) -> dict[str, Any]:
        """The cursors after the blocks read so far (JSON-ready), for the next run."""
        return {"version": STATE_VERSION, "files": [asdict(c) for c in self._cursors]}

    @property
    def notes(self) -> list[str]:
        """One-line remarks on this run: rotations, truncations, a first run, the read limit."""
        return list(self._notes)

    @property
    def bytes_read(self) -> int:
        """Bytes of lines given out so far in this run."""
        return self._read

    @property
    def files_matched(self) -> int:
        """How many files the pattern matched in this run."""
        return self._matched

    # ----------------------------------------------------------------- the run

    def blocks(self, state: Mapping[str, Any] | None) -> Iterator[Block]:
        """Given the state of the previous run (None on the first), yield blocks of the new
        whole lines, oldest file first. ``state`` is updated as blocks are taken, so that a
        run that stops early still resumes at the right place.

        Raise OSError if a file cannot be read (PermissionError ...), and what the Files
        raise for the transport (SshError). A file that disappears while being looked at is
        skipped.
        """
        self._notes = []
        self._read = 0
        previous = self._load(state)
        plan = self._plan(previous)
        # Unchanged files' cursors, then those of the files read, which advance in place as
        # blocks go out (a file found beside a rotated name joins only if left unfinished).
        self._cursors = [*self._kept, *(item.cursor for item in plan if not item.closed)]
        for item in plan:
            if self._read < self.max_bytes:
                yield from self._read_file(item)
            if item.closed and not item.cursor.eof:
                self._cursors.append(item.cursor)
        left = [item for item in plan if item.start >= 0 and not item.cursor.eof]
        if self._read >= self.max_bytes and left:
            rest = sum(
                max(item.info.size - item.cursor.offset, 0)
                for item in left
                if not item.cursor.compressed
            )
            self._notes.append(
                f"read limit of {_size(self.max_bytes)} reached; {_size(rest)} in"
                f" {len(left)} file(s) left for the next run"
            )

    def _load(self, state: Mapping[str, Any] | None) -> list[_Cursor] | None:
        if not state or "files" not in state:
            return None
        try:
            if int(state.get("version", 0)) != STATE_VERSION:
                raise ValueError(f"version {state.get('version')}")
            return [_Cursor.from_json(entry) for entry in state["files"]]
        except (KeyError, TypeError, ValueError) as error:
            self._notes.append(f"the saved cursors were unreadable ({error}); starting afresh")
            return None

    # ----------------------------------------------------------------- matching

    def _plan(self, previous: list[_Cursor] | None) -> list[_Read]:
        """Match the files found now with the cursors of the previous run; return what to
        read, oldest file first, and leave the cursors of unchanged files in ``_kept``."""
        current = self.files.glob(self.pattern)
        self._matched = len(current)
        self._kept: list[_Cursor] = []
        if previous is None:
            return self._first_run(current)

        used: set[int] = set()
        by_path: dict[str, _Cursor] = {c.path: c for c in previous}
        plan: list[_Read] = []
        changed: list[FileInfo] = []
        for info in current:
            cursor = by_path.get(info.path)
            if cursor is not None and _unchanged(cursor, info):
                used.add(id(cursor))
                self._kept.append(cursor)
            else:
                changed.append(info)

        fingerprints: dict[str, str | None] = {}
        for info in list(changed):
            try:
                fingerprints[info.path] = self._fingerprint(info)
            except FileNotFoundError:
                changed.remove(info)  # rotated away since the listing; found again next run
            except (zlib.error, gzip.BadGzipFile) as error:
                changed.remove(info)
                self._notes.append(f"{_name(info.path)} is not a readable gzip file ({error})")
        assigned: dict[str, _Cursor] = {}

        def assign(info: FileInfo, cursor: _Cursor) -> None:
            used.add(id(cursor))
            assigned[info.path] = cursor

        # The same file as before, grown (or with its first line completed).
        for info in changed:
            cursor = by_path.get(info.path)
            fingerprint = fingerprints[info.path]
            if (
                cursor is not None
                and id(cursor) not in used
                and cursor.compressed == _is_compressed(info.path)
                and _same_inode(cursor, info)
                and (cursor.fingerprint is None or cursor.fingerprint == fingerprint)
            ):
                assign(info, cursor)
        # Content seen before under another name: renamed, compressed or copied.
        for info in changed:
            fingerprint = fingerprints[info.path]
            if info.path in assigned or fingerprint is None:
                continue
            candidates = [c for c in previous if id(c) not in used and c.fingerprint == fingerprint]
            if candidates:
                candidates.sort(key=lambda c: c.inode is None or c.inode != info.inode)
                assign(info, candidates[0])

        for info in changed:
            fingerprint = fingerprints[info.path]
            cursor = assigned.get(info.path)
            if cursor is not None:
                plan.append(self._continue(info, cursor, fingerprint))
                continue
            replaced = by_path.get(info.path)
            if replaced is not None and not replaced.compressed:
                if replaced.inode is not None and info.inode is not None:
                    if replaced.inode != info.inode:
                        what = "was rotated; the new file is read from the start"
                    else:
                        what = "was truncated; read from the start"
                else:
                    what = "was truncated or replaced; read from the start"
                self._notes.append(f"{_name(info.path)} {what}")
            plan.append(_Read(info, _new_cursor(info, fingerprint, 0), 0))

        lost = [c for c in previous if id(c) not in used]
        plan.extend(self._find_moved(lost, previous, {info.path for info in current}))
        plan.sort(key=lambda item: (item.info.mtime, item.info.path))
        return plan

    def _first_run(self, current: list[FileInfo]) -> list[_Read]:
        plan = []
        skipped = 0
        for info in current:
            try:
                fingerprint = self._fingerprint(info)
            except FileNotFoundError:
                continue
            except (zlib.error, gzip.BadGzipFile) as error:
                self._notes.append(f"{_name(info.path)} is not a readable gzip file ({error})")
                continue
            cursor = _new_cursor(info, fingerprint, 0)
            if not self.start_at_end:
                plan.append(_Read(info, cursor, 0))
                continue
            if cursor.compressed:
                cursor.eof = True
                skipped += info.size
            else:
                cursor.offset = self._end_of_last_line(info)
                cursor.eof = True
                skipped += cursor.offset
            self._kept.append(cursor)
        if self.start_at_end and current:
            self._notes.append(
                f"first run: starting at the end of {len(current)} file(s)"
                f" ({_size(skipped)} of older lines not read)"
            )
        return plan

    def _continue(self, info: FileInfo, cursor: _Cursor, fingerprint: str | None) -> _Read:
        """The read of a file whose content was known as ``cursor``."""
        compressed = _is_compressed(info.path)
        start = cursor.offset
        if compressed and cursor.compressed and cursor.eof:
            start = -1  # read to its end before: nothing new can be in it
        elif compressed and not cursor.compressed and cursor.eof:
            # The file compressed after being read to its end: the gzip trailer says its
            # length (modulo 2**32) without decompressing it.
            if self._gzip_length(info) == cursor.offset % 2**32:
                start = -1
        elif not compressed and cursor.compressed:
            start = 0  # decompressed again: read as new content
        elif not compressed and info.size < cursor.offset:
            self._notes.append(f"{_name(info.path)} was truncated; read from the start")
            start = 0
        updated = _new_cursor(info, fingerprint or cursor.fingerprint, max(start, 0))
        if start < 0:
            updated.offset = cursor.offset
            updated.eof = True
        return _Read(info, updated, start)

    def _find_moved(
        self, lost: list[_Cursor], previous: list[_Cursor], globbed: set[str]
    ) -> list[_Read]:
        """Given cursors whose content was not found among the files the glob matches, look
        for it next to their names (``upload.log.1``, ``upload.log-20261101.gz``) and return
        the reads of their tails.

        Only a file that may have grown since it was read is looked for: one still being
        written (no other file's name is its name with a suffix), or one not read to its end.
        A rotated file read to its end that is gone was removed by the retention.
        """
        paths = {c.path for c in previous}
        plan = []
        for cursor in lost:
            rotated = any(
                cursor.path[: len(other)] == other
                and cursor.path[len(other) : len(other) + 1] in "._-"
                for other in paths
                if len(other) < len(cursor.path)
            )
            if cursor.eof and (rotated or cursor.compressed):
                continue
            found = None
            if cursor.fingerprint is not None:
                found = self._look_next_to(cursor, globbed)
            if found is None:
                self._notes.append(
                    f"{_name(cursor.path)} was rotated or removed and its old content was not"
                    " found; lines written to it since the previous run may be missing"
                )
                continue
            info, fingerprint = found
            read = self._continue(info, cursor, fingerprint)
            read.closed = True
            plan.append(read)
        return plan

    def _look_next_to(
        self, cursor: _Cursor, globbed: set[str]
    ) -> tuple[FileInfo, str | None] | None:
        pattern = globbing.escape(cursor.path) + "[._-]*"
        try:
            candidates = self.files.glob(pattern)
            try:
                candidates.insert(0, self.files.stat(cursor.path))
            except FileNotFoundError:
                pass
        except FileNotFoundError:
            return None
        for info in candidates:
            if info.path in globbed:
                continue  # matched by the glob: handled as such
            try:
                fingerprint = self._fingerprint(info)
            except (FileNotFoundError, zlib.error, gzip.BadGzipFile):
                continue
            if fingerprint == cursor.fingerprint:
                return info, fingerprint
        return None

    # ----------------------------------------------------------------- file access

    def _fingerprint(self, info: FileInfo) -> str | None:
        """The fingerprint of a file's first line, or None while it has no complete one."""
        if _is_compressed(info.path):
            raw = self.files.read(info.path, 0, GZIP_PROBE_BYTES)
            head = zlib.decompressobj(wbits=31).decompress(raw, FINGERPRINT_BYTES)
        else:
            head = self.files.read(info.path, 0, FINGERPRINT_BYTES)
        newline = head.find(b"\n")
        if newline >= 0:
            head = head[: newline + 1]
        elif len(head) < FINGERPRINT_BYTES:
            return None
        return hashlib.blake2b(head, digest_size=12).hexdigest()

    def _gzip_length(self, info: FileInfo) -> int | None:
        if info.size < 18:
            return None
        trailer = self.files.read(info.path, info.size - 4, 4)
        return int.from_bytes(trailer, "little") if len(trailer) == 4 else None

    def _end_of_last_line(self, info: FileInfo) -> int:
        probe = min(info.size, TAIL_PROBE_BYTES)
        tail = self.files.read(info.path, info.size - probe, probe)
        newline = tail.rfind(b"\n")
        if newline >= 0:
            return info.size - probe + newline + 1
        # No line ends in the probe: the whole file is one partial line, or a giant one
        # whose start is too far back to matter.
        return 0 if info.size <= TAIL_PROBE_BYTES else info.size

    def _read_file(self, item: _Read) -> Iterator[Block]:
        if item.start < 0:
            return
        cursor = item.cursor
        if cursor.compressed:
            yield from self._read_compressed(item)
            return
        try:
            stream = self.files.open(item.info.path, item.start)
        except FileNotFoundError:
            return
        with stream:
            finished = yield from self._lines(item, stream, item.info.size - item.start)
        # What is left unread when the lines finished is a partial last line.
        cursor.eof = finished

    def _read_compressed(self, item: _Read) -> Iterator[Block]:
        cursor = item.cursor
        try:
            raw = self.files.open(item.info.path, 0)
        except FileNotFoundError:
            return
        with raw, gzip.GzipFile(fileobj=raw, mode="rb") as stream:
            try:
                skipped = 0
                while skipped < item.start:
                    chunk = stream.read(min(self.block_size, item.start - skipped))
                    if not chunk:
                        break
                    skipped += len(chunk)
                cursor.eof = yield from self._lines(item, stream, None, closed=True)
            except EOFError:
                # Being compressed right now (the writer has not finished): read the rest
                # when it is complete.
                cursor.eof = False
                self._notes.append(f"{_name(item.info.path)} is incomplete; read again next run")
            except (zlib.error, gzip.BadGzipFile, OSError) as error:
                if isinstance(error, FileNotFoundError | PermissionError):
                    raise
                cursor.eof = True
                self._notes.append(
                    f"{_name(item.info.path)} is damaged after {_size(cursor.offset)}"
                    f" of content ({error}); the rest is not read"
                )

    def _lines(
        self, item: _Read, stream: BinaryIO, remaining: int | None, *, closed: bool = False
    ) -> Generator[Block, None, bool]:
        """Yield blocks of whole lines from ``stream`` (at most ``remaining`` bytes, all if
        None), advancing ``item.cursor.offset`` past each block given out. Return True if the
        stream was read to its end, False if the read limit stopped it."""
        cursor = item.cursor
        path = item.info.path
        # The start of a line that has no end yet, in pieces (a long line comes in many).
        carry: list[bytes] = []
        carried = 0
        closed = closed or item.closed
        while remaining is None or remaining > 0:
            if self._read >= self.max_bytes:
                return False
            want = self.block_size if remaining is None else min(self.block_size, remaining)
            chunk = stream.read(want)
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            newline = chunk.rfind(b"\n")
            if newline < 0:
                carry.append(chunk)
                carried += len(chunk)
                if carried > self.max_line_bytes:
                    self._notes.append(
                        f"{_name(path)}: a line longer than {_size(self.max_line_bytes)}"
                        " was cut in pieces"
                    )
                    yield self._give(cursor, path, b"".join([*carry, b"\n"]), carried)
                    carry, carried = [], 0
                continue
            if carry:
                data = b"".join([*carry, memoryview(chunk)[: newline + 1]])
            elif newline + 1 == len(chunk):
                data = chunk
            else:
                data = chunk[: newline + 1]
            rest = chunk[newline + 1 :]
            carry, carried = ([rest], len(rest)) if rest else ([], 0)
            yield self._give(cursor, path, data, len(data))
        if carry and closed:
            yield self._give(cursor, path, b"".join([*carry, b"\n"]), carried)
        return True

    def _give(self, cursor: _Cursor, path: str, data: bytes, consumed: int) -> Block:
        cursor.offset += consumed
        self._read += consumed
        return Block(path, data)


def _unchanged(cursor: _Cursor, info: FileInfo) -> bool:
    """True if the file is as the cursor left it and was read to its end then."""
    return (
        cursor.eof
        and cursor.size == info.size
        and cursor.mtime == info.mtime.isoformat()
        and _same_inode(cursor, info)
    )


def _same_inode(cursor: _Cursor, info: FileInfo) -> bool:
    return cursor.inode is None or info.inode is None or cursor.inode == info.inode


def _new_cursor(info: FileInfo, fingerprint: str | None, offset: int) -> _Cursor:
    return _Cursor(
        path=info.path,
        inode=info.inode,
        size=info.size,
        mtime=info.mtime.isoformat(),
        offset=offset,
        fingerprint=fingerprint,
        compressed=_is_compressed(info.path),
    )


__all__ = ["Block", "LogReader"]
