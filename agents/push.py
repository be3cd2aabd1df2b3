"""Sending one batch to the server, what its answer means, and the backoff between tries.

``POST {server}/api/v1/agent/push`` with ``Authorization: Bearer TOKEN`` and the batch as
JSON. The answer decides the batch's fate:

- 2xx: delivered (the body says whether the server had stored it before: ``duplicate``).
- 401, 403: kept; the token is wrong and an operator must fix it (logged as an error).
- 408, 429, 5xx, no connection, a timeout: kept, and sent again after a backoff.
- any other 4xx (413 too large, 422 invalid): the batch can never succeed; it is dropped
  and counted as ``rejected``.

TLS certificates and host names are verified, against ``ca_bundle`` when one is given (a
private CA).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents import __version__
from agents.config import ConfigError, Token

PUSH_PATH = "/api/v1/agent/push"

DELIVERED = "delivered"
REJECTED = "rejected"
UNAUTHORIZED = "unauthorized"
RETRY = "retry"

#: 4xx answers that are worth trying again.
RETRYABLE_4XX = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class Answer:
    """What became of one push: ``outcome`` (``delivered``, ``rejected``, ``unauthorized``
    or ``retry``), the HTTP status (None without an answer), the server's message or the
    reason there was no answer, and for a delivered batch whether it was a duplicate."""

    outcome: str
    status: int | None
    message: str
    duplicate: bool = False


def outcome_of(status: int) -> str:
    """Given an HTTP status, return what it means for the batch that got it."""
    if 200 <= status < 300:
        return DELIVERED
    if status in (401, 403):
        return UNAUTHORIZED
    if 400 <= status < 500 and status not in RETRYABLE_4XX:
        return REJECTED
    return RETRY


def server_message(status: int, body: bytes) -> str:
    """Given an error answer's status and body, return the server's message: ``detail``
    and the fields it names for a Problem body, else the start of the text."""
    try:
        problem = json.loads(body)
    except ValueError:
        problem = None
    if isinstance(problem, dict) and "detail" in problem:
        message = str(problem["detail"])
        fields = problem.get("fields") or []
        if isinstance(fields, list) and fields:
            shown = "; ".join(_field_text(item) for item in fields[:3])
            more = f" (and {len(fields) - 3} more)" if len(fields) > 3 else ""
            message = f"{message}: {shown}{more}"
        return message[:500]
    text = body.decode("utf-8", errors="replace").strip()
    return " ".join(text.split())[:200] or f"HTTP {status} with an empty body"


def _field_text(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = item.get("loc", item.get("field", ""))
    if isinstance(where, list | tuple):
        where = ".".join(str(part) for part in where)
    what = item.get("msg", item.get("message", ""))
    return f"{where}: {what}" if where and what else json.dumps(item, ensure_ascii=False)


class Pusher:
    """Pushes batches to one server over one kept-alive connection (http.client: the
    agent stays small without requests and its dependencies).

    ``token`` is read before every push (a token file fixed by an operator is used at
    once); ``timeout`` bounds connecting and each read, in seconds; ``ca_bundle`` is a PEM
    file of CA certificates to verify the server with instead of the system's. The
    connection is direct: proxy variables are not used.
    """

    def __init__(
        self, server: str, token: Token, timeout: float = 10.0, ca_bundle: str | None = None
    ) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(server)
        self.url = server.rstrip("/") + PUSH_PATH
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port
        self.path = parts.path.rstrip("/") + PUSH_PATH
        self.token = token
        self.timeout = timeout
        self.ca_bundle = ca_bundle
        self._context: Any = None
        self._connection: Any = None

    def _connect(self) -> Any:
        import http.client

        if not self.https:
            return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        if self._context is None:
            import ssl

            # Verifies the certificate chain and the host name; a given bundle replaces the
            # system's CAs.
            self._context = ssl.create_default_context(cafile=self.ca_bundle)
        return http.client.HTTPSConnection(
            self.host, self.port, timeout=self.timeout, context=self._context
        )

    def push(self, body: bytes) -> Answer:
        """Send one batch (its JSON body) and return what became of it. Never raises."""
        try:
            token = self.token.read()
        except ConfigError as error:
            return Answer(UNAUTHORIZED, None, str(error))
        import http.client
        import ssl

        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "User-Agent": f"opsctl-agent/{__version__}",
        }
        where = f"{self.host}:{self.port or (443 if self.https else 80)}"
        for _ in range(2):
            reused = self._connection is not None
            if self._connection is None:
                self._connection = self._connect()
            try:
                self._connection.request("POST", self.path, body=body, headers=headers)
                response = self._connection.getresponse()
                content = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                self.close()
                if reused:
                    continue  # the server closed the idle kept-alive connection: reconnect
                return Answer(RETRY, None, f"connection to {where} lost: {e}")
            except TimeoutError:
                self.close()
                return Answer(RETRY, None, f"no answer from {where} within {self.timeout:g}s")
            except ssl.SSLCertVerificationError as error:
                self.close()
                hint = "" if self.ca_bundle else "; for a private CA set ca_bundle:"
                reason = f"TLS: {where}: certificate verify failed: {error.verify_message}{hint}"
                return Answer(RETRY, None, reason)
            except ssl.SSLError as error:
                self.close()
                return Answer(RETRY, None, f"TLS: {where}: {error.reason or error}")
            except OSError as error:
                self.close()
                return Answer(RETRY, None, f"cannot connect to {where}: {error.strerror or error}")
            except http.client.HTTPException as error:
                self.close()
                return Answer(RETRY, None, f"bad answer from {where}: {type(error).__name__}")
            if response.will_close:
                self.close()
            return answer_for(response.status, content, response.getheader("Location"))
        return Answer(RETRY, None, f"connection to {where} lost twice")

    def close(self) -> None:
        """Close the kept-alive connection."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def answer_for(status: int, content: bytes, location: str | None = None) -> Answer:
    """Given an answer's status, body and ``Location`` header, return the Answer."""
    outcome = outcome_of(status)
    if outcome == DELIVERED:
        try:
            accepted = json.loads(content)
        except ValueError:
            accepted = {}
        duplicate = isinstance(accepted, dict) and accepted.get("duplicate") is True
        return Answer(DELIVERED, status, "", duplicate)
    if 300 <= status < 400:
        where = f" to {location}" if location else ""
        return Answer(RETRY, status, f"redirected{where}; set server: to the address it names")
    return Answer(outcome, status, server_message(status, content))


class Backoff:
    """Exponential backoff with full jitter: after the n-th failure in a row, wait a random
    time between 0 and ``min(cap, base * 2**(n-1))`` seconds. ``reset`` after a success.
    ``rng`` (a ``random.Random``) makes the delays reproducible in tests."""

    def __init__(
        self, base: float = 1.0, cap: float = 300.0, rng: random.Random | None = None
    ) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self._uniform: Callable[[float, float], float] = (rng or random.Random()).uniform

    def ceiling(self) -> float:
        """The longest the next delay may be."""
        return min(self.cap, self.base * 2.0 ** min(self.failures, 64))

    def next_delay(self) -> float:
        """Count one more failure and return the seconds to wait before the next try."""
        ceiling = self.ceiling()
        self.failures += 1
        return self._uniform(0.0, ceiling)

    def reset(self) -> None:
        """Forget the failures (after a success)."""
        self.failures = 0
