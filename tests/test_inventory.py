"""Loading inventories: every error at once with file, line and path; includes; secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsctl.inventory import InventoryInvalid, Secret, SecretError, load

FIXTURES = Path(__file__).parent / "fixtures" / "inventory"
ROOT = Path(__file__).parent.parent


def errors_of(path: Path) -> list[str]:
    with pytest.raises(InventoryInvalid) as caught:
        load(path)
    return [str(error) for error in caught.value.errors]


def test_example_inventory_is_valid() -> None:
    loaded = load(ROOT / "inventory.example.yaml")
    ids = [check.id for check in loaded.checks]
    assert "local/localhost/host" in ids
    assert "local/localhost/filesystem" in ids
    assert "local/localhost/zombies" in ids
    assert loaded.inventory.sites[0].timezone == "Asia/Shanghai"
    assert loaded.inventory.schedules[0].cron == "0 8 * * *"


def test_broken_inventory_reports_every_error_with_line_and_path() -> None:
    errors = errors_of(FIXTURES / "broken.yaml")
    name = str(FIXTURES / "broken.yaml")
    expected = [
        f"{name}:8 sites[0].hosts[0].colour: unknown key 'colour'; expected one of:",
        f"{name}:12 sites[0].hosts[0].checks[0].warn: expected a Nagios range",
        f"{name}:17 sites[0].hosts[1].checks[0].port: expected a whole number",
        f"{name}:18 sites[0].hosts[1].checks[1].kind: unknown check kind 'nosuchkind'; known kinds:",
        f"{name}:19 sites[0].hosts[1].checks[2].kind: duplicate check name 'tcp' on app-02",
        f"{name}:21 sites[0].hosts[1].checks[3].kind: duplicate check name 'tcp' on app-02",
        f"{name}:23 sites[0].hosts[2].name: duplicate target name 'app-02'",
        f"{name}:24 sites[0].hosts[2].ssh.via: no host named 'bastion-99'",
        f"{name}:28 sites[0].databases[0].password: expected a secret reference",
        f"{name}:31 sites[0].databases[1].password: secret env:OPSCTL_TEST_SECRET_THAT_IS_NOT_SET: "
        "environment variable OPSCTL_TEST_SECRET_THAT_IS_NOT_SET is not set",
        f"{name}:32 sites[1].name: duplicate site name 'hospital-a'",
        f"{name}:33 sites[1].timezone: expected an IANA time zone",
        f"{name}:39 sites[1].hosts[0].checks[0].max_attempts: expected greater than or equal to 1",
        f"{name}:42 schedules[0].cron: expected a cron expression",
    ]
    for start in expected:
        assert any(error.startswith(start) for error in errors), (
            f"missing: {start}\ngot:\n" + "\n".join(errors)
        )
    assert len(errors) == len(expected), "\n".join(errors)
    # the plain-text password is never echoed back
    assert not any("hunter2" in error for error in errors)
    assert "tcp" in next(e for e in errors if "nosuchkind" in e)


def test_includes_merge_sites_and_schedules() -> None:
    loaded = load(FIXTURES / "main.yaml")
    assert [site.name for site in loaded.inventory.sites] == ["central", "hospital-b"]
    assert [s.name for s in loaded.inventory.schedules] == ["hospital-b-morning"]
    assert {check.id for check in loaded.checks} == {"central/gateway/tcp", "hospital-b/portal/tcp"}
    assert len(loaded.files) == 2


def test_errors_in_included_files_name_that_file_and_its_line() -> None:
    errors = errors_of(FIXTURES / "main-broken.yaml")
    assert any(
        e.startswith("missing/*.yaml") is False and "no file matches 'missing/*.yaml'" in e
        for e in errors
    )
    port_error = next(e for e in errors if "port" in e)
    assert "broken-sites/hospital-c.yaml:8 sites[0].endpoints[0].checks[0].port:" in port_error
    assert "less than or equal to 65535" in port_error


def test_include_cycle_and_unknown_keys_in_included_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("include: [b.yaml]\n")
    (tmp_path / "b.yaml").write_text("include: [a.yaml]\nstore: {url: x}\n")
    errors = errors_of(tmp_path / "a.yaml")
    assert any("b.yaml:2 store: unknown key in an included file" in e for e in errors), errors
    assert any("includes itself" in e for e in errors), errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sites: [\n", "invalid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("sites:\n  - name: a\n    name: b\n", "duplicate key"),
        ("sites:\n  - name: 'bad name!'\n", "expected a name of letters"),
        ("sites: {a: 1}\n", "expected a list"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    errors = errors_of(path)
    assert any(message in e for e in errors), errors
    assert all(e.startswith(str(path)) for e in errors)


def test_unknown_check_option_lists_the_kind_fields(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "sites:\n  - name: s\n    hosts:\n      - name: h\n        checks:\n          - {kind: tcp, prot: 22}\n"
    )
    (error,) = errors_of(path)
    assert error.startswith(
        f"{path}:6 sites[0].hosts[0].checks[0].prot: unknown key 'prot' for a tcp check"
    )
    assert "port" in error and "max_attempts" in error


def test_check_kind_must_suit_the_target(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "sites:\n  - name: s\n    endpoints:\n      - name: e\n        url: https://x.example\n"
        "        checks: [{kind: filesystem}]\n"
    )
    (error,) = errors_of(path)
    assert "a filesystem check cannot be attached to an endpoint" in error


def test_secrets_resolve_at_use_and_never_print(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text("s3cret\n")
    monkeypatch.setenv("OPSCTL_TEST_PASSWORD", "from-env")
    assert Secret(f"file:{secret_file}").reveal() == "s3cret"
    assert Secret("env:OPSCTL_TEST_PASSWORD").reveal() == "from-env"
    assert "from-env" not in repr(Secret("env:OPSCTL_TEST_PASSWORD"))
    with pytest.raises(SecretError, match="env:OPSCTL_NOT_SET_AT_ALL"):
        Secret("env:OPSCTL_NOT_SET_AT_ALL").reveal()


def test_disabled_sites_need_no_secrets_yet(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "sites:\n  - name: s\n    enabled: false\n    databases:\n"
        "      - {name: d, engine: mysql, password: 'env:OPSCTL_NOT_SET_AT_ALL'}\n"
    )
    loaded = load(path)
    assert loaded.inventory.sites[0].databases[0].password == Secret("env:OPSCTL_NOT_SET_AT_ALL")


def test_select_filters(tmp_path: Path) -> None:
    loaded = load(FIXTURES / "main.yaml")
    assert [c.id for c in loaded.select(sites=["hospital-b"])] == ["hospital-b/portal/tcp"]
    assert [c.id for c in loaded.select(targets=["gateway"])] == ["central/gateway/tcp"]
    assert loaded.select(kinds=["http"]) == []


def test_jump_host_chains_are_resolved_outermost_first(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "sites:\n  - name: s\n    hosts:\n"
        "      - {name: db, address: 10.0.0.5, transport: ssh, ssh: {via: bastion}}\n"
        "      - {name: bastion, address: 10.0.0.2, transport: ssh, ssh: {via: gateway}}\n"
        "      - {name: gateway, address: 203.0.113.7, transport: ssh}\n"
    )
    hosts = {host.name: host for host in load(path).inventory.sites[0].hosts}
    assert [jump.name for jump in hosts["db"].jump_hosts] == ["gateway", "bastion"]
    assert [jump.name for jump in hosts["bastion"].jump_hosts] == ["gateway"]
    assert hosts["gateway"].jump_hosts == ()


def test_jump_host_loops_and_local_jump_hosts_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "sites:\n  - name: s\n    hosts:\n"
        "      - {name: a, transport: ssh, ssh: {via: b}}\n"
        "      - {name: b, transport: ssh, ssh: {via: a}}\n"
        "      - {name: c, transport: ssh, ssh: {via: d}}\n"
        "      - {name: d, transport: local}\n"
        "      - {name: e, transport: ssh, ssh: {via: e}}\n"
    )
    errors = errors_of(path)
    assert f"{path}:4 sites[0].hosts[0].ssh.via: jump hosts form a loop: a -> b -> a" in errors
    assert f"{path}:5 sites[0].hosts[1].ssh.via: jump hosts form a loop: b -> a -> b" in errors
    assert f"{path}:6 sites[0].hosts[2].ssh.via: jump host 'd' must use transport: ssh" in errors
    assert f"{path}:8 sites[0].hosts[4].ssh.via: jump hosts form a loop: e -> e" in errors


def test_a_kind_whose_config_reuses_a_common_field_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsctl import registry
    from opsctl.contract import Check, CheckConfig

    class Shadowing(CheckConfig):
        name: str = ""

    class ShadowCheck(Check):
        kind = "tcp"
        Config = Shadowing

    monkeypatch.setattr(registry, "load", lambda kind: ShadowCheck)
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "sites:\n  - name: s\n    hosts:\n      - name: h\n        checks: [{kind: tcp, name: x}]\n"
    )
    (error,) = errors_of(path)
    assert "reuses the common field(s) name" in error


def test_schedules_name_real_sites_once_and_read_cron_weekdays_as_cron(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "sites:\n"
        "  - name: zj\n"
        "schedules:\n"
        "  - {name: weekly, cron: '0 9 * * 7', site: zj}\n"  # 7 is Sunday to cron
        "  - {name: weekly, cron: '0 9 * * 1-5', site: zj}\n"
        "  - {name: monthly, cron: '0 9 1 * *', site: hz}\n"
        "  - {name: bad, cron: '0 9 * * 8'}\n",
        encoding="utf-8",
    )
    errors = errors_of(path)
    assert [e.split(": ", 1)[0].split(" ", 1)[1] for e in errors] == [
        "schedules[1].name",
        "schedules[2].site",
        "schedules[3].cron",
    ]
    assert "duplicate schedule name 'weekly' (also schedules[0])" in errors[0]
    assert "no site named 'hz' (sites: zj)" in errors[1]
