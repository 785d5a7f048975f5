"""`verify`: check an audit log series (rotated files, live file, `.head`, signed
checkpoints) and report each problem with its file and line; what crashes, full disks and
retention leave is reported as notices, which do not fail verification (see `audit`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from node.privacy.audit_format import GENESIS, checkpoints_path, legacy_body, line_hash, rotated

__all__ = ["AuditReport", "NoticeKind", "Problem", "ProblemKind", "verify"]

ProblemKind = Literal["edited", "removed", "reordered", "truncated", "malformed"]
NoticeKind = Literal["head-lags", "partial", "rolled-back", "starts-later", "unanchored"]


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


_Parsed = tuple[int, dict[str, Any], bytes, Path]  # line number, entry, its bytes, its file


def verify(path: Path, *, public_key: Ed25519PublicKey | None = None,
           outside: Sequence[Path] = ()) -> AuditReport:
    """Check the whole chain of the log at `path`: its rotated files, the live file, its
    `.head` and, given the node's public key, its signed checkpoints and those kept
    outside the node (`outside`: files of tokens, e.g. `fednode federate checkpoints`'),
    which whoever can rewrite the node's home cannot rewrite."""
    problems: list[Problem] = []
    entries: list[_Parsed] = []
    files = [*rotated(path), path]
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
        problems += _check_checkpoints([checkpoints_path(path), *outside], entries, public_key)
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
    return stated == hashlib.sha256(legacy_body(without)).hexdigest()


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
        problems += _checkevent(line, entry, file)
        prev_hash, prev_at = str(entry.get("hash")), (line, file)
        prev_seq = max(prev_seq, seq)
    return problems


def _checkevent(line: int, entry: dict[str, Any], file: Path) -> list[Problem]:
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


def _check_checkpoints(files: Sequence[Path], entries: list[_Parsed],
                       key: Ed25519PublicKey) -> list[Problem]:
    """Each signed checkpoint must name an entry the chain still has, unchanged."""
    found = [(f, f.read_text().split() if f.exists() else []) for f in files]
    if not any(tokens for _, tokens in found):
        return [Problem(0, "unanchored", "no signed checkpoint to check the chain against",
                        files[0])] if entries else []
    by_seq = {e[1]["seq"]: e[1].get("hash") for e in entries}
    first = entries[0][1]["seq"] if entries else 0
    last = entries[-1][1]["seq"] if entries else -1
    problems = []
    for file, tokens in found:
        for number, token in enumerate(tokens, start=1):
            try:
                claims = jwt.decode(token, key, algorithms=["EdDSA"])
                seq, digest = int(claims["seq"]), str(claims["hash"])
            except (jwt.PyJWTError, KeyError, TypeError, ValueError):
                problems.append(Problem(number, "edited", "checkpoint signature invalid", file))
                continue
            if seq > last:
                problems.append(Problem(number, "truncated", f"checkpoint signed seq {seq}; "
                                        f"the chain ends at seq {last}", file))
            elif seq >= first and by_seq.get(seq) != digest:
                problems.append(Problem(number, "edited", f"checkpoint signed seq {seq} with "
                                        "another hash: the chain was rewritten after it", file))
    return problems
