"""Eight real node processes, one of them hung (SIGSTOP: it accepts TCP connections and
never answers), 10,000 alleles: the federated call returns at its deadline, not later,
with the seven others' partial total (bcftools on their samples) and per-node statuses.

The nodes are the federation benchmark's (bench/federation_bench.py --serve-node: a peer
API server over a MemoryStore holding a slice of the cohort)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bench.federation_bench import COORDINATOR as BENCH_COORDINATOR
from bench.federation_bench import _keys
from node.peer.coordinator import Coordinator
from node.peer.peers import load_peers
from tests.deadline import ended_by
from tests.peer.helpers import public_pem, samples_truth, write_peers

pytestmark = pytest.mark.slow

NODES = 8
DEADLINE_S = 4.0
REPO = Path(__file__).resolve().parents[2]


def _samples(cohort: Path) -> dict[str, list[str]]:
    names = sorted(p.name.removesuffix(".vcf.gz") for p in cohort.glob("S0*.vcf.gz"))
    return {f"node-{i}": names[i::NODES] or [names[i % len(names)]] for i in range(NODES)}


@pytest.fixture
def eight_nodes(tmp_path, cohort, coordinator_key) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    pub = tmp_path / "coordinator.pub"
    pub.write_text(public_pem(coordinator_key))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for node, samples in _samples(cohort).items():
            files = [str(cohort / f"{s}.vcf.gz") for s in samples]
            procs[node] = subprocess.Popen(
                [
                    *(sys.executable, "-m", "bench.federation_bench", "--serve-node"),
                    *(str(tmp_path / f"{node}.port"), str(pub), *files),
                ],
                cwd=REPO,
            )
        yield procs
    finally:
        for proc in procs.values():
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait()


async def _ports(tmp_path: Path, nodes: list[str]) -> dict[str, int]:
    for _ in range(1200):
        files = [tmp_path / f"{n}.port" for n in nodes]
        if all(f.exists() and f.read_text() for f in files):
            return {n: int(f.read_text()) for n, f in zip(nodes, files, strict=True)}
        await asyncio.sleep(0.05)
    raise AssertionError("node processes did not start")


async def test_one_hung_node_of_eight_returns_at_the_deadline(
    tmp_path, cohort, coordinator_key, eight_nodes
):
    ports = await _ports(tmp_path, list(eight_nodes))
    peers_file = write_peers(tmp_path, coordinator_key, ports, deadline_s=DEADLINE_S)
    doc = yaml.safe_load(peers_file.read_text())
    doc["coordinator"]["id"] = BENCH_COORDINATOR  # the id the bench's nodes register
    peers_file.write_text(yaml.safe_dump(doc))
    peers = load_peers(peers_file)
    ready = Coordinator(peers)  # every node up and answering before one is stopped
    try:
        for _ in range(100):
            statuses = [r.status for r in await ready.node_info(deadline_s=2.0)]
            if statuses == ["OK"] * NODES:
                break
        assert statuses == ["OK"] * NODES
    finally:
        await ready.close()
    os.kill(eight_nodes["node-0"].pid, signal.SIGSTOP)
    keys = _keys(10_000)

    started = time.monotonic()
    coordinator = Coordinator(peers)
    try:
        result = await coordinator.allele_stats(keys)
    finally:
        await coordinator.close()
    wall = time.monotonic() - started

    assert ended_by(wall, DEADLINE_S), (wall, result.elapsed_s)
    assert result.elapsed_s >= 0.99 * DEADLINE_S  # it did wait for the hung node
    assert {n.node_id: n.status for n in result.nodes} == {
        "node-0": "DEADLINE_EXCEEDED",
        **{f"node-{i}": "OK" for i in range(1, NODES)},
    }
    answered = [
        s for node, samples in _samples(cohort).items() if node != "node-0" for s in samples
    ]
    part = samples_truth(cohort / "merged10.vcf.gz", answered, tmp_path / "answered.vcf.gz")
    for total in result.alleles:
        want = part.get(total.key)
        got = (total.allele_count, total.allele_number, total.carriers, total.homozygotes)
        if want is None:  # an allele of no VCF: padding, absent everywhere
            assert [c.value for c in got[:1] + got[2:]] == [0, 0, 0] and not total.exists
            continue
        assert [c.value for c in got] == [want.ac, want.an, want.carriers, want.hom], total.key
        assert all(c.exact for c in got[:1] + got[2:])
        # AN: exact where every node is called, else a bound from the nodes that are.
        assert got[1].lower == want.an and got[1].exact == (got[1].unknown == 0), total.key
