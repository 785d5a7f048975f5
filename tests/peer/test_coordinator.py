"""Fan-out and merge over in-process nodes, against bcftools on the merged VCF; faults."""

from __future__ import annotations

import time

import pytest

from node.errors import InvalidInput
from node.peer.coordinator import Coordinator
from node.peer.peers import load_peers
from tests.deadline import ended_by
from tests.peer import fakes
from tests.peer.cohort_split import called_at, knows
from tests.peer.helpers import SPLIT, bcftools_truth, samples_truth, write_peers


def _keys(truth, n: int):
    return sorted(truth, key=lambda k: (k.contig, k.start, k.ref, k.alt))[:n]


async def test_federated_totals_equal_bcftools_on_merged_vcf(
    tmp_path, cohort, three_nodes, coordinator_key
):
    truth = bcftools_truth(cohort / "merged10.vcf.gz")
    keys = _keys(truth, 3000)
    coordinator = Coordinator(load_peers(write_peers(tmp_path, coordinator_key, three_nodes)))
    try:
        result = await coordinator.allele_stats(keys)
    finally:
        await coordinator.close()
    assert result.complete, result.nodes
    assert {n.node_id: n.datasets for n in result.nodes} == {
        n: tuple(ds) for n, ds in SPLIT.items()
    }
    # One VCF per sample, holding its own variant sites: a dataset none of whose samples
    # has a record at a position does not know its AN there (issue 17), so the merged AN
    # is exact only where every dataset is called.
    called = {ds: [called_at(cohort / f"{s}.vcf.gz") for s in samples]
              for datasets in SPLIT.values() for ds, samples in datasets.items()}
    unknown_somewhere = 0
    for total in result.alleles:
        want = truth[total.key]
        got = (total.allele_count, total.allele_number, total.carriers, total.homozygotes)
        assert [i.value for i in got] == [want.ac, want.an, want.carriers, want.hom], total.key
        assert all(i.exact for i in got[:1] + got[2:])
        missing = sum(not any(knows(c, total.key.start) for c in cs) for cs in called.values())
        assert total.allele_number.unknown == missing, total.key
        assert total.allele_number.exact == (missing == 0), total.key
        assert total.allele_number.lower == want.an
        assert total.exists == (want.ac > 0)
        unknown_somewhere += missing > 0
    assert unknown_somewhere > 0


async def test_federated_region_equals_bcftools(tmp_path, cohort, three_nodes, coordinator_key):
    from node.domain import Region

    truth = bcftools_truth(cohort / "merged10.vcf.gz", region="chr1:20000001-20200000")
    coordinator = Coordinator(load_peers(write_peers(tmp_path, coordinator_key, three_nodes)))
    try:
        result = await coordinator.region_stats(Region("1", 20_000_000, 20_200_000))
    finally:
        await coordinator.close()
    assert result.complete
    got = {t.key: (t.allele_count.value, t.allele_number.value) for t in result.alleles}
    assert got == {k: (t.ac, t.an) for k, t in truth.items()}


async def test_faulty_peers_give_partial_totals_by_the_deadline(
    tmp_path, cohort, three_nodes, coordinator_key
):
    truth = bcftools_truth(cohort / "merged10.vcf.gz")
    keys = _keys(truth, 200)
    fakes_started = [await fakes.start_fake(h) for h in (fakes.hang, fakes.garbage, fakes.liar)]
    ports = {
        "node-a": three_nodes["node-a"],
        "dead": fakes.dead_port(),
        "hung": fakes_started[0][1],
        "garbage": fakes_started[1][1],
        "liar": fakes_started[2][1],
    }
    deadline = 1.5
    coordinator = Coordinator(
        load_peers(write_peers(tmp_path, coordinator_key, ports, deadline_s=deadline))
    )
    started = time.monotonic()
    try:
        result = await coordinator.allele_stats(keys)
    finally:
        elapsed = time.monotonic() - started
        await coordinator.close()
        for server, _ in fakes_started:
            await server.stop(0)
    assert ended_by(elapsed, deadline)
    status = {n.node_id: n.status for n in result.nodes}
    assert status == {
        "node-a": "OK",
        "dead": "UNAVAILABLE",
        "hung": "DEADLINE_EXCEEDED",
        "garbage": "INVALID_RESPONSE",
        "liar": "INVALID_RESPONSE",
    }
    assert not result.complete
    # The partial total is node-a's part alone: bcftools on node-a's samples only.
    part = samples_truth(
        cohort / "merged10.vcf.gz", SPLIT["node-a"]["cohort-a"], tmp_path / "node-a.vcf.gz"
    )
    for total in result.alleles:
        assert total.allele_count.value == part[total.key].ac
        assert total.allele_number.value == part[total.key].an


async def test_unregistered_coordinator_is_refused_per_node(
    tmp_path, cohort, three_nodes, coordinator_key
):
    from tests.peer.helpers import ec_key

    path = write_peers(tmp_path, ec_key(), three_nodes)  # a key no node registered
    coordinator = Coordinator(load_peers(path))
    try:
        result = await coordinator.allele_stats(_keys(bcftools_truth(cohort / "S000.vcf.gz"), 5))
    finally:
        await coordinator.close()
    assert {n.status for n in result.nodes} == {"UNAUTHENTICATED"}
    assert all(t.allele_count.value == 0 and not t.exists for t in result.alleles)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("peers: [", "not YAML"),
        ("coordinator: {id: c, private_key: k.pem}\npeers: []", "peers"),
        ("coordinator: {id: c, private_key: k.pem}\npeers: [{id: a}]", "exactly one"),
        (
            "coordinator: {id: c, private_key: k.pem}\n"
            "peers: [{id: a, address: 'h:1'}, {id: a, address: 'h:2'}]",
            "unique",
        ),
    ],
)
def test_bad_peers_files_are_clear_errors(tmp_path, text, fragment):
    path = tmp_path / "peers.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as caught:
        load_peers(path)
    assert fragment in caught.value.message


async def test_batches_larger_than_a_node_takes_go_in_chunks(
    tmp_path, cohort, start_node, coordinator_key
):
    """Nodes taking at most 1,000 alleles per call; 3,900 asked: refused in one call,
    answered in chunks of PEERS.yaml's batch_alleles, merged only when every chunk is."""
    import yaml

    ports = {}
    for node_id, datasets in SPLIT.items():
        files = {ds: [cohort / f"{s}.vcf.gz" for s in members] for ds, members in datasets.items()}
        ports[node_id] = (await start_node(node_id, files, max_batch_alleles=1000)).port
    truth = bcftools_truth(cohort / "merged10.vcf.gz")
    keys = _keys(truth, 3900)
    path = write_peers(tmp_path, coordinator_key, ports)
    for batch, status in ((10_000, "INVALID_ARGUMENT"), (1000, "OK")):
        doc = yaml.safe_load(path.read_text())
        doc["batch_alleles"] = batch
        path.write_text(yaml.safe_dump(doc))
        coordinator = Coordinator(load_peers(path))
        try:
            result = await coordinator.allele_stats(keys)
        finally:
            await coordinator.close()
        assert [n.status for n in result.nodes] == [status] * 3
    for total in result.alleles:
        want = truth[total.key]
        got = (total.allele_count, total.allele_number, total.carriers, total.homozygotes)
        assert [i.value for i in got] == [want.ac, want.an, want.carriers, want.hom], total.key
