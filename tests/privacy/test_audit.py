"""Audit log: the chain verifies, and every kind of tampering is reported where it is."""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest

from node.config import AuditSettings
from node.errors import Unavailable
from node.privacy import audit
from node.privacy.audit import AuditLog, verify


def _fill(log: AuditLog, n: int, who: str = "sub:abc") -> list[dict[str, Any]]:
    return [
        log.append(
            request_id=f"req-{i}",
            requester=who,
            datasets=["ds1"],
            query={"referenceName": "22", "start": 16050074 + i, "alternateBases": "G"},
            granularity="count",
            counts={"ds1": 5},
            budget={"llr": 0.25},
        )
        for i in range(n)
    ]


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "audit.jsonl", fsync=False)


def _lines(log: AuditLog) -> list[str]:
    return log.path.read_text().splitlines()


def _write(log: AuditLog, lines: list[str]) -> None:
    log.path.write_text("".join(line + "\n" for line in lines))


def _rehash(line: str, **changes: Any) -> str:
    # What a careful forger does: change fields and recompute the entry's own hash.
    entry = json.loads(line)
    entry.update(changes)
    body = {k: v for k, v in entry.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    entry["hash"] = hashlib.sha256(canonical.encode()).hexdigest()
    return json.dumps(entry, sort_keys=True, separators=(",", ":"))


def test_entries_chain_and_verify(log: AuditLog) -> None:
    written = _fill(log, 5)
    report = verify(log.path)
    assert report.ok and report.entries == 5
    assert [e["seq"] for e in written] == list(range(5))
    assert written[0]["prev"] == "0" * 64
    for before, after in itertools.pairwise(written):
        assert after["prev"] == before["hash"]
    first = json.loads(_lines(log)[0])
    assert first["requester"] == "sub:abc" and first["datasets"] == ["ds1"]
    assert first["granularity"] == "count" and first["budget"] == {"llr": 0.25}
    assert first["request_id"] == "req-0" and first["ts"].endswith("+00:00")


def test_empty_log_verifies(tmp_path: Path) -> None:
    assert verify(tmp_path / "none.jsonl").ok


def test_edited_entry_detected(log: AuditLog) -> None:
    _fill(log, 5)
    lines = _lines(log)
    lines[2] = lines[2].replace("sub:abc", "sub:xyz")
    _write(log, lines)
    report = verify(log.path)
    assert report.kinds() == {"edited"} and {p.line for p in report.problems} == {3}


def test_edited_entry_with_recomputed_hash_detected(log: AuditLog) -> None:
    _fill(log, 5)
    lines = _lines(log)
    lines[1] = _rehash(lines[1], granularity="boolean")
    _write(log, lines)
    report = verify(log.path)
    assert report.kinds() == {"edited"} and [p.line for p in report.problems] == [2]


def test_edited_last_entry_detected_by_head(log: AuditLog) -> None:
    _fill(log, 3)
    lines = _lines(log)
    lines[-1] = _rehash(lines[-1], counts={"ds1": 99})
    _write(log, lines)
    report = verify(log.path)
    assert report.kinds() == {"edited"} and [p.line for p in report.problems] == [3]


@pytest.mark.parametrize("index", [0, 2])
def test_removed_entry_detected(log: AuditLog, index: int) -> None:
    _fill(log, 5)
    lines = _lines(log)
    del lines[index]
    _write(log, lines)
    report = verify(log.path)
    assert "removed" in report.kinds()
    assert report.problems[0].line == index + 1


def test_reordered_entries_detected(log: AuditLog) -> None:
    _fill(log, 5)
    lines = _lines(log)
    lines[1], lines[3] = lines[3], lines[1]
    _write(log, lines)
    assert "reordered" in verify(log.path).kinds()


def test_truncated_entries_detected(log: AuditLog) -> None:
    _fill(log, 5)
    _write(log, _lines(log)[:3])
    report = verify(log.path)
    assert report.kinds() == {"truncated"} and report.problems[0].line == 3


def test_partial_last_line_detected(log: AuditLog) -> None:
    _fill(log, 3)
    raw = log.path.read_bytes()
    log.path.write_bytes(raw[: len(raw) - 20])
    report = verify(log.path)
    assert "truncated" in report.kinds() and "partial" in report.notice_kinds()
    # The next append rolls the partial line back, but the head had acknowledged the
    # entry it held: cutting a complete entry stays visible after the repair.
    _fill(log, 1)
    assert "truncated" in verify(log.path).kinds()


def test_damaged_last_line_fails_closed(log: AuditLog) -> None:
    _fill(log, 3)
    log.path.write_bytes(log.path.read_bytes() + b"not an entry\n")
    with pytest.raises(Unavailable, match="audit log damaged"):
        _fill(log, 1)  # fail closed rather than chain onto a damaged entry


def test_emptied_log_or_missing_head_detected(log: AuditLog) -> None:
    _fill(log, 2)
    log.head_path.unlink()
    assert verify(log.path).kinds() == {"truncated"}
    _fill(log, 1)  # the head is rewritten by the next append
    assert verify(log.path).ok
    log.path.write_text("")
    assert verify(log.path).kinds() == {"truncated"}


def test_malformed_line_detected(log: AuditLog) -> None:
    _fill(log, 3)
    lines = _lines(log)
    lines.insert(1, "not json at all")
    _write(log, lines)
    report = verify(log.path)
    assert "malformed" in report.kinds() and report.problems[0].line == 2


def test_threads_append_safely(log: AuditLog) -> None:
    threads = [threading.Thread(target=_fill, args=(log, 25, f"t{i}")) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = verify(log.path)
    assert report.ok and report.entries == 100


def _append_in_process(path: str, n: int) -> None:
    _fill(AuditLog(Path(path), fsync=False), n, who="proc")


def test_processes_append_safely(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_in_process, args=(str(path), 30)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    report = verify(path)
    assert report.ok and report.entries == 60


def test_from_settings_relative_to_home(tmp_path: Path) -> None:
    log = AuditLog.from_settings(AuditSettings(path="logs/a.jsonl", fsync=True), home=tmp_path)
    _fill(log, 1)
    assert (tmp_path / "logs" / "a.jsonl").is_file() and verify(log.path).ok


def test_chain_head_kept_in_memory(log: AuditLog, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(log, 1)
    reads: list[Path] = []
    real = audit._last_entry

    def counting(path: Path) -> dict[str, Any] | None:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(audit, "_last_entry", counting)
    _fill(log, 20)
    assert reads == []  # nobody else wrote: the head in memory is used
    assert verify(log.path).ok


def test_two_writers_on_one_file_still_chain(tmp_path: Path) -> None:
    # Two replicas (or processes) sharing the log: each notices the other's appends.
    first = AuditLog(tmp_path / "audit.jsonl", fsync=False)
    second = AuditLog(tmp_path / "audit.jsonl", fsync=False)
    for i in range(10):
        (first if i % 3 else second).append(request_id=str(i), requester="r", datasets=["d"],
                                            query={}, granularity="count")
    report = verify(first.path)
    assert report.ok and report.entries == 10
    head = json.loads(first.head_path.read_text())
    assert head["seq"] == 9


def test_edit_then_append_rereads_the_file(log: AuditLog) -> None:
    _fill(log, 3)
    lines = _lines(log)
    _write(log, lines[:2])  # cut one entry off (a different size from what the log left)
    entry = _fill(log, 1)[0]
    assert entry["seq"] == 2 and entry["prev"] == json.loads(lines[1])["hash"]


def test_close_then_append_reopens_head(log: AuditLog) -> None:
    _fill(log, 2)
    log.close()
    _fill(log, 1)
    assert verify(log.path).ok


def test_line_hash_is_sha256_of_the_line_without_its_hash(log: AuditLog) -> None:
    # An auditor needs only sha256: the hash covers the line's bytes minus `,"hash":...`.
    _fill(log, 3)
    for line in _lines(log):
        stated = json.loads(line)["hash"]
        body, tail = line.rsplit(',"hash":', 1)
        assert tail == f'"{stated}"}}'
        assert hashlib.sha256((body + "}").encode()).hexdigest() == stated


def test_log_written_in_the_stdlib_form_still_verifies(log: AuditLog) -> None:
    # Lines of older versions: the standard library's JSON, whose floats (1e-05) orjson
    # spells differently (0.00001); the chain must still verify, and edits still show.
    prev = audit.GENESIS
    lines = []
    for seq in range(3):
        entry = {"seq": seq, "prev": prev, "ts": "2026-11-23T10:00:00.000+00:00",
                 "budget": {"llr": 1e-05 * (seq + 1)}, "requester": "sub:abc"}
        canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"))
        prev = hashlib.sha256(canonical.encode()).hexdigest()
        lines.append(json.dumps({**entry, "hash": prev}, sort_keys=True, separators=(",", ":")))
    _write(log, lines)
    log.head_path.write_text(json.dumps({"seq": 2, "hash": prev}))
    assert verify(log.path).ok
    _write(log, [lines[0], lines[1].replace("2e-05", "3e-05"), lines[2]])
    assert "edited" in verify(log.path).kinds()
    # And new entries chain onto the old ones.
    _write(log, lines)
    _fill(log, 2)
    assert verify(log.path).ok
