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
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from node.config import AuditSettings
from node.errors import NodeError, Unavailable

__all__ = ["AuditLog", "AuditReport", "Problem", "entry", "load_public_key",
           "public_key_pem", "verify"]

GENESIS = "0" * 64
HEAD_WIDTH = 128  # the .head record, space-padded so each rewrite covers the last one
ProblemKind = Literal["edited", "removed", "reordered", "truncated", "malformed"]
NoticeKind = Literal["head-lags", "partial", "rolled-back", "starts-later", "unanchored"]

log = logging.getLogger("fednode.audit")


@dataclass(frozen=True, slots=True)
class Problem:
    line: int  # 1-based line of the log where the problem shows
    kind: ProblemKind | NoticeKind
    detail: str
    file: Path | None = None  # the file of the series (None: the live log)


@dataclass(frozen=True, slots=True)
class AuditReport:
    entries: int
    problems: tuple[Problem, ...]
    notices: tuple[Problem, ...] = ()  # what crashes, full disks and retention leave

    @property
    def ok(self) -> bool:
        return not self.problems

    def kinds(self) -> set[ProblemKind | NoticeKind]:
        return {p.kind for p in self.problems}

    def notice_kinds(self) -> set[ProblemKind | NoticeKind]:
        return {p.kind for p in self.notices}


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


def _event(kind: str, **details: Any) -> dict[str, Any]:
    """An entry the log writes about itself (a rollback, a retention deletion)."""
    return {"ts": _now(), "event": kind, **details}


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
        checkpoints = None
        if settings.checkpoint_interval_s > 0:
            checkpoints = Checkpointer(home / settings.checkpoint_key,
                                       interval_s=settings.checkpoint_interval_s)
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
        return [_event("rollback", removed_bytes=len(removed),
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
        rotated = _rotated(self.path)
        number = int(rotated[-1].name.rsplit(".", 1)[1]) + 1 if rotated else 1
        os.rename(self.path, self.path.with_name(f"{self.path.name}.{number:06d}"))
        self._tail = None
        keep = self._rotation.retention
        if keep and len(rotated) + 1 > keep:
            doomed = rotated[: len(rotated) + 1 - keep]
            last = _last_entry(doomed[-1]) or {}
            for path in doomed:
                path.unlink()
            self._pending.append(_event("retention", removed=[p.name for p in doomed],
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
            body = _body(record)
            record["hash"] = digest = hashlib.sha256(body).hexdigest()
            lines.append(b'%s,"hash":"%s"}\n' % (body[:-1], digest.encode()))
        self._tail = None  # unknown until the write is complete
        _write_all(fd, b"".join(lines))
        if self._fsync:
            os.fsync(fd)
        self._tail = _Tail.of(os.fstat(fd), seq, digest)
        self._write_head(seq, digest)
        if self._checkpoints is not None:
            self._checkpoints.maybe_sign(self.path, seq, digest)

    def _chain_head(self, fd: int) -> tuple[int, str]:
        """(seq, hash) of the series' last entry: (-1, GENESIS) for an empty log."""
        tail = self._tail
        if tail is not None and tail.matches(os.fstat(fd)):
            return tail.seq, tail.hash
        try:
            last = _last_entry(self.path)
            rotated = _rotated(self.path)
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


class Checkpointer:
    """Signs the chain head with the node's Ed25519 key (JWS, EdDSA) into
    `<log>.checkpoints`, at most once per `interval_s` (the first append always does)."""

    def __init__(self, key_path: Path, *, interval_s: float) -> None:
        self._key_path = key_path
        self._interval_s = interval_s
        self._key: Ed25519PrivateKey | None = None
        self._last = -float("inf")

    def maybe_sign(self, log_path: Path, seq: int, digest: str) -> None:
        now = time.monotonic()
        if now - self._last < self._interval_s:
            return
        if self._key is None:
            self._key = load_or_create_key(self._key_path)
        claims = {"log": log_path.name, "seq": seq, "hash": digest, "iat": int(time.time())}
        token = jwt.encode(claims, self._key, algorithm="EdDSA")
        fd = os.open(_checkpoints_path(log_path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            _write_all(fd, token.encode() + b"\n")
        finally:
            os.close(fd)
        self._last = now


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The node's audit signing key; created (mode 0600, exclusively) on first use."""
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            pass
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise NodeError(f"{path} is not an Ed25519 private key")
    return key


def public_key_pem(key_path: Path) -> bytes:
    """The public half of the audit signing key (created if missing), as PEM."""
    return load_or_create_key(key_path).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A public key exported by `public_key_pem` (e.g. `fednode audit key`)."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise NodeError(f"{path}: not a readable PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise NodeError(f"{path}: not an Ed25519 public key")
    return key


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


def _rotated(path: Path) -> list[Path]:
    """The rotated files of the log at `path`, oldest first."""
    pattern = re.compile(re.escape(path.name) + r"\.(\d{6,})")
    found = [p for p in path.parent.glob(path.name + ".*") if pattern.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(p.name.rsplit(".", 1)[1]))


def _checkpoints_path(path: Path) -> Path:
    return path.with_name(path.name + ".checkpoints")


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


_Parsed = tuple[int, dict[str, Any], bytes, Path]  # line number, entry, its bytes, its file


def verify(path: Path, *, public_key: Ed25519PublicKey | None = None) -> AuditReport:
    """Check the whole chain of the log at `path`: its rotated files, the live file, its
    `.head` and, given the node's public key, its signed checkpoints."""
    problems: list[Problem] = []
    entries: list[_Parsed] = []
    files = [*_rotated(path), path]
    for file in files:
        raw = file.read_bytes() if file.exists() else b""
        if raw and not raw.endswith(b"\n"):
            tail = len(raw) - raw.rfind(b"\n") - 1
            problems.append(Problem(raw.count(b"\n") + 1, "partial",
                                    f"partial last line of {tail} bytes (an interrupted "
                                    "write; rolled back by the next append)", file))
        entries += _parse(raw.split(b"\n")[: raw.count(b"\n")], file, problems)
    problems += _check_chain(entries, live=path)
    problems += _check_head(path, entries)
    if public_key is not None:
        problems += _check_checkpoints(path, entries, public_key)
    problems = [p if p.file != path else Problem(p.line, p.kind, p.detail) for p in problems]
    rank = {file: number for number, file in enumerate(files)}
    problems.sort(key=lambda p: (rank.get(p.file or path, len(files)), p.line))
    failing = tuple(p for p in problems if p.kind not in _NOTICES)
    return AuditReport(len(entries), failing, tuple(p for p in problems if p.kind in _NOTICES))


_NOTICES: frozenset[str] = frozenset(get_args(NoticeKind))


def _parse(lines: list[bytes], file: Path, problems: list[Problem]) -> list[_Parsed]:
    entries: list[_Parsed] = []
    for number, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
            valid = isinstance(entry, dict) and isinstance(entry.get("seq"), int)
        except ValueError:
            valid = False
        if not valid:
            problems.append(Problem(number, "malformed", "not a log entry", file))
            continue
        entries.append((number, entry, line, file))
    return entries


def _hash_ok(entry: dict[str, Any], line: bytes) -> bool:
    stated = entry.get("hash")
    if stated == line_hash(line):
        return True
    # Written by an older version: its line was the stdlib's canonical JSON.
    without = {k: v for k, v in entry.items() if k != "hash"}
    return stated == hashlib.sha256(_legacy_body(without)).hexdigest()


def _check_chain(entries: list[_Parsed], *, live: Path) -> list[Problem]:
    problems: list[Problem] = []
    prev_hash, prev_seq, prev_at = GENESIS, -1, (0, Path())
    if entries and entries[0][1]["seq"] > 0 and entries[0][3] != live:
        # Retention deleted the oldest rotated files: the chain is checked from the oldest
        # kept (the live file, never deleted, must start at seq 0 when it is the only one).
        line, first, _, file = entries[0]
        prev_hash, prev_seq = str(first.get("prev")), first["seq"] - 1
        problems.append(Problem(line, "starts-later", f"verification starts at seq "
                                f"{first['seq']} in {file.name}, the oldest file kept", file))
    for line, entry, raw, file in entries:
        seq = entry["seq"]
        if not _hash_ok(entry, raw):
            problems.append(Problem(line, "edited", "entry does not match its hash", file))
        if seq <= prev_seq:
            problems.append(Problem(line, "reordered", f"seq {seq} after {prev_seq}", file))
        elif seq > prev_seq + 1:
            problems.append(Problem(line, "removed", f"seq {prev_seq + 1}..{seq - 1} missing",
                                    file))
        elif entry.get("prev") != prev_hash:
            # In sequence but not chained: the previous entry was rewritten (hash and all).
            problems.append(Problem(max(prev_at[0], 1), "edited", "chain broken",
                                    prev_at[1] if prev_at[0] else file))
        problems += _check_event(line, entry, file)
        prev_hash, prev_at = str(entry.get("hash")), (line, file)
        prev_seq = max(prev_seq, seq)
    return problems


def _check_event(line: int, entry: dict[str, Any], file: Path) -> list[Problem]:
    if entry.get("event") != "rollback":
        return []
    head_seq = entry.get("head_seq")
    if isinstance(head_seq, int) and head_seq >= entry["seq"]:
        # The head had acknowledged entries that the "partial line" held: complete
        # entries were cut, which no short write does.
        return [Problem(line, "truncated", f"a rollback cut entries up to seq {head_seq} "
                        "that the head record had acknowledged", file)]
    return [Problem(line, "rolled-back", f"a partial line of {entry.get('removed_bytes')} "
                    "bytes was removed (an interrupted write)", file)]


def _check_head(path: Path, entries: list[_Parsed]) -> list[Problem]:
    head_path = path.with_name(path.name + ".head")
    last_line, last_file = (entries[-1][0], entries[-1][3]) if entries else (0, path)
    try:
        head = json.loads(head_path.read_text())
        head_seq, head_hash = int(head["seq"]), str(head["hash"])
    except FileNotFoundError:
        if not entries:
            return []
        return [Problem(last_line, "truncated", "head record missing", last_file)]
    except (ValueError, KeyError, TypeError):
        return [Problem(last_line, "malformed", "head record unreadable", last_file)]
    if not entries:
        return [Problem(1, "truncated", f"log empty, head says seq {head_seq}")]
    last = entries[-1][1]
    if last["seq"] < head_seq:
        return [Problem(last_line, "truncated", f"entries after seq {last['seq']} missing",
                        last_file)]
    if last["seq"] == head_seq and last.get("hash") == head_hash:
        return []
    named = [e for e in entries if e[1]["seq"] == head_seq]
    if last["seq"] > head_seq and named and named[-1][1].get("hash") == head_hash:
        # A crash between the log's write and the head's: not tampering, as long as the
        # entries after the head chain (which _check_chain reports on).
        after = last["seq"] - head_seq
        return [Problem(named[-1][0], "head-lags", f"head lags: {after} entries after the "
                        "head record chain correctly", named[-1][3])]
    return [Problem(last_line, "edited", "last entry does not match the head record",
                    last_file)]


def _check_checkpoints(path: Path, entries: list[_Parsed],
                       key: Ed25519PublicKey) -> list[Problem]:
    """Each signed checkpoint must name an entry the chain still has, unchanged."""
    file = _checkpoints_path(path)
    tokens = file.read_text().split() if file.exists() else []
    if not tokens:
        return [Problem(0, "unanchored", "no signed checkpoint to check the chain against",
                        file)] if entries else []
    by_seq = {e[1]["seq"]: e[1].get("hash") for e in entries}
    first = entries[0][1]["seq"] if entries else 0
    last = entries[-1][1]["seq"] if entries else -1
    problems = []
    for number, token in enumerate(tokens, start=1):
        try:
            claims = jwt.decode(token, key, algorithms=["EdDSA"])
            seq, digest = int(claims["seq"]), str(claims["hash"])
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            problems.append(Problem(number, "edited", "checkpoint signature invalid", file))
            continue
        if seq > last:
            problems.append(Problem(number, "truncated", f"checkpoint signed seq {seq}; the "
                                    f"chain ends at seq {last}", file))
        elif seq >= first and by_seq.get(seq) != digest:
            problems.append(Problem(number, "edited", f"checkpoint signed seq {seq} with "
                                    "another hash: the chain was rewritten after it", file))
    return problems
