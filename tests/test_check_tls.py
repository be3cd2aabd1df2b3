"""The tls check kind, against real TLS servers on 127.0.0.1 with certificates made by trustme."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import ValidationError

from checks.tls import (
    TlsCheck,
    TlsConfig,
    TlsObservation,
    days_range,
    evaluate_observation,
    resolve_address,
)
from opsctl.contract import CheckError, Range, State


def serve_tls(pem: bytes, directory: Path) -> tuple[int, Callable[[], None]]:
    """Start a TLS server on 127.0.0.1 presenting ``pem`` (key and chain) that completes each
    handshake and hangs up; return its port and a function that stops it.
    """
    path = directory / "server.pem"
    path.write_bytes(pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(path))
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            connection.settimeout(5)
            try:
                with context.wrap_socket(connection, server_side=True):
                    pass
            except OSError:
                pass  # the client rejected the certificate: that is what some tests want
            finally:
                connection.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()

    def close() -> None:
        stop.set()
        thread.join(timeout=5)
        server.close()

    return server.getsockname()[1], close


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="Testing Hospital CA")


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[[bytes], int]]:
    """Start a TLS server with the given key and chain; return its port."""
    closers: list[Callable[[], None]] = []

    def start(pem: bytes) -> int:
        port, close = serve_tls(pem, tmp_path)
        closers.append(close)
        return port

    yield start
    for close in closers:
        close()


def leaf(ca: trustme.CA, days: float, *names: str) -> bytes:
    """Key and chain of a certificate for ``names`` (default localhost, 127.0.0.1) that
    expires ``days`` from now.
    """
    expiry = datetime.now(UTC) + timedelta(days=days)
    certificate = ca.issue_cert(*(names or ("localhost", "127.0.0.1")), not_after=expiry)
    return certificate.private_key_and_cert_chain_pem.bytes()


def endpoint(port: int) -> SimpleNamespace:
    return SimpleNamespace(name="portal", url=f"https://127.0.0.1:{port}/", address=None, port=None)


def run(target: object, timeout: float = 5.0, **config: object):
    return TlsCheck(TlsConfig(**config), timeout=timeout).run(target)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_valid_certificate_is_ok_with_days_left(
    ca: trustme.CA, ca_file: str, server: Callable[[bytes], int]
) -> None:
    port = server(leaf(ca, 45.5))

    result = run(endpoint(port), ca_file=ca_file)

    assert result.state == State.OK
    assert result.summary.startswith("certificate for 127.0.0.1 expires in 45 days (")
    assert result.summary.endswith("), chain OK")
    [metric] = result.metrics
    assert (metric.name, metric.unit) == ("days_left", "")
    assert 45.4 <= metric.value <= 45.5
    assert (str(metric.warn), str(metric.crit)) == ("30:", "7:")
    expiry, issuer, chain = result.items
    assert (expiry.key, expiry.verdict) == ("tls.expiry", State.OK)
    assert expiry.item == f"TLS 127.0.0.1:{port} / expiry"
    assert expiry.threshold == "warning < 30 days, critical < 7 days"
    assert expiry.value.endswith(" (45 days left)")
    assert (issuer.key, issuer.value) == ("tls.issuer", "Testing Hospital CA")
    assert (chain.key, chain.value, chain.verdict) == ("tls.chain", "verified", State.OK)
    assert result.details["names"] == ["localhost", "127.0.0.1"]
    assert result.details["verified"] is True


@pytest.mark.parametrize(("days", "state"), [(20, State.WARNING), (3, State.CRITICAL)])
def test_few_days_left_raise_an_alert(
    ca: trustme.CA, ca_file: str, server: Callable[[bytes], int], days: int, state: State
) -> None:
    port = server(leaf(ca, days + 0.5))

    result = run(endpoint(port), ca_file=ca_file)

    assert result.state == state
    assert f"expires in {days} days" in result.summary
    assert result.items[0].verdict == state
    assert "Renew the certificate for 127.0.0.1" in result.items[0].advice


def test_thresholds_may_carry_a_time_unit(
    ca: trustme.CA, ca_file: str, server: Callable[[bytes], int]
) -> None:
    port = server(leaf(ca, 20.5))

    # 20 days is above 240h (10 days) but below 504h (21 days).
    result = run(endpoint(port), ca_file=ca_file, warn="504h:", crit="240h:")

    assert result.state == State.WARNING
    assert result.items[0].threshold == "warning < 21 days, critical < 10 days"


def test_unknown_ca_is_critical_and_still_reports_expiry(
    ca: trustme.CA, server: Callable[[bytes], int]
) -> None:
    port = server(leaf(ca, 45.5))

    result = run(endpoint(port))

    assert result.state == State.CRITICAL
    assert result.summary.startswith(
        "chain verification failed: unable to get local issuer certificate; "
        "certificate for 127.0.0.1 expires in 45 days ("
    )
    [metric] = result.metrics
    assert metric.state == State.OK
    chain = result.items[2]
    assert (chain.verdict, chain.value) == (
        State.CRITICAL,
        "failed: unable to get local issuer certificate",
    )
    assert "ca_file" in chain.advice
    assert result.details["verified"] is False


def test_self_signed_certificate_is_critical(ca_file: str, server: Callable[[bytes], int]) -> None:
    alone = trustme.CA()
    port = server(alone.private_key_pem.bytes() + alone.cert_pem.bytes())

    result = run(endpoint(port), ca_file=ca_file)

    assert result.state == State.CRITICAL
    assert result.summary.startswith("chain verification failed: self-signed certificate; ")


def test_wrong_host_name_is_critical(
    ca: trustme.CA, ca_file: str, server: Callable[[bytes], int]
) -> None:
    port = server(leaf(ca, 90.5, "his.example.org"))

    result = run(endpoint(port), ca_file=ca_file)

    assert result.state == State.CRITICAL
    assert result.summary.startswith(
        "chain verification failed: IP address mismatch, certificate is not valid for "
        "'127.0.0.1'; certificate for 127.0.0.1 expires in 90 days"
    )


def test_server_name_is_sent_and_verified(
    ca: trustme.CA, ca_file: str, server: Callable[[bytes], int]
) -> None:
    port = server(leaf(ca, 90.5, "his.example.org"))
    host = SimpleNamespace(name="his01", address="127.0.0.1")

    result = run(host, port=port, server_name="his.example.org", ca_file=ca_file)

    assert result.state == State.OK
    assert result.summary.startswith("certificate for his.example.org expires in 90 days")
    assert result.items[0].item == f"TLS 127.0.0.1:{port} (his.example.org) / expiry"


def test_expired_certificate_is_critical_twice_over(
    ca: trustme.CA, ca_file: str, server: Callable[[bytes], int]
) -> None:
    port = server(leaf(ca, -2.5))

    result = run(endpoint(port), ca_file=ca_file)

    assert result.state == State.CRITICAL
    assert result.summary.startswith("chain verification failed: certificate has expired; ")
    assert "expired 2 days ago" in result.summary
    [metric] = result.metrics
    assert metric.value < -2
    assert metric.state == State.CRITICAL
    assert "has expired" in result.items[0].advice


def test_chain_can_be_left_unchecked(ca: trustme.CA, server: Callable[[bytes], int]) -> None:
    port = server(leaf(ca, 45.5))

    result = run(endpoint(port), verify_chain=False)

    assert result.state == State.OK
    assert result.summary.endswith(", chain not checked")
    assert result.items[2].value == "not checked (verify_chain: false)"
    assert result.details["verified"] is None


def test_refused_port_is_critical() -> None:
    port = closed_port()

    result = run(endpoint(port))

    assert result.state == State.CRITICAL
    assert result.summary == f"tls 127.0.0.1:{port} connection refused"
    assert result.metrics == ()
    assert result.items[0].key == "tls.connect"


def test_plain_tcp_service_is_a_handshake_failure() -> None:
    def talk(connection: socket.socket) -> None:
        connection.recv(1024)
        connection.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept_once() -> None:
        connection, _ = listener.accept()
        with connection:
            talk(connection)

    thread = threading.Thread(target=accept_once, daemon=True)
    thread.start()
    try:
        result = run(endpoint(port))
    finally:
        thread.join(timeout=5)
        listener.close()

    assert result.state == State.CRITICAL
    assert result.summary.startswith(f"tls 127.0.0.1:{port} handshake failed: ")


def test_silent_server_times_out_in_the_handshake() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        result = run(endpoint(port), timeout=0.5)

    assert result.state == State.CRITICAL
    assert result.summary == f"tls 127.0.0.1:{port} handshake timed out after 0.5s"


def test_evaluation_of_a_recorded_certificate(ca: trustme.CA) -> None:
    pem = ca.issue_cert("his.example.org").cert_chain_pems[0].bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    not_after = x509.load_der_x509_certificate(der).not_valid_after_utc
    observation = TlsObservation("10.0.0.5", 443, "his.example.org", der, verified=True)

    result = evaluate_observation(
        observation,
        days_range(Range.parse("30:")),
        days_range(Range.parse("7:")),
        now=not_after - timedelta(days=6, hours=12),
    )

    assert result.state == State.CRITICAL
    assert result.metrics[0].value == 6.5
    assert result.summary == (
        f"certificate for his.example.org expires in 6 days ({not_after.date()}), chain OK"
    )
    last_hours = evaluate_observation(observation, None, None, now=not_after - timedelta(hours=5))
    assert "expires in 5 hours" in last_hours.summary
    assert last_hours.state == State.OK


def test_address_defaults_from_the_target() -> None:
    url = SimpleNamespace(name="p", url="https://his.example.org:8443/login", address="10.0.0.5")
    plain = SimpleNamespace(name="p", url="http://his.example.org/", address="10.0.0.5", port=None)
    host = SimpleNamespace(name="web01", address="10.0.0.6")

    assert resolve_address(TlsConfig(), url) == ("his.example.org", 8443, "his.example.org")
    assert resolve_address(TlsConfig(host="10.0.0.5"), url) == (
        "10.0.0.5",
        8443,
        "his.example.org",
    )
    assert resolve_address(TlsConfig(), plain) == ("10.0.0.5", 443, "10.0.0.5")
    assert resolve_address(TlsConfig(port=9443), host) == ("10.0.0.6", 9443, "10.0.0.6")
    with pytest.raises(CheckError, match="tls check has no host"):
        resolve_address(TlsConfig(), SimpleNamespace(name="x", address=None))


def test_missing_or_broken_ca_file_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(CheckError, match="ca_file .* does not exist"):
        run(endpoint(443), ca_file=str(tmp_path / "absent.pem"))
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate\n", encoding="utf-8")
    with pytest.raises(CheckError, match="cannot be loaded as PEM certificates"):
        run(endpoint(closed_port()), ca_file=str(broken))


def test_connect_timeout_is_not_mistaken_for_a_handshake_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unreachable(address: tuple[str, int], timeout: float) -> socket.socket:
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", unreachable)

    result = run(SimpleNamespace(name="his01", address="10.0.0.5"), timeout=2)

    assert result.summary == "tls 10.0.0.5:443 connection timed out after 2s"


@pytest.mark.parametrize(
    "config", [{"warn": "30%:"}, {"crit": "soon"}, {"port": 0}, {"verify": False}]
)
def test_invalid_config_is_refused(config: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TlsConfig(**config)


def test_defaults_and_kind() -> None:
    config = TlsConfig()
    assert (config.warn, config.crit) == (Range.parse("30:"), Range.parse("7:"))
    assert config.model_dump()["warn"] == "30:"
    assert TlsCheck.kind == "tls"
    assert TlsCheck.targets == {"endpoint", "host"}
    assert all(field.description for field in TlsConfig.model_fields.values())
