"""One background thread that runs an ingest's TileDB writes while the input is parsed.

TileDB releases the GIL while it filters (zstd, SHA-256) and writes tiles, so on two cores
parsing the next batch overlaps writing the last. At most `depth` jobs are in flight
(waiting or running): with the batch being filled, `depth` + 1 batches are in memory.
`depth` 1 still overlaps parsing with writing; 2 also lets a slow write and a slow batch
even out, at the memory of one more batch (`memory_budget` picks it).
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
    def __init__(self, *, depth: int = 2, name: str = "ingest-writer") -> None:
        if depth < 1:
            raise ValueError(f"WriteQueue depth {depth}: at least one job must be in flight")
        self._name = name
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._slots = threading.BoundedSemaphore(depth)  # one per job in flight
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def submit(self, job: Job) -> None:
        self._raise()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        while not self._slots.acquire(timeout=0.1):
            self._raise()  # the writer failed: it takes no more jobs
        self._jobs.put(job)

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
        self._jobs.put(None)  # after every job submitted: they run (or are dropped) first
        thread.join()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                if self._stop.is_set() or self._error is not None:
                    continue  # drain without running: the ingest is failing
                job()
            except BaseException as exc:  # re-raised in the ingest thread
                self._error = exc
            finally:
                del job  # its batch is freed before the next submit may start one
                self._slots.release()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._stop.set()
            raise error
