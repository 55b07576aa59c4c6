"""ACL SAVE's file write: the whole file or none, and no temporary file left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusterwatch.server.aclfile import read_acl_file, write_acl_file
from clusterwatch.server.app import Server
from clusterwatch.server.config import ServerConfig


def test_a_save_writes_the_users_and_reads_back(tmp_path: Path) -> None:
    acl = Server(ServerConfig()).acl
    acl.setuser("probe", ["on", ">secret", "+ping"])
    target = tmp_path / "users.acl"
    write_acl_file(acl, str(target))
    assert "user probe on" in target.read_text()
    assert set(read_acl_file(acl, str(target))) == {"default", "probe"}
    assert [p.name for p in tmp_path.iterdir()] == ["users.acl"]


def test_a_failed_save_raises_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    acl = Server(ServerConfig()).acl
    target = tmp_path / "users.acl"
    target.mkdir()  # the rename onto a directory fails after the temporary was written
    with pytest.raises(OSError):
        write_acl_file(acl, str(target))
    assert [p.name for p in tmp_path.iterdir()] == ["users.acl"]
    assert target.is_dir()


def test_a_save_that_fails_at_the_rename_keeps_the_old_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    acl = Server(ServerConfig()).acl
    target = tmp_path / "users.acl"
    write_acl_file(acl, str(target))
    before = target.read_text()
    acl.setuser("probe", ["on", ">secret", "+ping"])

    def no_space(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("clusterwatch.server.aclfile.os.replace", no_space)
    with pytest.raises(OSError, match="No space"):
        write_acl_file(acl, str(target))
    assert target.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["users.acl"]
