"""Append-only, hash-chained access log (JSON lines).

Each entry records who asked (the pseudonymous requester id, never a token), which
datasets, the query, the granularity returned, the counts reported, the budget charged,
a timestamp and the request id. Entries carry a sequence number, `prev` (the previous
entry's hash; 64 zeros for the first) and `hash`: sha256 of the entry's compact JSON with
sorted keys and without `hash`, which is exactly the line as written minus its last member
`"hash":"..."` (so anyone can check a line with `sha256` and no JSON library of ours).
A sidecar `<log>.head` holds the last sequence number and hash, so that cutting entries
off the end is detected too.

`verify(path)` recomputes everything, over the whole series of rotated files, and reports
each problem with its file and line: `edited` (content or chain changed, or a signed
checkpoint contradicted), `removed` (sequence numbers missing), `reordered`, `truncated`
(complete entries cut off the end), `malformed`. What a crash or a full disk leaves is
reported as a notice, which does not fail verification: `head-lags` (the `.head` record
names an earlier entry and the entries after it chain), `partial` (a partial last line, an
interrupted write), `rolled-back` (an entry recording that such a line was removed),
`starts-later` (older files deleted by retention), `unanchored` (no checkpoint to check).

Crashes and full disks: a partial last line (a short write, e.g. ENOSPC) is cut off by the
next append, or when the log is opened, and an `event: rollback` entry records its length,
its sha256 and the seq the `.head` named, so the node answers again once space is back;
until then appends fail closed (Unavailable). Rotation (`max_bytes`, `max_age_s`) renames
the live file to `<log>.NNNNNN`; sequence numbers and the chain continue in the new file,
and `retention` keeps that many rotated files (an `event: retention` entry records what
was deleted). Checkpoints: every `checkpoint_interval_s` the writer signs the chain head
(seq and hash) with the node's Ed25519 key (JWS, EdDSA) into `<log>.checkpoints`; `verify`
given the public key checks them, so a consistent rewrite of the chain and `.head` made
after a checkpoint is detected.

Appends are serialised within a process (a lock) and across processes (`fcntl.flock` on
the log); each batch of entries is one `write` to an O_APPEND descriptor, fsync'd when
configured, and every caller returns only once its entry is written (and flushed, with
fsync). The chain head (last seq and hash) is kept in memory together with the log's
inode, size and mtime as this process last left it; under the flock a `fstat` that still
matches proves nobody else appended, and anything else (another process's append, a
rotated or edited file) makes the head be read back from the file, so entries of several
processes still chain. The `.head` record is rewritten in place (one fixed-width `pwrite`
to a descriptor kept open, reopened if the file was replaced) after the log's write and
fsync; it is not fsync'd itself, so after a crash (a kill between the two writes, or a
power loss) it can lag the log by the last batches, which `verify` reports as `head-lags`.
Each line is the hashed JSON with `hash` added last (lines written before orjson
serialised the log are checked against the standard library's form, which spells some
floats differently). Methods block; servers append through node/privacy/audit_queue.py
(one thread hop per batch) or call `append` off the event loop.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from node.config import AuditSettings
from node.errors import NodeError, Unavailable
from node.privacy import audit_format as fmt
from node.privacy.audit_format import GENESIS, entry
from node.privacy.audit_keys import (
    Checkpointer,
    load_or_create_key,
    load_public_key,
    public_key_pem,
)
from node.privacy.audit_verify import AuditReport, Problem, verify

# The writer is here; the entry format, the keys and the checker have their own modules,
# whose public names this module also offers (the log's one entry point).
__all__ = ["GENESIS", "AuditLog", "AuditReport", "Checkpointer", "Problem", "Rotation",
           "entry", "load_or_create_key", "load_public_key", "public_key_pem", "verify"]

HEAD_WIDTH = 128  # the .head record, space-padded so each rewrite covers the last one

log = logging.getLogger("fednode.audit")


@dataclass
class _Batch:
    """Entries appended together (group commit) and how their write ended."""

    records: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class Rotation:
    """When the live file is renamed and how many renamed files are kept (0: never/all)."""

    max_bytes: int = 0
    max_age_s: float = 0.0
    retention: int = 0


class AuditLog:
    def __init__(self, path: Path, *, fsync: bool = True, rotation: Rotation = Rotation(),
                 checkpoints: Checkpointer | None = None) -> None:
        self.path = path
        self.head_path = path.with_name(path.name + ".head")
        self._fsync = fsync
        self._rotation = rotation
        self._checkpoints = checkpoints
        self._cond = threading.Condition()
        self._batch = _Batch()
        self._writing = False
        self._tail: _Tail | None = None  # only touched by the writing thread
        self._head_fd: int | None = None
        self._born: tuple[int, float] | None = None  # (inode, first entry's time) of the live file
        self._pending: list[dict[str, Any]] = []  # event entries not yet written
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            self.recover()

    @classmethod
    def from_settings(cls, settings: AuditSettings, *, home: Path) -> AuditLog:
        path = Path(settings.path)
        rotation = Rotation(settings.max_bytes, settings.max_age_s, settings.retention)
        every = settings.checkpoint_interval_s  # 0: never after appends (still on request)
        checkpoints = Checkpointer(home / settings.checkpoint_key,
                                   interval_s=every if every > 0 else math.inf)
        return cls(path if path.is_absolute() else home / path, fsync=settings.fsync,
                   rotation=rotation, checkpoints=checkpoints)

    def recover(self) -> None:
        """Roll back a partial last line left by a crash or a full disk (as the next append
        would); if that cannot be written yet, the next append tries again."""
        try:
            self.append_records([])
        except NodeError as exc:
            log.warning("audit log %s not recovered yet: %s", self.path, exc.message)

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
            fd = self._open_locked()
            try:
                st = os.fstat(fd)
                self._pending += self._repair_locked(fd, st)
                if self._rotation_due(fd, os.fstat(fd) if self._pending else st):
                    self._rotate_locked()  # the chain continues in a new live file
                    new = self._open_locked()
                    os.close(fd)
                    fd = new
                self._append_locked(fd, [*self._pending, *batch.records])
                self._pending = []
            finally:
                os.close(fd)  # releases the flock
        except OSError as exc:  # a full disk, an unwritable home: fail closed, no 500
            batch.error = Unavailable("audit log could not be written; refusing to answer")
            batch.error.__cause__ = exc
        except Exception as exc:
            batch.error = exc

    def _open_locked(self) -> int:
        """The live file, opened for appending and flock'd; reopened if another process
        rotated it while this one waited for the lock."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)

    def close(self) -> None:
        """Release the `.head` descriptor (appending again reopens it)."""
        with self._cond:
            while self._writing:
                self._cond.wait()
            if self._head_fd is not None:
                os.close(self._head_fd)
                self._head_fd = None

    def _repair_locked(self, fd: int, st: os.stat_result) -> list[dict[str, Any]]:
        """Cut a partial last line (a short write) off the live file; the entry recording
        it, to be appended. Nothing to do when the file is as this process left it."""
        if (self._tail is not None and self._tail.matches(st)) or st.st_size == 0:
            return []
        if os.pread(fd, 1, st.st_size - 1) == b"\n":
            return []
        keep = _complete_size(fd, st.st_size)
        removed = os.pread(fd, st.st_size - keep, keep)
        os.ftruncate(fd, keep)
        self._tail = None
        log.warning("audit log %s: partial last line of %d bytes rolled back",
                    self.path, len(removed))
        return [fmt.event("rollback", removed_bytes=len(removed),
                       removed_sha256=hashlib.sha256(removed).hexdigest(),
                       head_seq=_read_head(self.head_path)[0])]

    def _rotation_due(self, fd: int, st: os.stat_result) -> bool:
        rotation = self._rotation
        if st.st_size == 0:
            return False
        if rotation.max_bytes and st.st_size >= rotation.max_bytes:
            return True
        if not rotation.max_age_s:
            return False
        if self._born is None or self._born[0] != st.st_ino:
            first = os.pread(fd, 65536, 0).split(b"\n", 1)[0]
            self._born = (st.st_ino, _entry_time(first))
        return time.time() - self._born[1] >= rotation.max_age_s

    def _rotate_locked(self) -> None:
        """Rename the live file to the next `<log>.NNNNNN` (its lock still held, so nobody
        appends meanwhile) and delete rotated files beyond `retention`, recording which."""
        rotated = fmt.rotated(self.path)
        number = int(rotated[-1].name.rsplit(".", 1)[1]) + 1 if rotated else 1
        os.rename(self.path, self.path.with_name(f"{self.path.name}.{number:06d}"))
        self._tail = None
        keep = self._rotation.retention
        if keep and len(rotated) + 1 > keep:
            doomed = rotated[: len(rotated) + 1 - keep]
            last = _last_entry(doomed[-1]) or {}
            for path in doomed:
                path.unlink()
            self._pending.append(fmt.event("retention", removed=[p.name for p in doomed],
                                        last_seq=last.get("seq"), last_hash=last.get("hash")))

    def _append_locked(self, fd: int, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        seq, digest = self._chain_head(fd)
        lines = []
        for record in records:
            record.pop("hash", None)
            record["seq"] = seq = seq + 1
            record["prev"] = digest
            # One serialisation: the line is the canonical form with the hash added last
            # (verify reads lines as JSON and hashes them canonically without it).
            body = fmt.body(record)
            record["hash"] = digest = hashlib.sha256(body).hexdigest()
            lines.append(b'%s,"hash":"%s"}\n' % (body[:-1], digest.encode()))
        self._tail = None  # unknown until the write is complete
        fmt.write_all(fd, b"".join(lines))
        if self._fsync:
            os.fsync(fd)
        self._tail = _Tail.of(os.fstat(fd), seq, digest)
        self._write_head(seq, digest)
        if self._checkpoints is not None:
            self._checkpoints.maybe_sign(self.path, seq, digest)

    def checkpoint(self) -> tuple[str, bytes]:
        """Sign the chain head now: the token (also kept in `<log>.checkpoints`) and the
        public key (PEM) that checks it, for someone outside the node to keep."""
        if self._checkpoints is None:
            raise Unavailable("this audit log has no signing key")
        fd = self._open_locked()
        try:
            seq, digest = self._chain_head(fd)
        finally:
            os.close(fd)
        token = self._checkpoints.sign(self.path, seq, digest)
        return token, self._checkpoints.public_key_pem()

    def _chain_head(self, fd: int) -> tuple[int, str]:
        """(seq, hash) of the series' last entry: (-1, GENESIS) for an empty log."""
        tail = self._tail
        if tail is not None and tail.matches(os.fstat(fd)):
            return tail.seq, tail.hash
        try:
            last = _last_entry(self.path)
            rotated = fmt.rotated(self.path)
            if last is None and rotated:  # a new file after rotation: chain onto the last
                last = _last_entry(rotated[-1])
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


def _complete_size(fd: int, size: int) -> int:
    """The length of the file up to and including its last newline (0: none)."""
    pos = size
    while pos > 0:
        step = min(65536, pos)
        pos -= step
        found = os.pread(fd, step, pos).rfind(b"\n")
        if found >= 0:
            return pos + found + 1
    return 0


def _entry_time(line: bytes) -> float:
    """The `ts` of an entry line as a POSIX time (now, if it has none)."""
    try:
        return datetime.fromisoformat(json.loads(line)["ts"]).timestamp()
    except (ValueError, KeyError, TypeError):
        return time.time()


def _read_head(head_path: Path) -> tuple[int | None, str | None]:
    """(seq, hash) the `.head` record names; Nones if it is missing or unreadable."""
    try:
        head = json.loads(head_path.read_text())
        return int(head["seq"]), str(head["hash"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, None


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


