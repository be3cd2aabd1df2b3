"""The interface_log check: is data still flowing to the national system, to each dispenser
vendor and to each directly connected machine (R-11)?

Each run reads the lines added to a log source since the previous run (``LogReader``), parses
them with a line format, and reports per target (the system a line's transmission went to):
lines, failures, success rate, records moved, latency p50/p95/max, the commonest errors and
the last time the target was seen. A target with no line for ``silence`` during its active
hours is CRITICAL: the classic "the national upload quietly stopped".

Line formats:

- ``kv`` (default): a timestamp at the start of the line (``2026-11-01 08:00:01.123``), then
  ``key=value`` words anywhere after it (``target=NATIONAL records=50 status=OK
  latency_ms=231``); ``error=`` takes the rest of the line. A key counts where a space or a
  tab comes before it; the first occurrence in a line wins.
- ``json``: one JSON object per line; ``fields`` maps ts, target, status, latency_ms,
  records and error to the line's own field names (``a.b`` reaches into nested objects).
- ``regex``: ``pattern``, a regular expression with named groups ``ts`` and ``status``
  (required) and ``target``, ``latency_ms``, ``records``, ``error``. A ``format`` that is
  not a preset name is taken as such a pattern.

Lines without a timestamp or a status are counted as unparsed; a line without a target is
counted for the log source's own name. Timestamps are ``YYYY-MM-DD hh:mm:ss`` (``T`` or
``/`` also, a fraction and a zone allowed) or epoch seconds/milliseconds; a time without a
zone is in ``timezone``.

The ``kv`` format is scanned with numpy when it is installed: whole blocks at once, no
Python code per line (several times faster, see ``bench/interface_log.py``); the pure Python
scanner gives the same figures, and takes over for a block the fast one cannot vouch for
(a number longer than eight digits, a decimal latency, a value longer than 32 bytes or with a
control character in it, a timestamp with nine digits of fraction).

Personal data in excerpts and error messages is masked (``opsctl.masking.mask`` and
``mask_patterns``) before anything is put in the result.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

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
    evaluate,
    percent_range,
    utc_now,
)
from opsctl.duration import Duration, format_duration
from opsctl.masking import mask

PRESETS = ("kv", "json", "regex")
FIELDS = ("ts", "target", "status", "latency_ms", "records", "error")
#: Distinct error messages counted per target; further ones are counted as "other errors".
MAX_ERROR_KINDS = 1000
#: Distinct latency values kept per target before they are rounded to 3 significant digits
#: (percentiles then within 0.5 %): the histogram's memory stays bounded on any input.
MAX_LATENCY_VALUES = 50_000
#: Characters of a failed line kept in an excerpt.
EXCERPT_CHARS = 500
#: Bytes read at once: large enough that the fast scanner's work per block is small.
BLOCK_BYTES = 2 * 1024**2
#: Share of the time budget spent reading; the rest is left to judge and return.
READ_SHARE = 0.8
OTHER_ERRORS = "(other errors)"

# --------------------------------------------------------------------------- configuration

_ACTIVE_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _window(text: str) -> tuple[int, int]:
    """Given ``"07:00-22:00"``, return the (start, end) minutes of the day. Raise ValueError."""
    match = _ACTIVE_HOURS.match(text)
    if not match:
        raise ValueError(f'expected hours like "07:00-22:00", got {text!r}')
    start_hour, start_minute, end_hour, end_minute = (int(g) for g in match.groups())
    if start_hour > 24 or end_hour > 24 or start_minute > 59 or end_minute > 59:
        raise ValueError(f"not a time of day in {text!r}")
    start, end = start_hour * 60 + start_minute, end_hour * 60 + end_minute
    if start == end or max(start, end) > 24 * 60:
        raise ValueError(f"{text!r} is not a window of the day")
    return start, end


class InterfaceLogConfig(CheckConfig):
    """Configuration of the ``interface_log`` check."""

    format: str = Field(
        "kv",
        description='Line format: "kv" (timestamp then key=value words), "json" (JSON lines, '
        'see fields), "regex" (see pattern), or a regular expression with named groups itself.',
    )
    pattern: str | None = Field(
        None,
        description="For format regex: a regular expression with named groups ts and status "
        "(required), target, latency_ms, records, error.",
    )
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="For format json: the field name of each of ts, target, status, "
        'latency_ms, records, error ({ts: "time", target: "dest"}); unnamed ones keep their own '
        'name. "a.b" reaches into nested objects.',
    )
    ok_status: list[str] = Field(
        ["OK", "SUCCESS", "200", "0"],
        description="Status values that mean a transmission succeeded (compared exactly).",
    )
    success_warn: RangeField | None = Field(
        Range.parse("99%:"), description="Warning on the success rate (%) of a target."
    )
    success_crit: RangeField | None = Field(
        Range.parse("95%:"), description="Critical on the success rate (%) of a target."
    )
    latency_warn: RangeField | None = Field(
        None, description='Warning on the p95 latency of a target, in ms ("~:800" or "800").'
    )
    latency_crit: RangeField | None = Field(
        None, description="Critical on the p95 latency of a target, in ms."
    )
    silence: Duration | None = Field(
        timedelta(minutes=30),
        description="Critical when a target has had no line for this long within its active "
        "hours; null turns it off.",
    )
    active_hours: str | None = Field(
        None,
        description='Hours of the day silence is judged in, like "07:00-22:00" (may wrap past '
        "midnight); null: all day.",
    )
    timezone: str = Field(
        "Asia/Shanghai",
        description="Time zone of the active hours and of timestamps written without one.",
    )
    targets: list[str] = Field(
        default_factory=list,
        description="Targets that must be seen; one with no line at all counts as silent.",
    )
    mask_patterns: list[str] = Field(
        default_factory=list,
        description="Regular expressions whose matches are masked in excerpts and errors, in "
        "addition to ID card, mobile and bank card numbers.",
    )
    excerpts: int = Field(5, ge=0, le=100, description="Failed lines kept per target.")
    start_at_end: bool = Field(
        True,
        description="On the first run, start at the end of the existing files (true) or read "
        "them whole (false).",
    )
    max_read_mb: int = Field(
        512, ge=1, description="Megabytes read at most in one run; the rest waits for the next."
    )

    _percent = field_validator("success_warn", "success_crit")(percent_range)

    @field_validator("latency_warn", "latency_crit")
    @classmethod
    def _milliseconds(cls, value: Range | None) -> Range | None:
        return None if value is None else value.to_unit("ms")

    @field_validator("active_hours")
    @classmethod
    def _active_hours(cls, value: str | None) -> str | None:
        if value is not None:
            _window(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError('expected an IANA time zone like "Asia/Shanghai"') from None
        return value

    @field_validator("mask_patterns")
    @classmethod
    def _mask_patterns(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                re.compile(text)
            except re.error as error:
                raise ValueError(f"mask pattern {text!r} does not compile: {error}") from None
        return value

    @model_validator(mode="after")
    def _format(self) -> InterfaceLogConfig:
        if self.fields and self.format != "json":
            raise ValueError("fields is for format json")
        unknown = sorted(set(self.fields) - set(FIELDS))
        if unknown:
            raise ValueError(f"fields: unknown {', '.join(unknown)} (known: {', '.join(FIELDS)})")
        if self.format == "regex" and not self.pattern:
            raise ValueError("format regex needs a pattern")
        if self.pattern is not None and self.format != "regex":
            raise ValueError('pattern is for format regex (or give the regex as "format")')
        if self.format == "regex" or self.format not in PRESETS:
            compile_pattern(self.pattern if self.format == "regex" else self.format)
        return self


def compile_pattern(text: str | None) -> re.Pattern[str]:
    """Given a user's line pattern, return it compiled. Raise ValueError if it does not
    compile, or lacks a named group ts or status, or has groups with unknown names."""
    if not text:
        raise ValueError("the pattern is empty")
    try:
        compiled = re.compile(text)
    except re.error as error:
        raise ValueError(f"the pattern does not compile: {error}") from None
    missing = [name for name in ("ts", "status") if name not in compiled.groupindex]
    if missing:
        raise ValueError(
            f"the pattern has no named group {' or '.join(missing)} (write (?P<ts>...) and "
            "(?P<status>...))"
        )
    unknown = sorted(set(compiled.groupindex) - set(FIELDS))
    if unknown:
        raise ValueError(
            f"the pattern has groups {', '.join(unknown)}; known are {', '.join(FIELDS)}"
        )
    return compiled


# --------------------------------------------------------------------------- time

_ISO_TIME = re.compile(
    r"^\s*(\d{4})[-/](\d{1,2})[-/](\d{1,2})[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?\s*$"
)
_EPOCH = re.compile(r"^\s*(\d{9,13})(?:\.(\d+))?\s*$")


class Clock:
    """Parses the timestamps of one log source, with caches: a scan asks for the hour of
    every line, and lines of one hour share it."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._hours: dict[Any, str | None] = {}

    def parse(self, text: str) -> datetime | None:
        """Given a timestamp, return it as an aware UTC datetime, or None if unreadable."""
        match = _ISO_TIME.match(text)
        if match:
            year, month, day, hour, minute, second, fraction, zone = match.groups()
            micro = int((fraction or "0")[:6].ljust(6, "0"))
            try:
                if zone is None:
                    zone_info: Any = self.zone
                elif zone == "Z":
                    zone_info = UTC
                else:
                    digits = zone[1:].replace(":", "")
                    offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
                    zone_info = timezone(-offset if zone[0] == "-" else offset)
                when = datetime(
                    int(year),
                    int(month),
                    int(day),
                    int(hour),
                    int(minute),
                    int(second or 0),
                    micro,
                    tzinfo=zone_info,
                )
            except ValueError:
                return None
            return when.astimezone(UTC)
        match = _EPOCH.match(text)
        if match:
            whole, fraction = match.groups()
            seconds = float(f"{whole}.{fraction or 0}")
            if len(whole) >= 12:
                seconds /= 1000
            try:
                return datetime.fromtimestamp(seconds, UTC)
            except (OverflowError, OSError, ValueError):
                return None
        return None

    def hour(self, text: str) -> str | None:
        """Given a timestamp, return its hour in UTC as ``2026-11-01T00``, or None."""
        # A timestamp without a zone: its first 13 characters are its hour.
        naive = (
            len(text) >= 16
            and text[13] == ":"
            and text[4] in "-/"
            and not text[19:].strip(".,0123456789")
        )
        key: Any = text[:13] if naive else text
        found = self._hours.get(key, False)
        if found is False:
            when = self.parse(text)
            found = None if when is None else when.strftime("%Y-%m-%dT%H")
            if len(self._hours) > 100_000:
                self._hours.clear()
            self._hours[key] = found
        return found  # type: ignore[return-value]


def active_time(
    start: datetime, end: datetime, window: tuple[int, int] | None, zone: ZoneInfo
) -> timedelta:
    """Given two aware times, active hours (minutes of the day, or None: all day) and their
    zone, return how much of [start, end] lies within the active hours."""
    if end <= start:
        return timedelta(0)
    if window is None:
        return end - start
    begin, finish = window
    total = timedelta(0)
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date()
    while day <= last:
        midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
        opens = midnight + timedelta(minutes=begin)
        closes = midnight + timedelta(minutes=finish if finish > begin else finish + 24 * 60)
        overlap = min(end, closes) - max(start, opens)
        if overlap > timedelta(0):
            total += overlap
        day += timedelta(days=1)
    return total


def in_window(moment: datetime, window: tuple[int, int] | None, zone: ZoneInfo) -> bool:
    """Return True if the aware time falls within the active hours (None: always)."""
    if window is None:
        return True
    local = moment.astimezone(zone)
    minute = local.hour * 60 + local.minute
    begin, finish = window
    return begin <= minute < finish if begin < finish else minute >= begin or minute < finish


# --------------------------------------------------------------------------- statistics


@dataclass
class TargetStats:
    """What one run saw of one target."""

    lines: int = 0
    failed: int = 0
    records: int = 0
    latency_count: int = 0
    latency_sum: float = 0.0
    latency_max: float | None = None
    histogram: Counter = field(default_factory=Counter)
    rounded: bool = False
    errors: Counter = field(default_factory=Counter)
    excerpts: deque = field(default_factory=deque)
    last_seen: datetime | None = None
    # UTC hour → [lines, failed, records, latency sum]
    hourly: dict[str, list[float]] = field(default_factory=dict)

    def add_latencies(self, values: Mapping[float, int]) -> None:
        for value, count in values.items():
            self.histogram[value] += count
        if len(self.histogram) > MAX_LATENCY_VALUES:
            self.rounded = True
            rounded: Counter = Counter()
            for value, count in self.histogram.items():
                rounded[_three_digits(value)] += count
            self.histogram = rounded

    def add_error(self, message: str, count: int = 1) -> None:
        if message in self.errors or len(self.errors) < MAX_ERROR_KINDS:
            self.errors[message] += count
        else:
            self.errors[OTHER_ERRORS] += count

    def add_hour(self, hour: str, lines: int, failed: int, records: int, latency: float) -> None:
        row = self.hourly.get(hour)
        if row is None:
            self.hourly[hour] = [lines, failed, records, latency]
        else:
            row[0] += lines
            row[1] += failed
            row[2] += records
            row[3] += latency

    def seen(self, when: datetime | None) -> None:
        if when is not None and (self.last_seen is None or when > self.last_seen):
            self.last_seen = when

    def percentile(self, share: float) -> float | None:
        """The smallest value with at least ``share`` of the values at or below it."""
        total = sum(self.histogram.values())
        if not total:
            return None
        rank = max(1, math.ceil(share * total))
        running = 0
        for value in sorted(self.histogram):
            running += self.histogram[value]
            if running >= rank:
                return value
        return None  # pragma: no cover - running reaches total


def _time_order(ts: str) -> str:
    """A key that orders the timestamps of one hour: past the hour (``MM:SS.fff``) for an
    ISO time, else the text itself (epoch seconds of one length)."""
    return ts[14:] if len(ts) > 16 and ts[13] == ":" else ts


def _three_digits(value: float) -> float:
    if value <= 0:
        return value
    digits = 3 - int(math.floor(math.log10(value))) - 1
    return round(value, digits)


@dataclass
class Scan:
    """The statistics of one run, built block by block by a scanner."""

    default_target: str
    clock: Clock
    ok_status: frozenset[str]
    excerpts: int
    encoding: str
    targets: dict[str, TargetStats] = field(default_factory=dict)
    unparsed: int = 0
    parsed: int = 0

    def target(self, name: str) -> TargetStats:
        stats = self.targets.get(name)
        if stats is None:
            stats = self.targets[name] = TargetStats(excerpts=deque(maxlen=self.excerpts))
        return stats


# --------------------------------------------------------------------------- scanners


class PythonScanner:
    """Parses a block line by line in Python: every format, and the reference for the fast
    kv scanner."""

    def __init__(self, scan: Scan, parse: Callable[[bytes], tuple | None]) -> None:
        self.scan = scan
        self.parse = parse

    def finish(self) -> None:
        """Nothing is held back: the statistics are complete after each block."""

    def feed(self, block: bytes) -> None:
        scan = self.scan
        clock = scan.clock
        ok_status = scan.ok_status
        # (target, UTC hour) → [lines, failed, records, latency sum, latest timestamp]
        hours: dict[tuple[str, str | None], list[Any]] = {}
        latencies: dict[str, Counter] = {}
        for line in block.split(b"\n"):
            if line.endswith(b"\r"):
                line = line[:-1]
            parsed = self.parse(line)
            if parsed is None:
                if line.strip():
                    scan.unparsed += 1
                continue
            ts, target, status, latency, records, error = parsed
            scan.parsed += 1
            name = target or scan.default_target
            stats = scan.targets.get(name) or scan.target(name)
            failed = status not in ok_status
            stats.lines += 1
            if records is not None:
                stats.records += records
            if latency is not None:
                stats.latency_count += 1
                stats.latency_sum += latency
                if stats.latency_max is None or latency > stats.latency_max:
                    stats.latency_max = latency
                counter = latencies.get(name)
                if counter is None:
                    counter = latencies[name] = Counter()
                counter[latency] += 1
            if failed:
                stats.failed += 1
                stats.add_error(error or f"status {status}")
                if scan.excerpts:
                    stats.excerpts.append(line)
            key = (name, clock.hour(ts))
            row = hours.get(key)
            if row is None:
                row = hours[key] = [0, 0, 0, 0.0, ts]
            row[0] += 1
            row[1] += failed
            row[2] += records or 0
            row[3] += latency or 0.0
            if _time_order(ts) > _time_order(row[4]):
                row[4] = ts
        for (name, hour), row in hours.items():
            stats = scan.targets[name]
            if hour is not None:
                stats.add_hour(hour, *row[:4])
                stats.seen(clock.parse(row[4]))
        for name, counter in latencies.items():
            scan.targets[name].add_latencies(counter)


_KV_TS = re.compile(rb"^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?)(?=[ \t]|$)")
# Values end at a space, tab or line end, so no key can hide inside one: scanning the line
# once finds every key, and the first of each counts.
_KV_KEYS = re.compile(rb"[ \t](target|status|latency_ms|records|error)=([^ \t\r\n]*)")
_KV_ERROR = re.compile(rb"[ \t]error=([^\r\n]*)")
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
_INTEGER = re.compile(r"^\d+$")


def kv_parser(encoding: str) -> Callable[[bytes], tuple | None]:
    """Return a parser of one ``kv`` line (bytes) into (ts, target, status, latency,
    records, error), or None if it has no timestamp or no status."""

    def parse(line: bytes) -> tuple | None:
        head = _KV_TS.match(line)
        if head is None:
            return None
        fields = dict(reversed(_KV_KEYS.findall(line, head.end())))
        status = fields.get(b"status")
        if not status:
            return None
        target = fields.get(b"target")
        latency = fields.get(b"latency_ms")
        records = fields.get(b"records")
        error = _KV_ERROR.search(line) if b"error" in fields else None
        return (
            head.group(1).decode("ascii"),
            target.decode(encoding, "replace") if target else None,
            status.decode(encoding, "replace"),
            None if latency is None else _number(latency.decode("ascii", "replace")),
            None if records is None else _integer(records.decode("ascii", "replace")),
            error.group(1).decode(encoding, "replace").rstrip() if error else None,
        )

    return parse


def _number(text: str | None) -> float | None:
    if text is None or not _NUMBER.match(text):
        return None
    value = float(text)
    return int(value) if value.is_integer() else value


def _integer(text: str | None) -> int | None:
    return int(text) if text is not None and _INTEGER.match(text) else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return _format_value(value)
    return json.dumps(value, ensure_ascii=False)


def _format_value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def json_parser(encoding: str, fields: Mapping[str, str]) -> Callable[[bytes], tuple | None]:
    """Return a parser of one JSON line, with the field names given (``a.b`` nested)."""
    paths = {name: fields.get(name, name).split(".") for name in FIELDS}

    def get(record: Any, path: list[str]) -> Any:
        for part in path:
            if not isinstance(record, dict):
                return None
            record = record.get(part)
        return record

    def parse(line: bytes) -> tuple | None:
        try:
            record = json.loads(line.decode(encoding, "replace"))
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        ts, status = _text(get(record, paths["ts"])), _text(get(record, paths["status"]))
        if not ts or status is None or status == "":
            return None
        latency = get(record, paths["latency_ms"])
        records = get(record, paths["records"])
        return (
            ts,
            _text(get(record, paths["target"])) or None,
            status,
            _number(_text(latency)),
            _integer(_text(records)),
            _text(get(record, paths["error"])),
        )

    return parse


def regex_parser(encoding: str, pattern: re.Pattern[str]) -> Callable[[bytes], tuple | None]:
    """Return a parser of one line by a user's pattern (searched, not anchored)."""
    names = pattern.groupindex

    def parse(line: bytes) -> tuple | None:
        match = pattern.search(line.decode(encoding, "replace").rstrip("\r"))
        if match is None:
            return None
        found = match.groupdict()
        ts, status = found.get("ts"), found.get("status")
        if not ts or not status:
            return None
        return (
            ts,
            found.get("target") or None if "target" in names else None,
            status,
            _number(found.get("latency_ms")),
            _integer(found.get("records")),
            found.get("error"),
        )

    return parse


def make_scanner(config: InterfaceLogConfig, scan: Scan, *, fast: bool | None = None) -> Any:
    """Given the config and the statistics to fill, return the scanner of its format (an
    object with ``feed(block: bytes)``): for ``kv``, the numpy one when numpy is installed
    (``fast`` None) or required (True), the Python one when ``fast`` is False.

    Raise CheckError if ``fast`` is True and numpy is missing.
    """
    encoding = scan.encoding
    if config.format == "kv":
        python = PythonScanner(scan, kv_parser(encoding))
        if fast is False:
            return python
        try:
            import numpy  # noqa: F401
        except ImportError:
            if fast:
                raise CheckError(
                    "the fast kv scanner needs numpy, which is not installed"
                ) from None
            return python
        return NumpyKvScanner(scan, python)
    if config.format == "json":
        return PythonScanner(scan, json_parser(encoding, config.fields))
    text = config.pattern if config.format == "regex" else config.format
    return PythonScanner(scan, regex_parser(encoding, compile_pattern(text)))


class _Swar:
    """Byte tests on eight bytes at once, each held in one uint64 ("SIMD within a register"):
    the fast kv scanner reads a block's fields this way instead of byte by byte."""

    def __init__(self, np: Any) -> None:
        self.np = np
        u = np.uint64
        self.zeros = u(0x3030303030303030)
        self.high_nibbles = u(0xF0F0F0F0F0F0F0F0)
        self.low_nibbles = u(0x0F0F0F0F0F0F0F0F)
        self.sixes = u(0x0606060606060606)
        self.sixteens = u(0x1010101010101010)
        self.thirty_threes = u(0x2121212121212121)
        #: delimiter[byte]: True for the bytes that end a value (space, tab, CR, LF).
        self.delimiter = np.zeros(256, bool)
        self.delimiter[[32, 9, 13, 10]] = True
        self.low7 = u(0x7F7F7F7F7F7F7F7F)
        self.high_bits = u(0x8080808080808080)
        #: byte_masks[n]: the low n bytes set.
        self.byte_masks = np.array([(1 << (8 * n)) - 1 for n in range(9)], dtype=np.uint64)
        #: padding[n]: ASCII zeros in the 8 - n low bytes (left padding of an n-digit number).
        self.padding = np.array(
            [0x3030303030303030 >> (8 * n) if n < 8 else 0 for n in range(9)], dtype=np.uint64
        )

    def below_33(self, word: Any) -> Any:
        """Bits set in bytes below 33 (space and control characters); exact for the first
        such byte, which is all it is used for (a borrow may mark later bytes too)."""
        return (word - self.thirty_threes) & ~word & self.high_bits

    def byte_at(self, word: Any, index: Any) -> Any:
        """Byte ``index`` (an array of 0-7) of each word."""
        np = self.np
        return ((word >> (index.astype(np.uint64) * np.uint64(8))) & np.uint64(0xFF)).astype(
            np.uint8
        )

    def nondigits(self, word: Any) -> Any:
        """Bits set in the bytes that are not ASCII digits (no carry crosses a byte)."""
        other = word ^ self.zeros
        return (other & self.high_nibbles) | (
            ((other & self.low_nibbles) + self.sixes) & self.sixteens
        )

    def first_byte(self, bits: Any) -> Any:
        """Index (0-7) of the first byte with a bit set; 8 where none is."""
        np = self.np
        # The high bit of every non-zero byte (no carry leaves a byte), then the lowest of
        # them: 1 << (8k + 7); multiplying 1 << 8k by 0x0001020304050607 puts k in the top byte.
        nonzero = (((bits & self.low7) + self.low7) | bits) & self.high_bits
        lowest = nonzero & (~nonzero + np.uint64(1))
        index = ((lowest >> np.uint64(7)) * np.uint64(0x0001020304050607)) >> np.uint64(56)
        return np.where(nonzero == 0, np.uint64(8), index).astype(np.int64)

    def byte(self, word: Any, index: int) -> Any:
        """Byte ``index`` of each word."""
        return ((word >> self.np.uint64(8 * index)) & self.np.uint64(0xFF)).astype(self.np.uint8)

    def matches(self, word: Any, template: str) -> Any:
        """Whether each word fits the template: ``d`` a digit, ``*`` or ``?`` any byte,
        anything else that byte."""
        np = self.np
        digit_mask = literal_mask = literal = 0
        for index, char in enumerate(template):
            if char == "d":
                digit_mask |= 0xFF << (8 * index)
            elif char not in "*?":
                literal_mask |= 0xFF << (8 * index)
                literal |= ord(char) << (8 * index)
        fits = (self.nondigits(word) & np.uint64(digit_mask)) == 0
        return fits & ((word & np.uint64(literal_mask)) == np.uint64(literal))

    def compress(self, word: Any) -> Any:
        """The low nibbles of the eight bytes, first byte first, as a 32-bit number (for
        digits: their value read as hex digits, which sorts as the digits do)."""
        np = self.np
        value = word.byteswap() & self.low_nibbles
        value = (value | (value >> np.uint64(4))) & np.uint64(0x00FF00FF00FF00FF)
        value = (value | (value >> np.uint64(8))) & np.uint64(0x0000FFFF0000FFFF)
        return (value | (value >> np.uint64(16))) & np.uint64(0xFFFFFFFF)

    def decimal(self, word: Any, digits: Any) -> Any:
        """The value of the first ``digits`` (1-8) ASCII digits of each word."""
        np = self.np
        shift = (8 * (8 - np.clip(digits, 1, 8))).astype(np.uint64)
        chunk = (word << shift) | self.padding[np.clip(digits, 1, 8)]
        chunk = chunk - self.zeros
        chunk = ((chunk & np.uint64(0x0F000F000F000F00)) >> np.uint64(8)) + (
            chunk & np.uint64(0x000F000F000F000F)
        ) * np.uint64(10)
        chunk = ((chunk & np.uint64(0x00FF000000FF0000)) >> np.uint64(16)) + (
            chunk & np.uint64(0x000000FF000000FF)
        ) * np.uint64(100)
        chunk = ((chunk & np.uint64(0x0000FFFF00000000)) >> np.uint64(32)) + (
            chunk & np.uint64(0x000000000000FFFF)
        ) * np.uint64(10000)
        return chunk.astype(np.int64)


class NumpyKvScanner:
    """Scans ``kv`` blocks with numpy: whole-block array operations, and Python only per
    target, per hour and per failed line. It gives exactly what ``PythonScanner`` gives (a
    test holds them to it); a block it cannot vouch for goes to the Python scanner.

    How: the newlines give the lines; the ``=`` signs give the keys, recognised by the eight
    bytes before each, read as one integer through an overlapping uint64 view of the block.
    Timestamps and values are read the same way, eight bytes per integer, and tested with
    integer arithmetic (``_Swar``). Targets and statuses become category numbers through a
    hash of their bytes (64 bits: two names that collide would be counted as one).
    """

    KEYS = (b"target", b"status", b"latency_ms", b"records", b"error")
    #: Latency values (ms) a target's histogram array covers; larger ones go to its Counter.
    HISTOGRAM_VALUES = 1 << 20
    #: Bytes of a target or status value the fast path reads; a longer one (or a number of
    #: more than eight digits, or a decimal latency) sends the block to the Python scanner.
    VALUE_BYTES = 32

    def __init__(self, scan: Scan, python: PythonScanner) -> None:
        import numpy

        self.np = numpy
        self.scan = scan
        self.python = python
        self.fallbacks = 0
        self._hours: dict[int, str | None] = {}
        self._keys = [self._key_test(key) for key in self.KEYS]
        self.swar = _Swar(numpy)
        # Per field: digests of the values seen (sorted), their category numbers, names.
        self._known: dict[str, list[Any]] = {}
        self._buffer = bytearray()
        # Per target: how many latencies of each value (the index) in milliseconds.
        self._histograms: dict[str, Any] = {}

    def _key_test(self, key: bytes) -> tuple[int, Any, Any, Any, Any]:
        """The masks and values that recognise ``key`` in the 16 bytes before an ``=``."""
        np = self.np
        low = key[-8:].rjust(8, b"\0")
        low_mask = (1 << (8 * min(len(key), 8))) - 1 << (8 * (8 - min(len(key), 8)))
        high = key[:-8].rjust(8, b"\0")
        high_mask = (1 << (8 * max(len(key) - 8, 0))) - 1 << (8 * (8 - max(len(key) - 8, 0)))
        return (
            len(key),
            np.uint64(int.from_bytes(low, "little") & low_mask),
            np.uint64(low_mask),
            np.uint64(int.from_bytes(high, "little") & high_mask),
            np.uint64(high_mask),
        )

    def feed(self, block: bytes) -> None:
        if not block:
            return
        if not block.endswith(b"\n"):
            block += b"\n"
        if not self._feed(block):
            self.fallbacks += 1
            self.python.feed(block)

    def _feed(self, data: bytes) -> bool:
        np = self.np
        swar = self.swar
        scan = self.scan
        pad = 8
        size = len(data)
        used = pad + size + 48
        if len(self._buffer) < used:
            self._buffer = bytearray(used + used // 4)
        # The block between zero bytes, so that reads a little before or past it are safe;
        # the buffer is kept from block to block (a fresh one costs its page faults).
        buffer = self._buffer
        buffer[pad : pad + size] = data
        buffer[pad + size : used] = bytes(48)
        array = np.frombuffer(buffer, np.uint8, used)
        # Every position's next eight bytes as one little-endian integer (an unaligned,
        # overlapping view: no copy).
        words = np.ndarray((used - 7,), "<u8", buffer, 0, (1,))
        ends = np.flatnonzero(array[pad : pad + size] == 10) + pad
        count = len(ends)
        starts = np.empty(count, np.int64)
        starts[0] = pad
        starts[1:] = ends[:-1] + 1

        # -- timestamps: YYYY-MM-DD[ T]hh:mm:ss[.,fraction], then a space or a tab
        first, second, third, fourth = (words[starts + offset] for offset in (0, 8, 16, 24))
        valid = swar.matches(first, "dddd-dd-") & swar.matches(second, "dd?dd:dd")
        valid &= swar.matches(third, ":dd*****")
        separator = swar.byte(second, 2)
        valid &= (separator == 32) | (separator == 84)
        after = swar.byte(third, 3)
        fraction_nondigits = (swar.nondigits(third) >> np.uint64(32)) | (
            swar.nondigits(fourth) << np.uint64(32)
        )
        fraction_length = swar.first_byte(fraction_nondigits)
        has_fraction = (after == 46) | (after == 44)
        if (valid & has_fraction & (fraction_length >= 8)).any():
            return False  # nine digits of fraction: left to the Python scanner
        following = array[starts + 20 + fraction_length]
        fraction_ok = has_fraction & (fraction_length >= 1) & ((following == 32) | (following == 9))
        valid &= (after == 32) | (after == 9) | fraction_ok
        # Digits as hex digits of one number, so that it sorts as the time does: the hour
        # (with the constant "-" and " " between), and the rest of the hour.
        second_digits = swar.compress(second & np.uint64(0xFFFFFFFFFF00FFFF))  # not the T
        hour_key = (swar.compress(first) << np.uint64(20)) | (second_digits >> np.uint64(12))
        kept_fraction = np.where(fraction_ok, fraction_length, 0)
        seconds_and_fraction = swar.compress(
            third
            & swar.byte_masks[4 + np.minimum(kept_fraction, 4)]
            & np.uint64(0xFFFFFFFF00FFFF00)
        )
        rest_of_fraction = swar.compress(fourth & swar.byte_masks[np.maximum(kept_fraction - 4, 0)])
        within_hour = (
            ((second_digits & np.uint64(0xFF)) << np.uint64(48))
            | (seconds_and_fraction << np.uint64(16))
            | (rest_of_fraction >> np.uint64(16))
        )

        # -- keys: an "=" whose preceding bytes spell a key, with a space or tab before it
        equals = np.flatnonzero(array[pad : pad + size] == 61) + pad
        before = words[equals - 8]
        positions: list[Any] = []
        for length, low, low_mask, high, high_mask in self._keys:
            found = equals[(before & low_mask) == low]
            if length > 8:
                # A position before the block wraps to its zero padding: no match.
                found = found[(words[found - 16] & high_mask) == high]
            delimiter = array[found - length - 1]
            found = found[(delimiter == 32) | (delimiter == 9)]
            if len(found) == count and (found < ends).all() and (found > starts).all():
                value = found + 1  # once on every line, as a regular log has it
            else:
                line = np.searchsorted(ends, found)
                first_on_line = np.ones(len(found), bool)
                first_on_line[1:] = line[1:] != line[:-1]
                value = np.full(count, -1, np.int64)
                value[line[first_on_line]] = found[first_on_line] + 1
            positions.append(value)
        target_at, status_at, latency_at, records_at, error_at = positions

        # -- target and status: category numbers from their bytes
        target_id, target_names, target_ok = self._categories("target", buffer, words, target_at)
        status_id, status_names, status_ok = self._categories("status", buffer, words, status_at)
        if not (target_ok and status_ok):
            return False
        parsed = valid & (status_id >= 0)
        good = np.array([name in scan.ok_status for name in status_names] + [False], bool)
        failed = parsed & ~good[status_id]

        latency, has_latency, latency_ok = self._numbers(array, words, latency_at, True)
        records, has_records, records_ok = self._numbers(array, words, records_at, False)
        if not (latency_ok and records_ok):
            return False
        has_latency &= parsed
        has_records &= parsed
        latency = np.where(has_latency, latency, 0)
        records = np.where(has_records, records, 0)

        # -- unparsed lines: those with something besides whitespace
        unparsed = np.flatnonzero(~parsed)
        if len(unparsed):
            first_byte = array[starts[unparsed]]
            plainly = (ends[unparsed] > starts[unparsed]) & ~np.isin(
                first_byte, (32, 9, 10, 11, 12, 13)
            )
            scan.unparsed += int(plainly.sum())
            for index in unparsed[~plainly].tolist():
                if data[int(starts[index]) - pad : int(ends[index]) - pad].strip():
                    scan.unparsed += 1
        parsed_count = int(parsed.sum())
        scan.parsed += parsed_count
        if not parsed_count:
            return True

        # -- per target: totals, latencies, and per hour (category -1: the source's name)
        names = [*target_names, scan.default_target]
        groups = len(names)
        group = np.where(parsed, target_id, -1) % groups  # -1 → the last: the source's name
        weights = parsed.astype(np.float64)
        line_counts = np.bincount(group, weights, groups)
        failed_counts = np.bincount(group, failed, groups)
        record_sums = np.bincount(group, records, groups)
        latency_counts = np.bincount(group, has_latency, groups)
        latency_sums = np.bincount(group, latency, groups)
        # Lines come in time order, so a block holds few hours: find them without sorting.
        keys = hour_key[parsed]
        changes = np.flatnonzero(keys[1:] != keys[:-1]) + 1
        hours = np.unique(keys[np.concatenate(([0], changes))]) if len(keys) else keys
        hour_index = np.searchsorted(hours, hour_key)
        cell = np.where(parsed, group * len(hours) + hour_index, 0)
        cells = groups * len(hours)
        cell_lines = np.bincount(cell, weights, cells)
        cell_failed = np.bincount(cell, failed, cells)
        cell_records = np.bincount(cell, records, cells)
        cell_latency = np.bincount(cell, latency, cells)
        timed = np.flatnonzero(has_latency)
        histogram = None
        if len(timed):
            top = int(latency[timed].max())
            if (top + 1) * groups <= 1 << 22:
                histogram = np.bincount(
                    group[timed] * (top + 1) + latency[timed], minlength=(top + 1) * groups
                ).reshape(groups, top + 1)
        for number in np.flatnonzero(line_counts).tolist():
            stats = scan.target(names[number])
            stats.lines += int(line_counts[number])
            stats.failed += int(failed_counts[number])
            stats.records += int(record_sums[number])
            if latency_counts[number]:
                stats.latency_count += int(latency_counts[number])
                stats.latency_sum += int(latency_sums[number])
                if histogram is not None:
                    row = histogram[number]
                    largest = int(np.flatnonzero(row)[-1])
                    self._add_histogram(names[number], row[: largest + 1])
                else:
                    values, counts = np.unique(
                        latency[timed][group[timed] == number], return_counts=True
                    )
                    largest = int(values[-1])
                    stats.add_latencies(dict(zip(values.tolist(), counts.tolist(), strict=True)))
                if stats.latency_max is None or largest > stats.latency_max:
                    stats.latency_max = largest
            for slot in range(len(hours)):
                index = number * len(hours) + slot
                if not cell_lines[index]:
                    continue
                rows = np.flatnonzero(parsed & (cell == index))
                hour = self._hour(int(hours[slot]), data, int(starts[rows[0]]) - pad)
                if hour is None:
                    continue
                stats.add_hour(
                    hour,
                    int(cell_lines[index]),
                    int(cell_failed[index]),
                    int(cell_records[index]),
                    int(cell_latency[index]),
                )
                latest = int(rows[np.argmax(within_hour[rows])])
                start = int(starts[latest]) - pad
                length = 19 + (int(fraction_length[latest]) + 1 if fraction_ok[latest] else 0)
                stats.seen(scan.clock.parse(data[start : start + length].decode("ascii")))

        # -- failed lines: errors and excerpts, in Python (they are few)
        encoding = scan.encoding
        for index in np.flatnonzero(failed).tolist():
            stats = scan.targets[names[int(group[index])]]
            start, end = int(starts[index]) - pad, int(ends[index]) - pad
            at = int(error_at[index])
            message = ""
            if at >= 0:
                raw = data[at - pad : end].split(b"\r", 1)[0]
                message = raw.decode(encoding, "replace").rstrip()
            stats.add_error(message or f"status {status_names[int(status_id[index])]}")
            if scan.excerpts:
                line = data[start:end]
                stats.excerpts.append(line[:-1] if line.endswith(b"\r") else line)
        return True

    def _add_histogram(self, name: str, row: Any) -> None:
        """Add counts per latency value (the index) to the target's array of them; an array
        that would grow past HISTOGRAM_VALUES goes to the target's Counter first."""
        np = self.np
        kept = self._histograms.get(name)
        if kept is None or len(kept) < len(row):
            if len(row) > self.HISTOGRAM_VALUES:
                self._flush(name)
                values = np.flatnonzero(row)
                counts = row[values]
                self.scan.target(name).add_latencies(
                    dict(zip(values.tolist(), counts.tolist(), strict=True))
                )
                return
            size = max(len(row), 2 * len(kept) if kept is not None else 0)
            grown = np.zeros(min(size, self.HISTOGRAM_VALUES), np.int64)
            if kept is not None:
                grown[: len(kept)] = kept
            kept = self._histograms[name] = grown
        kept[: len(row)] += row

    def _flush(self, name: str) -> None:
        kept = self._histograms.pop(name, None)
        if kept is not None:
            values = self.np.flatnonzero(kept)
            counts = kept[values]
            self.scan.target(name).add_latencies(
                dict(zip(values.tolist(), counts.tolist(), strict=True))
            )

    def finish(self) -> None:
        """Move what is still held in arrays into the statistics; call after the last block."""
        for name in list(self._histograms):
            self._flush(name)

    def _categories(
        self, field: str, buffer: bytes, words: Any, at: Any
    ) -> tuple[Any, list[str], bool]:
        """Category numbers of the values at ``at`` (-1: none, or empty), the names of all
        categories of ``field`` so far, and False if a value is longer than the fast path
        reads. A value's number stays the same from block to block."""
        np = self.np
        swar = self.swar
        count = len(at)
        present = at >= 0
        origin = np.where(present, at, 0)
        length = np.full(count, -1, np.int64)
        digest = np.zeros(count, np.uint64)
        pending = present.copy()
        for column in range(self.VALUE_BYTES // 8):
            word = words[origin + 8 * column]
            where = swar.first_byte(swar.below_33(word))
            ends_here = pending & (where < 8)
            if not swar.delimiter[swar.byte_at(word, where & 7)][ends_here].all():
                return at, [], False  # a control character inside a value
            length = np.where(ends_here, 8 * column + where, length)
            kept = np.where(pending, where, 0)
            mixed = (digest ^ (word & swar.byte_masks[kept])) * np.uint64(
                0x9E3779B97F4A7C15 + 2 * column
            )
            mixed ^= mixed >> np.uint64(29)
            # Only the bytes of a value go into its digest, however many words a block needs.
            digest = np.where(kept > 0, mixed, digest)
            pending &= ~ends_here
            if not pending.any():
                break
        if pending.any():
            return at, [], False
        digest ^= length.astype(np.uint64) << np.uint64(56)
        usable = present & (length > 0)
        known_digests, known_ids, names = self._known.setdefault(
            field, [np.zeros(0, np.uint64), np.zeros(0, np.int64), []]
        )
        category = np.full(count, -1, np.int64)
        rows = np.flatnonzero(usable)
        if not len(rows):
            return category, names, True
        wanted = digest[rows]
        place = np.minimum(np.searchsorted(known_digests, wanted), max(len(known_digests) - 1, 0))
        found = known_digests[place] == wanted if len(known_digests) else np.zeros(len(rows), bool)
        if not found.all():
            new, first = np.unique(wanted[~found], return_index=True)
            for row in rows[~found][first].tolist():
                start = int(at[row])
                names.append(
                    buffer[start : start + int(length[row])].decode(self.scan.encoding, "replace")
                )
            ids = np.concatenate([known_ids, np.arange(len(names) - len(new), len(names))])
            digests = np.concatenate([known_digests, new])
            order = np.argsort(digests)
            known_digests, known_ids = digests[order], ids[order]
            self._known[field] = [known_digests, known_ids, names]
            place = np.searchsorted(known_digests, wanted)
        category[rows] = known_ids[place]
        return category, names, True

    def _numbers(
        self, array: Any, words: Any, at: Any, decimal_falls: bool
    ) -> tuple[Any, Any, bool]:
        """The whole numbers at ``at``, whether each is one, and False if the fast path
        cannot read one (more than 8 digits, or a decimal where ``decimal_falls``)."""
        np = self.np
        swar = self.swar
        present = at >= 0
        origin = np.where(present, at, 0)
        word = words[origin]
        digits = swar.first_byte(swar.nondigits(word))
        stop = array[origin + digits]
        ends_cleanly = swar.delimiter[stop]
        if not (ends_cleanly | ~present).all():
            if (present & (digits == 8) & ((stop - np.uint8(48)) < 10)).any():
                return at, at, False
            if decimal_falls and (present & (digits > 0) & (stop == 46)).any():
                return at, at, False
        is_number = present & (digits > 0) & ends_cleanly
        return swar.decimal(word, digits), is_number, True

    def _hour(self, key: int, data: bytes, start: int) -> str | None:
        hour = self._hours.get(key, "")
        if hour == "":
            hour = self.scan.clock.hour(data[start : start + 19].decode("ascii"))
            self._hours[key] = hour
        return hour


# --------------------------------------------------------------------------- the check


class _NoFiles(CheckError):
    """No file matches the log source's path."""


def _previous_counters(previous: CheckResult | None) -> dict[str, Any]:
    if previous is None or not isinstance(previous.details, Mapping):
        return {}
    counters = previous.details.get("counters")
    return dict(counters) if isinstance(counters, Mapping) else {}


def _parse_iso(text: Any) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


class _Masker:
    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = [re.compile(p) for p in patterns]

    def __call__(self, text: str) -> str:
        text = mask(text)
        for pattern in self.patterns:
            text = pattern.sub(lambda m: "*" * max(len(m.group(0)), 3), text)
        return text


_LONG_NUMBER = re.compile(r"\d{5,}")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{_format_value(round(value, 1))} ms"


class InterfaceLogCheck(Check):
    """Interface transmission logs: success rate, latency, errors and silence per target."""

    kind: ClassVar[str] = "interface_log"
    Config = InterfaceLogConfig
    targets: ClassVar[frozenset[str]] = frozenset({"log"})

    #: Bytes from the end of each file read on a first run to learn when each target was
    #: last seen (a first run starts at the end and would otherwise find every target silent).
    SEED_BYTES = 256 * 1024

    def run(self, target: Any) -> CheckResult:
        from opsctl.files import files_for
        from opsctl.logread import LogReader

        config: InterfaceLogConfig = self.config  # type: ignore[assignment]
        began = time.monotonic()
        counters = _previous_counters(self.previous)
        zone = ZoneInfo(config.timezone)
        masker = _Masker(config.mask_patterns)
        scan = Scan(
            default_target=target.name,
            clock=Clock(zone),
            ok_status=frozenset(config.ok_status),
            excerpts=config.excerpts,
            encoding=target.encoding,
        )
        scanner = make_scanner(config, scan)
        notes: list[str] = []
        cursors = counters.get("cursors")
        try:
            files = files_for(target.on_host, self.timeout)
            reader = LogReader(
                files,
                target.path,
                max_bytes=config.max_read_mb * 1024**2,
                block_size=BLOCK_BYTES,
                start_at_end=config.start_at_end,
            )
            deadline = began + self.timeout * READ_SHARE
            for block in reader.blocks(cursors):
                scanner.feed(block.data)
                if time.monotonic() > deadline:
                    notes.append(
                        f"stopped reading after {time.monotonic() - began:.0f}s to stay within "
                        "the timeout; the rest is read next run"
                    )
                    break
            scanner.finish()
            if reader.files_matched == 0:
                where = f" on {target.on_host.name}" if target.on_host is not None else ""
                raise _NoFiles(f"no file matches {target.path}{where}")
            seeded = {}
            if not cursors and config.start_at_end:
                seeded = self._seed(files, target, config, scan)
        except (OSError, CheckError) as error:
            # The cursors and last-seen times stay for the next run: a run that could not
            # read must not make the next one start again at the end.
            reason = (
                str(error) if isinstance(error, _NoFiles) else f"cannot read {target.path}: {error}"
            )
            return CheckResult(
                State.UNKNOWN, reason, details={"counters": counters} if counters else {}
            )
        notes = [*reader.notes, *notes]
        return self._judge(config, target, scan, reader, counters, seeded, notes, masker)

    def _seed(
        self, files: Any, target: Any, config: InterfaceLogConfig, scan: Scan
    ) -> dict[str, datetime]:
        """On a first run, read the last lines of the newest files to learn when each
        target was seen last; return {target: time}."""
        seed = Scan(target.name, scan.clock, scan.ok_status, 0, scan.encoding)
        scanner = make_scanner(config, seed, fast=False)
        for info in files.glob(target.path)[-3:]:
            if info.path.endswith(".gz"):
                continue
            start = max(info.size - self.SEED_BYTES, 0)
            data = files.read(info.path, start, info.size - start)
            if start:
                data = data[data.find(b"\n") + 1 :]
            scanner.feed(data[: data.rfind(b"\n") + 1])
        scanner.finish()
        return {name: s.last_seen for name, s in seed.targets.items() if s.last_seen is not None}

    def _judge(
        self,
        config: InterfaceLogConfig,
        target: Any,
        scan: Scan,
        reader: Any,
        counters: Mapping[str, Any],
        seeded: Mapping[str, datetime],
        notes: list[str],
        masker: _Masker,
    ) -> CheckResult:
        now = utc_now()
        zone = scan.clock.zone
        window = _window(config.active_hours) if config.active_hours else None
        stats_by_name = {masker(name): stats for name, stats in scan.targets.items()}

        last_seen: dict[str, datetime] = {}
        for name, text in (counters.get("last_seen") or {}).items():
            when = _parse_iso(text)
            if when is not None:
                last_seen[name] = when
        for name, when in seeded.items():
            name = masker(name)
            if name not in last_seen or when > last_seen[name]:
                last_seen[name] = when
        for name, stats in stats_by_name.items():
            if stats.last_seen is not None and (
                name not in last_seen or stats.last_seen > last_seen[name]
            ):
                last_seen[name] = stats.last_seen
        forget = timedelta(days=7)
        for name in [n for n, when in last_seen.items() if n not in config.targets]:
            if now - last_seen[name] > forget and name not in stats_by_name:
                notes.append(f"{name}: not seen for over 7 days; no longer judged for silence")
                del last_seen[name]

        names = sorted(set(config.targets) | set(stats_by_name) | set(last_seen))
        metrics: list[Metric] = []
        items: list[Item] = []
        problems: list[tuple[State, str]] = []
        report: dict[str, Any] = {}
        hourly: dict[str, Any] = {}
        for name in names:
            stats = stats_by_name.get(name, TargetStats())
            labels = {"target": name}
            entry: dict[str, Any] = {"lines": stats.lines, "failed": stats.failed}
            if stats.lines:
                rate = 100.0 * (stats.lines - stats.failed) / stats.lines
                p50, p95 = stats.percentile(0.5), stats.percentile(0.95)
                metrics += [
                    Metric("lines", stats.lines, "c", labels=labels),
                    Metric("failed", stats.failed, "c", labels=labels),
                    Metric(
                        "success_rate",
                        round(rate, 3),
                        "%",
                        config.success_warn,
                        config.success_crit,
                        0,
                        100,
                        labels,
                    ),
                    Metric("records", stats.records, "c", labels=labels),
                ]
                verdict = evaluate(rate, config.success_warn, config.success_crit)
                threshold = describe_thresholds(config.success_warn, config.success_crit)
                errors = _top_errors(stats.errors, masker)
                advice = ""
                if verdict != State.OK:
                    commonest = (
                        f' The commonest error: "{errors[0][0]}" ({errors[0][1]}).'
                        if errors
                        else ""
                    )
                    advice = (
                        f"Transmissions to {name} are failing.{commonest} Check the interface "
                        "service and its credentials, the peer system's availability and the "
                        "network path; see the excerpts of failed lines."
                    )
                    problems.append(
                        (
                            verdict,
                            f"{name}: {rate:.2f}% ok ({stats.failed} of {stats.lines} failed)",
                        )
                    )
                items.append(
                    Item(
                        "interface_log.success",
                        f"Interface {name} / success rate",
                        f"{rate:.2f}% ({stats.failed} of {stats.lines} failed, {stats.records} records)",
                        verdict,
                        threshold,
                        advice,
                    )
                )
                entry.update(success_rate=round(rate, 3), records=stats.records)
                if stats.latency_count:
                    metrics += [
                        Metric("latency_p50", p50 or 0.0, "ms", labels=labels),
                        Metric(
                            "latency_p95",
                            p95 or 0.0,
                            "ms",
                            config.latency_warn,
                            config.latency_crit,
                            labels=labels,
                        ),
                        Metric("latency_max", stats.latency_max or 0.0, "ms", labels=labels),
                    ]
                    verdict = evaluate(p95, config.latency_warn, config.latency_crit)
                    advice = ""
                    if verdict != State.OK:
                        advice = (
                            f"Transmissions to {name} are slow. Compare with the peer's own "
                            "response times and the network latency; a backlog after an outage "
                            "also raises it for a while."
                        )
                        problems.append((verdict, f"{name}: p95 latency {_ms(p95)}"))
                    items.append(
                        Item(
                            "interface_log.latency",
                            f"Interface {name} / latency",
                            f"p50 {_ms(p50)}, p95 {_ms(p95)}, max {_ms(stats.latency_max)}",
                            verdict,
                            describe_thresholds(config.latency_warn, config.latency_crit),
                            advice,
                        )
                    )
                    entry.update(
                        latency_p50=p50,
                        latency_p95=p95,
                        latency_max=stats.latency_max,
                        latency_sum=stats.latency_sum,
                        latency_count=stats.latency_count,
                        latency_rounded=stats.rounded,
                    )
                if errors:
                    items.append(
                        Item(
                            "interface_log.errors",
                            f"Interface {name} / errors",
                            "; ".join(f"{message} ({count})" for message, count in errors[:3]),
                            State.OK,
                            "",
                            "",
                        )
                    )
                entry["errors"] = [[message, count] for message, count in errors[:10]]
                entry["excerpts"] = [
                    masker(line.decode(scan.encoding, "replace")[:EXCERPT_CHARS])
                    for line in stats.excerpts
                ]
                hourly[name] = {
                    hour: {
                        "lines": int(row[0]),
                        "failed": int(row[1]),
                        "records": int(row[2]),
                        "latency_sum": _format_number(row[3]),
                    }
                    for hour, row in sorted(stats.hourly.items())
                }
            item, state, problem = self._silence(
                name, last_seen.get(name), now, config, window, zone
            )
            items.append(item)
            if problem:
                problems.append((state, problem))
            if name in last_seen:
                entry["last_seen"] = last_seen[name].isoformat()
            report[name] = entry

        if scan.unparsed and not scan.parsed:
            items.append(
                Item(
                    "interface_log.format",
                    f"Log {target.name} / format",
                    f"none of {scan.unparsed} lines matched the {_format_name(config)} format",
                    State.WARNING,
                    "",
                    "Check the format (and fields or pattern) of this log source against a "
                    "line of the file.",
                )
            )
            problems.append((State.WARNING, f"no line matched the {_format_name(config)} format"))

        details = {
            "targets": report,
            "hourly": hourly,
            "notes": notes,
            "files": reader.files_matched,
            "bytes_read": reader.bytes_read,
            "unparsed": scan.unparsed,
            "counters": {
                "cursors": reader.state,
                "last_seen": {name: when.isoformat() for name, when in sorted(last_seen.items())},
            },
        }
        lines = sum(s.lines for s in stats_by_name.values())
        failed = sum(s.failed for s in stats_by_name.values())
        if problems:
            problems.sort(key=lambda p: -int(p[0]))
            summary = "; ".join(text for _, text in problems[:3])
            if len(problems) > 3:
                summary += f" (+{len(problems) - 3} more)"
        elif lines:
            summary = (
                f"{len(names)} target(s) OK: {lines} lines, "
                f"{100.0 * (lines - failed) / lines:.2f}% ok"
            )
        else:
            summary = f"{len(names)} target(s) OK: no new lines"
        return CheckResult.from_metrics(metrics, summary, items, details)

    @staticmethod
    def _silence(
        name: str,
        seen: datetime | None,
        now: datetime,
        config: InterfaceLogConfig,
        window: tuple[int, int] | None,
        zone: ZoneInfo,
    ) -> tuple[Item, State, str]:
        key, label = "interface_log.silence", f"Interface {name} / last line"
        if seen is not None:
            local = seen.astimezone(zone)
            since = (
                local.strftime("%H:%M")
                if local.date() == now.astimezone(zone).date()
                else local.strftime("%Y-%m-%d %H:%M")
            )
        if config.silence is None:
            value = f"at {since}" if seen is not None else "never seen"
            return Item(key, label, value, State.OK, "not judged"), State.OK, ""
        threshold = f"silent > {format_duration(config.silence)}"
        if config.active_hours:
            threshold += f" within {config.active_hours}"
        if not in_window(now, window, zone):
            value = f"at {since}" if seen is not None else "never seen"
            value += f"; not judged outside active hours {config.active_hours}"
            return Item(key, label, value, State.OK, threshold), State.OK, ""
        advice = (
            f"No transmission to {name} has been logged. Check that the interface service is "
            "running and still writing this log, that its queue is not stuck, and that "
            "the peer system accepts connections."
        )
        if seen is None:
            problem = f"{name}: no line seen"
            return (
                Item(key, label, "no line seen", State.CRITICAL, threshold, advice),
                State.CRITICAL,
                problem,
            )
        quiet = active_time(seen, now, window, zone)
        ago = format_duration(max(now - seen, timedelta(0)))
        if quiet > config.silence:
            minutes = int(quiet.total_seconds() // 60)
            length = f"{minutes} min" if minutes < 120 else format_duration(quiet)
            value = f"silent for {length} since {since}"
            return (
                Item(key, label, value, State.CRITICAL, threshold, advice),
                State.CRITICAL,
                f"{name}: {value}",
            )
        return Item(key, label, f"at {since} ({ago} ago)", State.OK, threshold), State.OK, ""


def _format_name(config: InterfaceLogConfig) -> str:
    return config.format if config.format in PRESETS else "regex"


def _format_number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 3)


def _top_errors(errors: Counter, masker: _Masker) -> list[tuple[str, int]]:
    """The errors, masked and with long numbers (ids, batch numbers) folded, commonest first."""
    folded: Counter = Counter()
    for message, count in errors.items():
        text = (
            message if message == OTHER_ERRORS else _LONG_NUMBER.sub("#", masker(message.strip()))
        )
        folded[text[:200]] += count
    return sorted(folded.items(), key=lambda pair: (-pair[1], pair[0]))


__all__ = ["InterfaceLogCheck", "InterfaceLogConfig"]
