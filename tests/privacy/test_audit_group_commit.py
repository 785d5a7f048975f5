"""Concurrent audit appends share fsyncs (group commit) and the chain stays intact."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from node.privacy import audit
from node.privacy.audit import AuditLog, verify


def test_concurrent_appends_share_fsyncs_and_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        calls.append(fd)
        time.sleep(0.005)  # a disk's flush: what group commit amortises
        real_fsync(fd)

    monkeypatch.setattr(audit.os, "fsync", slow_fsync)
    log = AuditLog(tmp_path / "audit.jsonl")
    seqs: list[int] = []

    def worker(k: int) -> None:
        for i in range(20):
            entry = log.append(request_id=f"{k}-{i}", requester=f"r{k}", datasets=["d"],
                               query={"i": i}, granularity="count")
            seqs.append(entry["seq"])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = verify(tmp_path / "audit.jsonl")
    assert report.ok and report.entries == 320
    assert sorted(seqs) == list(range(320))  # every caller got its own, durable entry
    assert len(calls) < 320 / 2  # batches, not one flush per entry
