"""The ``tls`` check kind: how many days a server's certificate has left, and whether it verifies.

The metric is ``days_left`` (days until the certificate's notAfter, fractional, negative once
expired) with no unit, as ``check_ssl_cert`` reports it: Nagios perfdata has no unit for days.
Thresholds are in days and alert when FEW days remain: ``warn: "30:"`` (below 30) and
``crit: "7:"`` (below 7) by default; a unit (``"720h"``, ``"30d"``) is converted to days.

A certificate that does not verify (unknown CA, missing intermediate, wrong host name,
expired) is CRITICAL, and its dates and names are still reported.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from checks.tcp import connect_error, host_port
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
    utc_now,
)


def days_range(value: Range | None) -> Range | None:
    """Given a range as written (``30:``, ``30d:``, ``720h:``), return it in days (unit ``d``).

    Raise ValueError if its unit is not a time unit.
    """
    return None if value is None else value.to_unit("d")


class TlsConfig(CheckConfig):
    """Configuration of the ``tls`` check kind."""

    host: str | None = Field(
        None,
        description="host to connect to; default: the host of the target's https url, "
        "else the target's address",
    )
    port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="TLS port; default: the port of the target's https url, the target's port, "
        "else 443",
    )
    server_name: str | None = Field(
        None,
        description="name sent as SNI and verified against the certificate; default: the host "
        "of the target's https url, else host",
    )
    warn: RangeField | None = Field(
        Range.parse("30:"),
        description='warning range on days left; "30:" alerts below 30 days',
    )
    crit: RangeField | None = Field(
        Range.parse("7:"),
        description='critical range on days left; "7:" alerts below 7 days',
    )
    ca_file: str | None = Field(
        None, description="PEM file of the CA(s) to trust instead of the system's (a private CA)"
    )
    verify_chain: bool = Field(
        True, description="verify the chain and host name (CRITICAL if they do not verify)"
    )

    @field_validator("warn", "crit")
    @classmethod
    def _in_days(cls, value: Range | None) -> Range | None:
        days_range(value)
        return value


@dataclass(frozen=True, slots=True)
class TlsObservation:
    """What one look at a TLS server saw.

    ``certificate`` is the leaf certificate (DER), None if no handshake completed (then
    ``error`` says why). ``verified`` is None when verification was not attempted;
    ``verify_error`` says why it failed.
    """

    host: str
    port: int
    server_name: str
    certificate: bytes | None = None
    verified: bool | None = None
    verify_error: str | None = None
    protocol: str | None = None
    error: str | None = None
    advice: str = ""


def resolve_address(config: TlsConfig, target: Any) -> tuple[str, int, str]:
    """Given the config and the target, return (host, port, server_name).

    Raise CheckError if no host can be determined.
    """
    url = getattr(target, "url", None)
    parsed = urlsplit(url) if url else None
    https = parsed if parsed is not None and parsed.scheme == "https" else None
    try:
        url_port = https.port if https else None
    except ValueError:
        url_port = None
    host = (
        config.host
        or (https.hostname if https else None)
        or getattr(target, "address", None)
        or getattr(target, "host", None)
        or (parsed.hostname if parsed else None)
    )
    if not host:
        raise CheckError("tls check has no host: set host in the check or an address on the target")
    port = config.port or url_port or getattr(target, "port", None) or 443
    server_name = config.server_name or (https.hostname if https else None) or host
    return str(host), int(port), str(server_name)


def _ssl_reason(error: ssl.SSLError) -> str:
    # "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)" → "wrong version number"
    text = str(error.args[1]) if len(error.args) > 1 else str(error)
    if text.startswith("["):
        text = text.partition("]")[2].strip()
    return text.rsplit(" (_ssl.c:", 1)[0] or str(error.reason or "unknown error")


class _ConnectFailed(Exception):
    """No TCP connection was made; ``__cause__`` is the socket's error."""


def _handshake(
    host: str, port: int, server_name: str, context: ssl.SSLContext, timeout: float
) -> tuple[bytes, str | None]:
    try:
        connection = socket.create_connection((host, port), timeout=timeout)
    except OSError as error:
        # Told apart from errors of the handshake: a timeout means something else in each.
        raise _ConnectFailed() from error
    with connection, context.wrap_socket(connection, server_hostname=server_name) as tls:
        return tls.getpeercert(binary_form=True) or b"", tls.version()


def observe(
    host: str,
    port: int,
    server_name: str,
    timeout: float,
    ca_file: str | None = None,
    verify_chain: bool = True,
) -> TlsObservation:
    """Given an address, the name to present and verify, and a time budget in seconds,
    handshake and return what was seen. Never raises for network or TLS failures: they are
    observations.
    """
    deadline = time.monotonic() + timeout
    observation = TlsObservation(host, port, server_name)
    where = host_port(host, port)
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (ssl.SSLError, OSError) as error:
        raise CheckError(
            f"ca_file {ca_file} cannot be loaded as PEM certificates: {error}"
        ) from None
    try:
        if verify_chain:
            try:
                certificate, protocol = _handshake(host, port, server_name, context, timeout)
                return replace(
                    observation, certificate=certificate, verified=True, protocol=protocol
                )
            except ssl.SSLCertVerificationError as error:
                observation = replace(
                    observation,
                    verified=False,
                    # "IP address mismatch, … for '10.0.0.5'." ends a sentence; the summary
                    # goes on after it.
                    verify_error=(error.verify_message or _ssl_reason(error)).rstrip("."),
                )
        # Verification has failed (and is reported CRITICAL) or was turned off in the config;
        # this second handshake only reads the certificate so that its expiry and names can
        # still be reported. Nothing is sent over it. noqa: opsctl-reviewed
        unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        remaining = max(deadline - time.monotonic(), 0.001)
        certificate, protocol = _handshake(host, port, server_name, unverified, remaining)
        return replace(observation, certificate=certificate, protocol=protocol)
    except _ConnectFailed as failed:
        cause = cast(OSError, failed.__cause__)
        reason, advice = connect_error(cause, host, port, timeout, protocol="tls")
        return replace(observation, error=reason, advice=advice)
    except ssl.SSLError as error:
        return replace(
            observation,
            error=f"tls {where} handshake failed: {_ssl_reason(error)}",
            advice=f"Check that {where} speaks TLS and supports TLS 1.2 or later.",
        )
    except TimeoutError:
        return replace(
            observation,
            error=f"tls {where} handshake timed out after {timeout:g}s",
            advice=f"Check that {where} speaks TLS and is not overloaded.",
        )
    except OSError as error:
        return replace(
            observation,
            error=f"tls {where} handshake failed: {error.strerror or error}",
            advice=f"Check that {where} speaks TLS and the server's error log.",
        )


def _name(name: Any) -> str:
    from cryptography.x509.oid import NameOID

    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        values = name.get_attributes_for_oid(oid)
        if values:
            return str(values[0].value)
    return str(name.rfc4514_string())


def _describe_days(warn: Range | None, crit: Range | None) -> str:
    parts = []
    for label, value in (("warning", warn), ("critical", crit)):
        if value is not None:
            parts.append(f"{label} {replace(value, unit='').describe()} days")
    return ", ".join(parts)


def _remaining(days: float) -> str:
    if abs(days) >= 1:
        whole = int(abs(days))
        return f"{whole} day{'s' if whole != 1 else ''}"
    hours = int(abs(days) * 24)
    return f"{hours} hour{'s' if hours != 1 else ''}"


def evaluate_observation(
    observation: TlsObservation,
    warn: Range | None,
    crit: Range | None,
    now: datetime | None = None,
) -> CheckResult:
    """Given an observation, the ranges in days and the current time (default: now), return
    the CheckResult.

    Raise CheckError if the server's certificate cannot be parsed.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    where = host_port(observation.host, observation.port)
    if observation.server_name != observation.host:
        where += f" ({observation.server_name})"
    subject = f"TLS {where}"
    if observation.certificate is None:
        reason = observation.error or f"tls {where} handshake failed"
        if observation.verify_error:
            reason = f"chain verification failed: {observation.verify_error}; then {reason}"
        item = Item(
            "tls.connect", f"{subject} / handshake", reason, State.CRITICAL, "", observation.advice
        )
        return CheckResult(State.CRITICAL, reason, items=(item,))

    try:
        certificate = x509.load_der_x509_certificate(observation.certificate)
    except ValueError as error:
        raise CheckError(f"tls {where} sent a certificate that cannot be parsed: {error}") from None
    now = now or utc_now()
    not_after = certificate.not_valid_after_utc
    days_left = round((not_after - now).total_seconds() / 86400, 2)
    expiry_date = not_after.date().isoformat()
    try:
        alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = [
            *alternative.value.get_values_for_type(x509.DNSName),
            *(str(address) for address in alternative.value.get_values_for_type(x509.IPAddress)),
        ]
    except x509.ExtensionNotFound:
        names = []
    issuer = _name(certificate.issuer)

    # The metric carries no unit (see the module docstring); the ranges are in days.
    metric = Metric(
        "days_left",
        days_left,
        "",
        warn=None if warn is None else replace(warn, unit=""),
        crit=None if crit is None else replace(crit, unit=""),
    )
    name = observation.server_name
    if days_left < 0:
        expiry = f"expired {_remaining(days_left)} ago ({expiry_date})"
        expiry_value = f"{expiry_date} (expired {_remaining(days_left)} ago)"
        expiry_advice = f"The certificate for {name} has expired and clients reject it: renew it."
    else:
        expiry = f"expires in {_remaining(days_left)} ({expiry_date})"
        expiry_value = f"{expiry_date} ({_remaining(days_left)} left)"
        expiry_advice = f"Renew the certificate for {name} and install it before {expiry_date}."
    items = [
        Item(
            "tls.expiry",
            f"{subject} / expiry",
            expiry_value,
            metric.state,
            _describe_days(warn, crit),
            expiry_advice if metric.state != State.OK else "",
        ),
        Item("tls.issuer", f"{subject} / issuer", issuer),
    ]

    summary = f"certificate for {name} {expiry}"
    if observation.verified is None:
        items.append(Item("tls.chain", f"{subject} / chain", "not checked (verify_chain: false)"))
        summary += ", chain not checked"
    elif observation.verified:
        items.append(
            Item("tls.chain", f"{subject} / chain", "verified", State.OK, "chain and name verify")
        )
        summary += ", chain OK"
    else:
        reason = observation.verify_error or "unknown reason"
        items.append(
            Item(
                "tls.chain",
                f"{subject} / chain",
                f"failed: {reason}",
                State.CRITICAL,
                "chain and name verify",
                "Install the full chain (with intermediate certificates) on the server, use a "
                f"certificate that names {name}, or give a private CA as ca_file.",
            )
        )
        summary = f"chain verification failed: {reason}; {summary}"

    details = {
        "host": observation.host,
        "port": observation.port,
        "server_name": name,
        "protocol": observation.protocol,
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "names": names,
        "not_before": certificate.not_valid_before_utc.isoformat(),
        "not_after": not_after.isoformat(),
        "serial": format(certificate.serial_number, "x"),
        "sha256": certificate.fingerprint(hashes.SHA256()).hex(),
        "verified": observation.verified,
    }
    return CheckResult.from_metrics([metric], summary, items, details)


class TlsCheck(Check):
    """TLS certificate expiry (days left) and chain verification of a server."""

    kind = "tls"
    Config = TlsConfig
    targets = frozenset({"endpoint", "host"})

    def run(self, target: Any) -> CheckResult:
        """Given an endpoint or host target, handshake with it and return a CheckResult.

        Raise CheckError if no host can be determined or ca_file is missing.
        """
        config = cast(TlsConfig, self.config)
        host, port, server_name = resolve_address(config, target)
        ca_file = None
        if config.ca_file is not None:
            ca_file = str(Path(config.ca_file).expanduser())
            if not Path(ca_file).is_file():
                raise CheckError(f"ca_file {config.ca_file} does not exist")
        observation = observe(
            host, port, server_name, self.timeout, ca_file=ca_file, verify_chain=config.verify_chain
        )
        return evaluate_observation(observation, days_range(config.warn), days_range(config.crit))
