"""``opsctl alert list`` and ``opsctl alert ack`` on a SQLite store in tmp_path."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from tests_support_alerts import record
from typer.testing import CliRunner

from opsctl.alerts import evaluate
from opsctl.cli import app
from opsctl.contract import State
from opsctl.store import Store

runner = CliRunner()
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def test_list_and_acknowledge(tmp_path: Path) -> None:
    db = tmp_path / "opsctl.db"
    with Store.open(str(db)) as store:
        record(store, "zj/web/http", State.CRITICAL, T0)
        evaluate(store, {}, T0, lambda notice: None)
    listed = runner.invoke(app, ["--db", str(db), "alert", "list", "--json"])
    assert listed.exit_code == 2
    (alert,) = json.loads(listed.stdout)
    assert (alert["check_id"], alert["state"], alert["notified"]) == (
        "zj/web/http",
        "CRITICAL",
        "duty A",
    )
    acked = runner.invoke(app, ["--db", str(db), "alert", "ack", str(alert["id"]), "--by", "张工"])
    assert acked.exit_code == 0
    assert acked.stdout.strip() == f"alert {alert['id']} (zj/web/http) acknowledged by 张工"
    table = runner.invoke(app, ["--db", str(db), "alert", "list"])
    assert "张工" in table.stdout and "zj/web/http" in table.stdout
    missing = runner.invoke(app, ["--db", str(db), "alert", "ack", "999", "--by", "张工"])
    assert missing.exit_code == 2
    assert "no alert 999" in missing.stderr
