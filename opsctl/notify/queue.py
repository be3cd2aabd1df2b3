"""The outbound queue: one worker thread per channel, so that sending never blocks the caller.

``Dispatcher.submit`` puts a message on its channel's queue and returns at once. Each
channel's worker sends its messages in order and:

- keeps to the channel's rate (``per_minute`` requests in any 60 seconds, a sliding window;
  20 for the robots). When more messages wait than the window has room for, it sends what
  fits one by one and MERGES the rest into one message (``另有 N 条告警`` / ``N more alerts``,
  one line each) sent in the last free slot; when the window is full, it waits for a slot and
  merges everything that waited. Nothing is dropped and the group is not flooded.
- retries a ``retry`` outcome (rate limited, HTTP 5xx, connection refused, timed out) with
  exponential backoff (``backoff`` seconds doubled at each attempt, at most ``max_backoff``, or
  the wait the receiver asked for), at most ``max_attempts`` attempts in all; then the message
  has ``failed``.
- marks a channel ``broken`` on an outcome that retrying cannot fix (invalid key, signature
  refused, login refused, certificate not trusted): what is waiting and whatever is submitted
  later is not sent but reported ``broken`` at once, until ``repair(name)``.

``on_delivery`` is called from the worker threads with the final ``Delivery`` of each message
sent (or merged message: its ``message.merged`` holds the originals), failed or not sent; each
is also logged on the ``opsctl.notify`` logger. ``clock`` (Unix seconds) and ``sleep`` are
injected so that tests run the rate limit and the backoff without waiting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from opsctl.masking import mask
from opsctl.notify.channels import ChannelConfig, Delivery
from opsctl.notify.message import Message, merge

logger = logging.getLogger("opsctl.notify")

#: The rate limit's window, in seconds.
WINDOW = 60.0


@dataclass(eq=False)
class _Lane:
    """One channel's queue and its worker's state."""

    channel: ChannelConfig
    waiting: deque[Message] = field(default_factory=deque)
    requests: deque[float] = field(default_factory=deque)
    busy: bool = False
    broken: str | None = None
    thread: threading.Thread | None = None


class Dispatcher:
    """Sends messages to channels from one worker thread per channel.

    Given the channels (unique names), ``clock`` (Unix time), ``sleep`` (waits a number of
    seconds; by default a wait that ``close`` cuts short), ``on_delivery`` (called with each
    final Delivery), ``max_attempts``, ``backoff`` and ``max_backoff`` (seconds), and whether to
    ``start`` the workers now (else ``start()`` does). Raises ValueError for duplicate names.
    """

    def __init__(
        self,
        channels: Iterable[ChannelConfig],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] | None = None,
        on_delivery: Callable[[Delivery], object] | None = None,
        max_attempts: int = 5,
        backoff: float = 2.0,
        max_backoff: float = 300.0,
        start: bool = True,
    ) -> None:
        self._lanes: dict[str, _Lane] = {}
        for channel in channels:
            if channel.name in self._lanes:
                raise ValueError(f"two notification channels are named {channel.name!r}")
            self._lanes[channel.name] = _Lane(channel)
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.clock = clock
        self._abandoned = threading.Event()
        self.sleep = sleep if sleep is not None else self._abandoned.wait
        self.on_delivery = on_delivery
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._changed = threading.Condition()
        self._closing = False
        self._started = False
        if start:
            self.start()

    # ------------------------------------------------------------------ the caller's side

    @property
    def channels(self) -> dict[str, ChannelConfig]:
        """The channels, by name."""
        return {name: lane.channel for name, lane in self._lanes.items()}

    def start(self) -> None:
        """Start the worker threads (once; later calls do nothing)."""
        with self._changed:
            if self._started:
                return
            self._started = True
        for name, lane in self._lanes.items():
            lane.thread = threading.Thread(
                target=self._work, args=(lane,), name=f"opsctl-notify-{name}", daemon=True
            )
            lane.thread.start()

    def submit(self, channel_name: str, message: Message) -> None:
        """Given a channel's name and a message, queue the message and return at once.

        Raises KeyError if no channel has that name, RuntimeError once ``close`` was called.
        """
        lane = self._lanes.get(channel_name)
        if lane is None:
            raise KeyError(f"no notification channel named {channel_name!r}")
        with self._changed:
            if self._closing:
                raise RuntimeError("the dispatcher is closed")
            lane.waiting.append(message)
            self._changed.notify_all()

    def pending(self) -> int:
        """Return how many messages wait or are being sent, over all channels."""
        with self._changed:
            return sum(len(lane.waiting) + lane.busy for lane in self._lanes.values())

    def broken(self) -> dict[str, str]:
        """Return the broken channels: name → why."""
        with self._changed:
            return {name: lane.broken for name, lane in self._lanes.items() if lane.broken}

    def repair(self, channel_name: str) -> None:
        """Forget that a channel is broken (after its settings were fixed). Raises KeyError."""
        with self._changed:
            self._lanes[channel_name].broken = None

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued message has its final delivery, at most ``timeout`` real
        seconds (forever if None). Return True if all were delivered."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while any(lane.waiting or lane.busy for lane in self._lanes.values()):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def close(self, timeout: float = 10.0) -> bool:
        """Refuse new messages, wait up to ``timeout`` real seconds for the queued ones, then
        stop the workers. Messages still unsent are reported ``failed``. Return True if every
        message was delivered in time."""
        with self._changed:
            self._closing = True
        drained = self.flush(timeout) if self._started else not self.pending()
        self._abandoned.set()
        with self._changed:
            self._changed.notify_all()
        for lane in self._lanes.values():
            if lane.thread is not None:
                lane.thread.join(timeout=5.0)
            self._abandon(lane)
        return drained

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the workers

    def _work(self, lane: _Lane) -> None:
        while True:
            with self._changed:
                while not lane.waiting and not self._abandoned.is_set():
                    self._changed.wait()
                if self._abandoned.is_set():
                    break
                lane.busy = True
            try:
                self._step(lane)
            except Exception:
                logger.exception("notification channel %s: internal error", lane.channel.name)
                with self._changed:
                    head = lane.waiting.popleft() if lane.waiting else None
                if head is not None:
                    self._report(self._unsent(lane, head, "failed", "not sent: internal error"))
            finally:
                with self._changed:
                    lane.busy = False
                    self._changed.notify_all()
        self._abandon(lane)

    def _abandon(self, lane: _Lane) -> None:
        with self._changed:
            left = list(lane.waiting)
            lane.waiting.clear()
            self._changed.notify_all()
        for message in left:
            self._report(
                self._unsent(lane, message, "failed", "not sent: the dispatcher was closed")
            )

    def _step(self, lane: _Lane) -> None:
        """Send the next unit of a lane: its first message, or a merge of what waits."""
        channel = lane.channel
        if lane.broken:
            with self._changed:
                left = list(lane.waiting)
                lane.waiting.clear()
            for message in left:
                detail = f"not sent: the channel is broken ({lane.broken})"
                self._report(self._unsent(lane, message, "broken", detail))
            return
        with self._changed:
            waiting = list(lane.waiting)
        free = self._free(lane)
        unit, taken = self._plan(channel, waiting, free)
        if unit is None:
            needed = min(channel.requests_for(merge(waiting, channel.lang)), channel.per_minute)
            self.sleep(self._wait_for(lane, needed))
            return
        with self._changed:
            for _ in range(taken):
                lane.waiting.popleft()
        self._send(lane, unit)

    @staticmethod
    def _plan(
        channel: ChannelConfig, waiting: list[Message], free: int
    ) -> tuple[Message | None, int]:
        """Given what waits and the free requests in the window, return the unit to send now
        and how many waiting messages it takes; (None, 0) if even a merge does not fit."""
        costs = [channel.requests_for(message) for message in waiting]
        if sum(costs) <= free:
            return waiting[0], 1
        if len(waiting) > 2:
            rest = channel.requests_for(merge(waiting[1:], channel.lang))
            if costs[0] + rest <= free:
                return waiting[0], 1
        merged = merge(waiting, channel.lang) if len(waiting) > 1 else waiting[0]
        if channel.requests_for(merged) <= free:
            return merged, len(waiting)
        return None, 0

    def _free(self, lane: _Lane) -> int:
        now = self.clock()
        with self._changed:
            while lane.requests and lane.requests[0] <= now - WINDOW:
                lane.requests.popleft()
            return lane.channel.per_minute - len(lane.requests)

    def _wait_for(self, lane: _Lane, needed: int) -> float:
        """Seconds until ``needed`` requests are free in the window."""
        now = self.clock()
        with self._changed:
            over = len(lane.requests) - (lane.channel.per_minute - needed)
            if over <= 0:
                return 0.0
            return max(lane.requests[over - 1] + WINDOW - now, 0.001)

    def _send(self, lane: _Lane, unit: Message) -> None:
        channel = lane.channel
        needed = min(channel.requests_for(unit), channel.per_minute)
        attempts = 0
        while True:
            while self._free(lane) < needed:
                if self._abandoned.is_set():
                    detail = "not sent: the dispatcher was closed"
                    self._report(self._unsent(lane, unit, "failed", detail, attempts))
                    return
                self.sleep(self._wait_for(lane, needed))
            now = self.clock()
            with self._changed:
                lane.requests.extend([now] * needed)
            delivery = channel.send(unit, now=now)
            attempts += 1
            if delivery.status != "retry" or attempts >= self.max_attempts:
                break
            delay = delivery.retry_after
            if delay is None:
                delay = min(self.backoff * 2 ** (attempts - 1), self.max_backoff)
            logger.debug(
                "notification channel %s: attempt %d: %s; again in %gs",
                channel.name,
                attempts,
                delivery.detail,
                delay,
            )
            self.sleep(delay)
            if self._abandoned.is_set():
                delivery = replace(
                    delivery,
                    status="failed",
                    detail=f"not sent: the dispatcher was closed after {attempts} "
                    f"attempt(s): {delivery.detail}",
                )
                break
        if delivery.status == "retry":
            delivery = replace(
                delivery,
                status="failed",
                detail=f"gave up after {attempts} attempts: {delivery.detail}",
            )
        delivery = replace(delivery, attempts=attempts, retry_after=None)
        if delivery.status == "broken":
            with self._changed:
                lane.broken = delivery.detail
        self._report(delivery)

    def _unsent(
        self, lane: _Lane, message: Message, status: str, detail: str, attempts: int = 0
    ) -> Delivery:
        return Delivery(
            channel=lane.channel.name,
            ok=False,
            status=status,  # type: ignore[arg-type]
            detail=detail,
            attempts=attempts,
            sent_at=datetime.fromtimestamp(self.clock(), UTC) if attempts else None,
            message=message,
        )

    def _report(self, delivery: Delivery) -> None:
        title = mask(delivery.message.title) if delivery.message is not None else ""
        count = delivery.message.count if delivery.message is not None else 1
        logger.log(
            logging.INFO if delivery.ok else logging.WARNING,
            "notification channel %s: %s after %d attempt(s): %s (%d message(s)): %s",
            delivery.channel,
            delivery.status,
            delivery.attempts,
            title,
            count,
            delivery.detail,
        )
        if self.on_delivery is None:
            return
        try:
            self.on_delivery(delivery)
        except Exception:
            logger.exception("notification channel %s: on_delivery failed", delivery.channel)


__all__ = ["WINDOW", "Dispatcher"]
