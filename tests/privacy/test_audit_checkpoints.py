"""Signed checkpoints: a consistent rewrite of the chain and its head is detected."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from node.config import AuditSettings
from node.privacy.audit import (
    GENESIS,
    AuditLog,
    Checkpointer,
    entry,
    load_public_key,
    public_key_pem,
    verify,
)


def _fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.append_records([entry(request_id=f"r{i}", requester="sub:abc", datasets=["ds1"],
                                  query={"start": i}, granularity="count")])


def _public(key: Path, tmp_path: Path) -> Ed25519PublicKey:
    exported = tmp_path / "public.pem"
    exported.write_bytes(public_key_pem(key))
    return load_public_key(exported)


def _rewrite_consistently(log: AuditLog) -> None:
    """What someone who can write the node home does: edit, rechain, rewrite the head."""
    prev, lines = GENESIS, []
    for line in log.path.read_text().splitlines():
        record = json.loads(line)
        record.pop("hash")
        record["requester"], record["prev"] = "sub:someone-else", prev
        body = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
        prev = hashlib.sha256(body).hexdigest()
        lines.append(body[:-1].decode() + f',"hash":"{prev}"}}\n')
    log.path.write_text("".join(lines))
    log.head_path.write_text(json.dumps({"seq": len(lines) - 1, "hash": prev}))


def test_a_consistent_rewrite_is_detected_with_the_key(tmp_path: Path) -> None:
    key = tmp_path / "audit-key.pem"
    log = AuditLog(tmp_path / "audit.jsonl", fsync=False,
                   checkpoints=Checkpointer(key, interval_s=3600))
    _fill(log, 5)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = _public(key, tmp_path)
    assert verify(log.path, public_key=public).ok
    _rewrite_consistently(log)
    assert verify(log.path).ok  # the chain alone cannot tell
    report = verify(log.path, public_key=public)
    assert report.kinds() == {"edited"} and "rewritten after it" in report.problems[0].detail


def test_checkpoints_follow_the_interval(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", fsync=False,
                   checkpoints=Checkpointer(tmp_path / "k.pem", interval_s=0))
    _fill(log, 3)
    assert len((tmp_path / "audit.jsonl.checkpoints").read_text().split()) == 3


def test_a_checkpoint_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", fsync=False,
                   checkpoints=Checkpointer(tmp_path / "forged.pem", interval_s=3600))
    _fill(log, 2)
    report = verify(log.path, public_key=_public(tmp_path / "node.pem", tmp_path))
    assert "checkpoint signature invalid" in report.problems[0].detail


def test_a_log_without_checkpoints_is_reported_unanchored(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", fsync=False)
    _fill(log, 2)
    report = verify(log.path, public_key=_public(tmp_path / "k.pem", tmp_path))
    assert report.ok and report.notice_kinds() == {"unanchored"}


def test_settings_sign_with_a_key_under_home(tmp_path: Path) -> None:
    log = AuditLog.from_settings(AuditSettings(), home=tmp_path)
    _fill(log, 1)
    assert (tmp_path / "audit-key.pem").is_file()
    assert verify(log.path, public_key=_public(tmp_path / "audit-key.pem", tmp_path)).ok
