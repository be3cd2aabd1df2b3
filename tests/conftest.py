"""Shared test fixtures: real services at the edges, skipped with a reason when absent (failed under CI=true)."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsctl.store import Store

POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432


def need(available: bool, reason: str) -> None:
    """Skip the calling test with ``reason`` unless ``available``; under CI=true, fail instead."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"required service missing under CI=true: {reason}")
    pytest.skip(reason)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """Return True if a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def need_executable(path: str, package: str) -> str:
    """Return ``path`` if it is executable, else skip (fail under CI) naming the Debian package."""
    found = shutil.which(path)
    need(found is not None, f"{path} not found (Debian package {package})")
    return found  # type: ignore[return-value]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL of a fresh, empty PostgreSQL database, dropped after the session."""
    need(
        port_open(POSTGRES_HOST, POSTGRES_PORT),
        f"PostgreSQL not reachable at {POSTGRES_HOST}:{POSTGRES_PORT}",
    )
    import psycopg

    name = f"opsctl_test_{uuid.uuid4().hex[:12]}"
    admin = f"host={POSTGRES_HOST} port={POSTGRES_PORT} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty store: a SQLite file in tmp_path, or a fresh PostgreSQL schema
    (selected through search_path) in the session's test database, dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nested' / 'dir' / 'opsctl.db'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    database = make_url(request.getfixturevalue("postgres_url"))
    schema = f"test_{uuid.uuid4().hex[:12]}"
    conninfo = (
        f"host={database.host} port={database.port} "
        f"user={database.username} dbname={database.database}"
    )
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield database.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """The open store at ``store_url`` (SQLite and PostgreSQL), closed afterwards."""

    opened = Store.open(store_url)
    try:
        yield opened
    finally:
        opened.close()


# Real sshd servers, client keys and a password test user for tests/test_ssh.py.
from sshd_fixtures import (  # noqa: E402, F401
    bastion_sshd,
    inner_bastion_sshd,
    ssh_client_keys,
    ssh_password_user,
    sshd,
    sshd_factory,
)


@pytest.fixture
def robots(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """The WeCom, DingTalk and Feishu robots' and the webhook's receiver on 127.0.0.1
    (tests/notify_receivers.py), with their secrets in the environment as T_* variables."""
    from notify_receivers import RobotServer

    server = RobotServer()
    monkeypatch.setenv("T_WECOM_KEY", server.wecom_key)
    monkeypatch.setenv("T_DT_TOKEN", server.dingtalk_token)
    monkeypatch.setenv("T_DT_SECRET", server.dingtalk_secret)
    monkeypatch.setenv("T_FS_HOOK", server.feishu_hook)
    monkeypatch.setenv("T_FS_SECRET", server.feishu_secret)
    monkeypatch.setenv("T_WH_SECRET", server.webhook_secret)
    with server:
        yield server
