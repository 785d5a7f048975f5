"""Append-only, hash-chained access log (JSON lines).

Each entry records who asked (the pseudonymous requester id, never a token), which
datasets, the query, the granularity returned, the counts reported, the budget charged,
a timestamp and the request id. Entries carry a sequence number, `prev` (the previous
entry's hash; 64 zeros for the first) and `hash`: sha256 of the entry's compact JSON with
sorted keys and without `hash`, which is exactly the line as written minus its last member
`"hash":"..."` (so anyone can check a line with `sha256` and no JSON library of ours).
A sidecar `<log>.head` holds the last sequence number and hash, so that cutting entries
off the end is detected too.

`verify(path)` recomputes everything and reports each problem with its line: `edited`
(content or chain changed), `removed` (sequence numbers missing), `reordered`,
`truncated` (entries or a partial line cut off the end), `malformed`.

Appends are serialised within a process (a lock) and across processes (`fcntl.flock` on
the log); each batch of entries is one `write` to an O_APPEND descriptor, fsync'd when
configured, and every caller returns only once its entry is written (and flushed, with
fsync). The chain head (last seq and hash) is kept in memory together with the log's
inode, size and mtime as this process last left it; under the flock a `fstat` that still
matches proves nobody else appended, and anything else (another process's append, a
rotated or edited file) makes the head be read back from the file, so entries of several
processes still chain. The `.head` record is rewritten in place (one fixed-width `pwrite`
to a descriptor kept open, reopened if the file was replaced) after the log's write and
fsync; it is not fsync'd itself, so after a power loss it can lag the log by the last
batches, which `verify` reports as a mismatch at the log's end. Each line is the hashed
JSON with `hash` added last (lines written before orjson serialised the log are checked
against the standard library's form, which spells some floats differently). Methods
block; servers append through node/privacy/audit_queue.py (one thread hop per batch) or
call `append` off the event loop.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from node.config import AuditSettings
from node.errors import Unavailable

__all__ = ["AuditLog", "AuditReport", "Problem", "entry", "verify"]

GENESIS = "0" * 64
HEAD_WIDTH = 128  # the .head record, space-padded so each rewrite covers the last one
ProblemKind = Literal["edited", "removed", "reordered", "truncated", "malformed"]


@dataclass(frozen=True, slots=True)
class Problem:
    line: int  # 1-based line of the log where the problem shows
    kind: ProblemKind
    detail: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    entries: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def kinds(self) -> set[ProblemKind]:
        return {p.kind for p in self.problems}


_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_HASH_TAIL = re.compile(rb',"hash":"([0-9a-f]{64})"\}$')


def _body(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash covers: compact JSON, keys sorted, without `hash`."""
    return orjson.dumps(entry, option=_SORTED)


def _legacy_body(entry: Mapping[str, Any]) -> bytes:
    """The same for entries written before the log was serialised with orjson (the
    standard library's compact sorted JSON; floats can be spelt differently)."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def line_hash(line: bytes) -> str | None:
    """The hash of a written line as its writer computed it: sha256 of the line without its
    trailing `"hash"` member (a line is `body` with `,"hash":"..."}` in place of `}`), so
    checking it needs no re-serialisation. None: the line does not end that way."""
    found = _HASH_TAIL.search(line)
    if found is None:
        return None
    return hashlib.sha256(line[: found.start()] + b"}").hexdigest()


_stamp: tuple[int, str] = (-1, "")  # the last second formatted, and its text


def _now() -> str:
    """UTC now as ISO 8601 to the millisecond; the date and time are formatted once per
    second (many entries share one under load), the milliseconds per call. A tuple is
    replaced whole, so threads see a consistent pair."""
    global _stamp
    seconds, millis = divmod(time.time_ns() // 1_000_000, 1000)
    last, text = _stamp
    if seconds != last:
        text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _stamp = (seconds, text)
    return f"{text}.{millis:03d}+00:00"


def entry(
    *,
    request_id: str,
    requester: str,
    datasets: Sequence[str],
    query: Mapping[str, Any],
    granularity: str | None,
    counts: Mapping[str, Any] | None = None,
    budget: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """A log entry before it is chained (no I/O: callable on an event loop)."""
    return {
        "ts": _now(),
        "request_id": request_id,
        "requester": requester,
        "datasets": list(datasets),
        "query": dict(query),
        "granularity": granularity,
        "counts": dict(counts or {}),
        "budget": dict(budget or {}),
    }


@dataclass
class _Batch:
    """Entries appended together (group commit) and how their write ended."""

    records: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    error: Exception | None = None


class AuditLog:
    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = path
        self.head_path = path.with_name(path.name + ".head")
        self._fsync = fsync
        self._cond = threading.Condition()
        self._batch = _Batch()
        self._writing = False
        self._tail: _Tail | None = None  # only touched by the writing thread
        self._head_fd: int | None = None
        path.parent.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_settings(cls, settings: AuditSettings, *, home: Path) -> AuditLog:
        path = Path(settings.path)
        return cls(path if path.is_absolute() else home / path, fsync=settings.fsync)

    def append(
        self,
        *,
        request_id: str,
        requester: str,
        datasets: Sequence[str],
        query: Mapping[str, Any],
        granularity: str | None,
        counts: Mapping[str, Any] | None = None,
        budget: Mapping[str, float] | None = None,
    ) -> dict[str, Any]:
        """Append one entry; returns it as written (with seq, prev and hash)."""
        record = entry(request_id=request_id, requester=requester, datasets=datasets,
                       query=query, granularity=granularity, counts=counts, budget=budget)
        self.append_records([record])
        return record

    def append_records(self, records: Sequence[dict[str, Any]]) -> None:
        """Append entries made by `entry` (each gets seq, prev and hash in place); returns
        once all are written (and flushed, with fsync), or raises."""
        # Group commit: concurrent appends join one batch; whichever thread finds no write
        # in progress writes the whole batch with one flock, one fsync and one head update,
        # and every caller returns only once its own entries are on disk.
        with self._cond:
            batch = self._batch
            batch.records.extend(records)
            while not batch.done:
                if self._writing:
                    self._cond.wait()
                    continue
                self._writing = True
                self._batch = _Batch()
                self._cond.release()
                try:
                    self._write_batch(batch)
                finally:
                    self._cond.acquire()
                    self._writing = False
                    batch.done = True
                    self._cond.notify_all()
        if batch.error is not None:
            raise batch.error

    def _write_batch(self, batch: _Batch) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._append_locked(fd, batch.records)
            finally:
                os.close(fd)  # releases the flock
        except Exception as exc:
            batch.error = exc

    def close(self) -> None:
        """Release the `.head` descriptor (appending again reopens it)."""
        with self._cond:
            while self._writing:
                self._cond.wait()
            if self._head_fd is not None:
                os.close(self._head_fd)
                self._head_fd = None

    def _append_locked(self, fd: int, records: list[dict[str, Any]]) -> None:
        seq, digest = self._chain_head(fd)
        lines = []
        for record in records:
            record.pop("hash", None)
            record["seq"] = seq = seq + 1
            record["prev"] = digest
            # One serialisation: the line is the canonical form with the hash added last
            # (verify reads lines as JSON and hashes them canonically without it).
            body = _body(record)
            record["hash"] = digest = hashlib.sha256(body).hexdigest()
            lines.append(b'%s,"hash":"%s"}\n' % (body[:-1], digest.encode()))
        self._tail = None  # unknown until the write is complete
        _write_all(fd, b"".join(lines))
        if self._fsync:
            os.fsync(fd)
        self._tail = _Tail.of(os.fstat(fd), seq, digest)
        self._write_head(seq, digest)

    def _chain_head(self, fd: int) -> tuple[int, str]:
        """(seq, hash) of the log's last entry: (-1, GENESIS) for an empty log."""
        tail = self._tail
        if tail is not None and tail.matches(os.fstat(fd)):
            return tail.seq, tail.hash
        try:
            last = _last_entry(self.path)
        except ValueError as exc:
            # Fail closed: an answer that cannot be audited is not given.
            raise Unavailable("audit log damaged at its end; refusing to append") from exc
        if last is None:
            return -1, GENESIS
        return int(last["seq"]), str(last["hash"])

    def _write_head(self, seq: int, digest: str) -> None:
        record = json.dumps({"seq": seq, "hash": digest}).encode().ljust(HEAD_WIDTH - 1)
        os.pwrite(self._head_descriptor(), record + b"\n", 0)

    def _head_descriptor(self) -> int:
        fd = self._head_fd
        if fd is not None:
            try:
                if os.stat(self.head_path).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)
        self._head_fd = fd = os.open(self.head_path, os.O_RDWR | os.O_CREAT, 0o640)
        if os.fstat(fd).st_size > HEAD_WIDTH:
            os.ftruncate(fd, HEAD_WIDTH)
        return fd


@dataclass(frozen=True, slots=True)
class _Tail:
    """The chain head as this process left the log, and the file state that proves it."""

    inode: int
    size: int
    mtime_ns: int
    seq: int
    hash: str

    @classmethod
    def of(cls, st: os.stat_result, seq: int, digest: str) -> _Tail:
        return cls(st.st_ino, st.st_size, st.st_mtime_ns, seq, digest)

    def matches(self, st: os.stat_result) -> bool:
        return (st.st_ino, st.st_size, st.st_mtime_ns) == (self.inode, self.size, self.mtime_ns)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _last_entry(path: Path) -> dict[str, Any] | None:
    """The last complete entry, read backwards from the end (the file is the truth)."""
    with path.open("rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        if end == 0:
            return None
        chunk, pos = b"", end
        while pos > 0:
            step = min(65536, pos)
            pos -= step
            fh.seek(pos)
            chunk = fh.read(step) + chunk
            lines = chunk.rstrip(b"\n").rsplit(b"\n", 1)
            if len(lines) == 2 or pos == 0:
                parsed = json.loads(lines[-1])
                return parsed if isinstance(parsed, dict) else None
    return None


def verify(path: Path) -> AuditReport:
    """Check the whole chain of the log at `path` (and its `.head`)."""
    raw = path.read_bytes() if path.exists() else b""
    problems: list[Problem] = []
    if raw and not raw.endswith(b"\n"):
        problems.append(Problem(raw.count(b"\n") + 1, "truncated", "partial last line"))
    entries = _parse(raw.split(b"\n")[: raw.count(b"\n")], problems)
    problems += _check_chain(entries)
    problems += _check_head(path, entries)
    problems.sort(key=lambda p: p.line)
    return AuditReport(len(entries), tuple(problems))


_Parsed = tuple[int, dict[str, Any], bytes]  # line number, entry, the line's bytes


def _parse(lines: list[bytes], problems: list[Problem]) -> list[_Parsed]:
    entries: list[_Parsed] = []
    for number, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
            valid = isinstance(entry, dict) and isinstance(entry.get("seq"), int)
        except ValueError:
            valid = False
        if not valid:
            problems.append(Problem(number, "malformed", "not a log entry"))
            continue
        entries.append((number, entry, line))
    return entries


def _hash_ok(entry: dict[str, Any], line: bytes) -> bool:
    stated = entry.get("hash")
    if stated == line_hash(line):
        return True
    # Written by an older version: its line was the stdlib's canonical JSON.
    without = {k: v for k, v in entry.items() if k != "hash"}
    return stated == hashlib.sha256(_legacy_body(without)).hexdigest()


def _check_chain(entries: list[_Parsed]) -> list[Problem]:
    problems: list[Problem] = []
    prev_hash, prev_seq, prev_line = GENESIS, -1, 0
    for line, entry, raw in entries:
        seq = entry["seq"]
        if not _hash_ok(entry, raw):
            problems.append(Problem(line, "edited", "entry does not match its hash"))
        if seq <= prev_seq:
            problems.append(Problem(line, "reordered", f"seq {seq} after {prev_seq}"))
        elif seq > prev_seq + 1:
            problems.append(Problem(line, "removed", f"seq {prev_seq + 1}..{seq - 1} missing"))
        elif entry.get("prev") != prev_hash:
            # In sequence but not chained: the previous entry was rewritten (hash and all).
            problems.append(Problem(max(prev_line, 1), "edited", "chain broken"))
        prev_hash, prev_line = str(entry.get("hash")), line
        prev_seq = max(prev_seq, seq)
    return problems


def _check_head(path: Path, entries: list[_Parsed]) -> list[Problem]:
    head_path = path.with_name(path.name + ".head")
    last_line = entries[-1][0] if entries else 0
    try:
        head = json.loads(head_path.read_text())
        head_seq, head_hash = int(head["seq"]), str(head["hash"])
    except FileNotFoundError:
        if not entries:
            return []
        return [Problem(last_line, "truncated", "head record missing")]
    except (ValueError, KeyError, TypeError):
        return [Problem(last_line, "malformed", "head record unreadable")]
    if not entries:
        return [Problem(1, "truncated", f"log empty, head says seq {head_seq}")]
    last = entries[-1][1]
    if last["seq"] < head_seq:
        return [Problem(last_line, "truncated", f"entries after seq {last['seq']} missing")]
    if last["seq"] != head_seq or last.get("hash") != head_hash:
        return [Problem(last_line, "edited", "last entry does not match the head record")]
    return []
