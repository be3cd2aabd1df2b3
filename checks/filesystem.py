"""The filesystem check: space and inodes used on every mounted filesystem of a host."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, ClassVar, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator

from opsctl.contract import (
    Check,
    CheckConfig,
    CheckResult,
    Item,
    Metric,
    Range,
    RangeField,
    State,
    percent_range,
    worst,
)
from opsctl.sources import MountUsage, format_bytes, source_for

#: Filesystem types that hold no user data (kernel interfaces, memory, images that are
#: full by construction). Left out unless ``include_pseudo`` is set or the mount is named
#: exactly in ``include`` or ``mounts``. ``overlay`` is not here: it is the root of every
#: container. ``iso9660``/``udf``/``squashfs``/``erofs`` are read-only images, always 100%
#: used: a DVD mounted as a local yum repository must not page anyone.
PSEUDO_FSTYPES: tuple[str, ...] = (
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "devtmpfs", "efivarfs", "erofs", "fuse.gvfsd-fuse", "fuse.lxcfs", "fuse.portal",
    "fuse.snapfuse", "fusectl", "hugetlbfs", "iso9660", "mqueue", "nfsd", "nsfs", "proc",
    "pstore", "ramfs", "rootfs", "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs",
    "tmpfs", "tracefs", "udf",
)  # fmt: skip

#: Mount points that container runtimes create for their own plumbing: one overlay per
#: running container (each showing the host disk again) and the files they bind into it.
CONTAINER_MOUNTS: tuple[str, ...] = (
    "/var/lib/docker/*", "/var/lib/containers/*", "/run/containerd/*", "/run/docker/*",
    "/run/k3s/*", "/var/lib/kubelet/pods/*", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf",
)  # fmt: skip

_BYTES_HINT = (
    'a size threshold applies to free space and is written "2GB:" (alert when less is free)'
)


def _is_size(value: Range) -> bool:
    """Return True if the range is written in a byte unit (``2GB:``)."""
    if value.unit in ("", "%"):
        return False
    try:
        value.to_unit("B")
    except ValueError:
        return False
    return True


def _usage_range(value: Range | None) -> Range | None:
    if value is None:
        return None
    if _is_size(value):
        if not value.inside and value.start <= 0 and not math.isinf(value.end):
            # "10GB" in Nagios syntax alerts when MORE than 10 GB is free: never meant.
            raise ValueError(f"{_BYTES_HINT}; {value.describe()} free would alert on an empty disk")
        return value
    try:
        value.to_unit("%")
    except ValueError:
        raise ValueError(f'expected a percentage like "80%" or {_BYTES_HINT}') from None
    return value


class MountThresholds(BaseModel):
    """Thresholds for one mount point or pattern; a field left out keeps the check's own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    warn: RangeField | None = Field(None, description='Warning on space used (%) or free ("5GB:").')
    crit: RangeField | None = Field(
        None, description='Critical on space used (%) or free ("2GB:").'
    )
    inode_warn: RangeField | None = Field(None, description="Warning on inodes used (%).")
    inode_crit: RangeField | None = Field(None, description="Critical on inodes used (%).")

    _usage = field_validator("warn", "crit")(_usage_range)
    _inodes = field_validator("inode_warn", "inode_crit")(percent_range)


class FilesystemConfig(CheckConfig):
    """Configuration of the ``filesystem`` check."""

    warn: RangeField | None = Field(
        Range.parse("80%"),
        description='Warning when space used exceeds this percentage ("80%"), or, written as a '
        'size ("10GB:"), when less than that is free. Used % is df\'s: used / (used + available).',
    )
    crit: RangeField | None = Field(
        Range.parse("90%"),
        description='Critical when space used exceeds this percentage ("90%"), or, written as a '
        'size ("2GB:"), when less than that is free.',
    )
    inode_warn: RangeField | None = Field(
        Range.parse("80%"), description="Warning when inodes used exceed this percentage."
    )
    inode_crit: RangeField | None = Field(
        Range.parse("90%"), description="Critical when inodes used exceed this percentage."
    )
    mounts: dict[str, MountThresholds] = Field(
        default_factory=dict,
        description='Thresholds per mount point; keys are mount points or patterns ("/u0*"). '
        "An exact key wins over patterns; among patterns the first written wins.",
    )
    include: list[str] = Field(
        default_factory=list,
        description="Mount points or patterns to check; empty checks every mount. A mount "
        'named exactly here is checked whatever its filesystem type ("/dev/shm").',
    )
    exclude: list[str] = Field(
        default_factory=list, description="Mount points or patterns to leave out."
    )
    exclude_fstypes: list[str] = Field(
        default_factory=list,
        description='Filesystem types or patterns to leave out ("nfs*"), in addition to the '
        "pseudo filesystems.",
    )
    include_pseudo: bool = Field(
        False,
        description="Also check pseudo filesystems (tmpfs, proc, squashfs, CD images ...) and "
        "container runtime mounts.",
    )

    _usage = field_validator("warn", "crit")(_usage_range)
    _inodes = field_validator("inode_warn", "inode_crit")(percent_range)


@dataclass(frozen=True, slots=True)
class _Limits:
    warn: Range | None
    crit: Range | None
    inode_warn: Range | None
    inode_crit: Range | None


def thresholds_for(mount: str, config: FilesystemConfig) -> _Limits:
    """Given a mount point, return the thresholds that apply to it: its exact entry in
    ``mounts``, else the first pattern of ``mounts`` it matches, each missing field taken
    from the check's own thresholds.
    """
    override = config.mounts.get(mount)
    if override is None:
        override = next(
            (value for key, value in config.mounts.items() if fnmatchcase(mount, key)), None
        )
    limits = _Limits(config.warn, config.crit, config.inode_warn, config.inode_crit)
    if override is None:
        return limits
    return _Limits(
        override.warn if override.warn is not None else limits.warn,
        override.crit if override.crit is not None else limits.crit,
        override.inode_warn if override.inode_warn is not None else limits.inode_warn,
        override.inode_crit if override.inode_crit is not None else limits.inode_crit,
    )


def _matches(mount: str, patterns: list[str] | tuple[str, ...]) -> bool:
    return any(fnmatchcase(mount, pattern) for pattern in patterns)


def select_mounts(
    mounts: list[MountUsage], config: FilesystemConfig
) -> tuple[list[MountUsage], dict[str, dict[str, str]]]:
    """Given every mount of a host, return the ones to check and, for the others, why not
    (``{"pseudo": {mount: fstype}, "excluded": {...}, "duplicate": {mount: kept mount},
    "empty": {...}}``).

    Bind mounts and other repeated mounts of one device are checked once, at the shortest
    mount point: they share one filesystem, and each would raise the same alert.
    """
    named = {p for p in [*config.include, *config.mounts] if not any(c in p for c in "*?[")}
    skipped: dict[str, dict[str, str]] = {
        "pseudo": {},
        "excluded": {},
        "duplicate": {},
        "empty": {},
    }
    kept: list[MountUsage] = []
    for usage in mounts:
        explicit = usage.mount in named
        if (
            not config.include_pseudo
            and not explicit
            and (_matches(usage.fstype, PSEUDO_FSTYPES) or _matches(usage.mount, CONTAINER_MOUNTS))
        ):
            skipped["pseudo"][usage.mount] = usage.fstype
        elif not explicit and _matches(usage.fstype, config.exclude_fstypes):
            skipped["excluded"][usage.mount] = f"type {usage.fstype}"
        elif config.include and not _matches(usage.mount, config.include):
            skipped["excluded"][usage.mount] = "not in include"
        elif _matches(usage.mount, config.exclude):
            skipped["excluded"][usage.mount] = "in exclude"
        elif usage.error is None and usage.total_bytes <= 0:
            skipped["empty"][usage.mount] = usage.fstype
        else:
            kept.append(usage)
    by_device: dict[str, MountUsage] = {}
    for usage in sorted(kept, key=lambda u: (len(u.mount), u.mount)):
        # Only names that identify one filesystem: "/dev/sdb1", "nas:/export", "//nas/share".
        # "tmpfs", "overlay" or "none" are shared by unrelated filesystems.
        if usage.device.startswith("/") or ":" in usage.device:
            first = by_device.setdefault(usage.device, usage)
            if first is not usage:
                skipped["duplicate"][usage.mount] = first.mount
    result = [u for u in kept if u.mount not in skipped["duplicate"]]
    return result, {reason: found for reason, found in skipped.items() if found}


def _split(value: Range | None) -> tuple[Range | None, Range | None]:
    """Return (range on used %, range on free bytes) for a usage threshold."""
    if value is None:
        return None, None
    if _is_size(value):
        return None, value.to_unit("B")
    return value.to_unit("%"), None


def _describe(level: str, value: Range | None) -> str:
    if value is None:
        return ""
    if _is_size(value):
        return f"{level} free {value.describe()}"
    return f"{level} {value.to_unit('%').describe()}"


def _threshold_text(warn: Range | None, crit: Range | None) -> str:
    return ", ".join(p for p in (_describe("warning", warn), _describe("critical", crit)) if p)


def _percent(part: float, whole: float) -> float:
    return 0.0 if whole <= 0 else part / whole * 100


@dataclass(frozen=True, slots=True)
class _Judged:
    mount: str
    state: State
    text: str


def _judge_mount(usage: MountUsage, limits: _Limits) -> tuple[list[Metric], list[Item], _Judged]:
    mount = usage.mount
    labels = {"mount": mount}
    if usage.error is not None:
        item = Item(
            key="filesystem.used",
            item=f"Filesystem {mount} / used",
            value=usage.error,
            verdict=State.CRITICAL,
            threshold=_threshold_text(limits.warn, limits.crit),
            advice=f"{mount} ({usage.device}, {usage.fstype}) cannot be measured: check the "
            "disk or the file server behind it, and remount it (umount -l, then mount) once "
            "it answers again",
        )
        return [], [item], _Judged(mount, State.CRITICAL, f"{mount} {usage.error} (CRITICAL)")

    # df's arithmetic: the root-reserved blocks count neither as used nor as available,
    # so 100% means an ordinary service can no longer write.
    used_percent = _percent(usage.used_bytes, usage.used_bytes + usage.free_bytes)
    percent_warn, free_warn = _split(limits.warn)
    percent_crit, free_crit = _split(limits.crit)
    metrics = [
        Metric("used_percent", used_percent, "%", percent_warn, percent_crit, 0, 100, labels),
        Metric("used", usage.used_bytes, "B", None, None, 0, usage.total_bytes, labels),
        Metric("free", usage.free_bytes, "B", free_warn, free_crit, 0, usage.total_bytes, labels),
        Metric("total", usage.total_bytes, "B", None, None, 0, None, labels),
    ]
    space_state = worst([metrics[0].state, metrics[2].state])
    free_alert = metrics[2].state != State.OK
    advice = ""
    if space_state != State.OK:
        advice = (
            f"clean up or extend {mount}: find what grew (du -xh --max-depth=2 {mount} | "
            "sort -h | tail), rotate or move old logs, archives and backups, or grow the volume"
        )
    items = [
        Item(
            key="filesystem.used",
            item=f"Filesystem {mount} / used",
            value=f"{used_percent:.1f}% ({format_bytes(usage.used_bytes)} of "
            f"{format_bytes(usage.total_bytes)} used, {format_bytes(usage.free_bytes)} free)",
            verdict=space_state,
            threshold=_threshold_text(limits.warn, limits.crit),
            advice=advice,
        )
    ]
    text = f"{mount} {used_percent:.0f}% used"
    if free_alert:
        text += f", {format_bytes(usage.free_bytes)} free"
    state = space_state

    if usage.inodes_total is not None and usage.inodes_used is not None:
        inode_percent = _percent(usage.inodes_used, usage.inodes_total)
        inode_metric = Metric(
            "inodes_used_percent",
            inode_percent,
            "%",
            None if limits.inode_warn is None else limits.inode_warn.to_unit("%"),
            None if limits.inode_crit is None else limits.inode_crit.to_unit("%"),
            0,
            100,
            labels,
        )
        metrics.append(inode_metric)
        inode_state = inode_metric.state
        items.append(
            Item(
                key="filesystem.inodes_used",
                item=f"Filesystem {mount} / inodes used",
                value=f"{inode_percent:.1f}% ({usage.inodes_used:,} of {usage.inodes_total:,})",
                verdict=inode_state,
                threshold=_threshold_text(limits.inode_warn, limits.inode_crit),
                advice=""
                if inode_state == State.OK
                else f"{mount} is running out of inodes (too many small files): find the "
                "directories holding the most files (sessions, caches, mail or spool queues) "
                "and remove stale ones; space may look free while nothing can be created",
            )
        )
        if inode_state != State.OK:
            text += f", inodes {inode_percent:.0f}% used"
        state = worst([state, inode_state])
    return metrics, items, _Judged(mount, state, f"{text} ({state.name})")


def evaluate_mounts(mounts: list[MountUsage], config: FilesystemConfig) -> CheckResult:
    """Given every mount of a host and the check's configuration, return the result: one
    space item (and one inode item where the filesystem has inodes) per mount checked,
    metrics labelled with the mount, and a summary naming the mounts in trouble first.

    Return UNKNOWN if no mount is left to check after filtering.
    """
    selected, skipped = select_mounts(mounts, config)
    details: dict[str, Any] = {"mounts_seen": len(mounts), "skipped": skipped}
    if not selected:
        reasons = ", ".join(f"{len(found)} {reason}" for reason, found in skipped.items())
        return CheckResult.unknown(
            f"no filesystem to check among {len(mounts)} mounts ({reasons or 'none reported'})",
            **details,
        )
    metrics: list[Metric] = []
    items: list[Item] = []
    judged: list[_Judged] = []
    for usage in selected:
        mount_metrics, mount_items, verdict = _judge_mount(
            usage, thresholds_for(usage.mount, config)
        )
        metrics += mount_metrics
        items += mount_items
        judged.append(verdict)
    count = f"{len(judged)} mount{'s' if len(judged) != 1 else ''}"
    troubled = sorted((j for j in judged if j.state != State.OK), key=lambda j: (-j.state, j.mount))
    if troubled:
        summary = ", ".join(j.text for j in troubled) + f", {count} checked"
    else:
        fullest = max(
            (m for m in metrics if m.name == "used_percent"), key=lambda m: m.value, default=None
        )
        summary = f"{count} OK"
        if fullest is not None:
            summary += f", fullest {fullest.labels['mount']} {fullest.value:.0f}%"
    return CheckResult.from_metrics(metrics, summary, items, details)


class FilesystemCheck(Check):
    """Space and inodes used on each mounted filesystem, against % used or a free-space floor.

    Pseudo filesystems (proc, tmpfs, squashfs, CD images ...) and container plumbing are
    left out, bind mounts of one device are checked once, and thresholds can be set per
    mount point or pattern.
    """

    kind: ClassVar[str] = "filesystem"
    Config: ClassVar[type[CheckConfig]] = FilesystemConfig
    targets: ClassVar[frozenset[str]] = frozenset({"host"})

    def run(self, target: Any) -> CheckResult:
        """Given a host target, return the state of its filesystems."""
        return evaluate_mounts(
            source_for(target, self.timeout, self.store).mounts(),
            cast(FilesystemConfig, self.config),
        )
