"""Budgets across the federation: nodes charge the aggregator (one requester), so the
aggregator charges each user itself, once per merged answer. A user repeating a
rare-allele query through it is refused once their budget is spent, although every node
would still answer the aggregator; another user keeps their own budget."""

from __future__ import annotations

import json

import pytest
import yaml

from node.config import Settings
from node.peer.coordinator import Coordinator
from node.peer.peers import load_peers
from node.privacy.audit import verify
from node.web.aggregator import create_aggregator_app
from tests.peer.helpers import COORDINATOR, SPLIT, bcftools_truth, private_pem


@pytest.fixture
async def aggregator(aiohttp_client, tmp_path, three_nodes, coordinator_key):
    (tmp_path / "coordinator.pem").write_text(private_pem(coordinator_key))
    doc = {
        "coordinator": {"id": COORDINATOR, "private_key": "coordinator.pem"},
        "deadline_s": 5,
        "peers": [{"id": n, "address": f"127.0.0.1:{p}"} for n, p in three_nodes.items()],
    }
    (tmp_path / "peers.yaml").write_text(yaml.safe_dump(doc))
    settings = Settings(
        home=tmp_path,
        node={"id": "org.example.aggregator"},
        privacy={
            "min_count": 1,
            "client_address_header": "X-Forwarded-For",  # a trusted proxy names the user
            "budget": {"max_llr": 50.0},  # a few "yes" answers on a singleton (strict pricing)
        },
        audit={"fsync": False},
    )
    peers = load_peers(tmp_path / "peers.yaml")
    return await aiohttp_client(create_aggregator_app(settings, peers)), peers


def _singleton(cohort):
    truth = bcftools_truth(cohort / "merged10.vcf.gz")
    return min((k for k, t in truth.items() if t.ac == 1), key=lambda k: (k.contig, k.start))


async def _ask(client, key, who: str):
    params = {
        "referenceName": key.contig,
        "start": str(key.start),
        "referenceBases": key.ref,
        "alternateBases": key.alt,
        "requestedGranularity": "boolean",
    }
    reply = await client.get("/api/g_variants", params=params, headers={"X-Forwarded-For": who})
    return reply.status, await reply.json()


async def test_a_user_cannot_multiply_the_budget_through_the_aggregator(
    aggregator, cohort, tmp_path
):
    client, peers = aggregator
    rare = _singleton(cohort)
    answered = 0
    for _ in range(50):
        status, doc = await _ask(client, rare, "198.51.100.7")
        if status != 200:
            break
        assert doc["responseSummary"]["exists"] is True
        answered += 1
    assert 1 <= answered < 50
    assert status == 403 and "budget" in doc["error"]["errorMessage"]

    # Every node alone would still answer the aggregator (its budget there is not spent).
    coordinator = Coordinator(peers)
    try:
        direct = await coordinator.allele_stats([rare])
    finally:
        await coordinator.close()
    assert [n.status for n in direct.nodes] == ["OK"] * 3
    assert direct.alleles[0].allele_count.value == 1

    # Another user has their own budget; the refused one stays refused.
    assert (await _ask(client, rare, "203.0.113.9"))[0] == 200
    assert (await _ask(client, rare, "198.51.100.7"))[0] == 403

    # One audit entry per federated request, refusals included, chain intact.
    log = tmp_path / "audit.jsonl"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    outcomes = [e["query"]["outcome"] for e in entries if e["query"].get("federated")]
    assert outcomes == ["answered"] * answered + ["refused", "answered", "refused"]
    # Every dataset's answer is charged, the "no"s of those without the allele included.
    every = {f"{node}/{ds}" for node, datasets in SPLIT.items() for ds in datasets}
    assert set(entries[0]["counts"]) == every
    assert sorted(c["value"] for c in entries[0]["counts"].values()) == [0, 0, 0, 1]
    assert verify(log).ok


async def test_people_counts_through_the_aggregator_cost_their_epsilon(aggregator, cohort):
    """A count of carriers per (node, dataset) costs the user the ε a node charges for a
    count of people: with an anonymous address's default ε (two counts), the merged
    answer over the federation's datasets does not fit, while one dataset's would."""
    client, _ = aggregator
    truth = bcftools_truth(cohort / "merged10.vcf.gz")
    key = max(truth, key=lambda k: truth[k].carriers)
    variant = f"chr{key.contig}_{key.start + 1}_{key.ref}_{key.alt}"
    reply = await client.get(f"/api/g_variants/{variant}/individuals",
                             params={"requestedGranularity": "count"},
                             headers={"X-Forwarded-For": "198.51.100.40"})
    doc = await reply.json()
    datasets = sum(len(v) for v in SPLIT.values())
    assert datasets * 0.6 > 1.2  # the premise: more counts than an address may have
    assert reply.status == 403 and "budget" in doc["error"]["errorMessage"]
