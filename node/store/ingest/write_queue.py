"""One background thread that runs an ingest's TileDB writes while the input is parsed.

TileDB releases the GIL while it filters (zstd, SHA-256) and writes tiles, so on two cores
parsing the next batch overlaps writing the last. The queue holds at most `depth` jobs
waiting, which bounds the batches in memory at `depth` + 2 (filling, waiting, writing).
A job's exception is raised in the ingest thread by the next `submit` or by `join`;
`abort` lets the running job finish, drops the waiting ones and returns only when the
thread has stopped, so no fragment is written after the caller cleans up.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

__all__ = ["WriteQueue"]

Job = Callable[[], None]


class WriteQueue:
    def __init__(self, *, depth: int = 1, name: str = "ingest-writer") -> None:
        self._name = name
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def submit(self, job: Job) -> None:
        self._raise()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        while True:
            try:
                self._jobs.put(job, timeout=0.1)
                return
            except queue.Full:
                self._raise()  # the writer failed: it takes no more jobs

    def join(self) -> None:
        """Wait for every submitted job; raise the first job error."""
        self._shutdown()
        self._raise()

    def abort(self) -> None:
        """Stop after the running job, drop the waiting ones (errors are not raised)."""
        self._stop.set()
        self._shutdown()

    def _shutdown(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        while thread.is_alive():
            try:
                self._jobs.put(None, timeout=0.1)
                break
            except queue.Full:
                continue
        thread.join()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if self._stop.is_set() or self._error is not None:
                continue  # drain without running: the ingest is failing
            try:
                job()
            except BaseException as exc:  # re-raised in the ingest thread
                self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._stop.set()
            raise error
