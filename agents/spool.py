"""The spool: a write-ahead queue of batches in one SQLite file.

Every batch is committed here before it is sent, sent from here oldest first, and deleted
only once the server has answered 2xx. A crash or ``kill -9`` at any moment therefore loses
nothing (SQLite's commit is atomic and, with ``synchronous=FULL``, durable), and a batch
whose answer was lost is sent again with its own ``batch_id``, which the server stores once.

The spool is bounded: when its batches take more than ``max_bytes`` (compressed), or are
older than ``max_age`` seconds, the oldest are dropped. So is a batch the server refuses for
good (``rejected``). Every drop is counted, by reason, in the file itself: the totals survive
restarts and travel in every push (``AgentSpool``), and the caller logs them.

One process at a time: a lock file beside the spool keeps a second agent away.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REASONS = ("full", "expired", "rejected")
#: Bytes counted per batch on top of its compressed body (the row and index overhead).
ROW_OVERHEAD = 64
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    samples INTEGER NOT NULL,
    size INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS drops (
    reason TEXT PRIMARY KEY,
    batches INTEGER NOT NULL,
    samples INTEGER NOT NULL
);
"""


class SpoolError(Exception):
    """The spool file cannot be opened, locked or used; the message names it and says why."""


@dataclass(frozen=True, slots=True)
class Queued:
    """One spooled batch: its row id (the order), ``batch_id``, creation time (Unix
    seconds), sample count and its JSON body (a UTF-8 object, without ``sent_at`` and
    ``spool``, which are added when it is sent)."""

    id: int
    batch_id: str
    created: float
    samples: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Dropped:
    """Batches dropped at once, and why (``full``, ``expired`` or ``rejected``)."""

    reason: str
    batches: int
    samples: int


class Spool:
    """The spool file at ``path`` (created with its directory if missing), bounded by
    ``max_bytes`` and ``max_age`` seconds. ``clock`` gives the wall time (time.time), which
    ages the batches.

    Raise SpoolError if the file is not an SQLite database, cannot be created, or is locked
    by another process.
    """

    def __init__(
        self,
        path: str | Path,
        max_bytes: int = 64 * 1024 * 1024,
        max_age: float = 7 * 86400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.clock = clock
        self._lock_fd = self._lock()
        try:
            self._db = self._open()
        except BaseException:
            os.close(self._lock_fd)
            raise
        row = self._db.execute("SELECT count(*), coalesce(sum(size), 0) FROM batches").fetchone()
        self._queued, self._bytes = int(row[0]), int(row[1])
        self._dropped = self._read_drops()

    # ------------------------------------------------------------------ opening

    def _lock(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise SpoolError(f"{self.path}: cannot create: {error.strerror or error}") from None
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise SpoolError(
                f"{self.path}: in use by another opsctl-agent (locked: {self.path}.lock)"
            ) from None
        return fd

    def _open(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                db.close()
                raise SpoolError(
                    f"{self.path}: written by a newer opsctl-agent (spool format {version}, "
                    f"this one reads {SCHEMA_VERSION})"
                )
            if version == 0:
                # Before anything is written: freed pages go back to the filesystem when
                # the queue drains.
                db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            if version < SCHEMA_VERSION:
                db.executescript(_SCHEMA)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as error:
            raise SpoolError(f"{self.path}: not a usable spool file ({error})") from None
        return db

    def _read_drops(self) -> dict[str, list[int]]:
        dropped = {reason: [0, 0] for reason in REASONS}
        for reason, batches, samples in self._db.execute(
            "SELECT reason, batches, samples FROM drops"
        ):
            dropped[reason] = [int(batches), int(samples)]
        return dropped

    def close(self) -> None:
        """Close the file and release the lock."""
        try:
            self._db.close()
        finally:
            os.close(self._lock_fd)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ state

    @property
    def queued(self) -> int:
        """Batches waiting to be sent."""
        return self._queued

    @property
    def size(self) -> int:
        """Bytes the waiting batches count for (compressed bodies plus row overhead)."""
        return self._bytes

    def counters(self) -> dict[str, int]:
        """Return the counters every push carries: ``queued_batches``, ``dropped_batches``
        and ``dropped_samples`` (drops of every reason, since the file was created)."""
        return {
            "queued_batches": self._queued,
            "dropped_batches": sum(batches for batches, _ in self._dropped.values()),
            "dropped_samples": sum(samples for _, samples in self._dropped.values()),
        }

    def drops(self) -> dict[str, tuple[int, int]]:
        """Return the drops since the file was created: reason -> (batches, samples)."""
        return {reason: (b, s) for reason, (b, s) in self._dropped.items()}

    # ------------------------------------------------------------------ queue

    def add(self, batch: dict[str, Any]) -> list[Dropped]:
        """Given a batch (a dict with ``batch_id`` and ``samples``), commit it to the spool,
        then drop what the bounds no longer allow (the batch itself, if it alone is larger
        than ``max_bytes``). Return what was dropped.

        Raise SpoolError if the batch cannot be written (disk full, file removed).
        """
        body = json.dumps(batch, separators=(",", ":"), ensure_ascii=False).encode()
        blob = zlib.compress(body, 6)
        size = len(blob) + ROW_OVERHEAD
        samples = len(batch.get("samples", ()))
        try:
            self._db.execute(
                "INSERT INTO batches (batch_id, created, samples, size, body) "
                "VALUES (?, ?, ?, ?, ?)",
                (batch["batch_id"], self.clock(), samples, size, blob),
            )
        except sqlite3.Error as error:
            raise SpoolError(f"{self.path}: cannot write a batch: {error}") from None
        self._queued += 1
        self._bytes += size
        return self.enforce()

    def oldest(self, limit: int = 1) -> list[Queued]:
        """Return up to ``limit`` batches, oldest first."""
        rows = self._db.execute(
            "SELECT id, batch_id, created, samples, body FROM batches ORDER BY id LIMIT ?",
            (limit,),
        ).fetchall()
        return [Queued(i, b, c, s, zlib.decompress(body)) for i, b, c, s, body in rows]

    def delete(self, queued: Queued) -> None:
        """Remove a delivered batch. When the spool is empty, give freed pages back."""
        self._remove([queued.id])
        if self._queued == 0:
            self._db.execute("PRAGMA incremental_vacuum")

    def reject(self, queued: Queued) -> Dropped:
        """Remove a batch the server refused for good, counting it as ``rejected``."""
        self._remove([queued.id], Dropped("rejected", 1, queued.samples))
        return Dropped("rejected", 1, queued.samples)

    def enforce(self) -> list[Dropped]:
        """Drop the batches older than ``max_age`` (``expired``), then the oldest while the
        spool is larger than ``max_bytes`` (``full``). Return what was dropped."""
        dropped = []
        cutoff = self.clock() - self.max_age
        rows = self._db.execute(
            "SELECT id, samples FROM batches WHERE created < ? ORDER BY id", (cutoff,)
        ).fetchall()
        if rows:
            drop = Dropped("expired", len(rows), sum(samples for _, samples in rows))
            self._remove([row_id for row_id, _ in rows], drop)
            dropped.append(drop)
        if self._bytes > self.max_bytes:
            ids, samples, freed = [], 0, 0
            for row_id, count, size in self._db.execute(
                "SELECT id, samples, size FROM batches ORDER BY id"
            ):
                ids.append(row_id)
                samples += count
                freed += size
                if self._bytes - freed <= self.max_bytes:
                    break
            drop = Dropped("full", len(ids), samples)
            self._remove(ids, drop)
            dropped.append(drop)
        return dropped

    def _remove(self, ids: list[int], drop: Dropped | None = None) -> None:
        """Delete these rows (and count the drop) in one transaction."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                freed = removed = 0
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    freed += db.execute(
                        f"SELECT coalesce(sum(size), 0) FROM batches WHERE id IN ({marks})", chunk
                    ).fetchone()[0]
                    removed += db.execute(
                        f"DELETE FROM batches WHERE id IN ({marks})", chunk
                    ).rowcount
                if drop is not None:
                    db.execute(
                        "INSERT INTO drops (reason, batches, samples) VALUES (?, ?, ?) "
                        "ON CONFLICT (reason) DO UPDATE SET batches = batches + excluded.batches, "
                        "samples = samples + excluded.samples",
                        (drop.reason, drop.batches, drop.samples),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise SpoolError(f"{self.path}: cannot update: {error}") from None
        self._queued -= removed
        self._bytes -= int(freed)
        if drop is not None:
            counted = self._dropped.setdefault(drop.reason, [0, 0])
            counted[0] += drop.batches
            counted[1] += drop.samples
