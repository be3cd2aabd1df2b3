"""The http check kind, against real HTTP and HTTPS servers on 127.0.0.1."""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import trustme
from pydantic import ValidationError

from checks.http import (
    HttpCheck,
    HttpConfig,
    HttpResponse,
    decode_body,
    evaluate_response,
    redact_url,
    resolve_secret,
)
from checks.tcp import seconds_range
from opsctl.contract import CheckError, CheckResult, Range, State

SECRET = "Bearer s3cret-token"


class Handler(BaseHTTPRequestHandler):
    """Answers by path: /, /slow, /missing, /error, /redirect, /auth, /gbk, /big."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def answer(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if self.path == "/":
            self.answer(200, b"hello world")
        elif self.path == "/slow":
            time.sleep(0.3)
            self.answer(200, b"finally")
        elif self.path == "/missing":
            self.answer(404, b"no such page")
        elif self.path == "/error":
            self.answer(500, b"database unavailable")
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/auth":
            if self.headers.get("Authorization") == SECRET:
                self.answer(200, b"welcome")
            else:
                self.answer(401, b"who are you")
        elif self.path == "/gbk":
            self.answer(200, "门诊挂号系统运行正常".encode("gbk"), "text/html")
        elif self.path == "/big":
            self.answer(200, b"x" * 10_000)
        else:
            self.answer(400, b"unknown test path")


def start(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    """The base URL of a plain HTTP server."""
    for address in start(ThreadingHTTPServer(("127.0.0.1", 0), Handler)):
        yield f"http://{address}"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def https(key_and_chain_pem: bytes, tmp_path: Path) -> ThreadingHTTPServer:
    pem = tmp_path / "server.pem"
    pem.write_bytes(key_and_chain_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pem))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


@pytest.fixture(scope="module")
def https_server(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of an HTTPS server whose certificate the test CA issued."""
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    server = https(leaf.private_key_and_cert_chain_pem.bytes(), tmp_path_factory.mktemp("leaf"))
    for address in start(server):
        yield f"https://{address}"


@pytest.fixture(scope="module")
def self_signed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of an HTTPS server presenting a self-signed certificate (a CA's own)."""
    alone = trustme.CA()
    pem = alone.private_key_pem.bytes() + alone.cert_pem.bytes()
    for address in start(https(pem, tmp_path_factory.mktemp("self"))):
        yield f"https://{address}"


def endpoint(url: str | None) -> SimpleNamespace:
    return SimpleNamespace(name="portal", url=url, address=None, port=None)


def run(url: str | None = None, *, target: object = None, timeout: float = 5.0, **config):
    check = HttpCheck(HttpConfig(**config), timeout=timeout)
    return check.run(target if target is not None else endpoint(url))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def metrics(result: CheckResult) -> dict[str, tuple[float, str]]:
    return {metric.name: (metric.value, metric.unit) for metric in result.metrics}


def test_ok_page_reports_status_time_and_size(http_server: str) -> None:
    result = run(f"{http_server}/")

    assert result.state == State.OK
    assert re.fullmatch(r"HTTP 200 OK in \d+\.\d{3}s, 11 bytes", result.summary)
    found = metrics(result)
    assert found["status"] == (200, "")
    assert found["size"] == (11, "B")
    assert found["time"][1] == "s" and 0 < found["time"][0] < 5
    status, elapsed = result.items
    assert (status.key, status.item) == ("http.status", f"HTTP {http_server}/ / status")
    assert (status.value, status.verdict, status.threshold) == ("200 OK", State.OK, "2xx or 3xx")
    assert (elapsed.key, elapsed.verdict) == ("http.time", State.OK)


@pytest.mark.parametrize(
    ("path", "status"), [("/missing", "404 Not Found"), ("/error", "500 Internal Server Error")]
)
def test_error_status_is_critical(http_server: str, path: str, status: str) -> None:
    result = run(f"{http_server}{path}")

    assert result.state == State.CRITICAL
    assert result.summary.startswith(f"HTTP {status} in ")
    assert result.summary.endswith("; expected status 2xx or 3xx")
    assert result.items[0].verdict == State.CRITICAL
    assert result.items[0].advice


def test_expected_status_overrides_the_default(http_server: str) -> None:
    assert run(f"{http_server}/missing", expect_status=[404]).state == State.OK
    wrong = run(f"{http_server}/", expect_status=[201, 204])
    assert wrong.state == State.CRITICAL
    assert wrong.summary.endswith("; expected status 201, 204")


def test_redirects_are_followed_unless_disabled(http_server: str) -> None:
    followed = run(f"{http_server}/redirect")
    assert followed.state == State.OK
    assert followed.summary.startswith("HTTP 200 OK")
    assert followed.details["redirects"] == 1
    assert followed.details["url"] == f"{http_server}/"

    kept = run(f"{http_server}/redirect", follow_redirects=False)
    assert kept.state == State.OK
    assert kept.summary.startswith("HTTP 302 Found")
    assert run(f"{http_server}/redirect", follow_redirects=False, expect_status=[200]).state == (
        State.CRITICAL
    )


def test_body_substring_and_regex(http_server: str) -> None:
    good = run(f"{http_server}/", contains="hello", regex=r"w[aeiou]rld$")
    assert good.state == State.OK
    assert [item.value for item in good.items[2:]] == [
        "contains 'hello'",
        r"matches /w[aeiou]rld$/",
    ]

    missing = run(f"{http_server}/", contains="登录成功")
    assert missing.state == State.CRITICAL
    assert missing.summary.endswith("; body does not contain '登录成功'")
    assert missing.items[2].key == "http.contains"
    assert missing.items[2].verdict == State.CRITICAL

    unmatched = run(f"{http_server}/", regex=r"^goodbye")
    assert unmatched.state == State.CRITICAL
    assert unmatched.summary.endswith("; body does not match /^goodbye/")


def test_gbk_body_without_charset_is_searched_as_text(http_server: str) -> None:
    assert run(f"{http_server}/gbk", contains="挂号系统运行正常").state == State.OK
    assert decode_body("正常".encode("gbk"), "text/html; charset=GBK") == "正常"


def test_body_reading_is_bounded(http_server: str) -> None:
    result = run(f"{http_server}/big", max_body_bytes=100, contains="y")

    assert metrics(result)["size"] == (100, "B")
    assert result.details["truncated"] is True
    assert "100 bytes (truncated)" in result.summary
    assert "(in the first bytes read)" in result.summary
    assert run(f"{http_server}/big").summary.endswith(", 10000 bytes")


def test_slow_response_against_critical_range_is_critical(http_server: str) -> None:
    result = run(f"{http_server}/slow", crit="0.1")

    assert result.state == State.CRITICAL
    assert result.summary.endswith("; response time critical > 0.1s")
    assert metrics(result)["time"][0] >= 0.3
    assert result.items[1].verdict == State.CRITICAL


def test_range_units_are_converted_to_seconds(http_server: str) -> None:
    # 0.3s is above 200ms but far below 10s: unconverted, "200ms" would mean 200 seconds.
    result = run(f"{http_server}/slow", warn="200ms", crit="10s")

    assert result.state == State.WARNING
    assert result.items[1].threshold == "warning > 0.2s, critical > 10s"
    [time_metric] = [metric for metric in result.metrics if metric.name == "time"]
    assert time_metric.warn == Range(0, 0.2, unit="s")


def test_evaluation_of_a_recorded_response() -> None:
    response = HttpResponse("https://his.example.org/", 200, "OK", 0.35, b"ok")
    half_second = seconds_range(Range.parse("500ms"))

    assert evaluate_response(response, warn=half_second).state == State.OK
    slow = HttpResponse("https://his.example.org/", 200, "OK", 0.6, b"ok")
    result = evaluate_response(slow, warn=half_second)
    assert result.state == State.WARNING
    assert result.summary == "HTTP 200 OK in 0.600s, 2 bytes; response time warning > 0.5s"


def test_refused_port_is_critical() -> None:
    port = closed_port()

    result = run(f"http://127.0.0.1:{port}/health")

    assert result.state == State.CRITICAL
    assert result.summary == f"connection to 127.0.0.1:{port} refused"
    [item] = result.items
    assert (item.key, item.verdict) == ("http.request", State.CRITICAL)


def test_silent_server_times_out_with_reason() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        result = run(f"http://127.0.0.1:{port}/", timeout=0.5)

    assert result.state == State.CRITICAL
    assert result.summary == f"no response from 127.0.0.1:{port} within 0.5s"


def test_private_ca_is_trusted_through_ca_file(https_server: str, ca_file: str) -> None:
    result = run(f"{https_server}/", ca_file=ca_file, contains="hello")

    assert result.state == State.OK
    assert result.summary.startswith("HTTP 200 OK")


def test_unknown_ca_is_critical_by_default(https_server: str) -> None:
    result = run(f"{https_server}/")

    assert result.state == State.CRITICAL
    assert result.summary == (
        "TLS verification failed: certificate verify failed: unable to get local issuer certificate"
    )
    assert "ca_file" in result.items[0].advice


def test_self_signed_certificate_is_critical(self_signed_server: str, ca_file: str) -> None:
    result = run(f"{self_signed_server}/", ca_file=ca_file)

    assert result.state == State.CRITICAL
    assert result.summary == (
        "TLS verification failed: certificate verify failed: self-signed certificate"
    )


def test_verification_can_be_turned_off_quietly(self_signed_server: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run(f"{self_signed_server}/", verify_tls=False)

    assert result.state == State.OK
    assert not [warning for warning in caught if "Unverified HTTPS" in str(warning.message)]


def test_https_to_a_plain_server_is_a_handshake_failure(http_server: str) -> None:
    address = http_server.removeprefix("http://")

    result = run(f"https://{address}/")

    assert result.state == State.CRITICAL
    assert result.summary == f"TLS handshake with {address} failed: wrong version number"


def test_secret_header_from_environment_is_sent_and_never_shown(
    http_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORTAL_TOKEN", SECRET)
    assert run(f"{http_server}/auth").state == State.CRITICAL

    result = run(f"{http_server}/auth", headers={"Authorization": "env:PORTAL_TOKEN"})

    assert result.state == State.OK
    assert "s3cret" not in json.dumps(result.to_dict(), ensure_ascii=False)


def test_secret_header_from_file_drops_the_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text(SECRET + "\n", encoding="utf-8")

    assert resolve_secret(f"file:{secret}", "Authorization") == SECRET
    assert resolve_secret("text/plain", "Accept") == "text/plain"


def test_missing_secret_names_the_reference_not_a_value(
    http_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PORTAL_TOKEN", raising=False)
    with pytest.raises(CheckError, match="environment variable PORTAL_TOKEN is not set"):
        run(f"{http_server}/auth", headers={"Authorization": "env:PORTAL_TOKEN"})
    with pytest.raises(CheckError, match=r"cannot read secret file .*absent"):
        run(f"{http_server}/auth", headers={"Authorization": f"file:{tmp_path}/absent"})


def test_credentials_in_the_url_are_never_shown() -> None:
    port = closed_port()

    result = run(f"http://admin:hunter2@127.0.0.1:{port}/")

    assert result.state == State.CRITICAL
    assert "hunter2" not in json.dumps(result.to_dict())
    assert (
        redact_url("https://u:p@his.example.org:8443/x?y=1") == "https://his.example.org:8443/x?y=1"
    )


def test_url_comes_from_config_or_the_target(http_server: str) -> None:
    host = SimpleNamespace(name="web01", address="127.0.0.1")

    configured = HttpCheck(HttpConfig(url=f"{http_server}/"), timeout=5).run(host)
    assert configured.state == State.OK
    with pytest.raises(CheckError, match="http check of web01 has no url"):
        run(target=host)
    with pytest.raises(CheckError, match="expected an http:// or https:// URL"):
        run("ftp://files.example.org/")


def test_missing_or_broken_ca_file_cannot_run(https_server: str, tmp_path: Path) -> None:
    with pytest.raises(CheckError, match="ca_file .* does not exist"):
        run(f"{https_server}/", ca_file=str(tmp_path / "nope.pem"))
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate\n", encoding="utf-8")
    with pytest.raises(CheckError, match="cannot be loaded as PEM certificates"):
        run(f"{https_server}/", ca_file=str(broken))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"regex": "(unclosed"}, "invalid regular expression '(unclosed'"),
        ({"method": "FETCH"}, "expected one of GET"),
        ({"method": "HEAD", "contains": "x"}, "a HEAD response has none"),
        ({"verify_tls": False, "ca_file": "/ca.pem"}, "ca_file is only used"),
        ({"url": "ftp://x/"}, "expected an http:// or https:// URL"),
        ({"expect_status": [200, 999]}, "status codes are 100..599"),
        ({"crit": "50%"}, "expected a value in s"),
        ({"max_body_bytes": 0}, "greater than 0"),
        ({"insecure": True}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_config_is_refused_with_a_clear_message(
    config: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        HttpConfig(**config)


def test_method_is_normalised_and_kind_declared() -> None:
    assert HttpConfig(method="head").method == "HEAD"
    assert HttpCheck.kind == "http"
    assert HttpCheck.targets == {"endpoint", "host"}
    assert all(field.description for field in HttpConfig.model_fields.values())
