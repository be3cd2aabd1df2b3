"""The ``backup.drill`` check: restore the newest dump of a backup set into a scratch
database, verify it, and report RTO and RPO (see ``opsctl.drill`` for the steps and guards).

A drill takes minutes, not seconds: give it ``timeout: 1h`` (or what the restore needs) in the
inventory — the 30 s default of every check is far too short — and it runs at most once per
``min_interval`` however often the inspection runs; ``opsctl backup drill NAME`` runs it now.
"""

from __future__ import annotations

import posixpath
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from opsctl.contract import (
    Check,
    CheckConfig,
    CheckResult,
    Item,
    Metric,
    Range,
    State,
    utc_now,
)
from opsctl.drill import (
    DrillReport,
    DrillServer,
    NoBackup,
    Verification,
    run_drill,
    valid_prefix,
)
from opsctl.duration import Duration, format_duration
from opsctl.files import files_for
from opsctl.sources import format_bytes

if TYPE_CHECKING:
    from opsctl.inventory import Host


class BackupDrillConfig(CheckConfig):
    """Configuration of the ``backup.drill`` check."""

    path: str = Field(description="glob of the backup set on the host; its newest file is restored")
    format: Literal["auto", "pg_custom", "pg_plain", "mysqldump"] = Field(
        "auto", description="dump format; auto recognises it by content (gzip-compressed too)"
    )
    server: DrillServer = Field(
        description="the scratch server to restore into: engine, host, port, user, password "
        '("env:NAME"/"file:/path"), database (for CREATE/DROP; PostgreSQL: postgres)'
    )
    scratch_prefix: Annotated[str, AfterValidator(valid_prefix)] = Field(
        "opsctl_drill_",
        description="the scratch database is <prefix><timestamp>_<id>; the drill creates, "
        "restores into and drops no database without this prefix",
    )
    verify: list[Verification] = Field(
        [],
        description="queries run on the restored database, each {query, min, max, label}: "
        'e.g. {query: "select count(*) from orders", min: 1000, label: orders}',
    )
    max_rto: Duration | None = Field(
        None, description="warning when restore and verification take longer"
    )
    max_rpo: Duration | None = Field(
        None, description="warning when the restored backup was older than this"
    )
    min_interval: Duration = Field(
        timedelta(hours=20),
        description="a scheduled run sooner than this after the last drill repeats that "
        "drill's result instead of restoring again (opsctl backup drill always restores)",
    )
    download_dir: str | None = Field(
        None, description="where a remote dump is copied before restoring (default: the temp dir)"
    )

    @model_validator(mode="after")
    def _format_fits_server(self) -> BackupDrillConfig:
        if self.format == "auto":
            return self
        wanted = "postgresql" if self.format.startswith("pg_") else "mysql or mariadb"
        if (self.server.engine == "postgresql") != (wanted == "postgresql"):
            raise ValueError(
                f"a {self.format} dump restores into {wanted}, but server.engine is "
                f"{self.server.engine}"
            )
        return self


class BackupDrillCheck(Check):
    """Restore drill: restores the newest dump into a scratch database, verifies it, reports RTO and RPO."""

    kind = "backup.drill"
    Config = BackupDrillConfig
    targets = frozenset({"host"})

    config: BackupDrillConfig

    def run(self, target: Host) -> CheckResult:
        config = self.config
        repeated = self._repeat(utc_now())
        if repeated is not None:
            return repeated
        files = files_for(target, self.timeout)
        try:
            report = run_drill(
                files,
                path=config.path,
                dump_format=config.format,
                server=config.server,
                prefix=config.scratch_prefix,
                verify=config.verify,
                budget=self.timeout,
                local=target.transport == "local",
                download_dir=config.download_dir,
            )
        except NoBackup as error:
            item = Item(
                "backup.drill.file",
                "Drill / backup file",
                str(error),
                State.CRITICAL,
                advice="there is nothing to restore: check the path and the backup job",
            )
            return CheckResult(State.CRITICAL, str(error), items=(item,))
        return drill_result(report, config)

    def _repeat(self, now: datetime) -> CheckResult | None:
        """The last drill's result again, if it is more recent than ``min_interval``."""
        previous = self.previous
        if previous is None:
            return None
        last = previous.details.get("counters", {}).get("last_drill")
        drill = previous.details.get("drill")
        if not isinstance(last, str) or not isinstance(drill, dict):
            return None
        try:
            when = datetime.fromisoformat(last)
        except ValueError:
            return None
        if when.tzinfo is None or now - when >= self.config.min_interval:
            return None
        items = tuple(
            Item(
                item["key"],
                item["item"],
                item["value"],
                State[item["verdict"]],
                item.get("threshold", ""),
                item.get("advice", ""),
            )
            for item in drill.get("items", [])
        )
        ago = format_duration(now - when)
        return CheckResult(
            State(drill.get("state", int(previous.state))),
            f"last drill {ago} ago: {drill.get('summary', previous.summary)}",
            items=items,
            details={**previous.details, "repeat_of": last},
        )


def drill_result(report: DrillReport, config: BackupDrillConfig) -> CheckResult:
    """Given a drill's report and the check's configuration, return its CheckResult: items
    for the file, the restore, each verification, RPO, RTO and the cleanup; metrics rto and
    rpo in seconds."""
    name = posixpath.basename(report.file.path)
    items: list[Item] = [
        Item("backup.drill.file", "Drill / backup file", report.file.path),
        Item(
            "backup.drill.size",
            "Drill / backup size",
            format_bytes(report.file.size)
            + (", gzip" if report.compressed else "")
            + (f", {report.format}" if report.format else ""),
        ),
    ]
    if report.download_seconds is not None:
        items.append(
            Item(
                "backup.drill.download",
                "Drill / download",
                format_duration(report.download_seconds),
            )
        )
    if report.restore_error is not None:
        items.append(
            Item(
                "backup.drill.restore",
                "Drill / restore",
                report.restore_error,
                State.CRITICAL,
                advice="this backup would not restore: fix the backup job (or the dump's "
                "format) now, and drill again; keep the last backup that restores",
            )
        )
    elif report.restore_seconds is not None:
        items.append(
            Item(
                "backup.drill.restore",
                "Drill / restore",
                f"restored into {report.scratch} in {format_duration(report.restore_seconds)}",
            )
        )
    for index, outcome in enumerate(report.verifications, 1):
        verification = outcome.verification
        value = "-" if outcome.value is None else str(outcome.value)
        if outcome.error:
            value = f"{value}: {outcome.error}" if outcome.value is not None else outcome.error
        items.append(
            Item(
                f"backup.drill.verify.{index}",
                f"Drill / verify {verification.name}",
                value,
                outcome.state,
                verification.threshold(),
                ""
                if outcome.state == State.OK
                else "the restored data is not what it should be: check what the dump leaves out",
            )
        )
    metrics: list[Metric] = []
    rpo_range = None if config.max_rpo is None else Range(0, config.max_rpo.total_seconds())
    rpo = Metric("rpo", round(report.rpo, 3), "s", warn=rpo_range, min=0)
    metrics.append(rpo)
    items.append(
        Item(
            "backup.drill.rpo",
            "Drill / RPO (age of the backup)",
            format_duration(report.rpo),
            rpo.state,
            "" if config.max_rpo is None else f"> {format_duration(config.max_rpo)}",
            "" if rpo.state == State.OK else "backups are made too rarely for the agreed RPO",
        )
    )
    if report.rto is not None:
        rto_range = None if config.max_rto is None else Range(0, config.max_rto.total_seconds())
        rto = Metric("rto", round(report.rto, 3), "s", warn=rto_range, min=0)
        metrics.append(rto)
        items.append(
            Item(
                "backup.drill.rto",
                "Drill / RTO (restore and verify)",
                format_duration(report.rto),
                rto.state,
                "" if config.max_rto is None else f"> {format_duration(config.max_rto)}",
                ""
                if rto.state == State.OK
                else "a restore takes longer than agreed: plan faster media or a standby",
            )
        )
    if report.scratch is not None:
        items.append(_cleanup_item(report))
    if report.leftovers:
        items.append(
            Item(
                "backup.drill.leftovers",
                "Drill / scratch databases left",
                ", ".join(report.leftovers),
                State.WARNING,
                advice="left by interrupted drills: drop them on the scratch server",
            )
        )
    result = CheckResult.from_metrics(metrics, "", items)
    summary = _summary(result.state, name, report, items)
    details: dict[str, Any] = {
        "file": report.file.path,
        "format": report.format,
        "scratch": report.scratch,
        "counters": {"last_drill": report.started.isoformat()},
    }
    details["drill"] = {
        "state": int(result.state),
        "summary": summary,
        "items": [item.to_dict() for item in items],
    }
    return CheckResult(result.state, summary, result.metrics, result.items, details)


def _cleanup_item(report: DrillReport) -> Item:
    if report.dropped:
        return Item("backup.drill.cleanup", "Drill / cleanup", f"{report.scratch} dropped")
    return Item(
        "backup.drill.cleanup",
        "Drill / cleanup",
        f"{report.scratch} not dropped: {report.drop_error}",
        State.CRITICAL,
        advice=f"drop database {report.scratch} on the scratch server by hand",
    )


def _summary(state: State, name: str, report: DrillReport, items: list[Item]) -> str:
    if report.restore_error is not None:
        return f"{name}: restore failed: {report.restore_error}"
    if state != State.OK:
        problems = [
            f"{item.item.split(' / ', 1)[-1]}: {item.value}"
            for item in items
            if item.verdict == state
        ]
        return f"{name}: " + "; ".join(problems)
    checks = len(report.verifications)
    verified = f", {checks} verification{'s' if checks != 1 else ''} passed" if checks else ""
    rto = "" if report.rto is None else f"RTO {format_duration(report.rto)}, "
    return f"{name} restored{verified}; {rto}RPO {format_duration(report.rpo)}"
