"""The Nagios plugin output format, read and written: pure functions on text, no I/O.

A plugin prints (Monitoring Plugins development guidelines)::

    TEXT OUTPUT | OPTIONAL PERFDATA
    LONG TEXT LINE 1
    LONG TEXT LINE 2 | PERFDATA LINE 2
    PERFDATA LINE 3

and exits with its state (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN). Each perfdata token is
``'label'=value[UOM];[warn];[crit];[min];[max]``.

Choices made where the guidelines leave room:

- A value of ``U`` (undetermined) is kept as a metric whose value is NaN; ``evaluate`` makes
  such a metric UNKNOWN, and ``format_result`` writes NaN back as ``U``.
- A UOM outside the guidelines' list (``KiB``, ``req/s``) is kept as read; only what
  ``format_result`` writes is restricted to valid UOMs.
- A warn/crit range without its own unit takes the metric's UOM (``80`` on a ``%`` metric is
  80%), so ``Range.describe`` reads naturally.
"""

from __future__ import annotations

import math
import re
import signal
from collections.abc import Iterable, Iterator

from opsctl.contract import CheckResult, Metric, Range, State, worst

#: The units of measurement the guidelines allow in perfdata.
NAGIOS_UOMS: frozenset[str] = frozenset({"s", "ms", "us", "%", "B", "KB", "MB", "GB", "TB", "c"})

# Units the contract knows but perfdata does not: written as a valid UOM and a scale factor.
_CONVERTED_UOMS: dict[str, tuple[str, float]] = {
    "min": ("s", 60.0),
    "h": ("s", 3600.0),
    "d": ("s", 86400.0),
    "KiB": ("KB", 1.0),
    "MiB": ("MB", 1.0),
    "GiB": ("GB", 1.0),
    "TiB": ("TB", 1.0),
}

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
# A UOM starts with a letter, % or ° so that "1,5" is refused rather than read as 1 ",5".
_VALUE = re.compile(rf"^(?:(?P<number>{_NUMBER})|U)(?P<unit>(?:[^\W\d_]|[%°])\S*)?$")
_BOUND = re.compile(rf"^(?P<number>{_NUMBER})[A-Za-z%]*$")

# Signals a shell reports as exit code 128 + n.
_SHELL_SIGNAL_BASE = 128


def parse_perfdata(text: str) -> list[Metric]:
    """Given perfdata text (space-separated ``'label'=value[UOM];warn;crit;min;max`` tokens,
    possibly spanning lines), return its metrics in order.

    Malformed tokens are skipped; an unparsable warn, crit, min or max becomes None.
    ``U`` as a value gives a metric whose value is NaN.
    """
    metrics = []
    for label, data in _tokens(text):
        metric = _parse_token(label, data)
        if metric is not None:
            metrics.append(metric)
    return metrics


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    """Yield (label, data) for each token that has a label and an ``=``."""
    index, length = 0, len(text)
    while index < length:
        if text[index].isspace():
            index += 1
            continue
        if text[index] == "'":
            label_chars = []
            index += 1
            while index < length:
                if text[index] == "'":
                    if index + 1 < length and text[index + 1] == "'":
                        label_chars.append("'")
                        index += 2
                        continue
                    break
                label_chars.append(text[index])
                index += 1
            else:
                return  # an unterminated quote swallows the rest: nothing more can be trusted
            index += 1
            label = "".join(label_chars)
            if index >= length or text[index] != "=":
                index = _skip_token(text, index)
                continue
        else:
            start = index
            while index < length and text[index] != "=" and not text[index].isspace():
                index += 1
            if index >= length or text[index] != "=":
                continue
            label = text[start:index]
        index += 1
        start = index
        index = _skip_token(text, index)
        if label and index > start:
            yield label, text[start:index]


def _skip_token(text: str, index: int) -> int:
    while index < len(text) and not text[index].isspace():
        index += 1
    return index


def _parse_token(label: str, data: str) -> Metric | None:
    fields = data.split(";")
    match = _VALUE.match(fields[0])
    if match is None:
        return None
    number, unit = match.group("number"), match.group("unit") or ""
    value = math.nan if number is None else float(number)
    fields += [""] * (5 - len(fields))
    return Metric(
        name=label,
        value=value,
        unit=unit,
        warn=_parse_range(fields[1], unit),
        crit=_parse_range(fields[2], unit),
        min=_parse_bound(fields[3]),
        max=_parse_bound(fields[4]),
    )


def _parse_range(text: str, unit: str) -> Range | None:
    if not text.strip():
        return None
    try:
        parsed = Range.parse(text)
    except ValueError:
        return None
    if not parsed.unit and unit in NAGIOS_UOMS:
        return parsed.to_unit(unit)
    return parsed


def _parse_bound(text: str) -> float | None:
    match = _BOUND.match(text.strip())
    return None if match is None else float(match.group("number"))


def exit_code_reason(exit_code: int) -> str:
    """Given a plugin's exit code outside 0..3, return why it is not a state, in English."""
    if exit_code < 0:
        return f"killed by signal {_signal_name(-exit_code)}"
    if exit_code == 126:
        return "exit code 126: plugin not executable (permission denied or not a program)"
    if exit_code == 127:
        return "exit code 127: command not found"
    if exit_code > _SHELL_SIGNAL_BASE and _is_signal(exit_code - _SHELL_SIGNAL_BASE):
        name = _signal_name(exit_code - _SHELL_SIGNAL_BASE)
        return f"exit code {exit_code}: probably killed by signal {name}"
    return f"exit code {exit_code} is not a Nagios state (0 to 3)"


def _is_signal(number: int) -> bool:
    return number in signal.valid_signals()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def parse_plugin_output(stdout: str, exit_code: int) -> CheckResult:
    """Given a plugin's standard output and exit code, return its CheckResult.

    The summary is the first line before ``|``; perfdata is what follows ``|`` on the first
    line plus everything after the first ``|`` in the long text; the other lines are the long
    output, in ``details["long_output"]`` when there is any. ``details["exit_code"]`` is
    always set. An exit code outside 0..3 is UNKNOWN and the summary starts with the reason.
    """
    lines = stdout.replace("\r\n", "\n").split("\n")
    summary, _, perfdata = lines[0].partition("|")
    summary = summary.strip()
    long_lines: list[str] = []
    for position, line in enumerate(lines[1:], start=1):
        if "|" in line:
            before, _, after = line.partition("|")
            long_lines.append(before.rstrip())
            perfdata = " ".join([perfdata, after, *lines[position + 1 :]])
            break
        long_lines.append(line.rstrip())
    long_output = "\n".join(long_lines).strip("\n")

    details: dict[str, object] = {"exit_code": exit_code}
    if long_output:
        details["long_output"] = long_output
    if not summary:
        summary = "(no output returned from plugin)"
    if 0 <= exit_code <= 3:
        state = State(exit_code)
    else:
        state = State.UNKNOWN
        summary = f"{exit_code_reason(exit_code)}: {summary}"
    return CheckResult(state, summary, tuple(parse_perfdata(perfdata)), details=details)


def format_result(name: str, result: CheckResult) -> str:
    """Given a check's name and result, return plugin output for it:
    ``NAME STATE - summary | perfdata`` and then the long output, if the details have any.
    """
    first = f"{_one_line(name)} {result.state.name} - {_one_line(result.summary)}"
    perfdata = format_perfdata(result.metrics)
    if perfdata:
        first = f"{first} | {perfdata}"
    long_output = _long_output(result)
    return f"{first}\n{long_output}" if long_output else first


def format_results(results: list[tuple[str, CheckResult]]) -> str:
    """Given (name, result) pairs, return one plugin output for all of them.

    The first line is ``OPSCTL <WORST STATE> - N checks: x critical, y warning, z unknown,
    w ok`` with every check's perfdata, labels prefixed ``name::``; then one line per check,
    ``[STATE] name: summary``, the non-OK ones first. A single result is written by
    ``format_result``.
    """
    if len(results) == 1:
        return format_result(*results[0])
    counts = {state: sum(1 for _, r in results if r.state == state) for state in State}
    state = worst(result.state for _, result in results)
    first = (
        f"OPSCTL {state.name} - {len(results)} checks: "
        f"{counts[State.CRITICAL]} critical, {counts[State.WARNING]} warning, "
        f"{counts[State.UNKNOWN]} unknown, {counts[State.OK]} ok"
    )
    perfdata = " ".join(
        token
        for name, result in results
        if (token := format_perfdata(result.metrics, prefix=f"{name}::"))
    )
    if perfdata:
        first = f"{first} | {perfdata}"
    order = (State.CRITICAL, State.WARNING, State.UNKNOWN, State.OK)
    lines = [
        f"[{result.state.name}] {_one_line(name)}: {_one_line(result.summary)}"
        for state_in_order in order
        for name, result in results
        if result.state == state_in_order
    ]
    return "\n".join([first, *lines])


def format_perfdata(metrics: Iterable[Metric], prefix: str = "") -> str:
    """Given metrics, return them as space-separated perfdata tokens, labels prefixed.

    A metric with labels is written as ``name[value,...]`` so that metrics sharing a name stay
    apart. A unit that is not a valid UOM is converted (``min`` → ``s``, ``MiB`` → ``MB``)
    when the contract knows it, and left out otherwise.
    """
    return " ".join(_format_metric(metric, prefix) for metric in metrics)


def _format_metric(metric: Metric, prefix: str) -> str:
    label = metric.name
    if metric.labels:
        label = f"{label}[{','.join(str(v) for v in metric.labels.values())}]"
    if metric.unit in NAGIOS_UOMS:
        uom, factor = metric.unit, 1.0
    else:
        uom, factor = _CONVERTED_UOMS.get(metric.unit, ("", 1.0))
    fields = [
        f"{_format_value(metric.value * factor)}{uom}",
        _format_range(metric.warn, metric.unit, factor),
        _format_range(metric.crit, metric.unit, factor),
        _format_bound(metric.min, factor),
        _format_bound(metric.max, factor),
    ]
    while fields[-1] == "":
        fields.pop()
    return f"{quote_label(prefix + label)}={';'.join(fields)}"


def quote_label(label: str) -> str:
    """Given a perfdata label, return it quoted as the guidelines require: in single quotes
    when it holds whitespace, ``=`` or ``'``, with each ``'`` doubled.
    """
    label = _one_line(label)
    if label and not any(c.isspace() or c in "='" for c in label):
        return label
    return "'" + label.replace("'", "''") + "'"


def _format_range(value: Range | None, unit: str, factor: float) -> str:
    if value is None:
        return ""
    if value.unit and value.unit != unit:
        try:
            value = value.to_unit(unit)
        except ValueError:
            pass  # units that cannot be compared: write the numbers as they are
    if factor != 1.0:
        value = Range(value.start * factor, value.end * factor, value.inside)
    return str(value)


def _format_value(value: float) -> str:
    return _format_number(value) if math.isfinite(value) else "U"


def _format_bound(value: float | None, factor: float) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return _format_number(value * factor)


def _format_number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _one_line(text: str) -> str:
    # A "|" would start perfdata and a newline would start long output in the reader.
    return " ".join(str(text).replace("|", "/").split())


def _long_output(result: CheckResult) -> str:
    long_output = result.details.get("long_output") if result.details else None
    if not long_output:
        return ""
    if not isinstance(long_output, str):
        long_output = "\n".join(str(line) for line in long_output)
    return long_output.replace("|", "/").strip("\n")
