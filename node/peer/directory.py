"""Which datasets each peer holds, from its NodeInfo, refreshed at most every `ttl_s`.

The aggregator needs it to answer (and charge) for every dataset of a peer, including
those with nothing matching a query: a region stream names only datasets that have
something to report. Refreshes run beside the query they serve (never before it), one at
a time; a peer that does not answer keeps its last known datasets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from node.peer.coordinator import Coordinator

__all__ = ["DatasetDirectory"]


class DatasetDirectory:
    def __init__(self, *, ttl_s: float = 300.0) -> None:
        self._ttl_s = ttl_s
        self._datasets: dict[str, tuple[str, ...]] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def datasets(
        self, coordinator: Coordinator, deadline_s: float
    ) -> Mapping[str, tuple[str, ...]]:
        """peer id → its dataset ids (as of the last refresh, refreshed when stale)."""
        if self._fetched_at is None or time.monotonic() - self._fetched_at > self._ttl_s:
            async with self._lock:
                if self._fetched_at is None or time.monotonic() - self._fetched_at > self._ttl_s:
                    results = await coordinator.node_info(deadline_s=deadline_s)
                    for r in results:
                        if r.ok and r.value is not None:
                            self._datasets[r.peer_id] = tuple(d.id for d in r.value.datasets)
                    self._fetched_at = time.monotonic()
        return dict(self._datasets)
