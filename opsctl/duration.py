"""Durations as people write them in an inventory or on the command line: ``30s``, ``5m``, ``7d``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

DURATION_HINT = 'a duration like "30s", "5m", "2h", "7d" or "1h30m"'


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Given ``30s``, ``5m``, ``1h30m``, ``7d`` or a number of seconds, return a timedelta.

    Raise ValueError if the text is not a duration.
    """
    if isinstance(text, timedelta):
        return text
    if isinstance(text, bool):
        raise ValueError(f"expected {DURATION_HINT}, got {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"expected {DURATION_HINT}, got a negative number")
        return timedelta(seconds=text)
    raw = str(text).strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", raw):
        return timedelta(seconds=float(raw))
    position, seconds = 0, 0.0
    for match in _PART.finditer(raw):
        if raw[position : match.start()].strip():
            break
        seconds += float(match.group(1)) * _SECONDS[match.group(2).lower()]
        position = match.end()
    if position == 0 or raw[position:].strip():
        raise ValueError(f"expected {DURATION_HINT}, got {text!r}")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta | float) -> str:
    """Given a timedelta or seconds, return it as ``2d 3h``, ``5m 10s`` or ``850ms``."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return " ".join(parts[:2])


def _validate(value: Any) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as error:
        raise PydanticCustomError("duration", "{reason}", {"reason": str(error)}) from None


#: A pydantic field type: a duration written as text, held as a timedelta.
Duration = Annotated[
    timedelta, BeforeValidator(_validate), PlainSerializer(format_duration, return_type=str)
]
