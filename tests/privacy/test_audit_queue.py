"""Audit appends from an event loop (node/privacy/audit_queue.py): one thread hop per
batch, each caller back only once its entry is durable, failures fail closed, and the
chain still verifies beside appends from other threads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from node.errors import Unavailable
from node.privacy.audit import AuditLog, entry, verify
from node.privacy.audit_queue import AuditQueue


def _entry(i: int) -> dict[str, Any]:
    return entry(request_id=f"r{i}", requester="anon:x", datasets=["d"], query={"i": i},
                 granularity="count")


class Recording(AuditLog):
    """Counts batches; each waits `flush_s` (a disk's flush), so others queue meanwhile."""

    def __init__(self, path: Path, flush_s: float = 0.01) -> None:
        super().__init__(path, fsync=False)
        self.batches: list[int] = []
        self._flush_s = flush_s

    def append_records(self, records: Sequence[dict[str, Any]]) -> None:
        self.batches.append(len(records))
        if self._flush_s:
            threading.Event().wait(self._flush_s)
        super().append_records(records)


async def test_concurrent_appends_are_batched_and_each_waits_for_its_write(
    tmp_path: Path,
) -> None:
    log = Recording(tmp_path / "audit.jsonl")
    queue = AuditQueue(log)
    records = [_entry(i) for i in range(200)]
    await asyncio.gather(*(queue.append(r) for r in records))
    assert all("hash" in r for r in records)  # written (chained) before append returned
    assert sum(log.batches) == 200 and len(log.batches) < 20
    # Appends from another thread join the same chain.
    await asyncio.to_thread(log.append, request_id="t", requester="anon:y", datasets=[],
                            query={}, granularity=None)
    await queue.append(_entry(201))
    await queue.close()
    report = verify(tmp_path / "audit.jsonl")
    assert report.ok and report.entries == 202


async def test_a_failed_write_fails_every_waiter_of_its_batch(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", fsync=False)
    queue = AuditQueue(log)
    await queue.append(_entry(0))
    (tmp_path / "audit.jsonl").write_bytes(b"not an entry\n")  # damaged at its end
    log._tail = None  # as after another process's append
    results = await asyncio.gather(*(queue.append(_entry(i)) for i in range(1, 5)),
                                   return_exceptions=True)
    assert all(isinstance(r, Unavailable) for r in results)
    await queue.close()


async def test_batches_linger_under_concurrency_but_a_lone_entry_does_not_wait(
    tmp_path: Path,
) -> None:
    # A quick disk: without lingering, a stream of concurrent requests would be written
    # one or two entries per batch (each batch a fixed cost in system calls).
    async def stream(queue: AuditQueue, k: int) -> None:
        await asyncio.sleep(0.0003 * k)  # streams out of step, as independent clients
        for i in range(1000 * k, 1000 * k + 40):
            await queue.append(_entry(i))
            await asyncio.sleep(0.0002 * (1 + k % 3))

    counts = {}
    for linger in (0.0, 0.005):
        log = Recording(tmp_path / f"audit-{linger}.jsonl", flush_s=0)
        queue = AuditQueue(log, linger_s=linger)
        await asyncio.gather(*(stream(queue, k) for k in range(8)))
        await queue.close()
        assert sum(log.batches) == 320 and verify(log.path).ok
        counts[linger] = len(log.batches)
    # Lingering, nearly every batch holds all 8 clients' entries (closed-loop clients
    # never have more than one entry waiting each); without it, as many or fewer per batch
    # (fewer on an idle machine; on a loaded one the writer's own delay batches them too,
    # so the two can be equal: a CI run had 42 batches each).
    assert 320 / counts[0.005] >= 6 and counts[0.005] <= counts[0.0], counts

    # Alone (the previous batch held one entry): written at once, no linger.
    log = Recording(tmp_path / "alone.jsonl", flush_s=0)
    queue = AuditQueue(log, linger_s=5.0)
    for i in range(3):
        await asyncio.wait_for(queue.append(_entry(i)), timeout=2.0)
    await queue.close()
    assert log.batches == [1, 1, 1]
