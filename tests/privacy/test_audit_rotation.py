"""Audit log rotation: the chain continues across files and verifies as one series."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from node.config import AuditSettings
from node.privacy import audit
from node.privacy.audit import AuditLog, Rotation, entry, verify


def _fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.append_records([entry(request_id=f"r{i}", requester="sub:abc", datasets=["ds1"],
                                  query={"start": i}, granularity="count")])


def _rotated(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("audit.jsonl.[0-9]*"))


def _first_and_last(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    lines = path.read_text().splitlines()
    return json.loads(lines[0]), json.loads(lines[-1])


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "audit.jsonl", fsync=False, rotation=Rotation(max_bytes=1000))


def test_rotation_by_size_continues_the_chain_across_files(log: AuditLog,
                                                            tmp_path: Path) -> None:
    _fill(log, 20)
    files = [*_rotated(tmp_path), log.path]
    assert len(files) >= 4
    for older, newer in itertools.pairwise(files):
        assert older.stat().st_size < 1000 + 400  # at most one batch past the limit
        assert _first_and_last(newer)[0]["prev"] == _first_and_last(older)[1]["hash"]
    report = verify(log.path)
    assert report.ok and report.entries == 20 and not report.notices


def test_a_removed_middle_file_is_detected(log: AuditLog, tmp_path: Path) -> None:
    _fill(log, 20)
    _rotated(tmp_path)[1].unlink()
    assert "removed" in verify(log.path).kinds()


def test_an_edited_rotated_file_is_detected(log: AuditLog, tmp_path: Path) -> None:
    _fill(log, 20)
    first = _rotated(tmp_path)[0]
    first.write_text(first.read_text().replace("sub:abc", "sub:xyz", 1))
    report = verify(log.path)
    assert "edited" in report.kinds() and report.problems[0].file == first


def test_retention_keeps_the_newest_files_and_verify_starts_at_the_oldest_kept(
    tmp_path: Path,
) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", fsync=False,
                   rotation=Rotation(max_bytes=1000, retention=2))
    _fill(log, 30)
    kept = _rotated(tmp_path)
    assert len(kept) == 2 and kept[0].name != "audit.jsonl.000001"
    report = verify(log.path)
    assert report.ok and report.notice_kinds() == {"starts-later"}
    assert kept[0].name in report.notices[0].detail
    events = [json.loads(line) for f in [*kept, log.path] for line in f.read_text().splitlines()
              if '"event":"retention"' in line]
    # The latest deletion is recorded in the chain: it ends where the oldest kept begins.
    assert events[-1]["last_seq"] == _first_and_last(kept[0])[0]["seq"] - 1
    assert not (tmp_path / events[-1]["removed"][-1]).exists()


def test_cutting_the_start_of_an_unrotated_log_is_still_detected(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", fsync=False)
    _fill(log, 5)
    log.path.write_text("".join(line + "\n" for line in log.path.read_text().splitlines()[2:]))
    assert "removed" in verify(log.path).kinds()


def test_rotation_by_age(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", fsync=False, rotation=Rotation(max_age_s=3600))
    _fill(log, 3)
    assert _rotated(tmp_path) == []
    monkeypatch.setattr(audit, "_entry_time", lambda line: 0.0)  # first entry long ago
    log._born = None
    _fill(log, 1)
    assert len(_rotated(tmp_path)) == 1 and verify(log.path).ok


def test_two_writers_rotating_one_log_still_chain(tmp_path: Path) -> None:
    logs = [AuditLog(tmp_path / "audit.jsonl", fsync=False, rotation=Rotation(max_bytes=700))
            for _ in range(2)]
    for i in range(20):
        _fill(logs[i % 2], 1)
    report = verify(tmp_path / "audit.jsonl")
    assert report.ok and report.entries == 20 and len(_rotated(tmp_path)) >= 4


def test_settings_configure_rotation(tmp_path: Path) -> None:
    settings = AuditSettings(max_bytes=500, retention=1, checkpoint_interval_s=0)
    log = AuditLog.from_settings(settings, home=tmp_path)
    _fill(log, 10)
    assert len(_rotated(tmp_path)) == 1 and verify(log.path).ok
