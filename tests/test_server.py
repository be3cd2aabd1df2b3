"""The server's HTTP API through FastAPI's TestClient, on SQLite and on the real PostgreSQL:
authentication and scopes, a batch stored exactly once, error answers that name the field,
and host checks judged from what an agent pushed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from opsctl.contract import State
from opsctl.inventory import load
from opsctl.runner import run_into_store
from opsctl.server.app import create_app
from opsctl.server.schemas import MAX_BODY_BYTES
from opsctl.store import Store
from opsctl.store.intake import agent as agent_row
from opsctl.store.models import SampleModel
from opsctl.store.tokens import create_token, revoke_token

FIXTURES = Path(__file__).parent / "fixtures"

INVENTORY = """
sites:
  - name: zj
    hosts:
      - name: web1
        transport: agent
        checks:
          - kind: host
          - kind: filesystem
      - name: db1
        transport: agent
"""


@pytest.fixture
def loaded(tmp_path: Path) -> Any:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY, encoding="utf-8")
    return load(path)


@pytest.fixture
def client(store: Store, loaded: Any) -> Iterator[TestClient]:
    with TestClient(create_app(store, loaded)) as test_client:
        yield test_client


@pytest.fixture
def agent_token(store: Store) -> str:
    return create_token(store, "agent", "web1")[0]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def push_body(
    agent: str = "web1", samples: int = 3, batch_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    at = datetime.now(UTC).isoformat()
    return {
        "batch_id": batch_id or uuid.uuid4().hex,
        "agent": agent,
        "sent_at": at,
        "interval": 30,
        "samples": [
            {"name": "cpu_percent", "labels": {"cpu": str(i)}, "value": float(i), "at": at}
            for i in range(samples)
        ],
        **extra,
    }


def agent_samples(store: Store) -> int:
    with store._sessions() as session:
        return session.scalar(
            select(func.count()).select_from(SampleModel).where(SampleModel.result_id.is_(None))
        )


# --------------------------------------------------------------------------- authentication


def test_a_push_without_a_token_is_401_and_stores_nothing(client: TestClient, store: Store) -> None:
    response = client.post("/api/v1/agent/push", json=push_body())
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "unauthorized"
    assert agent_samples(store) == 0


def test_unknown_and_revoked_tokens_are_401(
    client: TestClient, store: Store, agent_token: str
) -> None:
    unknown = client.post("/api/v1/agent/push", json=push_body(), headers=bearer("opsctl_nope"))
    assert unknown.status_code == 401
    revoke_token(store, "agent:web1")
    revoked = client.post("/api/v1/agent/push", json=push_body(), headers=bearer(agent_token))
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["detail"]
    assert agent_samples(store) == 0


def test_a_vendor_token_may_not_push_agent_data(client: TestClient, store: Store) -> None:
    vendor_token = create_token(store, "vendor", "vendor-a")[0]
    response = client.post("/api/v1/agent/push", json=push_body(), headers=bearer(vendor_token))
    assert response.status_code == 403
    assert "vendor token" in response.json()["detail"]
    assert agent_samples(store) == 0


def test_an_agent_token_may_only_push_its_own_agent(
    client: TestClient, store: Store, agent_token: str
) -> None:
    response = client.post(
        "/api/v1/agent/push", json=push_body(agent="db1"), headers=bearer(agent_token)
    )
    assert response.status_code == 403
    assert response.json()["fields"] == [
        {"field": "body.agent", "message": "not this token's agent"}
    ]
    assert agent_samples(store) == 0


def test_an_agent_token_may_not_write_heartbeats(client: TestClient, agent_token: str) -> None:
    body = {
        "vendor": "vendor-a",
        "heartbeats": [
            {"device_id": "D1", "timestamp": datetime.now(UTC).isoformat(), "status": "ok"}
        ],
    }
    response = client.post("/api/v1/dispensers/heartbeats", json=body, headers=bearer(agent_token))
    assert response.status_code == 403


# --------------------------------------------------------------------------- storing once


def test_a_batch_is_stored_once_however_often_it_is_sent(
    client: TestClient, store: Store, agent_token: str
) -> None:
    body = push_body(samples=500)
    first = client.post("/api/v1/agent/push", json=body, headers=bearer(agent_token))
    assert first.status_code == 200
    assert first.json() == {
        "batch_id": body["batch_id"],
        "duplicate": False,
        "samples": 500,
        "results": 0,
    }
    for _ in range(3):
        again = client.post("/api/v1/agent/push", json=body, headers=bearer(agent_token))
        assert again.status_code == 200
        assert again.json()["duplicate"] is True
        assert again.json()["samples"] == 0
    assert agent_samples(store) == 500
    row = agent_row(store, "web1")
    assert row is not None
    assert (row.site, row.pushes, row.samples) == ("zj", 4, 500)


def test_pushed_samples_keep_their_names_labels_and_times(
    client: TestClient, store: Store, agent_token: str
) -> None:
    at = datetime(2026, 11, 23, 8, 0, 0, 123456, tzinfo=UTC)
    body = push_body(samples=0)
    body["samples"] = [
        {
            "name": "fs_used_percent",
            "labels": {"mount": "/数据"},
            "value": 81.5,
            "at": at.isoformat(),
        }
    ]
    assert (
        client.post("/api/v1/agent/push", json=body, headers=bearer(agent_token)).status_code == 200
    )
    assert store.samples("zj/web1/agent", "fs_used_percent", at - timedelta(seconds=1)) == [
        (at, 81.5)
    ]
    with store._sessions() as session:
        (labels,) = session.scalars(select(SampleModel.labels)).all()
    assert labels == {"mount": "/数据"}


def test_local_check_results_become_check_statuses(
    client: TestClient, store: Store, agent_token: str
) -> None:
    at = datetime.now(UTC)
    body = push_body(
        samples=0,
        results=[
            {
                "name": "nginx",
                "kind": "agent.local",
                "state": 2,
                "summary": "PROCS CRITICAL: 0 processes with command name 'nginx'",
                "at": at.isoformat(),
                "metrics": [{"name": "procs", "value": 0}],
            }
        ],
    )
    response = client.post("/api/v1/agent/push", json=body, headers=bearer(agent_token))
    assert response.json()["results"] == 1
    status = store.statuses(["zj/web1/nginx"])["zj/web1/nginx"]
    assert (status.state, status.state_type, status.kind) == (State.CRITICAL, "hard", "agent.local")
    assert status.summary.startswith("PROCS CRITICAL")
    (change,) = store.changes(at - timedelta(seconds=1), target="web1")
    assert (change.from_state, change.to_state) == (None, State.CRITICAL)


# --------------------------------------------------------------------------- bad input


def test_a_wrong_type_is_422_naming_the_field(
    client: TestClient, store: Store, agent_token: str
) -> None:
    body = push_body(samples=2)
    body["samples"][1]["value"] = "high"
    response = client.post("/api/v1/agent/push", json=body, headers=bearer(agent_token))
    assert response.status_code == 422
    problem = response.json()
    assert problem["error"] == "invalid request"
    assert problem["detail"].startswith("body.samples[1].value: ")
    assert problem["fields"][0]["field"] == "body.samples[1].value"
    assert agent_samples(store) == 0


def test_a_time_without_a_zone_is_refused(client: TestClient, agent_token: str) -> None:
    body = push_body(samples=1)
    body["samples"][0]["at"] = "2026-11-23T08:00:00"
    response = client.post("/api/v1/agent/push", json=body, headers=bearer(agent_token))
    assert response.status_code == 422
    assert "zone offset" in response.json()["detail"]


def test_malformed_json_is_400(client: TestClient, store: Store, agent_token: str) -> None:
    response = client.post(
        "/api/v1/agent/push",
        content=b'{"batch_id": "x", "samples": [',
        headers={**bearer(agent_token), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "malformed JSON"
    assert agent_samples(store) == 0


def test_an_oversized_body_is_413_whether_declared_or_streamed(
    client: TestClient, store: Store, agent_token: str
) -> None:
    big = json.dumps(push_body(samples=0, padding="x" * (MAX_BODY_BYTES + 10))).encode()
    declared = client.post(
        "/api/v1/agent/push",
        content=big,
        headers={**bearer(agent_token), "Content-Type": "application/json"},
    )
    assert declared.status_code == 413
    assert str(MAX_BODY_BYTES) in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    streamed = client.post(
        "/api/v1/agent/push",
        content=chunks(),
        headers={**bearer(agent_token), "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    assert agent_samples(store) == 0


def test_too_many_samples_is_422(client: TestClient, agent_token: str) -> None:
    response = client.post(
        "/api/v1/agent/push", json=push_body(samples=5001), headers=bearer(agent_token)
    )
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "body.samples"


# --------------------------------------------------------------------------- status and health


def test_status_lists_problems_to_any_token(
    client: TestClient, store: Store, agent_token: str
) -> None:
    assert client.get("/api/v1/status").status_code == 401
    body = push_body(
        samples=0,
        results=[
            {
                "name": "disk",
                "state": 1,
                "summary": "DISK WARNING",
                "at": datetime.now(UTC).isoformat(),
            }
        ],
    )
    client.post("/api/v1/agent/push", json=body, headers=bearer(agent_token))
    vendor_token = create_token(store, "vendor", "vendor-a")[0]
    response = client.get("/api/v1/status", headers=bearer(vendor_token))
    assert response.status_code == 200
    assert response.json()["worst"] == 1
    assert [c["check_id"] for c in response.json()["checks"]] == ["zj/web1/disk"]


def test_healthz_reports_the_store_and_the_scheduler(store: Store, loaded: Any) -> None:
    class Scheduler:
        is_leader = False

        def __init__(self, alive: bool) -> None:
            self._alive = alive

        def start(self) -> None:
            pass

        def stop(self) -> None:
            pass

        def alive(self) -> bool:
            return self._alive

    with TestClient(create_app(store, loaded)) as client:
        assert client.get("/healthz").json()["store"] == "ok"
        assert client.get("/healthz").json()["scheduler"] == "disabled"
    with TestClient(create_app(store, loaded, scheduler=Scheduler(False))) as client:
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["scheduler"] == "stopped"


def test_the_openapi_document_is_published(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert {"/api/v1/agent/push", "/api/v1/dispensers/heartbeats", "/metrics", "/healthz"} <= set(
        document["paths"]
    )
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


# --------------------------------------------------------------------------- judging pushed facts


def test_host_checks_of_an_agent_host_judge_its_pushed_facts(
    client: TestClient, store: Store, loaded: Any, agent_token: str
) -> None:
    host = json.loads((FIXTURES / "host" / "centos7-db-64cpu-loaded.json").read_text())
    mounts = json.loads((FIXTURES / "mounts" / "centos7-db.json").read_text())
    body = push_body(samples=0, facts={"host": host, "mounts": mounts, "version": "0.1.0"})
    assert (
        client.post("/api/v1/agent/push", json=body, headers=bearer(agent_token)).status_code == 200
    )

    outcomes = run_into_store(store, loaded.select(targets=["web1"]), retry=False)
    by_kind = {o.check.kind: o.result for o in outcomes}
    assert by_kind["host"].state == State.CRITICAL
    assert by_kind["host"].summary.startswith("CentOS Linux 7 (Core), 64 CPU, load 230.40")
    assert by_kind["filesystem"].state != State.UNKNOWN
    assert by_kind["agent"].state == State.OK
    assert by_kind["agent"].summary.startswith("agent web1 pushed")


def test_a_silent_agent_is_critical_and_its_facts_are_not_judged(
    client: TestClient, store: Store, loaded: Any, agent_token: str
) -> None:
    host = json.loads((FIXTURES / "host" / "debian12-vm-local.json").read_text())
    body = push_body(samples=0, facts={"host": host, "mounts": []})
    client.post("/api/v1/agent/push", json=body, headers=bearer(agent_token))
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=4)):
        outcomes = run_into_store(store, loaded.select(targets=["web1", "db1"]), retry=False)
    results = {o.check.id: o.result for o in outcomes}
    assert results["zj/web1/agent"].state == State.CRITICAL
    assert results["zj/web1/agent"].summary.startswith("no push from agent web1 for 4m")
    assert results["zj/web1/host"].state == State.UNKNOWN
    assert "stale" in results["zj/web1/host"].summary
    assert results["zj/db1/agent"].state == State.CRITICAL
    assert results["zj/db1/agent"].summary == "agent db1 has never pushed"


def test_the_store_going_away_is_503_and_the_agent_keeps_its_data(
    postgres_url: str, loaded: Any
) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    database = make_url(postgres_url)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    conninfo = f"host={database.host} port={database.port} user=postgres dbname={database.database}"
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    url = database.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )
    store = Store.open(url)
    try:
        token = create_token(store, "agent", "web1")[0]
        with TestClient(create_app(store, loaded)) as client:
            assert (
                client.post(
                    "/api/v1/agent/push", json=push_body(), headers=bearer(token)
                ).status_code
                == 200
            )
            with psycopg.connect(conninfo, autocommit=True) as connection:
                connection.execute(f'DROP TABLE "{schema}".ingest_batches CASCADE')
            response = client.post("/api/v1/agent/push", json=push_body(), headers=bearer(token))
            assert response.status_code == 503
            assert response.json()["error"] == "store unavailable"
    finally:
        store.close()
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
