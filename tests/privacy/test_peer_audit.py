"""Peer (gRPC) calls refused are audited too: an untrusted token (UNAUTHENTICATED,
without the token) and a spent budget (RESOURCE_EXHAUSTED)."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from node.domain import AlleleKey
from node.peer._pb import peer_pb2 as pb
from node.peer._pb import peer_pb2_grpc as pb_grpc
from node.peer.messages import allele_message
from node.peer.server import start_peer_server
from node.privacy.audit import verify
from tests.peer.helpers import (
    COHORT,
    ec_key,
    memory_registry,
    node_settings,
    public_pem,
    token,
)


async def test_refused_peer_calls_are_audited(shared_dir: Path, tmp_path: Path) -> None:
    key, intruder = ec_key(), ec_key()
    settings = node_settings("node-a", public_pem(key), home=tmp_path, max_llr=1e-12)
    files = {"cohort": [shared_dir / COHORT / "S000.vcf.gz"]}
    server = await start_peer_server(settings, memory_registry(settings, files))
    forged = token(intruder, aud="node-a")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.PeerServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetNodeInfo(pb.GetNodeInfoRequest(),
                                       metadata=[("authorization", f"Bearer {forged}")])
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            absent = allele_message(AlleleKey("1", 1, "A", "T"))  # a "no": charged
            good = [("authorization", f"Bearer {token(key, aud='node-a')}")]
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.BatchAlleleStats(pb.BatchAlleleStatsRequest(alleles=[absent]),
                                            metadata=good)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await server.stop(0)
    log = tmp_path / "audit.jsonl"
    assert verify(log).ok
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["query"]["outcome"] for e in entries] == ["unauthenticated", "refused"]
    assert entries[0]["query"]["call"] == "GetNodeInfo"
    assert entries[0]["requester"].startswith("anon:")
    assert entries[1]["requester"].startswith("sub:")
    assert forged not in log.read_text() and forged.split(".")[2] not in log.read_text()
