"""The tcp check kind, against real listeners on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from checks.tcp import (
    TcpCheck,
    TcpConfig,
    TcpObservation,
    connect_error,
    evaluate_observation,
    resolve_address,
    seconds_range,
)
from opsctl.contract import CheckError, Range, State

Handler = Callable[[socket.socket], None]


def serve(handler: Handler | None = None) -> tuple[int, Callable[[], None]]:
    """Start a listener on 127.0.0.1 that runs ``handler`` on each connection; return its port
    and a function that stops it.
    """
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            with connection:
                if handler is not None:
                    handler(connection)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()

    def close() -> None:
        stop.set()
        thread.join(timeout=5)
        server.close()

    return server.getsockname()[1], close


@pytest.fixture
def listener() -> Iterator[Callable[..., int]]:
    closers: list[Callable[[], None]] = []

    def start(handler: Handler | None = None) -> int:
        port, close = serve(handler)
        closers.append(close)
        return port

    yield start
    for close in closers:
        close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound once, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def host(address: str = "127.0.0.1") -> SimpleNamespace:
    return SimpleNamespace(name="web", address=address)


def run(target: object, timeout: float = 5.0, **config: object):
    return TcpCheck(TcpConfig(**config), timeout=timeout).run(target)


def test_open_port_is_ok_with_connect_time(listener: Callable[..., int]) -> None:
    port = listener()

    result = run(host(), port=port)

    assert result.state == State.OK
    assert result.summary.startswith(f"tcp 127.0.0.1:{port} connected in ")
    assert result.summary.endswith(" ms")
    [metric] = result.metrics
    assert (metric.name, metric.unit) == ("time", "s")
    assert 0 < metric.value < 5
    [item] = result.items
    assert item.key == "tcp.connect"
    assert item.item == f"TCP 127.0.0.1:{port} / connect"
    assert item.value.endswith(" ms")
    assert item.verdict == State.OK
    assert item.advice == ""


def test_refused_port_is_critical_with_reason() -> None:
    port = closed_port()

    result = run(host(), port=port)

    assert result.state == State.CRITICAL
    assert result.summary == f"tcp 127.0.0.1:{port} connection refused"
    assert result.metrics == ()
    [item] = result.items
    assert item.verdict == State.CRITICAL
    assert item.value == result.summary
    assert f"listening on port {port}" in item.advice


def test_any_connect_time_breaches_a_zero_critical_range(listener: Callable[..., int]) -> None:
    port = listener()

    result = run(host(), port=port, warn="0", crit="0")

    assert result.state == State.CRITICAL
    assert "(critical > 0s)" in result.summary
    [item] = result.items
    assert item.verdict == State.CRITICAL
    assert item.threshold == "warning > 0s, critical > 0s"
    assert "slow" in item.advice


def test_expected_reply_is_ok(listener: Callable[..., int]) -> None:
    def pong(connection: socket.socket) -> None:
        if connection.recv(100).startswith(b"PING"):
            connection.sendall(b"+PONG\r\n")

    port = listener(pong)

    result = run(host(), port=port, send="PING\r\n", expect="PONG")

    assert result.state == State.OK
    connect, reply = result.items
    assert (reply.key, reply.verdict, reply.value) == ("tcp.expect", State.OK, "contains 'PONG'")
    assert result.details["reply"] == "+PONG\r\n"


def test_unexpected_reply_is_critical(listener: Callable[..., int]) -> None:
    port = listener(lambda connection: connection.sendall(b"220 smtp.example.org ESMTP\r\n"))

    result = run(host(), port=port, expect="SSH-2.0")

    assert result.state == State.CRITICAL
    assert result.summary == (
        f"tcp 127.0.0.1:{port} connected but reply did not contain the expected string "
        "(expected 'SSH-2.0')"
    )
    [metric] = result.metrics
    assert metric.state == State.OK
    reply = result.items[1]
    assert reply.verdict == State.CRITICAL
    assert "'220 smtp.example.org ESMTP'" in reply.value


def test_silent_service_fails_expect_within_the_timeout(listener: Callable[..., int]) -> None:
    release = threading.Event()
    port = listener(lambda connection: release.wait(5))

    try:
        result = run(host(), timeout=0.5, port=port, expect="hello")
    finally:
        release.set()

    assert result.state == State.CRITICAL
    assert "no matching reply within 0.5s" in result.summary


def test_latency_ranges_with_units_are_converted_to_seconds() -> None:
    observation = TcpObservation("10.0.0.1", 5432, connect_seconds=0.35)
    warn, crit = seconds_range(Range.parse("100ms")), seconds_range(Range.parse("500ms"))

    result = evaluate_observation(observation, warn, crit)

    assert result.state == State.WARNING
    assert result.summary == "tcp 10.0.0.1:5432 connected in 350.0 ms (warning > 0.1s)"
    [metric] = result.metrics
    assert (metric.value, metric.warn, metric.crit) == (0.35, Range(0, 0.1, unit="s"), crit)
    assert result.items[0].threshold == "warning > 0.1s, critical > 0.5s"

    slow = evaluate_observation(TcpObservation("10.0.0.1", 5432, connect_seconds=1.5), warn, crit)
    assert slow.state == State.CRITICAL
    assert slow.items[0].value == "1.50 s"


def test_dns_and_timeout_failures_have_precise_reasons() -> None:
    dns, advice = connect_error(
        socket.gaierror(-2, "Name or service not known"), "his.invalid", 80, 5
    )
    assert dns == "tcp his.invalid:80 cannot resolve host his.invalid: Name or service not known"
    assert "DNS" in advice
    timeout, _ = connect_error(TimeoutError("timed out"), "10.0.0.1", 5432, 2.5)
    assert timeout == "tcp 10.0.0.1:5432 connection timed out after 2.5s"
    ipv6, _ = connect_error(ConnectionRefusedError(111, "refused"), "::1", 443, 1)
    assert ipv6 == "tcp [::1]:443 connection refused"


def test_address_comes_from_config_then_target() -> None:
    database = SimpleNamespace(name="his", host="10.0.0.5", port=None, engine="postgresql")
    endpoint = SimpleNamespace(
        name="portal", url="https://portal.example.org/x", address=None, port=None
    )

    assert resolve_address(TcpConfig(), database) == ("10.0.0.5", 5432)
    assert resolve_address(TcpConfig(port=6432), database) == ("10.0.0.5", 6432)
    assert resolve_address(TcpConfig(), endpoint) == ("portal.example.org", 443)
    assert resolve_address(TcpConfig(host="10.1.1.1", port=22), host()) == ("10.1.1.1", 22)
    with pytest.raises(CheckError, match="has no port"):
        resolve_address(TcpConfig(), host())
    with pytest.raises(CheckError, match="no host"):
        resolve_address(TcpConfig(port=22), SimpleNamespace(name="x", address=None))


@pytest.mark.parametrize(
    "config",
    [{"port": 0}, {"port": 70000}, {"warn": "80%"}, {"crit": "nonsense"}, {"timeout": 3}],
)
def test_invalid_config_is_refused(config: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TcpConfig(**config)


def test_kind_and_targets() -> None:
    assert TcpCheck.kind == "tcp"
    assert TcpCheck.targets == {"host", "endpoint", "database"}
    assert TcpCheck.Config is TcpConfig
    assert all(field.description for field in TcpConfig.model_fields.values())
