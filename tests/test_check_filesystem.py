"""The filesystem check, judged on recorded mount lists (tests/fixtures/mounts/)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from checks.filesystem import FilesystemCheck, FilesystemConfig, evaluate_mounts, select_mounts
from opsctl.contract import CheckError, State
from opsctl.sources import MountUsage

FIXTURES = Path(__file__).parent / "fixtures" / "mounts"


def mounts(name: str) -> list[MountUsage]:
    return [MountUsage.from_dict(d) for d in json.loads((FIXTURES / f"{name}.json").read_text())]


def checked(result) -> list[str]:
    return [m.labels["mount"] for m in result.metrics if m.name == "used_percent"]


def item(result, key: str, mount: str):
    label = {"filesystem.used": "used", "filesystem.inodes_used": "inodes used"}[key]
    (found,) = [
        i for i in result.items if i.key == key and i.item == f"Filesystem {mount} / {label}"
    ]
    return found


def metric(result, name: str, mount: str):
    (found,) = [m for m in result.metrics if m.name == name and m.labels["mount"] == mount]
    return found


@pytest.mark.parametrize(
    ("fixture", "config", "state", "summary"),
    [
        (
            "centos7-db",
            {},
            State.CRITICAL,
            "/data 93% used (CRITICAL), /home 22% used, inodes 93% used (CRITICAL), "
            "/u01 85% used (WARNING), 7 mounts checked",
        ),
        ("container-overlay-root", {}, State.OK, "2 mounts OK, fullest /data 43%"),
        ("debian12-docker-host", {}, State.OK, "3 mounts OK, fullest /var/lib/docker 61%"),
        (
            "kylin-nfs-stale",
            {},
            State.CRITICAL,
            "/backup not responding: no answer within 5s (CRITICAL), 3 mounts checked",
        ),
        (
            # Per-mount overrides: /data by its exact path, /u01 through a pattern.
            "centos7-db",
            {
                "mounts": {"/data": {"warn": "95%", "crit": "98%"}, "/u0*": {"warn": "90%"}},
                "inode_crit": "95%",
            },
            State.WARNING,
            "/home 22% used, inodes 93% used (WARNING), 7 mounts checked",
        ),
        (
            # Free-space floors: 143 GB free on /data is under 200 GB but over 100 GB.
            "centos7-db",
            {
                "mounts": {"/data": {"warn": "200GB:", "crit": "100GB:"}},
                "exclude": ["/home", "/u01"],
            },
            State.WARNING,
            "/data 93% used, 143 GB free (WARNING), 5 mounts checked",
        ),
        (
            "centos7-db",
            {"include": ["/", "/boot*"]},
            State.OK,
            "3 mounts OK, fullest / 63%",
        ),
    ],
)
def test_state_and_summary(fixture: str, config: dict, state: State, summary: str) -> None:
    result = evaluate_mounts(mounts(fixture), FilesystemConfig(**config))
    assert result.state == state
    assert result.summary == summary


def test_pseudo_filesystems_cd_images_and_bind_duplicates_are_left_out() -> None:
    result = evaluate_mounts(mounts("centos7-db"), FilesystemConfig())
    assert checked(result) == ["/", "/boot", "/boot/efi", "/home", "/u01", "/data", "/backup"]
    skipped = result.details["skipped"]
    assert skipped["duplicate"] == {"/srv/nfs-export/data": "/data"}
    assert skipped["pseudo"]["/mnt/cdrom"] == "iso9660"
    assert skipped["pseudo"]["/dev/shm"] == "tmpfs"
    assert set(skipped["pseudo"]) == {
        "/sys", "/proc", "/dev", "/sys/kernel/security", "/dev/shm", "/dev/pts", "/run",
        "/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/proc/sys/fs/binfmt_misc",
        "/dev/hugepages", "/dev/mqueue", "/mnt/cdrom",
    }  # fmt: skip
    assert result.details["mounts_seen"] == 21


def test_container_root_is_checked_but_runtime_plumbing_is_not() -> None:
    result = evaluate_mounts(mounts("container-overlay-root"), FilesystemConfig())
    assert checked(result) == ["/", "/data"]
    result = evaluate_mounts(mounts("debian12-docker-host"), FilesystemConfig())
    # The dedicated docker disk is checked; the per-container overlays on it are not.
    assert checked(result) == ["/", "/boot/efi", "/var/lib/docker"]


def test_a_mount_named_in_include_is_checked_whatever_its_type() -> None:
    result = evaluate_mounts(mounts("centos7-db"), FilesystemConfig(include=["/dev/shm", "/data"]))
    assert checked(result) == ["/dev/shm", "/data"]


def test_include_pseudo_checks_everything_with_a_size() -> None:
    config = FilesystemConfig(include_pseudo=True, exclude_fstypes=["nfs*"])
    result = evaluate_mounts(mounts("centos7-db"), config)
    assert "/mnt/cdrom" in checked(result)
    assert "/backup" not in checked(result)
    assert result.details["skipped"]["excluded"] == {"/backup": "type nfs4"}
    # proc, sysfs, devpts ... report no size at all: nothing to judge.
    assert "/proc" in result.details["skipped"]["empty"]


def test_nothing_left_after_filtering_is_unknown_with_the_reason() -> None:
    result = evaluate_mounts(mounts("pseudo-only"), FilesystemConfig())
    assert result.state == State.UNKNOWN
    assert result.summary == "no filesystem to check among 4 mounts (4 pseudo)"
    result = evaluate_mounts(mounts("centos7-db"), FilesystemConfig(include=["/nonexistent"]))
    assert result.state == State.UNKNOWN
    assert result.summary == "no filesystem to check among 21 mounts (13 pseudo, 8 excluded)"


def test_space_item_reads_like_df_with_threshold_and_advice() -> None:
    result = evaluate_mounts(mounts("centos7-db"), FilesystemConfig())
    data = item(result, "filesystem.used", "/data")
    assert data.value == "93.0% (1.9 TB of 2.0 TB used, 143 GB free)"
    assert data.threshold == "warning > 80%, critical > 90%"
    assert data.verdict == State.CRITICAL
    assert data.advice.startswith("clean up or extend /data: ")
    root = item(result, "filesystem.used", "/")
    assert (root.value, root.verdict, root.advice) == (
        "63.0% (31 GB of 50 GB used, 18 GB free)",
        State.OK,
        "",
    )


def test_used_percent_leaves_out_root_reserved_blocks_as_df_does() -> None:
    # /home: 20 GiB used, 73 GiB available, 5% of 98 GiB reserved for root.
    result = evaluate_mounts(mounts("centos7-db"), FilesystemConfig())
    assert metric(result, "used_percent", "/home").value == pytest.approx(21.51, abs=0.01)


def test_inode_items_and_no_inode_row_for_vfat() -> None:
    result = evaluate_mounts(mounts("centos7-db"), FilesystemConfig())
    home = item(result, "filesystem.inodes_used", "/home")
    assert home.value == "93.0% (6,094,848 of 6,553,600)"
    assert home.verdict == State.CRITICAL
    assert "inodes" in home.advice
    assert [i.item for i in result.items if "/boot/efi" in i.item] == [
        "Filesystem /boot/efi / used"
    ]
    assert [m.name for m in result.metrics if m.labels["mount"] == "/boot/efi"] == [
        "used_percent",
        "used",
        "free",
        "total",
    ]


def test_metrics_per_mount_have_labels_units_and_bounds() -> None:
    result = evaluate_mounts(mounts("centos7-db"), FilesystemConfig())
    used_percent = metric(result, "used_percent", "/data")
    assert (used_percent.unit, used_percent.min, used_percent.max) == ("%", 0, 100)
    assert used_percent.value == pytest.approx(93.0)
    assert (str(used_percent.warn), str(used_percent.crit)) == ("80", "90")
    total = 2 * 1024**4
    free = metric(result, "free", "/data")
    assert (free.unit, free.min, free.max, free.warn, free.crit) == ("B", 0, total, None, None)
    assert metric(result, "used", "/data").value + free.value == total
    assert metric(result, "total", "/data").value == total
    inodes = metric(result, "inodes_used_percent", "/data")
    assert (inodes.unit, inodes.min, inodes.max) == ("%", 0, 100)


def test_free_space_threshold_goes_on_the_free_metric_in_bytes() -> None:
    config = FilesystemConfig(mounts={"/data": {"warn": "200GB:", "crit": "100GB:"}})
    result = evaluate_mounts(mounts("centos7-db"), config)
    free = metric(result, "free", "/data")
    assert str(free.warn) == str(200 * 1024**3) + ":"
    assert str(free.crit) == str(100 * 1024**3) + ":"
    assert metric(result, "used_percent", "/data").warn is None
    data = item(result, "filesystem.used", "/data")
    assert data.threshold == "warning free < 200GB, critical free < 100GB"
    assert data.verdict == State.WARNING
    # Other mounts keep the percentage thresholds.
    assert str(metric(result, "used_percent", "/u01").warn) == "80"


def test_a_percentage_and_a_free_space_floor_can_be_combined() -> None:
    config = FilesystemConfig(warn="95%", crit="150GB:")
    result = evaluate_mounts(mounts("centos7-db"), config)
    data = item(result, "filesystem.used", "/data")
    assert data.threshold == "warning > 95%, critical free < 150GB"
    assert data.verdict == State.CRITICAL


def test_select_mounts_keeps_the_shortest_path_of_a_device() -> None:
    selected, skipped = select_mounts(
        mounts("container-overlay-root"), FilesystemConfig(include_pseudo=True)
    )
    paths = [m.mount for m in selected]
    assert "/etc/hosts" in paths
    assert "/etc/hostname" not in paths
    assert skipped["duplicate"] == {"/etc/hostname": "/etc/hosts", "/etc/resolv.conf": "/etc/hosts"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"warn": "10GB"}, "free space"),
        ({"crit": "500ms"}, "percentage"),
        ({"inode_warn": "2GB"}, "percentage"),
        ({"mounts": {"/data": {"crit": "5GB"}}}, "free space"),
        ({"mounts": {"/data": {"critical": "95%"}}}, "Extra inputs are not permitted"),
        ({"warn": "eighty"}, "Nagios range"),
    ],
)
def test_config_errors_say_what_is_expected(config: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FilesystemConfig(**config)


def test_defaults() -> None:
    assert FilesystemConfig().model_dump(mode="json") == {
        "warn": "80%",
        "crit": "90%",
        "inode_warn": "80%",
        "inode_crit": "90%",
        "mounts": {},
        "include": [],
        "exclude": [],
        "exclude_fstypes": [],
        "include_pseudo": False,
    }


def test_every_config_field_is_described() -> None:
    for name, field in FilesystemConfig.model_fields.items():
        assert field.description, name


def test_run_on_an_agent_host_is_unknown_with_the_reason() -> None:
    check = FilesystemCheck(FilesystemConfig())
    with pytest.raises(CheckError, match="pacs-app02 reports through opsctl-agent"):
        check.run(SimpleNamespace(name="pacs-app02", address="10.0.0.7", transport="agent"))


def test_run_on_the_local_host_checks_its_root() -> None:
    result = FilesystemCheck(FilesystemConfig(include=["/"])).run(SimpleNamespace(name="local"))
    assert checked(result) == ["/"]
    assert FilesystemCheck.kind == "filesystem"
