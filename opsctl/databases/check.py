"""The base of the ``db.*`` check kinds: ask the target's engine module for one inspection
item, judge its measures with the user's thresholds, and remember counters for the next run.
"""

from __future__ import annotations

import fnmatch
import math
import time
from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar, cast

from pydantic import BaseModel, ConfigDict, Field

from opsctl.contract import (
    Check,
    CheckConfig,
    CheckResult,
    Item,
    Metric,
    Range,
    RangeField,
    State,
    describe_thresholds,
    evaluate,
    worst,
)
from opsctl.databases import (
    DbError,
    Measure,
    Observation,
    Snapshot,
    default_pool,
    engine_module,
)


class Thresholds(BaseModel):
    """Warning and critical ranges for one measure."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    warn: RangeField | None = None
    crit: RangeField | None = None


class DbCheckConfig(CheckConfig):
    """Configuration shared by every ``db.*`` kind."""

    warn: RangeField | None = Field(
        None, description="warning range of this kind's main figure (see check list: main)"
    )
    crit: RangeField | None = Field(None, description="critical range of this kind's main figure")
    thresholds: dict[str, Thresholds] = Field(
        {},
        description='ranges per measure key, e.g. {"db.sessions.long_transactions": {crit: "1"}}',
    )
    include: list[str] = Field(
        [], description="object names (tablespaces, databases...) or patterns to judge; empty: all"
    )
    exclude: list[str] = Field([], description="object names or patterns to leave out")


class DbCheck(Check):
    """Base of the ``db.*`` kinds; a subclass names its ``item`` and its ``main`` measure key."""

    targets: ClassVar[frozenset[str]] = frozenset({"database"})
    Config: ClassVar[type[CheckConfig]] = DbCheckConfig
    item: ClassVar[str] = ""
    main: ClassVar[str] = ""

    def run(self, target: Any) -> CheckResult:
        """Given a Database target, inspect this kind's item and return the result.

        Raise DbError (the engine reports UNKNOWN with its one-line reason) if the database
        cannot be inspected; a database that cannot be reached at all is CRITICAL for
        ``db.availability`` — that is the finding — and UNKNOWN for the other kinds.
        """
        module = engine_module(target.engine)
        function = getattr(module, self.item)
        snapshot = previous_snapshot(self.previous)
        config = cast(DbCheckConfig, self.config)
        if self.item != "availability":
            observation = default_pool().run(target, self.timeout, lambda c: function(c, snapshot))
            return judge(observation, config, self.main, engine=target.engine)
        # Availability measures a connection of its own, so that the connect time is real.
        started = time.perf_counter()
        try:
            connection = module.connect(target, self.timeout)
        except DbError as error:
            if error.stage != "connect":
                raise
            item = Item(
                "db.availability.reachable",
                f"Database {target.name} / reachable",
                "no",
                State.CRITICAL,
                advice="check that the database is running and that the network path is open",
            )
            return CheckResult(State.CRITICAL, f"database down: {error}", items=(item,))
        try:
            connect_time = time.perf_counter() - started
            observation = function(connection, snapshot)
        finally:
            connection.close()
        if not any(m.key == "db.availability.connect_time" for m in observation.measures):
            measure = Measure(
                "db.availability.connect_time",
                f"Database {target.name} / connect time",
                round(connect_time, 4),
                "s",
                warn=Range.parse("1"),
                crit=Range.parse("5"),
                advice="slow logins: check DNS (reverse lookups), the network and the listener",
            )
            observation = replace(observation, measures=[measure, *observation.measures])
        return judge(observation, config, self.main, engine=target.engine)


def previous_snapshot(previous: CheckResult | None) -> Snapshot | None:
    """Given the previous result of a check, return what it remembered, or None."""
    if previous is None or previous.started is None:
        return None
    counters = previous.details.get("counters") if isinstance(previous.details, dict) else None
    if not counters:
        return None
    return Snapshot(previous.started, counters)


def judge(observation: Observation, config: DbCheckConfig, main: str, engine: str) -> CheckResult:
    """Given an observation, a kind's config and its main measure key, return the result."""
    metrics: list[Metric] = []
    items: list[Item] = []
    for measure in observation.measures:
        name = measure.labels.get("name", "")
        if name and not _selected(name, config.include, config.exclude):
            continue
        warn, crit = _ranges(measure, config, main)
        state = _state(measure, warn, crit)
        if isinstance(measure.value, int | float) and not isinstance(measure.value, bool):
            value = float(measure.value)
            if math.isfinite(value):
                metrics.append(
                    Metric(
                        measure.key.rsplit(".", 1)[-1]
                        if measure.key.startswith("db.")
                        else measure.key,
                        value,
                        measure.unit,
                        warn,
                        crit,
                        measure.min,
                        measure.max,
                        dict(measure.labels),
                    )
                )
        items.append(
            Item(
                key=measure.key,
                item=measure.label,
                value=measure.display if measure.display is not None else _display(measure),
                verdict=state,
                threshold=describe_thresholds(warn, crit),
                advice=measure.advice if state != State.OK else "",
            )
        )
    state = worst(item.verdict for item in items)
    problems = [f"{item.item}: {item.value}" for item in items if item.verdict != State.OK]
    summary = observation.summary or (items[0].value if items else "nothing observed")
    if problems:
        summary = "; ".join(problems[:3]) + (
            f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        )
    if observation.notes:
        summary += " — " + "; ".join(observation.notes)
    details = {
        "engine": engine,
        "counters": dict(observation.counters),
        "notes": list(observation.notes),
    }
    return CheckResult(state, summary, tuple(metrics), tuple(items), details)


def _selected(name: str, include: list[str], exclude: list[str]) -> bool:
    if include and not any(fnmatch.fnmatchcase(name, pattern) for pattern in include):
        return False
    return not any(fnmatch.fnmatchcase(name, pattern) for pattern in exclude)


def _ranges(
    measure: Measure, config: DbCheckConfig, main: str
) -> tuple[Range | None, Range | None]:
    warn, crit = measure.warn, measure.crit
    if main and measure.key == main:
        warn = config.warn if config.warn is not None else warn
        crit = config.crit if config.crit is not None else crit
    override = config.thresholds.get(measure.key)
    if override is not None:
        warn = override.warn if override.warn is not None else warn
        crit = override.crit if override.crit is not None else crit
    return warn, crit


def _state(measure: Measure, warn: Range | None, crit: Range | None) -> State:
    if measure.verdict is not None:
        return State(measure.verdict)
    if isinstance(measure.value, bool) or not isinstance(measure.value, int | float):
        return State.OK
    return evaluate(float(measure.value), warn, crit)


def _display(measure: Measure) -> str:
    value = measure.value
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, float):
        text = f"{value:.2f}".rstrip("0").rstrip(".")
    else:
        text = str(value)
    if measure.unit == "B" and isinstance(value, int | float):
        from opsctl.sources import format_bytes

        return format_bytes(float(value))
    return (
        f"{text}{measure.unit}"
        if measure.unit in ("%", "s", "ms")
        else f"{text} {measure.unit}".strip()
    )


__all__ = ["DbCheck", "DbCheckConfig", "DbError", "judge", "previous_snapshot"]
