"""The ``http`` check kind: does a URL answer with the expected status and content, and how fast.

Like ``check_http``: one request, the status judged against ``expect_status`` (any 2xx or 3xx
by default), the body searched for a substring or a regular expression, the response time
judged against ``warn``/``crit``. A server that is down, refuses, times out or presents a
certificate that does not verify is the finding (CRITICAL), not a failure to observe.

Header values may be secret references (``env:NAME``, ``file:/path``), resolved at run time
and never shown. ``requests`` is imported only when a check runs, so the CLI starts fast.
"""

from __future__ import annotations

import codecs
import os
import re
import socket
import ssl
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator, model_validator

from checks.tcp import (
    breached_threshold,
    format_seconds,
    host_port,
    seconds_range,
)
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

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")

_SECRET_REFERENCE = re.compile(r"^(env|file):(.+)$")


def _check_url(url: str) -> str:
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(
            f"expected an http:// or https:// URL with a host, got {redact_url(url)!r}"
        )
    return url


class HttpConfig(CheckConfig):
    """Configuration of the ``http`` check kind."""

    url: str | None = Field(None, description="URL to request; default: the target's url")
    method: str = Field("GET", description="HTTP method: " + ", ".join(METHODS))
    expect_status: list[int] | None = Field(
        None, description="acceptable status codes; default: any 2xx or 3xx (4xx and 5xx CRITICAL)"
    )
    contains: str | None = Field(None, description="text the body must contain; CRITICAL if absent")
    regex: str | None = Field(
        None, description="regular expression (Python syntax) the body must match; CRITICAL if not"
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description='request headers; a value may be a secret reference "env:NAME" or "file:/path"',
    )
    verify_tls: bool = Field(True, description="verify the server's certificate and host name")
    ca_file: str | None = Field(
        None, description="PEM file of the CA(s) to trust instead of the system's (a private CA)"
    )
    follow_redirects: bool = Field(
        True, description="follow redirects and judge the final response"
    )
    warn: RangeField | None = Field(
        None, description='warning range on response time in seconds, e.g. "1" or "800ms"'
    )
    crit: RangeField | None = Field(
        None, description='critical range on response time in seconds, e.g. "5" or "5s"'
    )
    max_body_bytes: int = Field(
        1024 * 1024, gt=0, description="read at most this many bytes of the body (default 1 MiB)"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        method = value.strip().upper()
        if method not in METHODS:
            raise ValueError(f"expected one of {', '.join(METHODS)}, got {value!r}")
        return method

    @field_validator("expect_status")
    @classmethod
    def _status(cls, value: list[int] | None) -> list[int] | None:
        if value is not None:
            if not value:
                raise ValueError("expected at least one status code (or leave expect_status out)")
            wrong = [code for code in value if not 100 <= code <= 599]
            if wrong:
                raise ValueError(f"status codes are 100..599, got {wrong}")
        return value

    @field_validator("regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"invalid regular expression {value!r}: {error}") from None
        return value

    @field_validator("warn", "crit")
    @classmethod
    def _in_seconds(cls, value: Range | None) -> Range | None:
        seconds_range(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> HttpConfig:
        if self.method == "HEAD" and (self.contains is not None or self.regex is not None):
            raise ValueError("contains and regex need a body, and a HEAD response has none")
        if self.ca_file is not None and not self.verify_tls:
            raise ValueError("ca_file is only used when verify_tls is true")
        return self


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """What a request that got an answer saw. ``url`` is the final URL, credentials removed."""

    url: str
    status: int
    reason: str
    seconds: float
    body: bytes = b""
    truncated: bool = False
    content_type: str = ""
    redirects: int = 0


@dataclass(frozen=True, slots=True)
class HttpFailure:
    """A request that got no answer: why, in one line, and what to look at."""

    reason: str
    advice: str


def redact_url(url: str) -> str:
    """Given a URL, return it without the user and password it may carry."""
    parsed = urlsplit(url)
    if "@" not in parsed.netloc:
        return url
    return urlunsplit(parsed._replace(netloc=parsed.netloc.rpartition("@")[2]))


def resolve_secret(value: str, header: str) -> str:
    """Given a header value, return it, or what it refers to if it is ``env:NAME`` (an
    environment variable) or ``file:PATH`` (a file's text without its trailing newline).

    Raise CheckError naming the reference, never a value, if it cannot be read.
    """
    match = _SECRET_REFERENCE.match(value.strip())
    if not match:
        return value
    scheme, name = match.groups()
    if scheme == "env":
        if name not in os.environ:
            raise CheckError(f"header {header}: environment variable {name} is not set ({value})")
        return os.environ[name]
    path = Path(name).expanduser()
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as error:
        raise CheckError(
            f"header {header}: cannot read secret file {path} ({value}): {error.strerror or error}"
        ) from None


def _causes(error: BaseException) -> Iterable[BaseException]:
    # requests wraps urllib3 which wraps the socket or ssl error, in args, reason or __cause__.
    pending, seen = [error], set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for linked in (*current.args, getattr(current, "reason", None), current.__cause__):
            if isinstance(linked, BaseException):
                pending.append(linked)


def _find(error: BaseException, kind: type[BaseException]) -> Any:
    return next((cause for cause in _causes(error) if isinstance(cause, kind)), None)


def _ssl_reason(error: ssl.SSLError) -> str:
    # "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)" → "wrong version number"
    text = str(error.args[1]) if len(error.args) > 1 else str(error)
    text = re.sub(r"^\[[^\]]*\]\s*", "", text)
    return re.sub(r"\s*\(_ssl\.c:\d+\)$", "", text) or (error.reason or "unknown error")


def describe_failure(error: Exception, url: str, timeout: float) -> HttpFailure:
    """Given the exception of a request to ``url`` that got no answer, return why as one
    line (never with credentials) and what to look at.
    """
    import requests

    parsed = urlsplit(url)
    host = parsed.hostname or "?"
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:
        port = 443 if parsed.scheme == "https" else 80
    where = host_port(host, port)

    verify = _find(error, ssl.SSLCertVerificationError)
    if verify is not None:
        message = (getattr(verify, "verify_message", None) or _ssl_reason(verify)).rstrip(".")
        return HttpFailure(
            f"TLS verification failed: certificate verify failed: {message}",
            "Renew or fix the server's certificate chain, or give the private CA as ca_file.",
        )
    tls = _find(error, ssl.SSLError)
    if tls is not None:
        return HttpFailure(
            f"TLS handshake with {where} failed: {_ssl_reason(tls)}",
            f"Check that {where} speaks TLS (https) and supports a current TLS version.",
        )
    if isinstance(error, requests.exceptions.TooManyRedirects):
        return HttpFailure(
            f"too many redirects from {redact_url(url)}",
            "Check the server's redirect rules for a loop, or set follow_redirects: false.",
        )
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return HttpFailure(
            f"connection to {where} timed out after {timeout:g}s",
            f"Check that {host} is up and that firewalls on the path let port {port} through.",
        )
    if isinstance(error, requests.exceptions.Timeout) or _find(error, TimeoutError):
        return HttpFailure(
            f"no response from {where} within {timeout:g}s",
            "The server accepts connections but does not answer: check its load, its workers "
            "and what it waits on (database, upstream services).",
        )
    resolve = _find(error, socket.gaierror)
    if resolve is not None:
        return HttpFailure(
            f"cannot resolve host {host}: {resolve.strerror or resolve}",
            f"Check the host name {host} and the DNS or /etc/hosts of the monitoring host.",
        )
    if _find(error, ConnectionRefusedError) is not None:
        return HttpFailure(
            f"connection to {where} refused",
            f"Check that the web server is running and listening on port {port}.",
        )
    if _find(error, ConnectionResetError) is not None:
        return HttpFailure(
            f"connection to {where} reset by the server",
            f"Check the web server's error log and whether {where} expects https.",
        )
    innermost = list(_causes(error))[-1]
    detail = getattr(innermost, "strerror", None) or str(innermost) or type(innermost).__name__
    return HttpFailure(
        f"request to {where} failed: {detail}",
        f"Check the network path to {host} and the web server's error log.",
    )


def observe(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    verify: bool | str = True,
    follow_redirects: bool = True,
    max_body_bytes: int = 1024 * 1024,
    timeout: float = 30.0,
) -> HttpResponse | HttpFailure:
    """Given a URL and how to request it (``verify``: True, False or a CA file), send one
    request and return the response, or the failure if none came. Never raises for network
    failures: they are observations.
    """
    import requests
    import urllib3

    deadline = time.monotonic() + timeout
    with requests.Session() as session, warnings.catch_warnings():
        # Proxies and credentials from the environment would make the check measure
        # something else depending on who runs it (the CLI in a shell, the daemon).
        session.trust_env = False
        if verify is False:
            # Turning verification off was asked for in the config; the warning would only
            # be noise on stderr.
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        started = time.perf_counter()
        try:
            with session.request(
                method,
                url,
                headers=dict(headers or {}),
                verify=verify,
                allow_redirects=follow_redirects,
                timeout=(timeout, timeout),
                stream=True,
            ) as response:
                body = bytearray()
                truncated = False
                if method != "HEAD":
                    for chunk in response.iter_content(chunk_size=64 * 1024):
                        body.extend(chunk)
                        if len(body) > max_body_bytes:
                            truncated = True
                            del body[max_body_bytes:]
                            break
                        if time.monotonic() > deadline:
                            return HttpFailure(
                                f"response body from {redact_url(url)} not complete within "
                                f"{timeout:g}s",
                                "The server starts answering but sends the body slowly: check "
                                "its load and the network path.",
                            )
                seconds = time.perf_counter() - started
                return HttpResponse(
                    url=redact_url(response.url),
                    status=response.status_code,
                    reason=response.reason or "",
                    seconds=seconds,
                    body=bytes(body),
                    truncated=truncated,
                    content_type=response.headers.get("Content-Type", ""),
                    redirects=len(response.history),
                )
        except (requests.exceptions.RequestException, OSError) as error:
            return describe_failure(error, url, timeout)


def decode_body(body: bytes, content_type: str = "") -> str:
    """Given a body and its Content-Type, return its text.

    Without a declared charset, UTF-8 is tried, then GB18030: many hospital systems still
    serve GBK pages without saying so.
    """
    match = re.search(r"charset=[\"']?([\w.:-]+)", content_type, re.IGNORECASE)
    if match:
        try:
            codecs.lookup(match.group(1))
            return body.decode(match.group(1), errors="replace")
        except LookupError:
            pass
    for encoding in ("utf-8", "gb18030"):
        try:
            return body.decode(encoding)
        except UnicodeDecodeError:
            continue
    return body.decode("utf-8", errors="replace")


def _status_ok(status: int, expect_status: list[int] | None) -> bool:
    if expect_status is not None:
        return status in expect_status
    return 200 <= status < 400


def evaluate_response(
    response: HttpResponse,
    *,
    expect_status: list[int] | None = None,
    contains: str | None = None,
    regex: str | None = None,
    warn: Range | None = None,
    crit: Range | None = None,
    label: str | None = None,
) -> CheckResult:
    """Given a response and what was expected of it (ranges in seconds), return the
    CheckResult. ``label`` names the request in items (default: the response's URL).
    """
    subject = f"HTTP {label or response.url}"
    problems: list[str] = []
    items: list[Item] = []

    wanted_status = (
        "2xx or 3xx" if expect_status is None else ", ".join(str(code) for code in expect_status)
    )
    status_text = f"{response.status} {response.reason}".strip()
    if _status_ok(response.status, expect_status):
        items.append(
            Item("http.status", f"{subject} / status", status_text, State.OK, wanted_status)
        )
    else:
        problems.append(f"expected status {wanted_status}")
        advice = (
            "The server reports an error: check the application's log and its dependencies."
            if response.status >= 500
            else "Check the URL, the method and the headers (authentication) the check sends."
        )
        items.append(
            Item(
                "http.status",
                f"{subject} / status",
                status_text,
                State.CRITICAL,
                wanted_status,
                advice,
            )
        )

    time_metric = Metric("time", response.seconds, "s", warn=warn, crit=crit, min=0.0)
    time_advice = ""
    if time_metric.state != State.OK:
        problems.append(f"response time {breached_threshold(time_metric.state, warn, crit)}")
        time_advice = "The server answers slowly: check its load and what it waits on."
    items.append(
        Item(
            "http.time",
            f"{subject} / response time",
            format_seconds(response.seconds),
            time_metric.state,
            describe_thresholds(warn, crit),
            time_advice,
        )
    )

    if contains is not None or regex is not None:
        text = decode_body(response.body, response.content_type)
        scope = " (in the first bytes read)" if response.truncated else ""
        content_advice = (
            "The page does not show what it should: check the application, and whether the "
            "URL now serves an error or login page."
        )
        if contains is not None:
            if contains in text:
                items.append(Item("http.contains", f"{subject} / body", f"contains {contains!r}"))
            else:
                problems.append(f"body does not contain {contains!r}{scope}")
                items.append(
                    Item(
                        "http.contains",
                        f"{subject} / body",
                        f"{contains!r} not found{scope}",
                        State.CRITICAL,
                        f"contains {contains!r}",
                        content_advice,
                    )
                )
        if regex is not None:
            if re.search(regex, text):
                items.append(Item("http.regex", f"{subject} / body", f"matches /{regex}/"))
            else:
                problems.append(f"body does not match /{regex}/{scope}")
                items.append(
                    Item(
                        "http.regex",
                        f"{subject} / body",
                        f"no match for /{regex}/{scope}",
                        State.CRITICAL,
                        f"matches /{regex}/",
                        content_advice,
                    )
                )

    size = f"{len(response.body)} bytes" + (" (truncated)" if response.truncated else "")
    summary = f"HTTP {status_text} in {response.seconds:.3f}s, {size}"
    if problems:
        summary += "; " + "; ".join(problems)
    metrics = [
        time_metric,
        Metric("size", float(len(response.body)), "B", min=0.0),
        Metric("status", float(response.status)),
    ]
    details = {
        "url": response.url,
        "status": response.status,
        "redirects": response.redirects,
        "truncated": response.truncated,
    }
    return CheckResult.from_metrics(metrics, summary, items, details)


def evaluate_failure(failure: HttpFailure, url: str) -> CheckResult:
    """Given a request that got no answer, return the CRITICAL CheckResult."""
    shown = redact_url(url)
    item = Item(
        "http.request",
        f"HTTP {shown} / request",
        failure.reason,
        State.CRITICAL,
        "",
        failure.advice,
    )
    return CheckResult(State.CRITICAL, failure.reason, items=(item,), details={"url": shown})


class HttpCheck(Check):
    """HTTP(S) status, content and response time of a URL (like check_http).

    TLS certificates are verified by default (``ca_file`` trusts a private CA). Proxy settings
    from the environment are ignored, so the check measures the server itself.
    """

    kind = "http"
    Config = HttpConfig
    targets = frozenset({"endpoint", "host"})

    def url_for(self, target: Any) -> str:
        """Given the target, return the URL to request: the config's, else the target's.

        Raise CheckError if there is none or it is not an http(s) URL.
        """
        config = cast(HttpConfig, self.config)
        url = config.url or getattr(target, "url", None)
        if not url:
            name = getattr(target, "name", "?")
            raise CheckError(f"http check of {name} has no url: set url in the check")
        try:
            return _check_url(str(url))
        except ValueError as error:
            raise CheckError(f"http check of {getattr(target, 'name', '?')}: {error}") from None

    def run(self, target: Any) -> CheckResult:
        """Given an endpoint or host target, request its URL and return a CheckResult.

        Raise CheckError if there is no URL, a header's secret cannot be read or ca_file is
        missing.
        """
        config = cast(HttpConfig, self.config)
        url = self.url_for(target)
        headers = {name: resolve_secret(value, name) for name, value in config.headers.items()}
        verify: bool | str = config.verify_tls
        if config.verify_tls and config.ca_file:
            verify = str(Path(config.ca_file).expanduser())
            if not Path(verify).is_file():
                raise CheckError(f"ca_file {config.ca_file} does not exist")
            try:
                # requests would load it only after connecting, and its error would read
                # like the server's fault.
                ssl.create_default_context(cafile=verify)
            except (ssl.SSLError, OSError) as error:
                raise CheckError(
                    f"ca_file {config.ca_file} cannot be loaded as PEM certificates: {error}"
                ) from None
        observed = observe(
            url,
            method=config.method,
            headers=headers,
            verify=verify,
            follow_redirects=config.follow_redirects,
            max_body_bytes=config.max_body_bytes,
            timeout=self.timeout,
        )
        if isinstance(observed, HttpFailure):
            return evaluate_failure(observed, url)
        return evaluate_response(
            observed,
            expect_status=config.expect_status,
            contains=config.contains,
            regex=config.regex,
            warn=seconds_range(config.warn),
            crit=seconds_range(config.crit),
            label=redact_url(url),
        )
