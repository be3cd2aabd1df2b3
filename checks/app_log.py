"""The application error log check (R-13): are new kinds of errors appearing in a program's logs?

Each run reads only what the log files gained since the previous run (``opsctl.logread``),
groups lines into events (a log line and the stack trace or traceback lines under it), keeps
the error events, and reduces each to a signature: the exception class and message with
numbers, ids, hex, UUIDs, IP addresses, timestamps and quoted strings replaced by
placeholders, plus the top application frame of a Java trace (or the innermost application
frame of a Python traceback). Signatures seen before are known and kept in the result's
``details["counters"]``; one never seen before is reported with its first sample, masked.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, cast

from pydantic import Field, field_validator

from opsctl.contract import (
    Check,
    CheckConfig,
    CheckResult,
    Item,
    Metric,
    Range,
    RangeField,
    State,
    evaluate,
    utc_now,
)
from opsctl.inventory import LogSource
from opsctl.masking import mask

#: An event is an error when one of its lines matches: a level word in the upper case of Java
#: (logback, log4j, JUL's SEVERE) and Python logging, nginx's ``[error]``/``[crit]``/
#: ``[alert]``/``[emerg]``, an uncaught Java exception or Python traceback, or a line that
#: starts with a qualified Java exception class.
DEFAULT_LEVEL_REGEX = (
    r"(?:^|[\s\[|:(])(?:ERROR|FATAL|SEVERE|CRITICAL)(?=[\s\]|:,)]|$)"
    r"|\[(?:error|crit|alert|emerg)\]"
    r"|^(?:Traceback \(most recent call last\):|Exception in thread )"
    r"|^(?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error)(?::|\s*$)"
)

#: A line without one of these cannot match DEFAULT_LEVEL_REGEX: blocks are searched for them
#: first.
DEFAULT_LEVEL_KEYWORDS = (
    "ERROR",
    "FATAL",
    "SEVERE",
    "CRITICAL",
    "[error]",
    "[crit]",
    "[alert]",
    "[emerg]",
    "Traceback",
    "Exception",
    "Error",
)

#: A line that starts a new event: one that starts with a timestamp (ISO ``2026-11-01
#: 08:00:01``, nginx ``2026/11/01 08:00:01``, bracketed ``[2026-11-01 ...``, logback's default
#: ``08:00:01.123``, Tomcat's ``01-Nov-2026 08:00:01``, JUL's ``Nov 01, 2026 8:00:01 AM``,
#: syslog's ``Nov  1 08:00:01``) or with a level (Python's ``ERROR:root:``, log4j's ``[ERROR]``).
#: Any other line (``\tat com.x...``, ``Caused by:``, ``... 12 more``, traceback lines) belongs to
#: the event above it.
DEFAULT_START_REGEX = (
    r"^(?:\[?\d{4}[-/.]\d{1,2}[-/.]\d{1,2}[ T]\d{1,2}:\d{2}"
    r"|\[?\d{1,2}:\d{2}:\d{2}"
    r"|\d{1,2}-[A-Z][a-z]{2}-\d{4} \d{1,2}:\d{2}"
    r"|[A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d{2}"
    r"|[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}"
    r"|\[?(?:TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|SEVERE|FATAL|CRITICAL)[\s:\]])"
)

#: Package prefixes of libraries and of the JDK: a frame in one of them is not the
#: application's own code.
LIBRARY_PACKAGES = (
    "java.",
    "javax.",
    "jakarta.",
    "jdk.",
    "sun.",
    "com.sun.",
    "kotlin.",
    "scala.",
    "groovy.",
    "org.springframework.",
    "org.apache.",
    "org.hibernate.",
    "org.mybatis.",
    "org.eclipse.",
    "org.glassfish.",
    "org.jboss.",
    "org.postgresql.",
    "org.mariadb.",
    "org.slf4j.",
    "org.aspectj.",
    "org.quartz.",
    "ch.qos.logback.",
    "com.mysql.",
    "oracle.",
    "dm.jdbc.",
    "com.alibaba.",
    "com.zaxxer.",
    "com.fasterxml.",
    "com.google.",
    "io.netty.",
    "io.undertow.",
    "reactor.",
    "feign.",
    "net.sf.",
    "$Proxy",
)

#: How many signatures the known list keeps: the most recently seen.
KNOWN_SIGNATURES_KEPT = 2000
#: How many signatures get their own metrics and item, the most frequent first.
TOP_SIGNATURES = 10
#: Bounds on one event: a log whose lines never match ``start_regex`` must not grow one event
#: without end. Past the first ``_EVENT_LINES`` lines, only unindented lines (``Caused by:``,
#: exception lines, chained tracebacks) are kept, up to twice as many.
_EVENT_LINES = 300
_LINE_CHARS = 16 * 1024
#: How much of a sample an item shows.
_SAMPLE_LINES = 25
_SAMPLE_CHARS = 2000
_SIGNATURE_CHARS = 400
_NEW_SHOWN_IN_SUMMARY = 3
#: New signatures shown as items, each with its sample; the rest are counted in a note.
_NEW_ITEMS = 20


def _compiles(value: str) -> str:
    try:
        re.compile(value, re.MULTILINE)
    except re.error as error:
        raise ValueError(f"not a valid regular expression: {error}") from None
    return value


def _state_name(value: Any) -> str:
    try:
        return State.parse(value).name
    except (ValueError, TypeError):
        raise ValueError("expected OK, WARNING, CRITICAL or UNKNOWN") from None


def _rate_range(value: Range | None) -> Range | None:
    if value is not None and value.unit:
        raise ValueError(f'expected a number of events per minute like "10", got {value.unit}')
    return value


class AppLogConfig(CheckConfig):
    """Configuration of the ``app_log`` check."""

    level_regex: str = Field(
        DEFAULT_LEVEL_REGEX,
        description="An event is an error when one of its lines matches this regular expression "
        "(multi-line mode: ^ is the start of any line). The default matches ERROR, FATAL, SEVERE "
        "and CRITICAL in Java and Python logs, nginx [error]/[crit]/[alert]/[emerg], uncaught "
        "exceptions, Python tracebacks and lines starting with a Java exception class (so a WARN "
        "line with a stack trace under it counts too; skip those with ignore).",
    )
    start_regex: str = Field(
        DEFAULT_START_REGEX,
        description="A line matching this regular expression (at its start) starts a new event; "
        "any other line (stack trace, Caused by, traceback) belongs to the event above it. The "
        "default matches lines starting with a timestamp or a level.",
    )
    ignore: list[str] = Field(
        [],
        description="Regular expressions: an error event in which one of them is found is "
        "skipped (counted as ignored).",
    )
    app_packages: list[str] = Field(
        [],
        description='Package prefixes of the application\'s own code ("com.hospital.") that '
        "pick the top frame of a Java stack trace; by default the first frame outside the JDK "
        "and well-known libraries.",
    )
    new_signature_state: str = Field(
        "WARNING",
        description="The state of a run in which an error signature never seen before appears "
        "(OK to only list new signatures).",
    )
    rate_warn: RangeField | None = Field(
        None,
        description='Warning on the events per minute of one signature since the previous run ("5").',
    )
    rate_crit: RangeField | None = Field(
        None,
        description='Critical on the events per minute of one signature since the previous run ("30").',
    )
    total_warn: RangeField | None = Field(
        None, description='Warning on the number of error events read in a run ("100").'
    )
    total_crit: RangeField | None = Field(
        None, description='Critical on the number of error events read in a run ("1000").'
    )
    mask_patterns: list[str] = Field(
        [],
        description="Regular expressions of further personal data to mask in samples and "
        "signatures, beyond ID card and mobile numbers, bank cards, e-mails and labelled names; "
        'a pattern with groups masks only its groups ("card_no=(\\w+)").',
    )

    _regexes = field_validator("level_regex", "start_regex")(_compiles)
    _rates = field_validator("rate_warn", "rate_crit", "total_warn", "total_crit")(_rate_range)

    @field_validator("ignore", "mask_patterns")
    @classmethod
    def _each_compiles(cls, values: list[str]) -> list[str]:
        return [_compiles(value) for value in values]

    @field_validator("new_signature_state", mode="before")
    @classmethod
    def _known_state(cls, value: Any) -> str:
        return _state_name(value)


# -- Grouping lines into events ---------------------------------------------------------------

_GLOBAL_FLAGS = re.compile(r"^\(\?[aiLmsux]+\)")


def _line_start_pattern(regex: str) -> re.Pattern[str]:
    """Given a start regex, return it compiled to find matching lines anywhere in a text
    (``(?m)^(?:regex)``), keeping leading global flags such as ``(?i)`` in front.
    """
    flags = _GLOBAL_FLAGS.match(regex)
    lead = flags.group(0) if flags else ""
    return re.compile(f"{lead}^(?:{regex[len(lead) :]})", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a log: its first line and the lines that belong to it."""

    path: str
    lines: tuple[str, ...]
    omitted: int = 0

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class _Pending:
    __slots__ = ("path", "lines", "omitted", "error")

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines: list[str] = []
        self.omitted = 0
        self.error = False

    def add(self, line: str) -> None:
        count = len(self.lines)
        if count < _EVENT_LINES or (count < 2 * _EVENT_LINES and line[:1] not in (" ", "\t")):
            self.lines.append(line[:_LINE_CHARS])
        else:
            self.omitted += 1

    def extend(self, text: str) -> None:
        for line in text.split("\n"):
            self.add(line.removesuffix("\r"))


class EventScanner:
    """Groups decoded log text, block after block, into events and keeps the error events.

    Only the lines of error events are looked at one by one: the error lines of a block are
    found first (by a regular expression search over the whole block, after a search for the
    default's keywords), then the event around each. An event that is not finished at the
    end of a block (its stack trace may go on in the next) waits for the next block of the
    same file; ``finish`` closes the last one. ``skip_head``: the file whose first lines in
    this run continue an error event already counted at the end of the previous run; its
    lines before the first event start are dropped.
    """

    def __init__(self, start_regex: str, level_regex: str, *, skip_head: str | None = None) -> None:
        self._start_line = re.compile(start_regex)
        self._start_any = _line_start_pattern(start_regex)
        self._level = re.compile(level_regex, re.MULTILINE)
        self._keywords = DEFAULT_LEVEL_KEYWORDS if level_regex == DEFAULT_LEVEL_REGEX else None
        self._pending: _Pending | None = None
        self._skip_head = skip_head
        self._seen_paths: set[str] = set()
        #: The file of the last event when it was an error (its trace may go on next run).
        self.open_error: str | None = None
        #: How many events were cut for being too long.
        self.cut_events = 0

    def feed(self, path: str, text: str) -> list[Event]:
        """Given the path and decoded text (whole lines) of a block, return the error events
        this block completes.
        """
        found: list[Event] = []
        if self._pending is not None and self._pending.path != path:
            self._close(found)
        skip_head = path == self._skip_head and path not in self._seen_paths
        self._seen_paths.add(path)
        if not text:
            return found
        if text.endswith("\n"):
            text = text[:-1]
        hits = self._error_lines(text)
        first = self._start_any.search(text)
        head_end = len(text) if first is None else first.start()
        # The lines before the first event start continue the event left open before.
        if (first is None or head_end > 0) and not skip_head:
            if self._pending is None:
                self._pending = _Pending(path)
            self._pending.extend(text if first is None else text[: head_end - 1])
            if hits and hits[0] < head_end:
                self._pending.error = True
        if first is None:
            return found
        self._close(found)
        position = head_end
        for hit in hits:
            if hit < position:
                continue  # in the head, or in an event already taken
            start = self._event_start(text, hit, position)
            line_end = text.find("\n", hit)
            following = None if line_end < 0 else self._start_any.search(text, line_end + 1)
            event = _Pending(path)
            event.error = True
            if following is None:
                event.extend(text[start:])
                self._pending = event
                return found
            event.extend(text[start : following.start() - 1])
            self._pending = event
            self._close(found)
            position = following.start()
        # The last event of the block, no error so far: its trace may go on in the next block.
        self._pending = _Pending(path)
        self._pending.extend(text[self._event_start(text, len(text), position) :])
        return found

    def finish(self) -> list[Event]:
        """Return the error event still open at the end of the run, if any."""
        found: list[Event] = []
        self._close(found)
        self.open_error = found[-1].path if found else None
        return found

    def _error_lines(self, text: str) -> list[int]:
        """Given a block, return the offsets of the starts of its lines the level matches."""
        if self._keywords is None:
            starts = set()
            for match in self._level.finditer(text):
                # a match may begin with the newline before its line (\s matches it)
                matched = match.group()
                offset = match.start() + (len(matched) > 1 and matched[0] == "\n")
                starts.add(text.rfind("\n", 0, offset) + 1)
            return sorted(starts)
        # The default level regex cannot match a line without one of its keywords, and
        # str.find runs far faster than a regular expression with alternatives at its start.
        candidates: set[int] = set()
        for keyword in self._keywords:
            index = text.find(keyword)
            while index >= 0:
                candidates.add(text.rfind("\n", 0, index) + 1)
                line_end = text.find("\n", index)
                index = -1 if line_end < 0 else text.find(keyword, line_end)
        search = self._level.search
        return sorted(start for start in candidates if search(text, start, _line_end(text, start)))

    def _event_start(self, text: str, offset: int, floor: int) -> int:
        """Given a block, an offset in it and the start of an event at or before it
        (``floor``), return the start of the event the offset is in."""
        end = offset if offset == len(text) else _line_end(text, offset)
        while True:
            start = text.rfind("\n", 0, end) + 1 if end > 0 else 0
            if start <= floor or self._start_line.match(text[start:end]):
                return max(start, floor)
            end = start - 1

    def _close(self, found: list[Event]) -> None:
        pending, self._pending = self._pending, None
        if pending is None or not pending.lines:
            return
        if pending.omitted:
            self.cut_events += 1
        if pending.error:
            found.append(Event(pending.path, tuple(pending.lines), pending.omitted))


def _line_end(text: str, offset: int) -> int:
    end = text.find("\n", offset)
    return len(text) if end < 0 else end


def scan(blocks: Iterable[tuple[str, str]], start_regex: str, level_regex: str) -> list[Event]:
    """Given (path, decoded text) blocks, return their error events, the last one included."""
    scanner = EventScanner(start_regex, level_regex)
    events: list[Event] = []
    for path, text in blocks:
        events.extend(scanner.feed(path, text))
    events.extend(scanner.finish())
    return events


# -- Signatures -------------------------------------------------------------------------------

_PLACEHOLDERS = re.compile(
    r"""(?P<str>"[^"\n]*"|(?<![\w'])'[^'\n]*'(?!\w)|“[^”\n]*”|‘[^’\n]*’|「[^」\n]*」)
    |(?P<uuid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})
    |(?P<ts>\d{4}[-/.]\d{1,2}[-/.]\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?
            (?:Z|[+-]\d{2}:?\d{2})?)?
        |(?<!\d)\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?)
    |(?P<ip>(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![\w.]))
    |(?P<masked>\w*\*{2,}\w*)
    |(?P<hex>0[xX][0-9a-fA-F]+|(?<=@)[0-9a-fA-F]{4,}(?![\w])
        |(?<![\w-])(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}(?![\w-]))
    |(?P<code>(?<![\w-])[A-Z]{2,}-\d{1,5}(?!\d))
    |(?P<fileline>\.(?:java|kt|scala|groovy|py|go|js|ts|rb|php|cs|c|cc|cpp|h):\d+)
    |(?P<number>\d{4,}|(?<![A-Za-z_])\d+(?:\.\d+)*)
    """,
    re.VERBOSE,
)
_SPACES = re.compile(r"\s+")


def _placeholder(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "str":
        text = match.group(0)
        return f"{text[0]}<str>{text[-1]}"
    if kind == "code":
        return match.group(0)
    if kind == "fileline":
        return match.group(0).split(":")[0] + ":<line>"
    return {"number": "<n>"}.get(kind or "", f"<{kind}>")


def normalize(text: str) -> str:
    """Given a (masked) message, return it with what varies from one occurrence of the same
    error to the next replaced: quoted strings ``"<str>"``, UUIDs ``<uuid>``, timestamps
    ``<ts>``, IP addresses ``<ip>``, hex ``<hex>``, file:line ``Foo.java:<line>``, numbers
    ``<n>`` (long digit runs even inside words), masked personal data ``<masked>``. Error codes
    such as ``ORA-00942`` are kept. Runs of white space become one space.
    """
    return _SPACES.sub(" ", _PLACEHOLDERS.sub(_placeholder, text)).strip()


def mask_text(text: str, patterns: Iterable[re.Pattern[str]] = ()) -> str:
    """Given text, return it with personal data masked (``opsctl.masking.mask``) and each of
    ``patterns`` masked: its groups if it has any, else the whole match, become ``***``.
    """
    text = mask(text)
    for pattern in patterns:
        text = pattern.sub(_mask_match, text)
    return text


def _mask_match(match: re.Match[str]) -> str:
    if not match.re.groups:
        return "***"
    whole, start = match.group(0), match.start()
    pieces, cursor = [], 0
    for index in range(1, match.re.groups + 1):
        if match.start(index) < 0 or match.start(index) - start < cursor:
            continue
        pieces.append(whole[cursor : match.start(index) - start] + "***")
        cursor = match.end(index) - start
    return "".join(pieces) + whole[cursor:]


@dataclass(frozen=True, slots=True)
class Signature:
    """What an error event is reduced to: ``key`` (a short SHA-1 of ``text``), ``text`` (the
    normalized class, message and frame) and ``label`` (short, for a summary line)."""

    key: str
    text: str
    label: str


_JAVA_CLASS = r"(?:[A-Za-z_$][\w$]*\.)+[A-Za-z_$][\w$]*"
_JAVA_EXCEPTION = re.compile(
    rf'^(?:Exception in thread "[^"]*"\s+)?(?P<cls>{_JAVA_CLASS})(?::\s?(?P<msg>.*))?$'
)
_JAVA_CAUSE = re.compile(
    r"^\s*Caused by:\s+(?P<cls>(?:[A-Za-z_$][\w$]*\.)*[A-Za-z_$][\w$]*)(?::\s?(?P<msg>.*))?$"
)
_JAVA_FRAME = re.compile(r"^\s+at\s+(?:[\w.$@-]*/)*(?P<method>[\w$.<>]+)\(")
_THROWABLE_NAME = re.compile(r"(?:Exception|Error|Throwable|Fault)$")
_PY_TRACEBACK = "Traceback (most recent call last):"
_PY_FRAME = re.compile(r'^\s+File "(?P<file>[^"]+)", line \d+, in (?P<func>\S+)')
_PY_EXCEPTION = re.compile(r"^(?P<cls>[A-Za-z_][\w.]*)(?::\s?(?P<msg>.*))?$")
_PY_LIBRARY = re.compile(r"site-packages|dist-packages|[/\\]lib[/\\]python\d|<frozen ")
_PATH_SEPARATOR = re.compile(r"[/\\]")
_HEADER_PREFIX = re.compile(r"^(?:[\s\-:|>\]]+|\d+#\d+:|\*\d+\s|\d+\s+---\s|\[[^\]]*\]\s*)+")


def signature_of(
    event: Event,
    level: re.Pattern[str],
    start: re.Pattern[str],
    app_packages: Iterable[str] = (),
    mask_patterns: Iterable[re.Pattern[str]] = (),
) -> Signature:
    """Given an error event, the level and start patterns and the application's packages,
    return its signature: a Python traceback's last exception and innermost application
    frame; else a Java exception (the first exception line), its root cause and top
    application frame; else the first line's message after its level. Messages are masked
    before they are normalized, so no personal data reaches the text that is stored.
    """
    patterns = tuple(mask_patterns)

    def clean(message: str) -> str:
        return normalize(mask_text(message[: _SIGNATURE_CHARS * 2], patterns))

    lines = event.lines
    found = _python_exception(lines, clean) or _java_exception(lines, tuple(app_packages), clean)
    if found is not None:
        text, label = found
    else:
        text = label = _header_message(lines[0], level, start, clean)
    text = text[:_SIGNATURE_CHARS]
    key = hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:12]
    return Signature(key, text, _shorten(label, 90))


def _python_exception(lines: Sequence[str], clean: Callable[[str], str]) -> tuple[str, str] | None:
    starts = [index for index, line in enumerate(lines) if line.startswith(_PY_TRACEBACK)]
    if not starts:
        return None
    frames: list[tuple[str, str]] = []
    exception = None
    for line in lines[starts[-1] + 1 :]:
        frame = _PY_FRAME.match(line)
        if frame:
            frames.append((frame.group("file"), frame.group("func")))
        elif line[:1] not in (" ", "\t", "") and not line.startswith(_PY_TRACEBACK):
            exception = _PY_EXCEPTION.match(line.strip())
            break
    if exception is None:
        return None
    name, message = exception.group("cls"), clean(exception.group("msg") or "")
    text = f"{name}: {message}" if message else name
    label = name.rsplit(".", 1)[-1]
    if frames:
        own = [frame for frame in frames if not _PY_LIBRARY.search(frame[0])] or frames
        file, function = own[-1]
        where = f"{_PATH_SEPARATOR.split(file)[-1]} in {function}"
        text, label = f"{text} at {where}", f"{label} at {where}"
    return text, label


def _java_exception(
    lines: Sequence[str], app_packages: tuple[str, ...], clean: Callable[[str], str]
) -> tuple[str, str] | None:
    outer = None
    for index, line in enumerate(lines):
        if line[:1] in (" ", "\t"):
            continue
        match = _JAVA_EXCEPTION.match(line)
        if match is None:
            continue
        followed_by_frame = index + 1 < len(lines) and _JAVA_FRAME.match(lines[index + 1])
        if followed_by_frame or _THROWABLE_NAME.search(match.group("cls")):
            outer = (index, match)
            break
    if outer is None:
        return None
    first, match = outer
    # One list of frames per exception of the chain: the outer one, then each cause.
    chain: list[tuple[re.Match[str], list[str]]] = [(match, [])]
    for line in lines[first + 1 :]:
        cause = _JAVA_CAUSE.match(line)
        if cause:
            chain.append((cause, []))
            continue
        frame = _JAVA_FRAME.match(line)
        if frame:
            chain[-1][1].append(frame.group("method"))
    name, message = match.group("cls"), clean(match.group("msg") or "")
    text = f"{name}: {message}" if message else name
    root = chain[-1][0]
    if len(chain) > 1:
        root_message = clean(root.group("msg") or "")
        text += f"; caused by {root.group('cls')}" + (f": {root_message}" if root_message else "")
    label = root.group("cls").rsplit(".", 1)[-1]
    frame = _top_frame([frames for _, frames in chain], app_packages)
    if frame:
        text += f" at {frame}"
        label += f" at {_abbreviate(frame)}(...)"
    elif message:
        label += f": {message}"
    return text, label


def _top_frame(chain_frames: list[list[str]], app_packages: tuple[str, ...]) -> str | None:
    # The root cause is where it went wrong, but its trace is cut short ("... 12 more"):
    # look for the application's frame from the root cause outwards.
    def own(method: str) -> bool:
        if app_packages:
            return method.startswith(app_packages)
        return not method.startswith(LIBRARY_PACKAGES)

    for frames in reversed(chain_frames):
        for method in frames:
            if own(method):
                return method
    outer = chain_frames[0]
    return outer[0] if outer else None


def _abbreviate(method: str) -> str:
    """``com.his.reg.RegService.book`` → ``c.h.r.RegService.book`` (packages to their first
    letter, as logback abbreviates logger names)."""
    parts = method.split(".")
    packages = [part[:1] for part in parts[:-2]]
    return ".".join([*packages, *parts[-2:]])


def _header_message(
    header: str, level: re.Pattern[str], start: re.Pattern[str], clean: Callable[[str], str]
) -> str:
    found = level.search(header)
    if found and found.end() < len(header):
        message = header[found.end() :]
    else:
        started = start.match(header)
        message = header[started.end() :] if started else header
    message = _HEADER_PREFIX.sub("", message)
    return clean(message or header)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- Judging a run ----------------------------------------------------------------------------


@dataclass
class _Seen:
    signature: Signature
    sample: Event
    count: int = 0


def sample_text(event: Event, patterns: Iterable[re.Pattern[str]] = ()) -> str:
    """Given an event, return its text masked and cut to what an item shows."""
    lines = list(event.lines[:_SAMPLE_LINES])
    more = len(event.lines) - len(lines) + event.omitted
    text = mask_text("\n".join(lines), patterns)
    if len(text) > _SAMPLE_CHARS:
        text = text[: _SAMPLE_CHARS - 1] + "…"
    if more:
        text += f"\n… ({more} more lines)"
    return text


def evaluate_events(
    events: Iterable[Event],
    config: AppLogConfig,
    counters: Mapping[str, Any] | None,
    now: datetime,
    *,
    name: str = "",
    cursors: Mapping[str, Any] | None = None,
    notes: Iterable[str] = (),
    open_error: str | None = None,
) -> CheckResult:
    """Given the error events read in this run, the configuration, the counters of the
    previous run (None on the first run) and the time now, return the result: new signatures
    at ``new_signature_state`` with their first sample masked, per-signature counts and rates,
    and the counters for the next run (known signatures, reader cursors).
    """
    counters = counters or {}
    first_run = not isinstance(counters.get("signatures"), Mapping)
    known: dict[str, dict[str, Any]] = dict(counters.get("signatures") or {})
    level = re.compile(config.level_regex, re.MULTILINE)
    start = re.compile(config.start_regex)
    ignore = [re.compile(pattern, re.MULTILINE) for pattern in config.ignore]
    patterns = [re.compile(pattern) for pattern in config.mask_patterns]
    notes = list(notes)

    seen: dict[str, _Seen] = {}
    total = ignored = 0
    for event in events:
        if ignore and any(pattern.search(event.text) for pattern in ignore):
            ignored += 1
            continue
        total += 1
        signature = signature_of(event, level, start, config.app_packages, patterns)
        entry = seen.get(signature.key)
        if entry is None:
            entry = seen[signature.key] = _Seen(signature, event)
        entry.count += 1

    minutes = _minutes_since(counters.get("read_at"), now)
    stamp = now.isoformat()
    new = [] if first_run else [entry for key, entry in seen.items() if key not in known]
    for key, entry in seen.items():
        record = known.get(key) or {
            "text": entry.signature.text,
            "first_seen": stamp,
            "count": 0,
        }
        known[key] = {
            **record,
            "count": int(record.get("count", 0)) + entry.count,
            "last_seen": stamp,
        }
    if len(known) > KNOWN_SIGNATURES_KEPT:
        newest = sorted(
            known.items(), key=lambda kv: (kv[1].get("last_seen", ""), kv[1].get("count", 0))
        )
        known = dict(newest[-KNOWN_SIGNATURES_KEPT:])
        notes.append(f"the known signatures were cut to the {KNOWN_SIGNATURES_KEPT} seen last")

    new_state = State[config.new_signature_state]
    top = sorted(seen.values(), key=lambda entry: (-entry.count, entry.signature.key))
    top = top[:TOP_SIGNATURES]
    events_metric = Metric("events", float(total), "", config.total_warn, config.total_crit, 0)
    metrics = [
        events_metric,
        Metric("signatures", float(len(seen)), "", min=0),
        Metric("new_signatures", float(len(new)), "", min=0),
        Metric("ignored", float(ignored), "", min=0),
    ]
    rates: dict[str, tuple[float, State]] = {}
    for entry in top:
        labels = {"signature": entry.signature.key}
        metrics.append(Metric("signature_events", float(entry.count), "", min=0, labels=labels))
        if minutes is not None:
            rate = round(entry.count / minutes, 3)
            rate_metric = Metric(
                "signature_rate", rate, "", config.rate_warn, config.rate_crit, 0, labels=labels
            )
            metrics.append(rate_metric)
            rates[entry.signature.key] = (rate, rate_metric.state)

    subject = f"Application log {name}".strip()
    threshold = ", ".join(
        f"{word} {value.describe()}"
        for word, value in (("warning", config.rate_warn), ("critical", config.rate_crit))
        if value is not None
    )
    items = [
        Item(
            key="app_log.new_signature",
            item=f"{subject} / new error: {entry.signature.label}",
            value=sample_text(entry.sample, patterns),
            verdict=new_state,
            threshold="a signature not seen before",
            advice=_advice(
                new_state,
                f"{entry.count} event(s) of an error not seen before (signature "
                f"{entry.signature.key}): find its cause, or add it to ignore if it is expected",
            ),
        )
        for entry in new[:_NEW_ITEMS]
    ]
    if len(new) > _NEW_ITEMS:
        notes.append(f"{len(new) - _NEW_ITEMS} more new signatures are counted but not shown")
    for entry in top:
        rate, rate_state = rates.get(entry.signature.key, (None, State.OK))
        items.append(
            Item(
                key="app_log.signature",
                item=f"{subject} / {entry.signature.label}",
                value=f"{entry.count} event(s)"
                + ("" if rate is None else f", {rate:g}/min")
                + f" [{entry.signature.key}] {entry.signature.text}",
                verdict=rate_state,
                threshold=threshold,
                advice=""
                if rate is None
                else _advice(
                    rate_state,
                    f"this error comes {rate:g} times a minute: look at what fails "
                    "(a dependency down, a bad release) before the log fills the disk",
                ),
            )
        )
    total_state = evaluate(float(total), config.total_warn, config.total_crit)
    totals = f"{total} error event(s) in {len(seen)} signature(s)"
    if ignored:
        totals += f", {ignored} ignored"
    items.append(
        Item(
            key="app_log.events",
            item=f"{subject} / error events",
            value=totals + (f", {len(new)} new" if new else ""),
            verdict=total_state,
            threshold=", ".join(
                f"{word} {value.describe()}"
                for word, value in (("warning", config.total_warn), ("critical", config.total_crit))
                if value is not None
            ),
            advice=_advice(total_state, f"{total} errors since the previous run: see the top ones"),
        )
    )

    if first_run:
        notes.append(
            f"first run: {len(seen)} error signature(s) recorded as known; "
            "new ones are reported from the next run"
        )
        summary = f"first run: {totals}, recorded as known"
    elif new:
        shown = ", ".join(entry.signature.label for entry in new[:_NEW_SHOWN_IN_SUMMARY])
        more = len(new) - _NEW_SHOWN_IN_SUMMARY
        noun = "signature" if len(new) == 1 else "signatures"
        summary = f"{len(new)} new error {noun}: {shown}" + (f" (+{more} more)" if more > 0 else "")
        summary += f"; {totals}"
    else:
        summary = f"no new signatures; {totals}"
    fast = [
        f"{entry.signature.label} {rates[entry.signature.key][0]:g}/min"
        for entry in top
        if rates.get(entry.signature.key, (0, State.OK))[1] != State.OK
    ]
    if fast:
        summary += "; " + ", ".join(fast)

    next_counters: dict[str, Any] = {
        "signatures": known,
        "cursors": dict(cursors or {}),
        "read_at": stamp,
    }
    if open_error is not None:
        next_counters["open_event"] = open_error
    details: dict[str, Any] = {"counters": next_counters}
    if notes:
        details["notes"] = notes
    return CheckResult.from_metrics(metrics, summary, items, details)


def _advice(state: State, text: str) -> str:
    return text if state in (State.WARNING, State.CRITICAL) else ""


def _minutes_since(stamp: Any, now: datetime) -> float | None:
    # The rate is per minute over the time since the previous read, and at least a minute,
    # so that two runs a few seconds apart do not turn three events into a storm.
    if not isinstance(stamp, str):
        return None
    try:
        before = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if before.tzinfo is None:
        return None
    return max((now - before).total_seconds() / 60.0, 1.0)


def previous_counters(previous: CheckResult | None) -> dict[str, Any] | None:
    """Given the previous result, return its counters (None if it has none)."""
    if previous is None or not isinstance(previous.details, Mapping):
        return None
    counters = previous.details.get("counters")
    return dict(counters) if isinstance(counters, Mapping) else None


class AppLogCheck(Check):
    """New error signatures and error rates in application logs (Java, Python, nginx)."""

    kind: ClassVar[str] = "app_log"
    Config: ClassVar[type[CheckConfig]] = AppLogConfig
    targets: ClassVar[frozenset[str]] = frozenset({"log"})

    def run(self, target: LogSource) -> CheckResult:
        """Given a log source, read what its files gained since the previous run and judge
        the error events in it.
        """
        from opsctl.files import files_for
        from opsctl.logread import LogReader

        config = cast(AppLogConfig, self.config)
        counters = previous_counters(self.previous)
        now = utc_now()
        where = f"{target.path}" + (f" on {target.on_host.name}" if target.on_host else "")
        try:
            reader = LogReader(files_for(target.on_host, self.timeout), target.path)
            scanner = EventScanner(
                config.start_regex,
                config.level_regex,
                skip_head=(counters or {}).get("open_event"),
            )
            events: list[Event] = []
            for block in reader.blocks((counters or {}).get("cursors")):
                text = block.data.decode(target.encoding, errors="replace")
                events.extend(scanner.feed(block.path, text))
            events.extend(scanner.finish())
        except Exception as error:
            # A failed read keeps the previous counters, so that the known signatures and the
            # cursors survive it and the next run reads on from where the last good one ended.
            reason = str(error) or type(error).__name__
            return CheckResult.unknown(
                f"cannot read {where}: {reason}",
                error=type(error).__name__,
                counters=counters or {},
            )
        if reader.files_matched == 0:
            return CheckResult.unknown(f"no file matches {where}", counters=counters or {})
        notes = list(reader.notes)
        if scanner.cut_events:
            notes.append(
                f"{scanner.cut_events} event(s) longer than {_EVENT_LINES} lines were cut: "
                "does start_regex match the start of this log's lines?"
            )
        return evaluate_events(
            events,
            config,
            counters,
            now,
            name=target.name,
            cursors=reader.state,
            notes=notes,
            open_error=scanner.open_error,
        )
