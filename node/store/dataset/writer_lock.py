"""One writer per dataset across processes: `writer_lock`.

The lock is an exclusive `flock` on a small file beside the dataset (`.<id>.fednode-lock`
in the folder that holds it), which also records the holder (host, pid, command, since
when) so a waiting or refused writer can name it. `flock` conflicts between processes on
one machine, and between two open files of one process, and the kernel drops it when its
holder dies (`kill -9` included), so a crashed ingest never leaves the dataset locked.

How far it reaches is the file system's: on a local disk, every process of the machine;
on NFS (Linux emulates `flock` with NFS byte-range locks since 2.6.12) every client of
the export whose lock manager works; on file systems without locking (some FUSE mounts)
nothing beyond one machine. A dataset on an object store (`s3://` and any other non-file
URI) has no lock primitive TileDB's VFS exposes, so its lock file lives in a local folder
(`lock_dir`, by default the node home's `locks/`) keyed by the URI: it serialises the
writers of that machine, and the deployment must run one ingest coordinator per dataset
(a Dask ingest has one: its client). The decision is recorded in docs/decisions.md.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from node.errors import Conflict

__all__ = ["DatasetBusy", "LockOptions", "holder_of", "lock_path", "writer_lock"]

POLL_S = 0.1
_LOCAL_SCHEMES = ("", "file")
# Per-path thread locks: flock on NFS is a byte-range lock, which does not conflict
# within one process, so threads of one process are ordered here first.
_THREAD_LOCKS: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()


class DatasetBusy(Conflict):
    """Another writer held the dataset's lock for longer than the caller would wait."""

    def __init__(self, label: str, holder: str, waited_s: float) -> None:
        super().__init__(
            f"dataset {label} is being written by another ingest ({holder}); waited "
            f"{waited_s:g} s for it to finish. Try again when it has, or wait longer "
            "(--wait SECONDS)"
        )
        self.holder = holder


@dataclass(frozen=True, slots=True)
class LockOptions:
    """How a writer takes a dataset's lock: wait up to `wait_s`, name the dataset
    `label` in messages, keep object stores' lock files in `lock_dir`, call `on_wait`."""

    wait_s: float = 0.0
    label: str | None = None
    lock_dir: Path | None = None
    on_wait: Callable[[str], None] | None = None

    def hold(self, uri: str) -> contextlib.AbstractContextManager[Path]:
        return writer_lock(
            uri,
            label=self.label,
            wait_s=self.wait_s,
            lock_dir=self.lock_dir,
            on_wait=self.on_wait,
        )


def lock_path(uri: str, *, lock_dir: Path | None = None) -> Path:
    """The lock file of the dataset at `uri` (see the module docstring)."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        scheme, rest = "", uri
    if scheme in _LOCAL_SCHEMES:
        folder = Path(rest.rstrip("/"))
        return folder.parent / f".{folder.name}.fednode-lock"
    base = lock_dir or Path(tempfile.gettempdir()) / "fednode-locks"
    digest = hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:24]
    return base / f"{digest}.fednode-lock"


def holder_of(path: Path) -> str:
    """Who holds (or last held) the lock at `path`, in words."""
    try:
        data = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "holder unknown"
    if not isinstance(data, dict) or "pid" not in data:
        return "holder unknown"
    command = data.get("command", "")
    return (
        f"pid {data['pid']} on {data.get('host', '?')}, since {data.get('since', '?')}"
        + (f": {command}" if command else "")
    )


@contextlib.contextmanager
def writer_lock(
    uri: str,
    *,
    label: str | None = None,
    wait_s: float = 0.0,
    lock_dir: Path | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Hold the dataset's writer lock for the block; wait up to `wait_s` seconds for it.

    Raises `DatasetBusy` naming the holder when it is still held after `wait_s`.
    `on_wait(holder)` is called once when the lock is found held (say, to print it).
    """
    path = lock_path(uri, lock_dir=lock_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    thread_lock = _thread_lock(path)
    deadline = time.monotonic() + max(0.0, wait_s)
    if not thread_lock.acquire(timeout=max(0.0, wait_s)):
        raise DatasetBusy(label or uri, f"{holder_of(path)}, this process", wait_s)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _acquire(fd, path, label or uri, deadline, wait_s, on_wait)
            _record_holder(fd)
            yield path
        finally:
            os.close(fd)  # releases the flock
    finally:
        thread_lock.release()


def _acquire(
    fd: int,
    path: Path,
    label: str,
    deadline: float,
    wait_s: float,
    on_wait: Callable[[str], None] | None,
) -> None:
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if not told and on_wait is not None:
            on_wait(holder_of(path))
            told = True
        if time.monotonic() >= deadline:
            raise DatasetBusy(label, holder_of(path), wait_s)
        time.sleep(POLL_S)


def _record_holder(fd: int) -> None:
    holder = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "command": " ".join(sys.argv)[:300],
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)


def _thread_lock(path: Path) -> threading.Lock:
    key = str(path.resolve())
    with _GUARD:
        return _THREAD_LOCKS.setdefault(key, threading.Lock())
