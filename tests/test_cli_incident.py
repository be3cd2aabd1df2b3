"""``opsctl incident`` through CliRunner on a SQLite store: the whole life of an incident,
shown in the site's time zone, and out-of-order or malformed input refused."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from opsctl.cli import app

runner = CliRunner()


def invoke(db: Path, *args: str):
    return runner.invoke(app, ["--db", str(db), "incident", *args])


def test_an_incident_from_open_to_resolved(tmp_path: Path) -> None:
    db = tmp_path / "opsctl.db"
    opened = invoke(
        db, "open", "--site", "zj", "--system", "预约平台", "--title", "预约接口超时",
        "--reporter", "医院信息科", "--severity", "major", "--at", "2026-11-23T09:40+08:00", "--json",
    )  # fmt: skip
    assert opened.exit_code == 0, opened.output
    number = str(json.loads(opened.stdout)["id"])
    assert (
        invoke(db, "ack", number, "--by", "张工", "--at", "2026-11-23T09:48+08:00").exit_code == 0
    )
    assert (
        invoke(
            db, "note", number, "重启接口服务", "--by", "张工", "--at", "2026-11-23T10:00+08:00"
        ).exit_code
        == 0
    )
    resolved = invoke(db, "resolve", number, "--cause", "连接池耗尽", "--actions", "扩大连接池",
                      "--at", "2026-11-23T10:20+08:00")  # fmt: skip
    assert resolved.exit_code == 0
    shown = invoke(db, "show", number)
    assert "opened       2026-11-23 09:40:00" in shown.stdout
    assert "acknowledged 2026-11-23 09:48:00 by 张工" in shown.stdout
    assert "2026-11-23 10:00:00 张工: 重启接口服务" in shown.stdout
    assert "root cause: 连接池耗尽" in shown.stdout
    listed = json.loads(invoke(db, "list", "--json").stdout)
    assert [i["resolved"] for i in listed] == ["2026-11-23T02:20:00+00:00"]
    assert json.loads(invoke(db, "list", "--open", "--json").stdout) == []


def test_bad_input_is_refused_clearly(tmp_path: Path) -> None:
    db = tmp_path / "opsctl.db"
    opened = invoke(db, "open", "--site", "zj", "--system", "HIS", "--title", "t", "--reporter",
                    "r", "--at", "2026-11-23T09:40+08:00", "--json")  # fmt: skip
    number = str(json.loads(opened.stdout)["id"])
    early = invoke(db, "resolve", number, "--at", "2026-11-23T09:00+08:00")
    assert early.exit_code == 2
    assert "before it was opened" in early.stderr
    naive = invoke(db, "ack", number, "--by", "张工", "--at", "2026-11-23T09:50")
    assert naive.exit_code == 2
    assert "give a zone offset" in naive.stderr
    severity = invoke(db, "open", "--site", "zj", "--system", "HIS", "--title", "t",
                      "--reporter", "r", "--severity", "urgent")  # fmt: skip
    assert severity.exit_code == 2
    assert "severity must be one of" in severity.stderr
    assert invoke(db, "show", "42").exit_code == 2
