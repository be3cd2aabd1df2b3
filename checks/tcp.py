"""The ``tcp`` check kind: can a TCP connection be opened, how fast, and does the service answer.

Like ``check_tcp``: connect to host:port, optionally send a string and require the reply to
contain an expected string. A service that refuses, times out or cannot be resolved is the
finding (CRITICAL), not a failure to observe.

The helpers ``seconds_range`` and ``format_seconds`` are shared with
the ``http`` and ``tls`` kinds.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, replace
from typing import Any, cast
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from opsctl.contract import (
    Check,
    CheckConfig,
    CheckError,
    CheckResult,
    Item,
    Metric,
    Range,
    RangeField,
    State,
    describe_thresholds,
)
from opsctl.inventory import DATABASE_ENGINES

_SCHEME_PORTS = {"http": 80, "https": 443}

# A banner or reply larger than this is not what send/expect is for; stop reading.
_MAX_REPLY_BYTES = 64 * 1024


def seconds_range(value: Range | None) -> Range | None:
    """Given a range as written (``0.5``, ``500ms``, ``2s:``), return it in seconds.

    Raise ValueError if its unit is not a time unit.
    """
    return None if value is None else value.to_unit("s")


def format_seconds(seconds: float) -> str:
    """Given seconds, return them as people read a latency: ``3.2 ms`` or ``1.25 s``."""
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def breached_threshold(state: State, warn: Range | None, crit: Range | None) -> str:
    """Given the state a value was judged and the ranges it was judged by, return the one it
    breached as ``critical > 1s`` or ``warning > 0.5s``; empty if none was.
    """
    if state == State.CRITICAL and crit is not None:
        return f"critical {crit.describe()}"
    if state == State.WARNING and warn is not None:
        return f"warning {warn.describe()}"
    return ""


def host_port(host: str, port: int) -> str:
    """Given a host and a port, return ``host:port`` (``[::1]:443`` for an IPv6 address)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class TcpConfig(CheckConfig):
    """Configuration of the ``tcp`` check kind."""

    port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="TCP port; default: the target's port, its url's port or its engine's port",
    )
    host: str | None = Field(
        None, description="host name or address to connect to; default: the target's address"
    )
    warn: RangeField | None = Field(
        None, description='warning range on connect time in seconds, e.g. "0.5" or "500ms"'
    )
    crit: RangeField | None = Field(
        None, description='critical range on connect time in seconds, e.g. "1" or "1s"'
    )
    send: str | None = Field(None, description="string to send once connected (like check_tcp -s)")
    expect: str | None = Field(
        None, description="string the reply must contain (like check_tcp -e); CRITICAL if absent"
    )

    @field_validator("warn", "crit")
    @classmethod
    def _in_seconds(cls, value: Range | None) -> Range | None:
        seconds_range(value)
        return value


@dataclass(frozen=True, slots=True)
class TcpObservation:
    """What one connection attempt saw. ``error`` is set when no connection was made;
    ``reply`` is None when nothing was expected.
    """

    host: str
    port: int
    connect_seconds: float | None = None
    error: str | None = None
    advice: str = ""
    reply: bytes | None = None
    reply_error: str | None = None


def resolve_address(config: TcpConfig, target: Any) -> tuple[str, int]:
    """Given the config and the target, return the (host, port) to connect to.

    Raise CheckError if neither names a host or a port.
    """
    url = getattr(target, "url", None)
    parsed = urlsplit(url) if url else None
    host = (
        config.host
        or getattr(target, "address", None)
        or getattr(target, "host", None)
        or (parsed.hostname if parsed else None)
    )
    if not host:
        raise CheckError("tcp check has no host: set host in the check or an address on the target")
    try:
        url_port = parsed.port if parsed else None
    except ValueError:
        url_port = None
    port = (
        config.port
        or getattr(target, "port", None)
        or url_port
        or (_SCHEME_PORTS.get(parsed.scheme) if parsed else None)
        or DATABASE_ENGINES.get(str(getattr(target, "engine", "")))
    )
    if not port:
        raise CheckError(f"tcp check of {host} has no port: set port in the check")
    return str(host), int(port)


def connect_error(
    error: OSError, host: str, port: int, timeout: float, protocol: str = "tcp"
) -> tuple[str, str]:
    """Given the error of a failed connect, return (reason, advice) as one line each; the
    reason starts with ``protocol`` and the address (``tcp 10.0.0.1:5432 connection refused``).
    """
    where = f"{protocol} {host_port(host, port)}"
    if isinstance(error, socket.gaierror):
        return (
            f"{where} cannot resolve host {host}: {error.strerror or error}",
            f"Check the host name {host} and the DNS or /etc/hosts of the monitoring host.",
        )
    if isinstance(error, ConnectionRefusedError):
        return (
            f"{where} connection refused",
            f"Check that the service is running and listening on port {port}, "
            "and that no firewall rejects the connection.",
        )
    if isinstance(error, TimeoutError):
        return (
            f"{where} connection timed out after {timeout:g}s",
            f"Check that {host} is up and that firewalls on the path let port {port} through.",
        )
    reason = error.strerror or str(error) or type(error).__name__
    return (
        f"{where} connection failed: {reason}",
        f"Check the network path to {host} and the service on port {port}.",
    )


def observe(
    host: str, port: int, timeout: float, send: str | None = None, expect: str | None = None
) -> TcpObservation:
    """Given an address and a time budget in seconds, connect (and send/read if asked) and
    return what was seen. Never raises for network failures: they are observations.
    """
    deadline = time.monotonic() + timeout
    started = time.perf_counter()
    try:
        connection = socket.create_connection((host, port), timeout=timeout)
    except OSError as error:
        reason, advice = connect_error(error, host, port, timeout)
        return TcpObservation(host, port, error=reason, advice=advice)
    connect_seconds = time.perf_counter() - started
    observation = TcpObservation(host, port, connect_seconds=connect_seconds)
    with connection:
        if send is None and expect is None:
            return observation
        reply = bytearray()
        wanted = expect.encode("utf-8") if expect is not None else None
        try:
            if send is not None:
                connection.sendall(send.encode("utf-8"))
            while wanted is not None and wanted not in reply and len(reply) < _MAX_REPLY_BYTES:
                # The connect may have used most of the budget; the read gets what is left.
                connection.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = connection.recv(4096)
                if not chunk:
                    break
                reply.extend(chunk)
        except TimeoutError:
            problem = f"no matching reply within {timeout:g}s"
            return replace(observation, reply=bytes(reply), reply_error=problem)
        except OSError as error:
            reason = error.strerror or str(error) or type(error).__name__
            problem = f"connection lost: {reason}"
            return replace(observation, reply=bytes(reply), reply_error=problem)
        return replace(observation, reply=bytes(reply) if wanted is not None else None)


def _preview(reply: bytes, limit: int = 60) -> str:
    text = reply.decode("utf-8", errors="replace").strip()
    return repr(text if len(text) <= limit else text[:limit] + "…")


def evaluate_observation(
    observation: TcpObservation, warn: Range | None, crit: Range | None, expect: str | None = None
) -> CheckResult:
    """Given an observation, the connect-time ranges in seconds and the expected reply,
    return the CheckResult.
    """
    where = host_port(observation.host, observation.port)
    label = f"TCP {where} / connect"
    threshold = describe_thresholds(warn, crit)
    details: dict[str, Any] = {"host": observation.host, "port": observation.port}
    if observation.error is not None or observation.connect_seconds is None:
        reason = observation.error or f"tcp {where} connection failed"
        item = Item("tcp.connect", label, reason, State.CRITICAL, threshold, observation.advice)
        return CheckResult(State.CRITICAL, reason, items=(item,), details=details)

    seconds = observation.connect_seconds
    metric = Metric("time", seconds, "s", warn=warn, crit=crit, min=0.0)
    advice = ""
    summary = f"tcp {where} connected in {format_seconds(seconds)}"
    if metric.state != State.OK:
        advice = "Connecting is slow: check the network latency to the host and the service's load."
        summary += f" ({breached_threshold(metric.state, warn, crit)})"
    items = [Item("tcp.connect", label, format_seconds(seconds), metric.state, threshold, advice)]

    if expect is not None:
        reply = observation.reply or b""
        found = expect.encode("utf-8") in reply
        details["reply"] = reply[:200].decode("utf-8", errors="replace")
        if found:
            items.append(Item("tcp.expect", f"TCP {where} / reply", f"contains {expect!r}"))
        else:
            problem = observation.reply_error or "reply did not contain the expected string"
            value = f"{problem}; got {_preview(reply)}" if reply else problem
            items.append(
                Item(
                    "tcp.expect",
                    f"TCP {where} / reply",
                    value,
                    State.CRITICAL,
                    f"contains {expect!r}",
                    "The port accepts connections but the service does not answer as expected: "
                    "check the service's own logs and state.",
                )
            )
            summary = f"tcp {where} connected but {problem} (expected {expect!r})"
    return CheckResult.from_metrics([metric], summary, items, details)


class TcpCheck(Check):
    """TCP port reachability and connect time, with optional send/expect (like check_tcp)."""

    kind = "tcp"
    Config = TcpConfig
    targets = frozenset({"host", "endpoint", "database"})

    def run(self, target: Any) -> CheckResult:
        """Given a host, endpoint or database target, connect to it and return a CheckResult.

        Raise CheckError if no host or port can be determined.
        """
        config = cast(TcpConfig, self.config)
        host, port = resolve_address(config, target)
        observation = observe(host, port, self.timeout, config.send, config.expect)
        return evaluate_observation(
            observation, seconds_range(config.warn), seconds_range(config.crit), config.expect
        )
