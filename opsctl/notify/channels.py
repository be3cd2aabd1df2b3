"""The notification channels: WeCom, DingTalk and Feishu group robots, e-mail over SMTP and a
generic JSON webhook.

Each channel is a frozen pydantic model (unknown keys refused) told apart by ``type``; its
``send(message)`` makes one delivery attempt and returns a ``Delivery``:

- ``sent``: the receiver accepted the message;
- ``retry``: a passing problem (rate limited, HTTP 5xx, connection refused, timed out); the
  dispatcher backs off and tries again (``retry_after`` says how long, when the channel knows);
- ``broken``: the channel itself is wrong (invalid webhook key, signature refused, password
  refused, certificate not trusted, secret unreadable); retrying cannot help, the dispatcher
  sends nothing more to it until it is fixed;
- ``failed``: this message was refused (any other error code, with the receiver's message).

Keys, tokens, signing secrets and passwords are secret references (``env:NAME`` or
``file:/path``), read at each send and never put in a ``Delivery``: every detail is built from
the kind of error, never from an exception's text (requests puts the whole URL, key included,
in its messages), and is scrubbed of every revealed value before it is returned.

What each robot answers, as documented by its platform:

- WeCom ``/cgi-bin/webhook/send?key=K``: ``errcode`` 0 ok, 45009 rate limited (20 a minute),
  93000 invalid webhook key; content at most 4,096 bytes (markdown) or 2,048 (text).
- DingTalk ``/robot/send?access_token=T&timestamp=MS&sign=S`` with
  ``S = urlencode(base64(HMAC-SHA256(secret, f"{MS}\\n{secret}")))``: ``errcode`` 0 ok, 130101
  sending too fast (20 a minute), 310000 signature, keyword or IP refused.
- Feishu ``/open-apis/bot/v2/hook/ID`` with ``timestamp`` (seconds) and
  ``sign = base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b""))`` in the body: ``code`` 0
  ok, 19021 signature refused, 9499 and 11232 rate limited.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import smtplib
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import quote, quote_plus, urlsplit

import requests
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from opsctl.fields import Name, Secret, SecretError, SecretRef
from opsctl.notify.message import (
    Lang,
    Message,
    dingtalk_payload,
    email_parts,
    feishu_payload,
    json_payload,
    wecom_payloads,
)

Status = Literal["sent", "retry", "broken", "failed"]

#: How long to wait after a robot says "too fast": its window is one minute.
RATE_LIMIT_WAIT = 60.0


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of sending one message on one channel.

    ``ok`` is True only for ``sent``. ``detail`` says what happened in one line (the receiver's
    error code and message; never a secret). ``attempts`` counts the requests made for it (the
    dispatcher adds up its retries); ``sent_at`` is when the last attempt was made;
    ``retry_after`` is the wait in seconds a ``retry`` asks for, if the channel knows it.
    ``message`` is the message delivered (a merged one carries the originals in ``merged``).
    """

    channel: str
    ok: bool
    status: Status
    detail: str
    attempts: int = 1
    sent_at: datetime | None = None
    retry_after: float | None = None
    message: Message | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of this delivery (the message as its title and count)."""
        return {
            "channel": self.channel,
            "ok": self.ok,
            "status": self.status,
            "detail": self.detail,
            "attempts": self.attempts,
            "sent_at": None if self.sent_at is None else self.sent_at.isoformat(),
            "title": None if self.message is None else self.message.title,
            "count": 0 if self.message is None else self.message.count,
        }


class _Outcome(Exception):
    """Raised inside a send to end it with a status and a detail."""

    def __init__(self, status: Status, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.status: Status = status
        self.detail = detail
        self.retry_after = retry_after


class _Revealed:
    """The secret values read during one send, to scrub from anything it returns."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def __call__(self, secret: Secret) -> str:
        value = secret.reveal()
        if value:
            self.values.extend(v for v in {value, quote(value, safe=""), quote_plus(value)} if v)
        return value

    def scrub(self, text: str) -> str:
        for value in sorted(self.values, key=len, reverse=True):
            text = text.replace(value, "***")
        return text


class ChannelConfig(BaseModel):
    """What every channel has: its name, the language of its messages, the time one request
    may take, and how many requests a minute it may make (20 for the robots, as their
    platforms allow)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ClassVar[str] = ""

    name: Name
    lang: Lang = "zh"
    timeout: float = Field(10.0, gt=0, le=120, description="seconds one request may take")
    per_minute: int = Field(20, ge=1, le=600, description="requests allowed in any minute")

    def requests_for(self, message: Message) -> int:
        """Given a message, return how many requests sending it takes (for the rate limit)."""
        return 1

    def secrets(self) -> dict[str, Secret]:
        """Return the secret references this channel uses, by field name."""
        return {
            name: getattr(self, name)
            for name in type(self).model_fields
            if isinstance(getattr(self, name), Secret)
        }

    def send(self, message: Message, *, now: float | None = None) -> Delivery:
        """Given a message, make one attempt at delivering it and return the Delivery.

        ``now`` is the Unix time to sign with and stamp ``sent_at`` (the current time if
        None). Never raises: every problem is a Delivery with its status and a detail free of
        secrets.
        """
        now = time.time() if now is None else now
        revealed = _Revealed()
        sent_at = datetime.fromtimestamp(now, UTC)
        try:
            status, detail, retry_after = "sent", self._deliver(message, now, revealed), None
        except _Outcome as outcome:
            status, detail, retry_after = outcome.status, outcome.detail, outcome.retry_after
        except SecretError as error:
            status, detail, retry_after = "broken", str(error), None
        except Exception as error:  # a bug must not kill the dispatcher's worker
            status, detail, retry_after = "failed", f"unexpected {type(error).__name__}", None
        return Delivery(
            channel=self.name,
            ok=status == "sent",
            status=status,  # type: ignore[arg-type]
            detail=revealed.scrub(detail),
            attempts=1,
            sent_at=sent_at,
            retry_after=retry_after,
            message=message,
        )

    def _deliver(self, message: Message, now: float, reveal: _Revealed) -> str:
        """Send the message; return the detail of success or raise _Outcome."""
        raise _Outcome("failed", f"channel type {self.kind!r} cannot send")


# --------------------------------------------------------------------------- HTTP


def _where(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 443 if parts.scheme == "https" else 80
    host = parts.hostname or "?"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _causes(error: BaseException) -> Iterable[BaseException]:
    # requests wraps urllib3 which wraps the socket or ssl error, in args, reason or __cause__.
    pending, seen = [error], set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = (*current.args, getattr(current, "reason", None), current.__cause__)
        pending.extend(item for item in linked if isinstance(item, BaseException))


def _find(error: BaseException, kind: type[BaseException]) -> Any:
    return next((cause for cause in _causes(error) if isinstance(cause, kind)), None)


def _ssl_reason(error: ssl.SSLError) -> str:
    verify = getattr(error, "verify_message", None)
    if verify:
        return str(verify)
    return str(error.reason or "handshake failed").replace("_", " ").lower()


def _request_failure(error: Exception, url: str, timeout: float) -> _Outcome:
    """Given the exception of a request that got no answer, return the outcome, its detail
    built from the kind of error (never from its text, which holds the URL)."""
    if isinstance(
        error,
        requests.exceptions.InvalidURL
        | requests.exceptions.MissingSchema
        | requests.exceptions.InvalidSchema,
    ):
        return _Outcome("broken", "the webhook address is not a valid http(s) URL")
    where = _where(url)
    verify = _find(error, ssl.SSLCertVerificationError)
    if verify is not None:
        return _Outcome("broken", f"TLS: certificate of {where} not trusted: {_ssl_reason(verify)}")
    tls = _find(error, ssl.SSLError)
    if tls is not None:
        return _Outcome("retry", f"TLS handshake with {where} failed: {_ssl_reason(tls)}")
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return _Outcome("retry", f"connection to {where} timed out after {timeout:g}s")
    if isinstance(error, requests.exceptions.Timeout) or _find(error, TimeoutError):
        return _Outcome("retry", f"no answer from {where} within {timeout:g}s")
    if _find(error, ConnectionRefusedError) is not None:
        return _Outcome("retry", f"connection to {where} refused")
    if _find(error, socket.gaierror) is not None:
        return _Outcome("retry", f"cannot resolve the host of {where}")
    if isinstance(error, requests.exceptions.ConnectionError):
        cause = _find(error, OSError)
        reason = getattr(cause, "strerror", None) or "connection failed"
        return _Outcome("retry", f"connection to {where} failed: {reason}")
    return _Outcome("failed", f"request to {where} failed: {type(error).__name__}")


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.strip().isdigit() else None


def post_json(
    url: str,
    body: bytes,
    *,
    timeout: float,
    ca_file: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """Given a URL and a JSON body, POST it and return the decoded JSON answer of a 2xx.

    Raises _Outcome: ``retry`` for no answer, HTTP 408, 429 and 5xx; ``broken`` for 401, 403
    and an untrusted certificate; ``failed`` for any other status or an answer not JSON.
    """
    sent_headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "opsctl"}
    sent_headers.update(headers or {})
    try:
        response = requests.post(
            url,
            data=body,
            headers=sent_headers,
            timeout=timeout,
            verify=ca_file or True,
            allow_redirects=False,
        )
    except requests.RequestException as error:
        raise _request_failure(error, url, timeout) from None
    code = response.status_code
    if code == 429:
        raise _Outcome("retry", "HTTP 429 too many requests", _retry_after(response) or 60.0)
    if code == 408 or code >= 500:
        raise _Outcome("retry", f"HTTP {code} from {_where(url)}", _retry_after(response))
    if code in (401, 403):
        raise _Outcome("broken", f"HTTP {code}: {_where(url)} refused the credentials")
    if not 200 <= code < 300:
        raise _Outcome("failed", f"HTTP {code} from {_where(url)}")
    if not response.content.strip():
        return None
    try:
        return response.json()
    except ValueError:
        raise _Outcome(
            "failed", f"HTTP {code} from {_where(url)}: the answer is not JSON"
        ) from None


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _check_base_url(value: str) -> str:
    if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname:
        raise ValueError(f"expected an http(s) URL, got {value!r}")
    return value.rstrip("/")


class _HttpChannel(ChannelConfig):
    ca_file: str | None = Field(
        None, description="CA bundle to verify the receiver's certificate (system CAs if unset)"
    )

    def _post(self, url: str, payload: Any, headers: dict[str, str] | None = None) -> Any:
        return post_json(
            url, _dumps(payload), timeout=self.timeout, ca_file=self.ca_file, headers=headers
        )


def _errcode(answer: Any, key: str) -> tuple[int, str]:
    if not isinstance(answer, dict) or not isinstance(answer.get(key), int):
        raise _Outcome("failed", f"unexpected answer: no {key}")
    message = answer.get("errmsg", answer.get("msg", ""))
    return answer[key], " ".join(str(message).split())[:200]


# --------------------------------------------------------------------------- WeCom


class WeComRobot(_HttpChannel):
    """A WeCom (企业微信) group robot: the webhook key (or the whole webhook URL) as a secret.

    ``msgtype`` markdown (the default) sends the alert as markdown and, when people on duty
    are to be rung, a text message after it with their ``mentioned_mobile_list`` (WeCom
    markdown cannot mention by phone): two requests. If that second message fails after the
    markdown was accepted, the delivery is still ``sent`` (the alert reached the group; sending
    it again would repeat it) and the detail says the mention failed. ``text`` sends one text
    message that rings them itself.
    """

    kind: ClassVar[str] = "wecom"

    type: Literal["wecom"] = "wecom"
    key: SecretRef | None = None
    url: SecretRef | None = Field(None, description="the whole webhook URL, key included")
    base_url: str = "https://qyapi.weixin.qq.com"
    msgtype: Literal["markdown", "text"] = "markdown"

    @field_validator("base_url")
    @classmethod
    def _base(cls, value: str) -> str:
        return _check_base_url(value)

    @model_validator(mode="after")
    def _one_address(self) -> WeComRobot:
        if (self.key is None) == (self.url is None):
            raise ValueError("give exactly one of key and url")
        return self

    def requests_for(self, message: Message) -> int:
        """Two requests for a markdown alert that rings people, else one."""
        return 2 if self.msgtype == "markdown" and message.mobiles() else 1

    def _deliver(self, message: Message, now: float, reveal: _Revealed) -> str:
        if self.url is not None:
            url = reveal(self.url)
        else:
            url = f"{self.base_url}/cgi-bin/webhook/send?key={quote(reveal(self.key), safe='')}"
        first, *rest = wecom_payloads(message, self.msgtype, self.lang)
        self._check(self._post(url, first))
        for payload in rest:
            try:
                self._check(self._post(url, payload))
            except _Outcome as outcome:
                return f"sent; the mention was not delivered: {outcome.detail}"
        return "sent"

    @staticmethod
    def _check(answer: Any) -> None:
        code, text = _errcode(answer, "errcode")
        if code == 0:
            return
        if code == 45009:
            raise _Outcome("retry", f"errcode 45009 rate limited: {text}", RATE_LIMIT_WAIT)
        if code == 93000:
            raise _Outcome("broken", f"errcode 93000 invalid webhook key: {text}")
        raise _Outcome("failed", f"errcode {code}: {text}")


# --------------------------------------------------------------------------- DingTalk


def dingtalk_sign(timestamp_ms: int, secret: str) -> str:
    """Given the timestamp in milliseconds and the robot's signing secret, return the
    URL-encoded ``sign``: ``urlencode(base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")))``."""
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return quote_plus(base64.b64encode(digest).decode("ascii"))


class DingTalkRobot(_HttpChannel):
    """A DingTalk (钉钉) custom robot: the access token (or the whole webhook URL) and, for a
    robot secured by signature (加签), its signing secret, as secrets. Sends markdown that
    rings the people on duty through ``atMobiles`` (and everyone if ``at_all``)."""

    kind: ClassVar[str] = "dingtalk"

    type: Literal["dingtalk"] = "dingtalk"
    access_token: SecretRef | None = None
    url: SecretRef | None = Field(None, description="the whole webhook URL, token included")
    secret: SecretRef | None = Field(None, description="the signing secret (SEC...)")
    base_url: str = "https://oapi.dingtalk.com"
    at_all: bool = False

    @field_validator("base_url")
    @classmethod
    def _base(cls, value: str) -> str:
        return _check_base_url(value)

    @model_validator(mode="after")
    def _one_address(self) -> DingTalkRobot:
        if (self.access_token is None) == (self.url is None):
            raise ValueError("give exactly one of access_token and url")
        return self

    def _deliver(self, message: Message, now: float, reveal: _Revealed) -> str:
        if self.url is not None:
            url = reveal(self.url)
        else:
            token = quote(reveal(self.access_token), safe="")
            url = f"{self.base_url}/robot/send?access_token={token}"
        if self.secret is not None:
            timestamp = int(now * 1000)
            url += f"&timestamp={timestamp}&sign={dingtalk_sign(timestamp, reveal(self.secret))}"
        answer = self._post(url, dingtalk_payload(message, self.lang, self.at_all))
        code, text = _errcode(answer, "errcode")
        if code == 0:
            return "sent"
        if code == 130101:
            raise _Outcome("retry", f"errcode 130101 sending too fast: {text}", RATE_LIMIT_WAIT)
        if code == 310000:
            raise _Outcome("broken", f"errcode 310000 signature, keyword or IP refused: {text}")
        raise _Outcome("failed", f"errcode {code}: {text}")


# --------------------------------------------------------------------------- Feishu


def feishu_sign(timestamp: int, secret: str) -> str:
    """Given the timestamp in seconds and the bot's signing secret, return the ``sign``:
    ``base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b""))``."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


class FeishuBot(_HttpChannel):
    """A Feishu (飞书) custom bot: the hook id (or the whole webhook URL) and, for a bot secured
    by signature (签名校验), its signing secret, as secrets. Sends a ``post`` (rich text) or a
    ``text`` message; Feishu cannot mention by phone, so the people on duty are named only."""

    kind: ClassVar[str] = "feishu"

    type: Literal["feishu"] = "feishu"
    hook: SecretRef | None = Field(None, description="the hook id, the last part of the URL")
    url: SecretRef | None = Field(None, description="the whole webhook URL")
    secret: SecretRef | None = Field(None, description="the signing secret")
    base_url: str = "https://open.feishu.cn"
    msgtype: Literal["post", "text"] = "post"

    @field_validator("base_url")
    @classmethod
    def _base(cls, value: str) -> str:
        return _check_base_url(value)

    @model_validator(mode="after")
    def _one_address(self) -> FeishuBot:
        if (self.hook is None) == (self.url is None):
            raise ValueError("give exactly one of hook and url")
        return self

    def _deliver(self, message: Message, now: float, reveal: _Revealed) -> str:
        if self.url is not None:
            url = reveal(self.url)
        else:
            url = f"{self.base_url}/open-apis/bot/v2/hook/{quote(reveal(self.hook), safe='')}"
        payload: dict[str, Any] = {}
        if self.secret is not None:
            timestamp = int(now)
            payload = {
                "timestamp": str(timestamp),
                "sign": feishu_sign(timestamp, reveal(self.secret)),
            }
        payload.update(feishu_payload(message, self.msgtype, self.lang))
        answer = self._post(url, payload)
        key = "code" if isinstance(answer, dict) and "code" in answer else "StatusCode"
        code, text = _errcode(answer, key)
        if code == 0:
            return "sent"
        if code in (9499, 11232):
            raise _Outcome("retry", f"code {code} rate limited: {text}", RATE_LIMIT_WAIT)
        if code == 19021:
            raise _Outcome("broken", f"code 19021 signature refused: {text}")
        raise _Outcome("failed", f"code {code}: {text}")


# --------------------------------------------------------------------------- generic webhook


def webhook_signature(secret: str, body: bytes) -> str:
    """Given the shared secret and the exact body sent, return the ``X-Opsctl-Signature``
    header's value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class WebhookChannel(_HttpChannel):
    """A generic JSON webhook: POSTs the message as JSON (see ``json_payload``) with
    ``X-Opsctl-Timestamp`` (Unix seconds) and, with a ``secret``, ``X-Opsctl-Signature:
    sha256=<hex HMAC-SHA256(secret, body)>``. The body holds ``sent_at`` too, so the signature
    covers the time and a receiver can refuse a replay. Any 2xx is success; 401 and 403 mean
    the receiver refused the signature (broken)."""

    kind: ClassVar[str] = "webhook"

    type: Literal["webhook"] = "webhook"
    url: str
    secret: SecretRef | None = Field(None, description="shared secret of the HMAC signature")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_base_url(value)

    def _deliver(self, message: Message, now: float, reveal: _Revealed) -> str:
        body = _dumps(json_payload(message, datetime.fromtimestamp(now, UTC), self.lang))
        headers = {"X-Opsctl-Timestamp": str(int(now))}
        if self.secret is not None:
            headers["X-Opsctl-Signature"] = webhook_signature(reveal(self.secret), body)
        post_json(self.url, body, timeout=self.timeout, ca_file=self.ca_file, headers=headers)
        return "sent"


# --------------------------------------------------------------------------- mail


class EmailChannel(ChannelConfig):
    """E-mail over SMTP: HTML with a plain-text alternative. STARTTLS is on by default and the
    server's certificate is verified (against ``ca_file`` if given, else the system CAs); a
    password is only ever sent over TLS. ``from`` is the sender, ``to`` the recipients."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    kind: ClassVar[str] = "email"

    type: Literal["email"] = "email"
    host: str
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    ca_file: str | None = None
    user: str | None = None
    password: SecretRef | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _login(self) -> EmailChannel:
        if (self.user is None) != (self.password is None):
            raise ValueError("give both user and password, or neither")
        if self.password is not None and not self.starttls:
            raise ValueError("a password is sent only over TLS: set starttls: true")
        return self

    def build(self, message: Message, now: float) -> EmailMessage:
        """Given a message and the Unix time, return the mail: subject, from, to, date,
        message id, the plain text and its HTML alternative."""
        subject, text, html = email_parts(message, self.lang)
        mail = EmailMessage()
        mail["Subject"] = subject
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.to)
        mail["Date"] = format_datetime(datetime.fromtimestamp(now, UTC))
        mail["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or "opsctl")
        mail.set_content(text)
        mail.add_alternative(html, subtype="html")
        return mail

    def _deliver(self, message: Message, now: float, reveal: _Revealed) -> str:
        where = f"{self.host}:{self.port}"
        mail = self.build(message, now)
        password = reveal(self.password) if self.password is not None else None
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                if self.starttls:
                    if not smtp.has_extn("starttls"):
                        raise _Outcome("broken", f"{where} does not offer STARTTLS")
                    smtp.starttls(context=ssl.create_default_context(cafile=self.ca_file))
                    smtp.ehlo()
                if self.user is not None and password is not None:
                    smtp.login(self.user, password)
                refused = smtp.send_message(mail)
        except smtplib.SMTPAuthenticationError as error:
            raise _Outcome(
                "broken", f"{where} refused the login of {self.user}: {_smtp(error)}"
            ) from None
        except smtplib.SMTPRecipientsRefused as error:
            raise _Outcome(
                "failed", "every recipient was refused: " + _refused(error.recipients)
            ) from None
        except smtplib.SMTPResponseException as error:
            status: Status = "retry" if 400 <= error.smtp_code < 500 else "failed"
            raise _Outcome(status, f"{where} answered {_smtp(error)}") from None
        except smtplib.SMTPNotSupportedError:
            raise _Outcome("broken", f"{where} does not support login") from None
        except smtplib.SMTPServerDisconnected:
            raise _Outcome("retry", f"{where} closed the connection") from None
        except ssl.SSLCertVerificationError as error:
            raise _Outcome(
                "broken", f"TLS: certificate of {where} not trusted: {_ssl_reason(error)}"
            ) from None
        except ssl.SSLError as error:
            raise _Outcome(
                "retry", f"TLS handshake with {where} failed: {_ssl_reason(error)}"
            ) from None
        except ConnectionRefusedError:
            raise _Outcome("retry", f"connection to {where} refused") from None
        except TimeoutError:
            raise _Outcome("retry", f"no answer from {where} within {self.timeout:g}s") from None
        except socket.gaierror:
            raise _Outcome("retry", f"cannot resolve {self.host}") from None
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise _Outcome("retry", f"connection to {where} failed: {reason}") from None
        if refused:
            return "sent; refused: " + _refused(refused)
        return "sent"


def _smtp(error: smtplib.SMTPResponseException) -> str:
    text = error.smtp_error
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{error.smtp_code} {' '.join(text.split())}"[:200]


def _refused(recipients: dict[str, tuple[int, bytes]]) -> str:
    return ", ".join(
        f"{address} ({code} {reply.decode('utf-8', 'replace').strip()})"
        for address, (code, reply) in recipients.items()
    )


# --------------------------------------------------------------------------- the union

Channel = Annotated[
    WeComRobot | DingTalkRobot | FeishuBot | EmailChannel | WebhookChannel,
    Field(discriminator="type"),
]

_ADAPTER: TypeAdapter[Any] = TypeAdapter(Channel)


def parse_channel(data: Any) -> ChannelConfig:
    """Given a channel's settings as a dict (from YAML), return its model, chosen by ``type``
    (wecom, dingtalk, feishu, email, webhook). Raises pydantic.ValidationError."""
    return _ADAPTER.validate_python(data)


def preview(channel: ChannelConfig, message: Message) -> list[Any]:
    """Given a channel and a message, return what sending it would POST (the JSON bodies,
    unsigned) or mail (subject, text, HTML), sending nothing."""
    if isinstance(channel, WeComRobot):
        return list(wecom_payloads(message, channel.msgtype, channel.lang))
    if isinstance(channel, DingTalkRobot):
        return [dingtalk_payload(message, channel.lang, channel.at_all)]
    if isinstance(channel, FeishuBot):
        return [feishu_payload(message, channel.msgtype, channel.lang)]
    if isinstance(channel, EmailChannel):
        return list(email_parts(message, channel.lang))
    return [json_payload(message, datetime.now(UTC), channel.lang)]


__all__ = [
    "RATE_LIMIT_WAIT",
    "Channel",
    "ChannelConfig",
    "DingTalkRobot",
    "Delivery",
    "EmailChannel",
    "FeishuBot",
    "Status",
    "WeComRobot",
    "WebhookChannel",
    "dingtalk_sign",
    "feishu_sign",
    "parse_channel",
    "post_json",
    "preview",
    "webhook_signature",
]
