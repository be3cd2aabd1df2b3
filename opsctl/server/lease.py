"""The leader lease: of several ``opsctl server`` processes sharing one store, exactly one
runs the scheduler.

A lease is one row of ``scheduler_lease``: its name, its holder, and when it expires. A
server takes it when it is free, expired or already its own, in one conditional statement
that the database serialises, so that of two servers racing for it exactly one wins. The
holder renews it every ``ttl / 3``; a standby tries to take it just as often, so a leader
that dies is replaced within ``ttl + ttl / 3`` (60 seconds with the defaults).

The one assumption is that the servers' clocks agree: a lease's expiry is written on the
holder's clock and judged on the standby's. Clocks that differ by ``skew`` make a standby
take over ``skew`` early (or late). Keep the servers on NTP, which holds them within
milliseconds; the defaults tolerate seconds of skew, since a leader renews ``2 * ttl / 3``
before its lease runs out.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import case, literal, or_, update

from opsctl.contract import utc_now
from opsctl.store.models import LeaseModel

if TYPE_CHECKING:
    from opsctl.store import Store

log = logging.getLogger(__name__)

#: The name of the scheduler's lease.
SCHEDULER_LEASE = "scheduler"

#: How long a lease lasts without renewal.
DEFAULT_TTL = timedelta(seconds=45)

Clock = Callable[[], datetime]


def default_holder() -> str:
    """Return this process's holder name: ``HOSTNAME:PID``, unique among running servers."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """A lease as stored: who holds it, since when, when it was last renewed and expires."""

    name: str
    holder: str
    acquired: datetime
    renewed: datetime
    expires: datetime

    def live(self, now: datetime) -> bool:
        """Given the time, return True if the lease has not expired (someone holds it)."""
        return now <= self.expires


def read_lease(store: Store, name: str = SCHEDULER_LEASE) -> LeaseInfo | None:
    """Given an open store and a lease name, return the stored lease, or None if it was
    never taken. Raise StoreError if the database fails."""
    with store._guard("read the lease"), store._sessions() as session:
        model = session.get(LeaseModel, name)
        if model is None:
            return None
        return LeaseInfo(model.name, model.holder, model.acquired, model.renewed, model.expires)


class Lease:
    """One process's handle on a named lease in the store."""

    def __init__(
        self,
        store: Store,
        name: str = SCHEDULER_LEASE,
        *,
        holder: str,
        ttl: timedelta = DEFAULT_TTL,
        clock: Clock = utc_now,
    ) -> None:
        """Given an open store, the lease's name, this process's holder name (unique among
        the servers sharing the store), the lease's time to live and a clock returning aware
        UTC datetimes. Raise ValueError if the holder is empty or the ttl not positive."""
        if not holder.strip():
            raise ValueError("a lease holder needs a name (for example HOSTNAME:PID)")
        if ttl <= timedelta(0):
            raise ValueError(f"a lease's ttl must be positive, got {ttl}")
        self.store = store
        self.name = name
        self.holder = holder
        self.ttl = ttl
        self.clock = clock

    def acquire(self) -> bool:
        """Take the lease if it is free, expired or already ours; return True if we hold it
        now. Atomic: of several processes calling this at once, at most one gets True.
        Raise StoreError if the database fails."""
        now = self.clock()
        expires = now + self.ttl
        mine = LeaseModel.holder == self.holder
        take = (
            update(LeaseModel)
            .where(LeaseModel.name == self.name, or_(mine, LeaseModel.expires < now))
            .values(
                holder=self.holder,
                # Renewing our own lease keeps when we first took it.
                acquired=case(
                    (mine, LeaseModel.acquired), else_=literal(now, LeaseModel.acquired.type)
                ),
                renewed=now,
                expires=expires,
            )
        )
        first = (
            self.store._insert(LeaseModel)
            .values(name=self.name, holder=self.holder, acquired=now, renewed=now, expires=expires)
            .on_conflict_do_nothing(index_elements=[LeaseModel.name])
            # An INSERT's rowcount is not reported by every driver; RETURNING is.
            .returning(LeaseModel.name)
        )
        with self.store._guard("take the lease"), self.store.engine.begin() as connection:
            if connection.execute(take).rowcount == 1:
                return True
            return connection.execute(first).first() is not None

    def renew(self) -> bool:
        """Extend the lease by its ttl if we still hold it; return False if it is no longer
        ours: another process holds it, or it expired or was released (``acquire`` may take
        it again then). Raise StoreError if the database fails."""
        now = self.clock()
        statement = (
            update(LeaseModel)
            .where(
                LeaseModel.name == self.name,
                LeaseModel.holder == self.holder,
                LeaseModel.expires > now,
            )
            .values(renewed=now, expires=now + self.ttl)
        )
        with self.store._guard("renew the lease"), self.store.engine.begin() as connection:
            return connection.execute(statement).rowcount == 1

    def release(self) -> None:
        """Give the lease up if we hold it, so that a standby takes it at its next try rather
        than after the ttl; the row stays, naming its last holder. Raise StoreError if the
        database fails."""
        statement = (
            update(LeaseModel)
            .where(LeaseModel.name == self.name, LeaseModel.holder == self.holder)
            .values(expires=self.clock())
        )
        with self.store._guard("release the lease"), self.store.engine.begin() as connection:
            connection.execute(statement)

    def holder_info(self) -> LeaseInfo | None:
        """Return the stored lease (whoever holds it), or None if it was never taken. Raise
        StoreError if the database fails."""
        return read_lease(self.store, self.name)

    def __repr__(self) -> str:
        return f"Lease({self.name!r}, holder={self.holder!r}, ttl={self.ttl})"


class LeaseKeeper:
    """A background thread that holds a lease while it can: the holder renews it every
    ``ttl / 3``, a standby tries to take it just as often.

    ``on_gain`` is called (in the keeper's thread) when the lease is taken, ``on_loss`` when
    it is lost or given up. A callback that raises is logged; a failing ``on_gain`` gives the
    lease back, so that another server may do better. A renewal that fails because the
    database cannot be reached keeps the lease only while it is certainly still ours: once
    the next try would come after it expires, the keeper counts it lost.
    """

    def __init__(
        self,
        lease: Lease,
        *,
        on_gain: Callable[[], None] | None = None,
        on_loss: Callable[[], None] | None = None,
        every: timedelta | None = None,
    ) -> None:
        """Given a lease, the callbacks and how often to renew or retry (default ``ttl / 3``)."""
        self.lease = lease
        self.on_gain = on_gain
        self.on_loss = on_loss
        self.every = every if every is not None else lease.ttl / 3
        self._held = False
        self._valid_until: datetime | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> bool:
        """True while this keeper holds the lease."""
        return self._held

    def start(self) -> None:
        """Start the thread; its first try is immediate. Raise RuntimeError if started twice."""
        if self._thread is not None:
            raise RuntimeError("the lease keeper is already started")
        self._thread = threading.Thread(
            target=self._loop, name=f"opsctl-lease-{self.lease.name}", daemon=True
        )
        self._thread.start()

    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread, then, if the lease is held, call ``on_loss`` and release it."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        with self._lock:
            if self._held:
                self._lose("the server is stopping", level=logging.INFO)
                try:
                    self.lease.release()
                except Exception as error:  # the lease then simply expires
                    log.warning("could not release lease %r: %s", self.lease.name, error)

    def tick(self) -> bool:
        """Make one try: renew the lease if held, else try to take it; call the callbacks
        on a change. Return whether the lease is held afterwards. Never raises."""
        with self._lock:
            if self._stop.is_set():
                return self._held
            now = self.lease.clock()
            try:
                ok = self.lease.renew() if self._held else self.lease.acquire()
            except Exception as error:
                log.warning("lease %r: %s", self.lease.name, error)
                if self._held and (
                    self._valid_until is None or now + self.every >= self._valid_until
                ):
                    self._lose(f"cannot renew it: {error}")
                return self._held
            if ok:
                self._valid_until = now + self.lease.ttl
                if not self._held:
                    self._gain()
            elif self._held:
                self._lose("another server holds it now")
            return self._held

    def _gain(self) -> None:
        self._held = True
        log.info("lease %r taken by %s", self.lease.name, self.lease.holder)
        if self.on_gain is None:
            return
        try:
            self.on_gain()
        except Exception:
            log.exception(
                "lease %r: starting the leader's work failed; giving it up", self.lease.name
            )
            self._lose("the leader's work failed to start")
            try:
                self.lease.release()
            except Exception as error:
                log.warning("could not release lease %r: %s", self.lease.name, error)

    def _lose(self, why: str, level: int = logging.WARNING) -> None:
        self._held = False
        self._valid_until = None
        log.log(level, "lease %r given up by %s: %s", self.lease.name, self.lease.holder, why)
        if self.on_loss is None:
            return
        try:
            self.on_loss()
        except Exception:
            log.exception("lease %r: stopping the leader's work failed", self.lease.name)

    def _loop(self) -> None:
        wait = self.every.total_seconds()
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(wait)


__all__ = [
    "DEFAULT_TTL",
    "SCHEDULER_LEASE",
    "Lease",
    "LeaseInfo",
    "LeaseKeeper",
    "default_holder",
    "read_lease",
]
