"""Audit appends from an event loop without a thread hop per request.

`AuditQueue.append` queues the entry on the loop and waits for it to be written; one
writer task takes everything queued so far to a single worker thread as one batch
(`AuditLog.append_records`: one write, one fsync), then resolves the batch's waiters in
one loop callback. Under concurrent load a batch holds every request that finished while
the previous one was being written, so the event loop pays one thread hop per batch, not
per request. Durability is unchanged: each `append` returns only once its entry is
written (and flushed, with fsync), and raises if the write failed, so a caller that
answers only after `append` returns never gives an answer that was not audited.

Under concurrency a batch also lingers briefly (`linger_s`, 1 ms) before it is written,
when the previous batch held more than one entry: each batch costs the writer a fixed
~0.15-0.3 ms of CPU (a thread hop and ~10 system calls besides the fsync, measured on the
2-core machine of docs/benchmarks.md), so batches of one or two entries at a few thousand
requests/s spent about 0.1 ms per request on the audit alone. A lone request (previous
batch of one) never waits.

Appends from other threads (`AuditLog.append`) still join the log's own group commit.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from node.privacy.audit import AuditLog

__all__ = ["AuditQueue"]

_Waiting = tuple[dict[str, Any], "asyncio.Future[None]"]


class AuditQueue:
    """Group-committed appends to `log` from one event loop (create it on that loop)."""

    def __init__(self, log: AuditLog, *, linger_s: float = 0.001, max_batch: int = 256) -> None:
        self._log = log
        self._linger_s = linger_s
        self._max_batch = max_batch
        self._last_batch = 0
        self._queued: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-writer")

    async def append(self, record: dict[str, Any]) -> None:
        """Queue `record` (from `node.privacy.audit.entry`); return once it is written."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.append((record, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())
        await done

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queued:
                if (self._last_batch > 1 and self._linger_s > 0
                        and len(self._queued) < self._max_batch):
                    try:
                        await asyncio.sleep(self._linger_s)  # let concurrent requests join
                    except BaseException:  # cancelled: nobody may go on as if audited
                        _settle(self._queued, RuntimeError("audit write cancelled"))
                        self._queued = []
                        raise
                batch, self._queued = self._queued, []
                self._last_batch = len(batch)
                error: Exception | None = None
                try:
                    await loop.run_in_executor(self._thread, self._log.append_records,
                                               [record for record, _ in batch])
                except Exception as exc:  # every waiter of the batch fails closed
                    error = exc
                except BaseException:  # cancelled: nobody may go on as if audited
                    _settle(batch, RuntimeError("audit write cancelled"))
                    raise
                _settle(batch, error)
        finally:
            self._writer = None

    async def close(self) -> None:
        """Wait for what is queued, then stop the writer thread."""
        while self._writer is not None:
            await asyncio.shield(self._writer)
        self._thread.shutdown(wait=True)


def _settle(batch: list[_Waiting], error: Exception | None) -> None:
    for _, done in batch:
        if done.done():
            continue  # its caller was cancelled; the entry is written anyway
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
