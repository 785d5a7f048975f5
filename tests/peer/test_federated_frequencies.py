"""Issue 17: federated allele frequencies count every node's called alleles, not only the
nodes carrying the allele. A 90-sample cohort over three nodes (by samples; by sites,
with and without gVCF reference blocks), asked over gRPC for every allele of the merged
cohort: each AC, AN and AF equals `bcftools merge` + `+fill-tags`, and AN is exact only
where every node is called (else a bound, with the nodes that did not know counted)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from node.domain import AlleleKey
from node.peer.coordinator import Coordinator, FederatedStats
from node.peer.peers import load_peers
from node.peer.server import PeerServer, start_peer_server
from node.store.memory import MemoryStore
from node.store.registry import DatasetRegistry
from node.store.tiledbvcf import TileDBVCFStore
from tests.peer import cohort_split
from tests.peer.helpers import node_settings, public_pem, write_peers

SPLITS = {
    "samples": lambda d: cohort_split.by_samples(d),
    "sites": lambda d: cohort_split.by_sites(d, blocks=False),
    "sites-gvcf": lambda d: cohort_split.by_sites(d, blocks=True),
}


@pytest.fixture
async def federation(
    tmp_path: Path, coordinator_key: Any
) -> AsyncIterator[Callable[..., Any]]:
    """`await federation(split, store)`: three nodes serving the split's files (one
    dataset each, in a MemoryStore or a TileDB store); the PEERS.yaml asking them."""
    servers: list[PeerServer] = []

    async def start(split: cohort_split.Split, store: str) -> Path:
        ports = {}
        for i, vcf in enumerate(split.files):
            settings = node_settings(f"node-{i}", public_pem(coordinator_key),
                                     home=tmp_path / f"home-{i}")
            dataset = _store(store, vcf, tmp_path / f"ds-{i}")
            stores = {f"cohort-{i}": dataset}
            registry = DatasetRegistry(settings, opener=stores.__getitem__,
                                       lister=lambda s=stores: s)
            server = await start_peer_server(settings, registry)
            servers.append(server)
            ports[f"node-{i}"] = server.port
        return write_peers(tmp_path, coordinator_key, ports, deadline_s=60)

    yield start
    for server in servers:
        await server.stop(0)


def _store(kind: str, vcf: Path, uri: Path) -> Any:
    if kind == "memory":
        memory = MemoryStore()
        memory.ingest([vcf])
        return memory
    tiledb = TileDBVCFStore.create(str(uri))
    tiledb.ingest([vcf])
    return tiledb


async def _ask(peers: Path, keys: list[AlleleKey]) -> FederatedStats:
    coordinator = Coordinator(load_peers(peers))
    try:
        return await coordinator.allele_stats(keys)
    finally:
        await coordinator.close()


def _check_against_bcftools(split: cohort_split.Split, result: FederatedStats) -> dict[str, int]:
    """Every total against the merged cohort's fill-tags; returns what was exercised."""
    truth = cohort_split.fill_tags(split.merged)
    called = [cohort_split.called_at(f) for f in split.files]
    per_node = [cohort_split.fill_tags(f) for f in split.files]
    seen = {"one-node": 0, "unknown": 0, "exact": 0}
    assert result.complete and len(result.alleles) == len(truth)
    for total in result.alleles:
        ac, an = truth[total.key]
        missing = sum(not cohort_split.knows(c, total.key.start) for c in called)
        assert (total.allele_count.value, total.allele_count.exact) == (ac, True), total.key
        # AN counts every node called there; where some node is not, it is a lower bound.
        assert (total.allele_number.value, total.allele_number.lower) == (an, an), total.key
        assert total.allele_number.unknown == missing, total.key
        assert total.allele_number.exact == (missing == 0), total.key
        assert total.allele_number.upper == (an if missing == 0 else None), total.key
        assert total.frequency == (ac / an if an else None), total.key
        assert (total.frequency_precision == "exact") == (missing == 0), total.key
        carriers = sum(node.get(total.key, (0, 0))[0] > 0 for node in per_node)
        seen["one-node"] += carriers == 1
        seen["unknown"] += missing > 0
        seen["exact"] += missing == 0
    return seen


@pytest.mark.parametrize("store", ["memory", "tiledb"])
@pytest.mark.parametrize("split_name", list(SPLITS))
async def test_federated_counts_equal_bcftools_on_the_merged_cohort(
    tmp_path: Path, federation: Callable[..., Any], split_name: str, store: str
) -> None:
    split = SPLITS[split_name](tmp_path)
    peers = await federation(split, store)
    keys = list(cohort_split.fill_tags(split.merged))
    seen = _check_against_bcftools(split, await _ask(peers, keys))
    assert seen["one-node"] >= 50  # the alleles the issue is about
    assert seen["exact"] >= 100
    if split_name == "sites":  # no blocks: nodes without a record there do not know
        assert seen["unknown"] >= 100
    if split_name == "samples":
        assert seen["unknown"] == 0


async def test_federate_count_cli_json_gives_every_nodes_allele_number(
    tmp_path: Path, federation: Callable[..., Any]
) -> None:
    """The issue's check as a coordinator runs it: `fednode federate count --json --file`."""
    split = cohort_split.by_samples(tmp_path)
    peers = await federation(split, "memory")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node", "federate", "count", "--peers", str(peers), "--json",
        "--file", str(split.merged),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    truth = cohort_split.fill_tags(split.merged)
    per_node = [cohort_split.fill_tags(f) for f in split.files]
    rare = 0
    for total in json.loads(out)["totals"]:
        contig, pos, ref, alt = total["variant"].split(":")
        key = AlleleKey(contig, int(pos) - 1, ref, alt)
        ac, an = truth[key]
        assert (total["alleleCount"]["value"], total["alleleNumber"]["value"]) == (ac, an)
        assert total["alleleFrequency"] == pytest.approx(ac / an)
        assert total["alleleFrequencyPrecision"] == "exact"
        rare += sum(node[key][0] > 0 for node in per_node) == 1
    assert rare >= 50


def test_an_allele_count_of_zero_is_priced_as_a_no(tmp_path: Path, coordinator_key: Any) -> None:
    """AC 0 over a called site (and an unknown AN) costs the peer's caller what the gate
    charges a "no", under strict pricing; a carried rare allele costs more."""
    from node.domain import AlleleStats
    from node.names import CountPrecision, Granularity
    from node.peer.accounting import Accounting
    from node.privacy.guard import GuardedCount

    settings = node_settings("n", public_pem(coordinator_key), home=tmp_path)
    accounting = Accounting(settings)
    try:
        no = accounting.gate.price([], Granularity.COUNT, 90,
                                   GuardedCount(0, CountPrecision.EXACT)).llr
        uncarried = AlleleStats(0, 178, 0, 0, 0, 89)
        carried = AlleleStats(1, 178, 0, 1, 1, 89)
        assert no > 0
        for answer in (uncarried, None):
            assert accounting.cost([(answer, Granularity.COUNT, 90)]).llr == pytest.approx(no)
        assert accounting.cost([(carried, Granularity.COUNT, 90)]).llr > no
    finally:
        accounting.close()
