"""``opsctl db privileges``: the grants each engine's monitoring user needs, for its DBA."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from opsctl.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("engine", "grants"),
    [
        ("postgresql", ["pg_monitor"]),
        ("mysql", ["PROCESS"]),
        ("mariadb", ["PROCESS", "BINLOG MONITOR"]),
        ("oracle", ["SELECT_CATALOG_ROLE"]),
        ("dm", ["VTI"]),
    ],
)
def test_privileges_names_the_grants(engine: str, grants: list[str]) -> None:
    result = runner.invoke(app, ["db", "privileges", engine])
    assert result.exit_code == 0, result.output
    for grant in grants:
        assert grant in result.stdout


def test_privileges_as_json_and_any_case() -> None:
    result = runner.invoke(app, ["db", "privileges", "PostgreSQL", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["engine"] == "postgresql"
    assert "pg_monitor" in data["privileges"]


def test_unknown_engine_exits_2_listing_the_known_ones() -> None:
    result = runner.invoke(app, ["db", "privileges", "sqlserver"])
    assert result.exit_code == 2
    assert "unknown engine 'sqlserver'" in result.stderr
    for engine in ("postgresql", "mysql", "mariadb", "oracle", "dm"):
        assert engine in result.stderr
    assert result.stdout == ""


def test_db_without_a_command_shows_help() -> None:
    result = runner.invoke(app, ["db"])
    assert "privileges" in result.output


def test_an_engine_module_that_cannot_load_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    from opsctl import databases

    monkeypatch.setitem(databases.ENGINE_MODULES, "ghost", "opsctl.databases.no_such_module")
    result = runner.invoke(app, ["db", "privileges", "ghost"])
    assert result.exit_code == 3
    assert "the ghost engine module cannot be loaded" in result.stderr
