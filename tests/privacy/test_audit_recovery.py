"""Audit log after a crash or a full disk: never reported as tampering, and self-healing."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from node.errors import Unavailable
from node.privacy import audit
from node.privacy.audit import AuditLog, entry, verify


def _entries(n: int) -> list[dict[str, Any]]:
    return [entry(request_id=f"r{i}", requester="sub:abc", datasets=["ds1"],
                  query={"start": i}, granularity="count") for i in range(n)]


def _append_then_die_before_the_head(path: str) -> None:
    log = AuditLog(Path(path), fsync=False)
    log.append_records(_entries(3))

    def die(self: AuditLog, seq: int, digest: str) -> None:
        os.kill(os.getpid(), signal.SIGKILL)  # between the log's write and the head's

    AuditLog._write_head = die  # type: ignore[method-assign]
    log.append_records(_entries(2))


def _crash(path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")  # the hook lives only in the child
    child = ctx.Process(target=_append_then_die_before_the_head, args=(str(path),))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == -signal.SIGKILL


def test_a_kill_between_log_and_head_is_a_lagging_head_not_tampering(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _crash(path)
    assert json.loads(path.with_name("audit.jsonl.head").read_text())["seq"] == 2
    report = verify(path)
    assert report.ok and report.entries == 5
    assert report.notice_kinds() == {"head-lags"}
    assert "head lags: 2 entries after the head record chain correctly" in report.notices[0].detail
    AuditLog(path, fsync=False).append_records(_entries(1))  # the next writer catches up
    after = verify(path)
    assert after.ok and not after.notices


def test_an_edit_after_a_lagging_head_is_still_tampering(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _crash(path)
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace("sub:abc", "sub:xyz")
    path.write_text("".join(line + "\n" for line in lines))
    assert "edited" in verify(path).kinds()


def test_a_head_naming_an_unknown_hash_is_tampering(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _crash(path)
    path.with_name("audit.jsonl.head").write_text(json.dumps({"seq": 1, "hash": "f" * 64}))
    assert "edited" in verify(path).kinds()


class _Disk:
    """os.write on the log's file with `free` bytes left: short writes, then ENOSPC."""

    def __init__(self, path: Path, free: int | None) -> None:
        self.inode, self.free, self._real = path.stat().st_ino, free, os.write

    def write(self, fd: int, data: Any) -> int:
        if self.free is None or os.fstat(fd).st_ino != self.inode:
            return self._real(fd, data)
        if self.free == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = self._real(fd, bytes(data)[: self.free])
        self.free -= written
        return written


def test_a_full_disk_fails_closed_then_the_next_append_repairs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", fsync=False)
    log.append_records(_entries(3))
    disk = _Disk(log.path, free=40)
    monkeypatch.setattr(audit.os, "write", disk.write)
    with pytest.raises(Unavailable, match="could not be written"):
        log.append_records(_entries(1))  # a short write: half a line is left
    assert not log.path.read_bytes().endswith(b"\n")
    with pytest.raises(Unavailable, match="could not be written"):
        log.append_records(_entries(1))  # rolled back, but nothing can be written: closed
    disk.free = None  # space is back
    log.append_records(_entries(1))
    report = verify(log.path)
    assert report.ok and report.entries == 5
    assert report.notice_kinds() == {"rolled-back"}
    rollback = json.loads(log.path.read_text().splitlines()[3])
    assert rollback["event"] == "rollback" and rollback["removed_bytes"] == 40
    assert rollback["head_seq"] == 2 and rollback["seq"] == 3


def test_a_partial_line_is_rolled_back_when_the_log_is_opened(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    AuditLog(path, fsync=False).append_records(_entries(2))
    with path.open("ab") as fh:
        fh.write(b'{"budget":{},"counts":{},"da')  # what a short write leaves
    assert verify(path).notice_kinds() == {"partial"}
    AuditLog(path, fsync=False)  # start-up
    assert path.read_bytes().endswith(b"\n")
    report = verify(path)
    assert report.ok and report.entries == 3 and report.notice_kinds() == {"rolled-back"}
    assert "partial line of 28 bytes was removed" in report.notices[0].detail
