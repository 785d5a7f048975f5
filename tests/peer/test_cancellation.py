"""A call's deadline and cancellation reach the store: chunks not yet started never run."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import grpc
import pytest

from node.domain import AlleleKey, AlleleStats
from node.peer._pb import peer_pb2 as pb
from node.peer._pb import peer_pb2_grpc as pb_grpc
from node.peer.server import STATS_CHUNK, start_peer_server
from node.store.memory import MemoryStore
from node.store.registry import DatasetRegistry
from tests.peer.helpers import node_settings, public_pem, token


class SlowStore(MemoryStore):
    """Counts store calls; each takes 0.2 s (a slow disk or object store)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self._count_lock = threading.Lock()

    def allele_stats(self, keys: Sequence[AlleleKey]) -> list[AlleleStats | None]:
        with self._count_lock:
            self.calls += 1
        time.sleep(0.2)
        return super().allele_stats(keys)


@pytest.mark.parametrize("cancel", [False, True], ids=["deadline", "client-cancel"])
async def test_store_work_stops_with_the_call(tmp_path, coordinator_key, cancel):
    store = SlowStore()
    settings = node_settings("node-a", public_pem(coordinator_key), home=tmp_path)
    registry = DatasetRegistry(settings, opener=lambda _: store, lister=lambda: ["slow"])
    server = await start_peer_server(settings, registry)
    chunks = 10
    alleles = [
        pb.Allele(contig="1", start=i, ref="A", alt="C") for i in range(chunks * STATS_CHUNK)
    ]
    metadata = [("authorization", f"Bearer {token(coordinator_key, aud='node-a')}")]
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.PeerServiceStub(channel)
            request = pb.BatchAlleleStatsRequest(alleles=alleles)
            if cancel:
                call = stub.BatchAlleleStats(request, metadata=metadata, timeout=30)
                await asyncio.sleep(0.3)
                call.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await call
            else:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.BatchAlleleStats(request, metadata=metadata, timeout=0.3)
                assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await asyncio.sleep(chunks * 0.2)  # long enough for every chunk, had they run
    finally:
        await server.stop(0)
    assert 1 <= store.calls <= 3, store.calls
