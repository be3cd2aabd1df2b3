"""``opsctl token`` and ``opsctl server --openapi`` through Typer's CliRunner, on a SQLite
store in tmp_path: a token is printed once, kept only as a hash, scoped and revocable."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from opsctl.cli import app
from opsctl.store import Store
from opsctl.store.tokens import authenticate, hash_token, list_tokens

runner = CliRunner()

INVENTORY = """
sites:
  - name: zj
    hosts:
      - {name: web1, transport: agent}
  - name: hz
    hosts:
      - {name: web1, transport: agent}
      - {name: db1, transport: agent}
"""


def invoke(db: Path, *args: str):
    return runner.invoke(app, ["--db", str(db), *args])


def test_create_prints_the_token_once_and_keeps_only_its_hash(tmp_path: Path) -> None:
    db = tmp_path / "opsctl.db"
    created = invoke(db, "token", "create", "--vendor", "vendor-a", "--note", "杭州厂商")
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[0]
    assert token.startswith("opsctl_") and len(token) > 40
    with Store.open(str(db)) as store:
        (row,) = list_tokens(store)
        assert (row.scope, row.subject, row.note) == ("vendor", "vendor-a", "杭州厂商")
        assert authenticate(store, token) is not None
        raw = store.engine.raw_connection()
        try:
            dump = "\n".join(raw.iterdump())
        finally:
            raw.close()
    assert token not in dump
    assert hash_token(token) in dump
    listed = invoke(db, "token", "list", "--json")
    assert token not in listed.stdout
    assert json.loads(listed.stdout)[0]["prefix"] == token[:13]


def test_an_agent_token_takes_its_site_from_the_inventory(tmp_path: Path) -> None:
    db = tmp_path / "opsctl.db"
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY, encoding="utf-8")
    created = invoke(db, "token", "create", "--agent", "db1", "-i", str(inventory), "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["site"] == "hz"
    ambiguous = invoke(db, "token", "create", "--agent", "web1", "-i", str(inventory))
    assert ambiguous.exit_code == 2
    assert "several sites (hz, zj): give --site" in ambiguous.stderr
    missing = invoke(db, "token", "create", "--agent", "app9", "-i", str(inventory))
    assert missing.exit_code == 2
    assert "no host named 'app9'" in missing.stderr


def test_bad_token_requests_are_refused_with_a_message(tmp_path: Path) -> None:
    db = tmp_path / "opsctl.db"
    neither = invoke(db, "token", "create")
    assert neither.exit_code == 2
    assert "exactly one of --agent NAME or --vendor NAME" in neither.stderr
    bad_name = invoke(db, "token", "create", "--vendor", "厂商 A")
    assert bad_name.exit_code == 2
    assert "must be 1-64 letters" in bad_name.stderr


def test_revoke_by_scope_and_name(tmp_path: Path) -> None:
    db = tmp_path / "opsctl.db"
    first = invoke(db, "token", "create", "--agent", "web1").stdout.strip()
    invoke(db, "token", "create", "--agent", "web1")
    other = invoke(db, "token", "create", "--agent", "db1").stdout.strip()
    revoked = invoke(db, "token", "revoke", "agent:web1")
    assert revoked.exit_code == 0
    assert revoked.stdout.count("revoked agent token") == 2
    with Store.open(str(db)) as store:
        assert authenticate(store, first) is None
        assert authenticate(store, other) is not None
    again = invoke(db, "token", "revoke", "agent:web1")
    assert again.exit_code == 2
    assert "no active token matches 'agent:web1'" in again.stderr
    listed = json.loads(invoke(db, "token", "list", "--revoked", "--json").stdout)
    assert sum(1 for t in listed if t["revoked"]) == 2


def test_server_writes_its_openapi_document(tmp_path: Path) -> None:
    db = tmp_path / "opsctl.db"
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY, encoding="utf-8")
    target = tmp_path / "api.json"
    result = invoke(db, "server", "-i", str(inventory), "--openapi", str(target))
    assert result.exit_code == 0, result.output
    document = json.loads(target.read_text(encoding="utf-8"))
    body = document["paths"]["/api/v1/dispensers/heartbeats"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HeartbeatBatch"
    }
    assert "Heartbeat" in document["components"]["schemas"]


def test_server_refuses_a_bad_listen_address(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY, encoding="utf-8")
    result = invoke(tmp_path / "opsctl.db", "server", "-i", str(inventory), "--listen", "8080")
    assert result.exit_code == 2
    assert "--listen: expected HOST:PORT" in result.stderr


FLEET = """
sites:
  - name: zj-fleet
    fleets:
      - name: dispensers
        vendors: [vendor-a]
        registry: [{path}]
"""


def test_server_refuses_a_missing_or_broken_registry_before_serving(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(FLEET.format(path="vendors/none.csv"), encoding="utf-8")
    missing = invoke(tmp_path / "opsctl.db", "server", "-i", str(inventory))
    assert missing.exit_code == 2
    assert "sites[0].fleets[0].registry[0]: no such file" in missing.stderr
    broken = Path(__file__).parent / "fixtures" / "fleet" / "registry-errors.csv"
    inventory.write_text(FLEET.format(path=broken), encoding="utf-8")
    refused = invoke(tmp_path / "opsctl.db", "server", "-i", str(inventory))
    assert refused.exit_code == 2
    assert "registry-errors.csv:3 vendor: required" in refused.stderr
    assert "is not a valid registry" in refused.stderr
