"""Pydantic field types shared by the inventory and the settings it holds (channels,
checks): ``Name`` and secret references (``SecretRef`` → ``Secret``)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

# --------------------------------------------------------------------------- secrets

_SECRET = re.compile(r"^(env|file):(.+)$")


class SecretError(Exception):
    """Raised when a secret reference cannot be resolved."""


@dataclass(frozen=True, slots=True)
class Secret:
    """A reference to a secret (``env:NAME`` or ``file:/path``); the value is read only by
    ``reveal()`` and never appears in ``str``/``repr``/JSON.
    """

    reference: str

    @property
    def scheme(self) -> str:
        return self.reference.split(":", 1)[0]

    @property
    def target(self) -> str:
        return self.reference.split(":", 1)[1]

    def problem(self) -> str | None:
        """Return why this secret cannot be resolved now, or None if it can (value unread)."""
        if self.scheme == "env":
            return (
                None
                if self.target in os.environ
                else f"environment variable {self.target} is not set"
            )
        path = Path(self.target).expanduser()
        if not path.is_file():
            return f"secret file {path} does not exist"
        if not os.access(path, os.R_OK):
            return f"secret file {path} is not readable"
        return None

    def reveal(self) -> str:
        """Return the secret's value. Raise SecretError naming the reference if unavailable."""
        problem = self.problem()
        if problem:
            raise SecretError(f"secret {self.reference}: {problem}")
        if self.scheme == "env":
            return os.environ[self.target]
        return Path(self.target).expanduser().read_text(encoding="utf-8").rstrip("\r\n")

    def __str__(self) -> str:
        return self.reference

    def __repr__(self) -> str:
        return f"Secret({self.reference!r})"


def _secret(value: Any) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str) and _SECRET.match(value.strip()):
        return Secret(value.strip())
    # Never echo the value: it may be a password typed in by mistake.
    raise PydanticCustomError(
        "secret",
        'expected a secret reference like "env:NAME" or "file:/path" (plain values are not allowed)',
    )


SecretRef = Annotated[Any, AfterValidator(_secret)]

# --------------------------------------------------------------------------- models

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise PydanticCustomError(
            "name",
            "expected a name of letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return value


Name = Annotated[str, AfterValidator(_check_name)]
