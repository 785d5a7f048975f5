"""The Beacon aggregator: the node's own variant matching (issue 16), and merged allele
statistics of a sequence query that count every node's called alleles (issue 17)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pysam
import pytest
import yaml

from node.config import Settings
from node.domain import AlleleKey
from node.peer.peers import load_peers
from node.peer.server import start_peer_server
from node.store.memory import MemoryStore
from node.web.aggregator import create_aggregator_app
from tests.beacon.conftest import OPEN, make_app
from tests.peer import cohort_split
from tests.peer.helpers import (
    COORDINATOR,
    memory_registry,
    node_settings,
    private_pem,
    public_pem,
)

# Records where the aggregator's former copy of the matching rule (exact REF/ALT strings,
# `N` matching any ALT, no variantType, no normalisation) disagreed with the node's.
ODD_VCF = """##fileformat=VCFv4.3
##contig=<ID=1,length=10000>
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB\tC
1\t100\t.\tTATATA\tAATATA\t.\tPASS\t.\tGT\t0/1\t0/0\t0/0
1\t200\t.\tC\tG,CTT\t.\tPASS\t.\tGT\t0/1\t0/2\t0/0
1\t300\t.\tG\tGA\t.\tPASS\t.\tGT\t1/1\t0/0\t0/0
"""
QUERIES = [  # (parameters, what the former copy answered)
    ({"start": "99", "referenceBases": "T", "alternateBases": "A"}, 0),  # padded SNP
    ({"start": "199", "alternateBases": "N"}, 2),  # N is one base: not the insertion
    ({"start": "90", "end": "320", "variantType": "SNP"}, 1),  # the padded SNP is a SNP
]


async def _aggregator(aiohttp_client: Any, tmp: Path, key: Any, ports: dict[str, int]) -> Any:
    tmp.mkdir()
    (tmp / "coordinator.pem").write_text(private_pem(key))
    doc = {
        "coordinator": {"id": COORDINATOR, "private_key": "coordinator.pem"},
        "deadline_s": 30,
        "peers": [{"id": n, "address": f"127.0.0.1:{p}"} for n, p in ports.items()],
    }
    (tmp / "peers.yaml").write_text(yaml.safe_dump(doc))
    settings = Settings(
        home=tmp,
        node={"id": "org.example.aggregator"},
        privacy={"budget": {"max_llr": 1e9, "max_epsilon": 1e9, "anonymous_max_epsilon": 1e9,
                            "pool_max_epsilon": 1e9}},
    )
    return await aiohttp_client(create_aggregator_app(settings, load_peers(tmp / "peers.yaml")))


@pytest.fixture
async def nodes(coordinator_key: Any, tmp_path: Path) -> Any:
    servers = []

    async def start(files: dict[str, Path]) -> dict[str, int]:
        ports = {}
        for i, (node_id, vcf) in enumerate(files.items()):
            settings = node_settings(node_id, public_pem(coordinator_key),
                                     home=tmp_path / f"home-{i}")
            server = await start_peer_server(settings, memory_registry(settings, {"ds": [vcf]}))
            servers.append(server)
            ports[node_id] = server.port
        return ports

    yield start
    for server in servers:
        await server.stop(0)


async def test_aggregator_matches_as_the_node_does(
    aiohttp_client: Any, tmp_path: Path, coordinator_key: Any, nodes: Any
) -> None:
    text = tmp_path / "odd.vcf"
    text.write_text(ODD_VCF)
    vcf = Path(pysam.tabix_index(str(text), preset="vcf", force=True))
    aggregator = await _aggregator(aiohttp_client, tmp_path / "agg", coordinator_key,
                                   await nodes({"n1": vcf}))
    store = MemoryStore(assembly="GRCh37")
    store.ingest([vcf])
    node = await aiohttp_client(make_app(tmp_path / "node", {"ds": store}, {"ds": OPEN}))
    for params, former in QUERIES:
        query = {"referenceName": "1", "requestedGranularity": "record", **params}
        own = await (await node.get("/api/g_variants", params=query)).json()
        federated = await (await aggregator.get("/api/g_variants", params=query)).json()
        (mine,) = own["response"]["resultSets"]
        (theirs,) = federated["response"]["resultSets"]
        assert theirs["resultsCount"] == mine["resultsCount"] != former, params


def _one_node_alleles(split: cohort_split.Split) -> list[AlleleKey]:
    per_node = [cohort_split.fill_tags(f) for f in split.files]
    keys = cohort_split.fill_tags(split.merged)
    return [k for k in keys if sum(node.get(k, (0, 0))[0] > 0 for node in per_node) == 1]


async def _frequency(aggregator: Any, key: AlleleKey, granularity: str = "count") -> Any:
    params = {"referenceName": key.contig, "start": str(key.start),
              "referenceBases": key.ref, "alternateBases": key.alt,
              "requestedGranularity": granularity}
    reply = await aggregator.get("/api/g_variants", params=params)
    assert reply.status == 200
    return (await reply.json())["info"]["federation"]


@pytest.mark.parametrize("blocks", [None, False])
async def test_aggregator_allele_frequency_counts_every_node(
    aiohttp_client: Any, tmp_path: Path, coordinator_key: Any, nodes: Any, blocks: bool | None
) -> None:
    """None: split by samples (every node called everywhere: exact); False: by sites, no
    blocks (a node without a record there does not know its AN: a bound)."""
    folder = tmp_path / "cohort"
    folder.mkdir()
    split = (cohort_split.by_samples(folder) if blocks is None
             else cohort_split.by_sites(folder, blocks=blocks))
    ports = await nodes({f"node-{i}": f for i, f in enumerate(split.files)})
    aggregator = await _aggregator(aiohttp_client, tmp_path / "agg", coordinator_key, ports)
    truth = cohort_split.fill_tags(split.merged)
    called = [cohort_split.called_at(f) for f in split.files]
    rare = _one_node_alleles(split)
    assert len(rare) >= 50
    for key in rare[::10]:
        federation = await _frequency(aggregator, key)
        (total,) = [a for a in federation["alleleFrequencies"]["alleles"]
                    if a["variant"] == f"{key.contig}:{key.start + 1}:{key.ref}:{key.alt}"]
        ac, an = truth[key]
        missing = sum(not cohort_split.knows(c, key.start) for c in called)
        assert (total["alleleCount"]["value"], total["alleleNumber"]["value"]) == (ac, an)
        assert total["alleleFrequency"] == pytest.approx(ac / an)
        assert total["alleleNumber"].get("unknownIn", 0) == missing
        exact = "exact" if missing == 0 else "imprecise"
        assert total["alleleNumber"]["precision"] == total["alleleFrequencyPrecision"] == exact
    # A "yes or no" answer carries no statistics.
    assert "alleleFrequencies" not in await _frequency(aggregator, rare[0], "boolean")
