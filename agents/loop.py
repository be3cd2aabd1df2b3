"""The agent's loop: collect every ``interval`` into the spool, deliver from the spool.

Collection never waits for the server: while the server is unreachable, batches pile up in
the spool (within its bounds) and delivery is retried after an exponential backoff with
full jitter. When the server answers again, the backlog is sent oldest first, a bounded
number of batches per turn of the loop, so that a long backlog does not delay collection.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from agents import __version__
from agents.collect import Collector
from agents.config import AgentConfig
from agents.local_checks import run_check
from agents.push import DELIVERED, REJECTED, UNAUTHORIZED, Answer, Backoff
from agents.spool import Dropped, Queued, Spool, SpoolError

log = logging.getLogger("opsctl-agent")

#: Most batches sent in one turn of the loop; and at most half an interval spent sending.
REPLAY_BATCHES = 20


class Sender(Protocol):
    """What delivers a batch: ``agents.push.Pusher``."""

    def push(self, body: bytes) -> Answer:
        """Send one batch's JSON body and return what became of it. Never raises."""
        ...


def new_batch_id() -> str:
    """Return a new random UUID4 as 32 hex digits (as ``uuid.uuid4().hex``, without
    importing uuid, which loads ``platform``)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def push_body(queued: Queued, counters: dict[str, int], sent_at: str) -> bytes:
    """Given a spooled batch, the spool's counters and the time of sending, return the JSON
    body of the push: the stored batch with ``sent_at`` and ``spool`` added."""
    head = f'{{"sent_at":"{sent_at}","spool":{{"queued_batches":{counters["queued_batches"]},'
    head += f'"dropped_batches":{counters["dropped_batches"]},'
    head += f'"dropped_samples":{counters["dropped_samples"]}}},'
    return head.encode() + queued.body[1:]


def build_batch(config: AgentConfig, collector: Collector) -> dict[str, Any]:
    """Collect once (samples, facts and the local checks) and return the batch, without
    ``sent_at`` and ``spool`` (added when it is sent). What had to be left out to stay
    within the server's limits is logged."""
    collection = collector.collect()
    for note in collection.notes:
        log.warning("%s", note)
    results = [run_check(spec) for spec in config.checks]
    return {
        "batch_id": new_batch_id(),
        "agent": config.name,
        "interval": config.interval,
        "facts": dict(collection.facts, version=__version__),
        "samples": collection.samples,
        "results": results,
    }


class Agent:
    """Collects into ``spool`` with ``collector`` and delivers with ``sender``.

    ``clock`` is a monotonic clock in seconds and ``wait(seconds)`` sleeps until then or
    until the agent is stopped, returning True when stopped (default: a threading.Event);
    ``backoff`` times the retries. Tests inject all three.
    """

    def __init__(
        self,
        config: AgentConfig,
        spool: Spool,
        collector: Collector,
        sender: Sender | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], bool] | None = None,
        backoff: Backoff | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.spool = spool
        self.collector = collector
        self.sender = sender
        self.clock = clock
        self.wall = wall
        self.stopped = threading.Event()
        self.wait = wait or self.stopped.wait
        self.backoff = backoff or Backoff()
        self.collections = 0
        self.delivered = 0
        self._failing_since: float | None = None
        self._last_failure = ""

    # ------------------------------------------------------------------ collecting

    def collect(self) -> dict[str, Any] | None:
        """Collect once and commit the batch to the spool; return it (None if it could not
        be collected or written, which is logged)."""
        try:
            batch = build_batch(self.config, self.collector)
            self.collections += 1
        except Exception as error:  # a psutil or /proc failure must not stop the agent
            log.error("collection failed: %s: %s", type(error).__name__, error)
            return None
        try:
            dropped = self.spool.add(batch)
        except SpoolError as error:
            log.error("%s; this collection is lost", error)
            return None
        self._log_drops(dropped)
        log.debug(
            "collected batch %s: %d samples, %d results; %d queued",
            batch["batch_id"],
            len(batch["samples"]),
            len(batch["results"]),
            self.spool.queued,
        )
        return batch

    # ------------------------------------------------------------------ delivering

    def deliver(self, limit: int | None = None, until: float | None = None) -> Answer | None:
        """Send spooled batches oldest first: at most ``limit`` (None: all), and none after
        the monotonic time ``until``. Delivered batches are deleted, rejected ones dropped
        and counted. Stop at the first batch that must be kept.

        Return that batch's answer (unauthorized or retry), or None if every batch sent
        was delivered or rejected.
        """
        if self.sender is None:
            raise RuntimeError("no server to deliver to")
        sent = 0
        while limit is None or sent < limit:
            if until is not None and sent and self.clock() >= until:
                break
            batches = self.spool.oldest(1)
            if not batches:
                break
            queued = batches[0]
            sent_at = datetime.fromtimestamp(self.wall(), UTC).isoformat()
            answer = self.sender.push(push_body(queued, self.spool.counters(), sent_at))
            sent += 1
            if answer.outcome == DELIVERED:
                self.spool.delete(queued)
                self.delivered += 1
                log.debug(
                    "delivered batch %s (%d samples)%s",
                    queued.batch_id,
                    queued.samples,
                    ", a duplicate" if answer.duplicate else "",
                )
                self._recovered()
            elif answer.outcome == REJECTED:
                drop = self.spool.reject(queued)
                log.error(
                    "server refused batch %s (HTTP %s): %s; dropped",
                    queued.batch_id,
                    answer.status,
                    answer.message,
                )
                self._log_drops([drop])
                self._recovered()
            else:
                self._failed(answer)
                return answer
        return None

    def _failed(self, answer: Answer) -> None:
        status = f"HTTP {answer.status}: " if answer.status is not None else ""
        text = f"{status}{answer.message}"
        queued = self.spool.queued
        if answer.outcome == UNAUTHORIZED:
            log.error(
                "server refused the token (%s); %d batches kept until it is fixed", text, queued
            )
        elif self._failing_since is None or text != self._last_failure:
            log.warning("push failed (%s); %d batches kept in the spool", text, queued)
        else:
            log.debug("push failed again (%s); %d batches kept", text, queued)
        if self._failing_since is None:
            self._failing_since = self.clock()
        self._last_failure = text

    def _recovered(self) -> None:
        if self._failing_since is not None:
            log.info(
                "server reachable again after %.0fs; %d batches to replay",
                self.clock() - self._failing_since,
                self.spool.queued,
            )
            self._failing_since = None
            self._last_failure = ""

    def _log_drops(self, dropped: list[Dropped]) -> None:
        for drop in dropped:
            counters = self.spool.counters()
            why = {
                "full": f"the spool is over {self.spool.max_bytes} bytes",
                "expired": f"older than {self.spool.max_age:g}s",
                "rejected": "refused by the server",
            }.get(drop.reason, drop.reason)
            log.warning(
                "dropped %d batches (%d samples): %s; %d batches, %d samples dropped in all",
                drop.batches,
                drop.samples,
                why,
                counters["dropped_batches"],
                counters["dropped_samples"],
            )

    # ------------------------------------------------------------------ running

    def once(self) -> bool:
        """Collect once, then deliver the whole spool. Return True if the collection was
        spooled and nothing is left in the spool."""
        collected = self.collect() is not None
        self.deliver()
        return collected and self.spool.queued == 0

    def stop(self) -> None:
        """Ask ``run`` to return after what it is doing now."""
        self.stopped.set()

    def run(self) -> None:
        """Collect every interval and deliver in between, until ``stop`` is called."""
        interval = self.config.interval
        now = self.clock()
        next_collect = now
        next_send = now
        while not self.stopped.is_set():
            now = self.clock()
            if now >= next_collect:
                self.collect()
                next_collect += interval
                if next_collect <= self.clock():
                    # Fell behind (a slow check, a suspended VM): skip, don't catch up.
                    next_collect = self.clock() + interval
            now = self.clock()
            if self.spool.queued and now >= next_send and not self.stopped.is_set():
                answer = self.deliver(REPLAY_BATCHES, until=now + interval / 2)
                if answer is None:
                    self.backoff.reset()
                    next_send = self.clock()
                else:
                    delay = self.backoff.next_delay()
                    next_send = self.clock() + delay
                    log.debug("next try in %.1fs", delay)
            wake = next_collect
            if self.spool.queued:
                wake = min(wake, next_send)
            pause = wake - self.clock()
            if pause > 0 and self.wait(pause):
                break
