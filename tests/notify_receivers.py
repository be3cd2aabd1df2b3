"""Real receivers for notification tests, on 127.0.0.1.

``RobotServer`` is one ThreadingHTTPServer that checks requests as the platforms document:

- WeCom group robot ``POST /cgi-bin/webhook/send?key=K``: an unknown key answers errcode
  93000; content longer than 4,096 bytes (markdown) or 2,048 (text) answers 40058.
- DingTalk custom robot ``POST /robot/send?access_token=T&timestamp=MS&sign=S``: an unknown
  token answers 300001; a sign that is not ``urlencode(base64(HMAC-SHA256(secret,
  f"{MS}\\n{secret}")))`` or a timestamp more than an hour off answers 310000.
- Feishu custom bot ``POST /open-apis/bot/v2/hook/ID``: an unknown id answers code 19001; a
  body whose ``sign`` is not ``base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b""))``
  or whose ``timestamp`` is more than an hour off answers 19021.
- A generic webhook ``POST /hook``: ``X-Opsctl-Signature`` must be ``sha256=`` and the hex
  HMAC-SHA256 of the body with the shared secret, else HTTP 401.

Every request is recorded (accepted or not). ``fail_next(robot, ...)`` scripts the next
answers: a platform code (45009, 130101, 11232...) or an HTTP status (500). With
``per_minute``, each robot also enforces its rate limit on the server's ``clock``, answering
45009, 130101 or 11232 as the platforms do.

``MailServer`` is an aiosmtpd SMTP server that requires STARTTLS (a certificate from a
``trustme`` CA) and a login, and records every mail it accepts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import ssl
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme

WECOM_LIMITS = {"markdown": 4096, "text": 2048}
RATE_CODES = {"wecom": 45009, "dingtalk": 130101, "feishu": 11232}


@dataclass
class Received:
    """One request the server got: which robot, its path and query, headers, raw body, and
    what it answered (the JSON, or the HTTP status of an error)."""

    robot: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    answer: Any = None
    accepted: bool = False

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RobotServer:
    """The robots' and the generic webhook's receiver (see the module's docstring)."""

    wecom_key: str = "wk-Secret-7f3a"
    dingtalk_token: str = "dt-Token-91bc"
    dingtalk_secret: str = "SECdtSign-5d2e"
    feishu_hook: str = "fs-Hook-0c44"
    feishu_secret: str = "fsSign-88aa"
    webhook_secret: str = "wh-Shared-3e1f"
    clock: Callable[[], float] = time.time
    per_minute: int | None = None
    received: list[Received] = field(default_factory=list)
    _script: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    _accepted_at: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> RobotServer:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, answer = receiver.handle(self.path, dict(self.headers.items()), body)
                data = json.dumps(answer).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> RobotServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(self, robot: str, *answers: int) -> None:
        """Script the next answers of ``robot`` (wecom, dingtalk, feishu, webhook): a platform
        code, or an HTTP status from 400 to 599."""
        with self._lock:
            self._script[robot].extend(answers)

    def of(self, robot: str) -> list[Received]:
        """The requests ``robot`` got, in order."""
        with self._lock:
            return [r for r in self.received if r.robot == robot]

    def bodies(self, robot: str) -> list[Any]:
        """The JSON bodies ``robot`` accepted, in order."""
        return [r.json for r in self.of(robot) if r.accepted]

    # ------------------------------------------------------------------ the checks

    def handle(self, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if parts.path == "/cgi-bin/webhook/send":
            robot, check = "wecom", self._wecom
        elif parts.path == "/robot/send":
            robot, check = "dingtalk", self._dingtalk
        elif parts.path.startswith("/open-apis/bot/v2/hook/"):
            robot, check = "feishu", self._feishu
        elif parts.path == "/hook":
            robot, check = "webhook", self._webhook
        else:
            robot, check = "unknown", None
        record = Received(robot, parts.path, query, headers, body)
        with self._lock:
            self.received.append(record)
        if check is None:
            status, answer = 404, {"error": "no such path"}
        else:
            status, answer = check(parts.path, query, headers, body)
            if status == 200 and self._ok(robot, answer):
                status, answer = self._scripted_or_limited(robot, status, answer)
        record.answer = answer if status == 200 else status
        record.accepted = status == 200 and self._ok(robot, answer)
        return status, answer

    @staticmethod
    def _ok(robot: str, answer: Any) -> bool:
        if robot in ("wecom", "dingtalk"):
            return answer.get("errcode") == 0
        if robot == "feishu":
            return answer.get("code") == 0
        return True

    def _scripted_or_limited(self, robot: str, status: int, answer: Any) -> tuple[int, Any]:
        with self._lock:
            script = self._script[robot]
            scripted = script.popleft() if script else None
            if scripted is None and self.per_minute is not None and robot in RATE_CODES:
                now = self.clock()
                times = self._accepted_at[robot]
                while times and times[0] <= now - 60:
                    times.popleft()
                if len(times) >= self.per_minute:
                    scripted = RATE_CODES[robot]
                else:
                    times.append(now)
        if scripted is None:
            return status, answer
        if 400 <= scripted < 600:
            return scripted, {"error": f"HTTP {scripted}"}
        messages = {
            45009: "api freq out of limit",
            130101: "send too fast, exceed 20 times per minute",
            11232: "frequency limited psm",
            9499: "Too Many Request",
        }
        text = messages.get(scripted, "scripted error")
        if robot == "feishu":
            return 200, {"code": scripted, "msg": text, "data": {}}
        return 200, {"errcode": scripted, "errmsg": text}

    def _wecom(self, path: str, query: dict, headers: dict, body: bytes) -> tuple[int, Any]:
        if query.get("key") != self.wecom_key:
            return 200, {"errcode": 93000, "errmsg": "invalid webhook url, hint: [1700000000]"}
        try:
            payload = json.loads(body)
            msgtype = payload["msgtype"]
            content = payload[msgtype]["content"]
        except (ValueError, KeyError, TypeError):
            return 200, {"errcode": 40035, "errmsg": "invalid args"}
        if msgtype not in WECOM_LIMITS:
            return 200, {"errcode": 40008, "errmsg": "invalid message type"}
        if len(content.encode("utf-8")) > WECOM_LIMITS[msgtype]:
            limit = WECOM_LIMITS[msgtype]
            return 200, {
                "errcode": 40058,
                "errmsg": f"{msgtype}.content exceed max length {limit}",
            }
        return 200, {"errcode": 0, "errmsg": "ok"}

    def _dingtalk(self, path: str, query: dict, headers: dict, body: bytes) -> tuple[int, Any]:
        if query.get("access_token") != self.dingtalk_token:
            return 200, {"errcode": 300001, "errmsg": "token is not exist"}
        timestamp, sign = query.get("timestamp", ""), query.get("sign", "")
        expected = base64.b64encode(
            hmac.new(
                self.dingtalk_secret.encode(),
                f"{timestamp}\n{self.dingtalk_secret}".encode(),
                hashlib.sha256,
            ).digest()
        ).decode()
        fresh = timestamp.isdigit() and abs(self.clock() * 1000 - int(timestamp)) <= 3_600_000
        if not fresh or not hmac.compare_digest(sign, expected):
            return 200, {"errcode": 310000, "errmsg": "sign not match"}
        try:
            payload = json.loads(body)
            assert payload["msgtype"] in ("text", "markdown", "link", "actionCard", "feedCard")
        except (ValueError, KeyError, AssertionError):
            return 200, {"errcode": 40035, "errmsg": "缺少参数 json"}
        return 200, {"errcode": 0, "errmsg": "ok"}

    def _feishu(self, path: str, query: dict, headers: dict, body: bytes) -> tuple[int, Any]:
        if path.rsplit("/", 1)[1] != self.feishu_hook:
            return 200, {
                "code": 19001,
                "msg": "param invalid: incoming webhook access token invalid",
                "data": {},
            }
        try:
            payload = json.loads(body)
        except ValueError:
            return 200, {"code": 9499, "msg": "Bad Request", "data": {}}
        timestamp = str(payload.get("timestamp", ""))
        key = f"{timestamp}\n{self.feishu_secret}".encode()
        expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
        fresh = timestamp.isdigit() and abs(self.clock() - int(timestamp)) <= 3600
        if not fresh or not hmac.compare_digest(str(payload.get("sign", "")), expected):
            return 200, {
                "code": 19021,
                "msg": "sign match fail or timestamp is not within one hour from current time",
                "data": {},
            }
        return 200, {"code": 0, "msg": "success", "data": {}}

    def _webhook(self, path: str, query: dict, headers: dict, body: bytes) -> tuple[int, Any]:
        expected = (
            "sha256=" + hmac.new(self.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
        )
        given = headers.get("X-Opsctl-Signature", "")
        timestamp = headers.get("X-Opsctl-Timestamp", "")
        fresh = timestamp.isdigit() and abs(self.clock() - int(timestamp)) <= 300
        if not fresh or not hmac.compare_digest(given, expected):
            return 401, {"error": "bad signature"}
        return 200, {"ok": True}


# --------------------------------------------------------------------------- SMTP


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (just now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Mail:
    """One mail the server accepted: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class MailServer:
    """An SMTP server on 127.0.0.1 that requires STARTTLS (with a certificate from ``ca``) and,
    if ``user`` is given, a login with ``password`` before accepting mail."""

    def __init__(
        self,
        ca: trustme.CA | None,
        *,
        user: str | None = "opsctl",
        password: str = "Mail-Pass-19d0",
    ) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.mails: list[Mail] = []
        self.logins: list[str] = []
        server = self

        class Handler:
            async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
                message = BytesParser(policy=policy.default).parsebytes(envelope.content)
                server.mails.append(
                    Mail(envelope.mail_from, list(envelope.rcpt_tos), message)  # type: ignore[arg-type]
                )
                return "250 OK"

        def authenticate(
            smtp: Any, session: Any, envelope: Any, mechanism: str, data: Any
        ) -> AuthResult:
            ok = (
                isinstance(data, LoginPassword)
                and data.login.decode() == user
                and data.password.decode() == password
            )
            if ok:
                server.logins.append(user or "")
            return AuthResult(success=ok, handled=False)

        options: dict[str, Any] = {}
        if ca is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
            options.update(tls_context=context, require_starttls=True)
        if user is not None:
            options.update(
                authenticator=authenticate, auth_required=True, auth_require_tls=ca is not None
            )
        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **options)

    def __enter__(self) -> MailServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
