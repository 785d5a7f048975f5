"""The audit log's entry format, shared by its writer (`audit`), its checker
(`audit_verify`) and its checkpoints (`audit_keys`): what a line's hash covers, entries,
the files of a series."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

__all__ = ["GENESIS", "body", "checkpoints_path", "entry", "event", "legacy_body", "line_hash",
           "rotated", "write_all"]

GENESIS = "0" * 64

_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_HASH_TAIL = re.compile(rb',"hash":"([0-9a-f]{64})"\}$')


def body(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash covers: compact JSON, keys sorted, without `hash`."""
    return orjson.dumps(entry, option=_SORTED)


def legacy_body(entry: Mapping[str, Any]) -> bytes:
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


def event(kind: str, **details: Any) -> dict[str, Any]:
    """An entry the log writes about itself (a rollback, a retention deletion)."""
    return {"ts": _now(), "event": kind, **details}


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def rotated(path: Path) -> list[Path]:
    """The rotated files of the log at `path`, oldest first."""
    pattern = re.compile(re.escape(path.name) + r"\.(\d{6,})")
    found = [p for p in path.parent.glob(path.name + ".*") if pattern.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(p.name.rsplit(".", 1)[1]))


def checkpoints_path(path: Path) -> Path:
    return path.with_name(path.name + ".checkpoints")
