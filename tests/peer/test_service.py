"""The peer use cases (node/peer/service.py) called directly, without gRPC: the same
access, charges, refusals and audit as over the wire."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from node.config import Settings
from node.domain import AlleleKey, Region
from node.errors import BudgetExhausted, NotFound, Unauthenticated
from node.peer._pb import peer_pb2 as pb
from node.peer._pb import peer_pb2_grpc as pb_grpc
from node.peer.auth import Caller
from node.peer.messages import allele_message
from node.peer.server import start_peer_server
from node.peer.service import PeerService
from node.privacy.audit import verify
from node.privacy.budget import open_budget
from node.store.registry import DatasetRegistry
from tests.peer.helpers import ec_key, memory_registry, node_settings, public_pem, token

FILES = ["S000", "S001", "S002", "S003"]
ABSENT = [AlleleKey("1", 1, "A", "T"), AlleleKey("1", 2, "C", "G")]  # "no"s: charged


def _no_deadline() -> float | None:
    return None


def _registry(settings: Settings, cohort: Path) -> DatasetRegistry:
    return memory_registry(settings, {"cohort": [cohort / f"{s}.vcf.gz" for s in FILES]})


def _service(settings: Settings, cohort: Path) -> PeerService:
    return PeerService(settings, _registry(settings, cohort))


async def _caller(service: PeerService, key: ec.EllipticCurvePrivateKey) -> Caller:
    return await service.authenticate(
        "BatchAlleleStats", token=token(key, aud="node-a"), subjects=[], peer="ipv4:10.0.0.1:1"
    )


def _audit(home: Path) -> list[dict[str, Any]]:
    log = home / "audit.jsonl"
    assert verify(log).ok
    return [json.loads(line) for line in log.read_text().splitlines()]


def _some_held(registry: DatasetRegistry) -> list[AlleleKey]:
    store = registry.store("cohort")
    return [v.key for v in store.variants(Region("1", 20_000_000, 20_400_000))][:20]


async def test_refusals_are_node_errors_and_audited(cohort, coordinator_key, tmp_path):
    settings = node_settings("node-a", public_pem(coordinator_key), home=tmp_path, max_llr=1e-12)
    service = _service(settings, cohort)
    try:
        with pytest.raises(Unauthenticated):
            await service.authenticate("GetNodeInfo", token=token(ec_key(), aud="node-a"),
                                       subjects=[], peer="ipv4:10.0.0.9:5")
        caller = await _caller(service, coordinator_key)
        with pytest.raises(NotFound):  # a dataset it may not see is one that does not exist
            await service.allele_stats(caller, ABSENT, dataset_ids=["elsewhere"],
                                       remaining=_no_deadline)
        with pytest.raises(BudgetExhausted):  # a count beyond the budget
            await service.allele_stats(caller, ABSENT, dataset_ids=[], remaining=_no_deadline)
    finally:
        service.close()
    unauthenticated, refused = _audit(tmp_path)
    assert unauthenticated["query"] == {"call": "GetNodeInfo", "outcome": "unauthenticated"}
    assert unauthenticated["requester"].startswith("anon:")
    assert refused["query"]["outcome"] == "refused"
    assert refused["requester"] == caller.principal.requester_id
    assert refused["datasets"] == ["cohort"]
    budget = open_budget(settings.privacy.budget, home=tmp_path)
    try:
        assert budget.balance(caller.principal.requester_id).llr_spent == 0.0  # nothing charged
    finally:
        budget.close()


async def test_the_same_answer_costs_the_same_over_grpc_and_through_the_service(
    cohort, coordinator_key, tmp_path
):
    homes = {way: tmp_path / way for way in ("grpc", "service")}
    settings = {way: node_settings("node-a", public_pem(coordinator_key), home=home)
                for way, home in homes.items()}
    registry = _registry(settings["service"], cohort)
    service = PeerService(settings["service"], registry)
    keys = [*_some_held(registry), *ABSENT]
    try:
        caller = await _caller(service, coordinator_key)
        direct = await service.allele_stats(caller, keys, dataset_ids=[], remaining=_no_deadline)
    finally:
        service.close()

    server = await start_peer_server(settings["grpc"], _registry(settings["grpc"], cohort))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            reply = await pb_grpc.PeerServiceStub(channel).BatchAlleleStats(
                pb.BatchAlleleStatsRequest(alleles=[allele_message(k) for k in keys]),
                metadata=[("authorization", f"Bearer {token(coordinator_key, aud='node-a')}")],
            )
    finally:
        await server.stop(0)

    held = [s is not None and s.ac > 0 for s in direct.stats["cohort"]]
    assert [r.datasets[0].exists for r in reply.results] == held
    assert any(held) and not all(held)
    (over_grpc,), (through_service,) = _audit(homes["grpc"]), _audit(homes["service"])
    assert over_grpc["query"] == through_service["query"]
    assert over_grpc["budget"] == through_service["budget"]
    assert through_service["budget"]["llr"] > 0
    spent = {}
    for way, home in homes.items():
        budget = open_budget(settings[way].privacy.budget, home=home)
        try:
            balance = budget.balance(caller.principal.requester_id)
        finally:
            budget.close()
        spent[way] = (balance.llr_spent, balance.epsilon_spent)
    assert spent["grpc"] == spent["service"]
    assert spent["service"][0] == pytest.approx(through_service["budget"]["llr"])


async def test_a_region_batch_rendered_to_nothing_is_not_sent_nor_charged(
    cohort, coordinator_key, tmp_path
):
    settings = node_settings("node-a", public_pem(coordinator_key), home=tmp_path)
    service = _service(settings, cohort)
    try:
        caller = await _caller(service, coordinator_key)
        stream = service.region_stats(
            caller, Region("1", 20_000_000, 20_400_000), None, dataset_ids=[],
            remaining=_no_deadline, render=lambda ds, g, batch: [],
        )
        assert [chunk async for chunk in stream] == []
    finally:
        service.close()
    (entry,) = _audit(tmp_path)
    assert entry["query"]["call"] == "StreamRegionStats" and entry["query"]["sent"] == 0
    budget = open_budget(settings.privacy.budget, home=tmp_path)
    try:
        assert budget.balance(caller.principal.requester_id).llr_spent == 0.0
    finally:
        budget.close()
