"""Files: the local machine and an SSH host (SFTP against the loopback sshd, which is this
machine, so a file written here is read back over SSH) give the same answers."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from sshd_fixtures import ClientKeys, SshServer

from opsctl.contract import CheckError
from opsctl.files import FileInfo, LocalFiles, SshFiles, files_for
from opsctl.inventory import Host, load
from opsctl.logread import LogReader
from opsctl.ssh import SshPool


def make_tree(root: Path) -> None:
    """upload.log (newest), upload.log.1 (older), a directory named like a log, other files."""
    (root / "a").mkdir()
    (root / "b").mkdir()
    (root / "a" / "upload.log").write_bytes(b"one\ntwo\n")
    (root / "a" / "upload.log.1").write_bytes(b"old\n")
    (root / "b" / "upload.log").write_bytes(b"bee\n")
    (root / "a" / "dir.log").mkdir()
    (root / "a" / "other.txt").write_bytes(b"x\n")
    (root / "a" / ".hidden.log").write_bytes(b"h\n")
    now = datetime.now(UTC).timestamp()
    os.utime(root / "a" / "upload.log.1", (now - 300, now - 300))
    os.utime(root / "b" / "upload.log", (now - 200, now - 200))
    os.utime(root / "a" / "upload.log", (now - 100, now - 100))


def check_files(files: LocalFiles | SshFiles, root: Path) -> None:
    found = files.glob(f"{root}/*/upload.log*")
    assert [info.path for info in found] == [
        f"{root}/a/upload.log.1",
        f"{root}/b/upload.log",
        f"{root}/a/upload.log",
    ]
    assert [info.size for info in found] == [4, 4, 8]
    assert all(info.mtime.tzinfo is not None for info in found)
    assert [info.path for info in files.glob(f"{root}/a/*.log")] == [f"{root}/a/upload.log"]
    assert files.glob(f"{root}/nowhere/*.log") == []
    assert files.glob(f"{root}/a/none*") == []

    info = files.stat(f"{root}/a/upload.log")
    assert (info.path, info.size) == (f"{root}/a/upload.log", 8)
    with pytest.raises(FileNotFoundError):
        files.stat(f"{root}/a/missing.log")
    with pytest.raises(FileNotFoundError):
        files.read(f"{root}/a/missing.log")

    assert files.read(f"{root}/a/upload.log") == b"one\ntwo\n"
    assert files.read(f"{root}/a/upload.log", 4) == b"two\n"
    assert files.read(f"{root}/a/upload.log", 1, 2) == b"ne"
    assert files.read(f"{root}/a/upload.log", 100) == b""
    with files.open(f"{root}/a/upload.log", 2) as stream:
        assert stream.read(3) == b"e\nt"
        assert stream.read() == b"wo\n"


def test_local_files(tmp_path: Path) -> None:
    make_tree(tmp_path)
    check_files(LocalFiles(), tmp_path)
    info = LocalFiles().stat(str(tmp_path / "a" / "upload.log"))
    assert info.inode == os.stat(tmp_path / "a" / "upload.log").st_ino


def test_files_for_picks_the_transport(tmp_path: Path) -> None:
    assert isinstance(files_for(None, 5), LocalFiles)
    assert isinstance(files_for(Host(name="here"), 5), LocalFiles)
    assert isinstance(files_for(Host(name="far", transport="ssh"), 5), SshFiles)
    with pytest.raises(CheckError, match="opsctl-agent"):
        files_for(Host(name="pushed", transport="agent"), 5)


def test_file_info_is_frozen_and_compares_by_value() -> None:
    when = datetime(2026, 11, 1, tzinfo=UTC)
    assert FileInfo("/a", 1, when) == FileInfo("/a", 1, when, None)
    with pytest.raises(AttributeError):
        FileInfo("/a", 1, when).size = 2  # type: ignore[misc]


# --------------------------------------------------------------------------- over SSH


@pytest.fixture
def ssh_host(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sshd: SshServer,
    ssh_client_keys: ClientKeys,
) -> Iterator[Host]:
    """A host reached over SSH on the loopback sshd, the default pool pointed at known_hosts
    files of the test's own."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    pool = SshPool(known_hosts=tmp_path / "known_hosts", user_known_hosts=tmp_path / "user_kh")
    pool.user_known_hosts.write_text(sshd.known_hosts_line())
    monkeypatch.setattr("opsctl.ssh.default_pool", lambda: pool)
    inventory = tmp_path / "inventory.yaml"
    ssh = {"user": "root", "port": sshd.port, "key": f"file:{ssh_client_keys.key}"}
    host = {"name": "far", "address": "127.0.0.1", "transport": "ssh", "ssh": ssh}
    inventory.write_text(yaml.safe_dump({"sites": [{"name": "s", "hosts": [host]}]}))
    yield load(inventory).inventory.sites[0].hosts[0]
    pool.close_all()


def test_ssh_files_answer_as_local_files(tmp_path: Path, ssh_host: Host) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    make_tree(root)
    files = files_for(ssh_host, 10)
    assert isinstance(files, SshFiles)
    check_files(files, root)
    local = {i.path: (i.size, int(i.mtime.timestamp())) for i in LocalFiles().glob(f"{root}/*/*")}
    remote = {i.path: (i.size, int(i.mtime.timestamp())) for i in files.glob(f"{root}/*/*")}
    assert remote == local


def test_ssh_files_stream_a_large_file_in_chunks(tmp_path: Path, ssh_host: Host) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "big.log").write_bytes(data)
    with files_for(ssh_host, 10).open(str(tmp_path / "big.log"), 5) as stream:
        assert stream.read() == data[5:]


def test_log_reader_over_ssh_follows_a_rotation(tmp_path: Path, ssh_host: Host) -> None:
    log = tmp_path / "upload.log"
    log.write_text("1\n2\n")
    files = files_for(ssh_host, 10)
    reader = LogReader(files, f"{tmp_path}/upload.log*", start_at_end=False)
    assert b"".join(b.data for b in reader.blocks(None)) == b"1\n2\n"
    state = json.loads(json.dumps(reader.state))
    assert state["files"][0]["inode"] is None  # SFTP does not tell it

    with log.open("a") as file:
        file.write("3\n")
    with gzip.open(tmp_path / "upload.log.1.gz", "wb") as target:
        target.write(log.read_bytes())
    when = datetime.now(UTC).timestamp() - 60
    os.utime(tmp_path / "upload.log.1.gz", (when, when))
    log.write_text("new\npartial")
    reader = LogReader(files, f"{tmp_path}/upload.log*")
    assert b"".join(b.data for b in reader.blocks(state)) == b"3\nnew\n"
    state = json.loads(json.dumps(reader.state))
    reader = LogReader(files, f"{tmp_path}/upload.log*")
    assert list(reader.blocks(state)) == []
