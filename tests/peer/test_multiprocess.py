"""Three real nodes, each its own `fednode serve` process over a TileDB store, plus a
process answering garbage: federated totals vs bcftools on the merged VCF, then one node
killed, one hung (SIGSTOP) past the deadline, one garbage: partial totals and statuses."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.peer.coordinator import Coordinator
from node.peer.peers import load_peers
from tests.deadline import ended_by
from tests.peer import fakes
from tests.peer.helpers import (
    COORDINATOR,
    SPLIT,
    bcftools_truth,
    public_pem,
    samples_truth,
    write_peers,
)

pytestmark = pytest.mark.slow


def _run(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(
        [sys.executable, "-m", "node", *args], check=True, env=env, capture_output=True, timeout=300
    )


def _node_env(node_id: str, home: Path, key_file: Path) -> dict[str, str]:
    coordinators = [{"id": COORDINATOR, "public_key_file": str(key_file)}]
    return {
        **os.environ,
        "FEDNODE_NODE__ID": node_id,
        "FEDNODE_PRIVACY__MIN_COUNT": "1",
        # Every allele of a 1-3 sample dataset is rare: the default budget (25 nats)
        # would refuse this batch (RESOURCE_EXHAUSTED), as it should in production.
        "FEDNODE_PRIVACY__BUDGET__MAX_LLR": "1e9",
        "FEDNODE_PEER__COORDINATORS": json.dumps(coordinators),
        "FEDNODE_AUDIT__PATH": str(home / "audit.jsonl"),
    }


@pytest.fixture
def node_processes(
    tmp_path, cohort, coordinator_key
) -> Iterator[dict[str, tuple[int, subprocess.Popen[bytes]]]]:
    key_file = tmp_path / "coordinator.pub"
    key_file.write_text(public_pem(coordinator_key))
    procs: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
    try:
        for node_id, datasets in SPLIT.items():
            home = tmp_path / node_id
            env = _node_env(node_id, home, key_file)
            _run("init", str(home), env=env)
            for dataset, samples in datasets.items():
                files = [str(cohort / f"{s}.vcf.gz") for s in samples]
                _run("ingest", str(home), "--dataset", dataset, "--threads", "1", *files, env=env)
            grpc_port, http_port = fakes.dead_port(), fakes.dead_port()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "node",
                    "serve",
                    str(home),
                    "--port",
                    str(http_port),
                    "--grpc-port",
                    str(grpc_port),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            procs[node_id] = (grpc_port, proc)
        yield procs
    finally:
        for _, proc in procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


async def _wait_ready(peers_file: Path, n: int) -> None:
    coordinator = Coordinator(load_peers(peers_file))
    try:
        for _ in range(120):
            results = await coordinator.node_info(deadline_s=1.0)
            if sum(r.ok for r in results) == n:
                return
            await asyncio.sleep(0.25)
        raise AssertionError(f"nodes not ready: {[(r.peer_id, r.status) for r in results]}")
    finally:
        await coordinator.close()


async def test_real_node_processes(tmp_path, cohort, coordinator_key, node_processes):
    ports = {node: port for node, (port, _) in node_processes.items()}
    peers_file = write_peers(tmp_path, coordinator_key, ports, deadline_s=10)
    await _wait_ready(peers_file, len(ports))
    truth = bcftools_truth(cohort / "merged10.vcf.gz")
    keys = sorted(truth, key=lambda k: (k.start, k.ref, k.alt))[:1500]

    coordinator = Coordinator(load_peers(peers_file))
    try:
        result = await coordinator.allele_stats(keys)
    finally:
        await coordinator.close()
    assert [n.status for n in result.nodes] == ["OK"] * 3
    for total in result.alleles:
        want = truth[total.key]
        assert (total.allele_count.value, total.allele_number.value) == (want.ac, want.an)
        assert (total.carriers.value, total.homozygotes.value) == (want.carriers, want.hom)

    # Faults: node-b killed, node-c hung, and a process answering garbage.
    os.kill(node_processes["node-b"][1].pid, signal.SIGKILL)
    node_processes["node-b"][1].wait(10)
    os.kill(node_processes["node-c"][1].pid, signal.SIGSTOP)
    port_file = tmp_path / "garbage.port"
    garbage = subprocess.Popen(
        [sys.executable, "-m", "tests.peer.fakes", "garbage", str(port_file)]
    )
    try:
        for _ in range(100):
            if port_file.exists() and port_file.read_text():
                break
            await asyncio.sleep(0.1)
        ports["garbage"] = int(port_file.read_text())
        deadline = 2.0
        faulty = write_peers(tmp_path, coordinator_key, ports, deadline_s=deadline)
        coordinator = Coordinator(load_peers(faulty))
        started = time.monotonic()
        try:
            result = await coordinator.allele_stats(keys)
        finally:
            elapsed = time.monotonic() - started
            await coordinator.close()
    finally:
        garbage.kill()
        garbage.wait()
    assert ended_by(elapsed, deadline)
    assert {n.node_id: n.status for n in result.nodes} == {
        "node-a": "OK",
        "node-b": "UNAVAILABLE",
        "node-c": "DEADLINE_EXCEEDED",
        "garbage": "INVALID_RESPONSE",
    }
    part = samples_truth(
        cohort / "merged10.vcf.gz", SPLIT["node-a"]["cohort-a"], tmp_path / "node-a.vcf.gz"
    )
    assert [t.allele_count.value for t in result.alleles] == [part[k].ac for k in keys]
    assert [t.allele_number.value for t in result.alleles] == [part[k].an for k in keys]
