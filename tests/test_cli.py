"""The CLI end to end: exit codes, formats, the store between commands, bad input."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsctl.cli import app

runner = CliRunner()


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts connections."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)

    def accept() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            connection.close()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


@pytest.fixture
def inventory(tmp_path: Path, listener: int) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        f"""
sites:
  - name: clinic
    hosts:
      - name: app
        address: 127.0.0.1
        checks:
          - {{kind: tcp, name: web, port: {listener}}}
          - {{kind: tcp, name: his, port: {closed_port()}}}
      - name: db
        address: 127.0.0.1
        checks:
          - {{kind: tcp, port: {listener}}}
  - name: lab
    hosts:
      - name: lis
        checks:
          - {{kind: tcp, port: {listener}}}
"""
    )
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_run_exit_code_is_the_worst_state_and_results_are_stored(
    inventory: Path, tmp_path: Path
) -> None:
    db = str(tmp_path / "store.db")
    code, output = invoke("--db", db, "check", "run", "-i", str(inventory))
    assert code == 2, output
    lines = output.splitlines()
    assert lines[0].split() == ["STATE", "CHECK", "TIME", "SUMMARY"]
    assert lines[1].startswith("CRITICAL  clinic/app/his")  # worst first, plain text in a pipe
    assert "connection refused" in lines[1]
    assert lines[-1] == "4 checks: 1 critical, 3 ok"

    code, output = invoke("--db", db, "status", "--json")
    assert code == 2
    data = json.loads(output)
    assert [c["check_id"] for c in data["checks"]] == ["clinic/app/his"]
    assert data["checks"][0]["state"] == "CRITICAL"

    code, output = invoke("--db", db, "status")
    assert code == 2 and "clinic/app/his" in output and "clinic/app/web" not in output

    code, output = invoke("--db", db, "check", "history", "app", "--since", "1h", "--json")
    assert code == 0
    history = json.loads(output)
    assert sorted(r["check_id"] for r in history["results"]) == ["clinic/app/his", "clinic/app/web"]


def test_filters_and_json(inventory: Path, tmp_path: Path) -> None:
    code, output = invoke(
        "check",
        "run",
        "-i",
        str(inventory),
        "--site",
        "clinic",
        "--target",
        "db",
        "--format",
        "json",
        "--no-store",
    )
    assert code == 0
    data = json.loads(output)
    assert [r["id"] for r in data["results"]] == ["clinic/db/tcp"]
    result = data["results"][0]
    assert result["state"] == "OK" and result["code"] == 0 and result["state_type"] == "hard"
    assert result["metrics"][0]["name"] == "time" and result["metrics"][0]["unit"] == "s"
    assert result["items"] and result["started"].endswith("+00:00")


def test_nagios_format(inventory: Path) -> None:
    code, output = invoke(
        "check", "run", "-i", str(inventory), "--site", "lab", "--format", "nagios", "--no-store"
    )
    assert code == 0
    first = output.splitlines()[0]
    assert first.startswith("lab/lis/tcp OK - ") or first.startswith("OPSCTL OK")
    assert "|" in first and "time=" in first


def test_no_matching_checks_is_bad_input(inventory: Path) -> None:
    code, output = invoke("check", "run", "-i", str(inventory), "--kind", "http", "--no-store")
    assert code == 2
    assert "no enabled check matches" in output


def test_validate(inventory: Path) -> None:
    code, output = invoke("inventory", "validate", "-i", str(inventory))
    assert code == 0
    assert output.strip() == f"{inventory}: valid: 2 sites, 3 hosts, 4 checks (4 enabled)"
    code, output = invoke("inventory", "validate", "-i", str(inventory), "--json")
    data = json.loads(output)
    assert data["valid"] is True and data["counts"]["checks"] == 4


def test_broken_inventory_lists_every_error_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        "sites:\n  - name: a\n    hosts:\n      - name: h\n        transport: telnet\n"
        "        checks: [{kind: tcp}, {kind: nope}]\n"
    )
    code, output = invoke("inventory", "validate", "-i", str(path))
    assert code == 2
    assert f"{path}:5 sites[0].hosts[0].transport: expected 'local', 'ssh' or 'agent'" in output
    assert f"{path}:6 sites[0].hosts[0].checks[1].kind: unknown check kind 'nope'" in output
    assert "Traceback" not in output
    code, output = invoke("inventory", "validate", "-i", str(path), "--json")
    assert code == 2
    errors = json.loads(output)["errors"]
    assert {e["line"] for e in errors} == {5, 6}

    code, output = invoke("check", "run", "-i", str(path))
    assert code == 2 and "error" in output


def test_missing_inventory_file(tmp_path: Path) -> None:
    code, output = invoke("check", "run", "-i", str(tmp_path / "nope.yaml"))
    assert code == 2 and "inventory file not found" in output


def test_unreachable_store_is_unknown_not_a_traceback(inventory: Path) -> None:
    code, output = invoke(
        "--db",
        "postgresql://nobody:secretpw@127.0.0.1:1/none",
        "check",
        "run",
        "-i",
        str(inventory),
    )
    assert code == 3
    assert "store:" in output and "secretpw" not in output and "Traceback" not in output


def test_check_list_shows_kinds_and_fields() -> None:
    code, output = invoke("check", "list", "--json")
    assert code == 0
    data = json.loads(output)
    kinds = {entry["kind"]: entry for entry in data["kinds"]}
    assert {"host", "filesystem", "process", "tcp", "http", "tls", "nagios"} <= set(kinds)
    assert all("error" not in entry for entry in kinds.values()), [
        e.get("error") for e in kinds.values()
    ]
    port = next(f for f in kinds["tcp"]["fields"] if f["name"] == "port")
    assert port["description"]
    assert "max_attempts" in {f["name"] for f in data["common_fields"]}
    code, output = invoke("check", "list")
    assert code == 0 and "filesystem  (host)" in output


def test_history_since_must_be_a_duration(tmp_path: Path) -> None:
    code, output = invoke(
        "--db", str(tmp_path / "s.db"), "check", "history", "app", "--since", "lately"
    )
    assert code == 2 and "expected a duration" in output


def test_status_on_an_empty_store(tmp_path: Path) -> None:
    code, output = invoke("--db", str(tmp_path / "s.db"), "status")
    assert code == 0 and output.strip() == "all checks OK"


def test_postgresql_store_end_to_end(inventory: Path, postgres_url: str) -> None:
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    code, output = invoke(
        "--db", url, "check", "run", "-i", str(inventory), "--site", "clinic", "--json"
    )
    assert code == 2, output
    code, output = invoke("--db", url, "status", "--json")
    assert code == 2
    assert [c["check_id"] for c in json.loads(output)["checks"]] == ["clinic/app/his"]


def test_a_check_that_cannot_observe_is_unknown_and_the_rest_still_run(
    tmp_path: Path, listener: int
) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "sites:\n  - name: s\n    hosts:\n"
        "      - {name: remote, address: 10.9.9.9, transport: agent, checks: [{kind: host}]}\n"
        f"      - {{name: local, checks: [{{kind: tcp, port: {listener}}}]}}\n"
    )
    code, output = invoke("check", "run", "-i", str(path), "--json", "--no-store")
    assert code == 3
    results = {r["id"]: r for r in json.loads(output)["results"]}
    assert results["s/remote/host"]["state"] == "UNKNOWN"
    assert "opsctl-agent" in results["s/remote/host"]["summary"]
    assert results["s/local/tcp"]["state"] == "OK"


def test_inventory_store_url_and_site_time_zone(tmp_path: Path) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    path = tmp_path / "inventory.yaml"
    path.write_text(
        "store: {url: results.db}\n"
        "sites:\n  - name: far\n    timezone: America/Los_Angeles\n    hosts:\n"
        f"      - {{name: h, checks: [{{kind: tcp, port: {closed_port()}}}]}}\n"
    )
    code, _ = invoke("check", "run", "-i", str(path))
    assert code == 2
    assert (
        tmp_path / "results.db"
    ).exists()  # relative to the inventory, not the working directory

    code, output = invoke("status", "-i", str(path), "--json")
    since = datetime.fromisoformat(json.loads(output)["checks"][0]["since"])
    code, output = invoke("status", "-i", str(path))
    shown = since.astimezone(ZoneInfo("America/Los_Angeles")).strftime("%Y-%m-%d %H:%M:%S")
    assert shown in output.splitlines()[1]


def test_plain_tables_align_chinese_text_by_display_width() -> None:
    from opsctl.cli.common import plain_table

    table = plain_table(["SITE", "WHO", "NOTE"], [["浙江药具", "张工", "x"], ["zj", "Li", "y"]])
    first, second, third = table.splitlines()
    # Each Chinese character is two columns wide: the third column starts at one display column.
    assert first == "SITE      WHO   NOTE"
    assert second == "浙江药具  张工  x"
    assert third == "zj        Li    y"
