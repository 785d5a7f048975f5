"""Federated allele statistics: N local nodes, 10,000 variants per call.

    python -m bench.federation_bench [--nodes 8] [--variants 10000] [--repeat 3]

Each node is its own process (a peer API server over a MemoryStore holding a slice of
../shared's snp_cohort10 samples). Measured in the same run, the same way (a Coordinator
over the peers in question, channels connected before timing, totals merged as arrays):
the federated call over all nodes, and each node asked alone with all node processes up,
interleaved per round; medians of --repeat rounds. Reported: overhead = federated /
slowest single - 1 (target <= 20%), and the CPU seconds the federated call costs (nodes +
coordinator): on C cores no schedule beats CPU / C, the bound a shared machine imposes.
Then one node is stopped (SIGSTOP) and the federated call must return at the deadline
with the others' partial total (wall time includes closing the channels).
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
COHORT = REPO.parent / "shared" / "tiledbvcf-fixture" / "inputs" / "snp_cohort10"
COORDINATOR = "org.example.bench-coordinator"


def _serve_node(port_file: Path, pub_key: Path, files: list[str]) -> None:
    """Child process: one node over a MemoryStore, until killed."""
    from node.config import Settings
    from node.peer.server import start_peer_server
    from node.store.memory import MemoryStore
    from node.store.registry import DatasetRegistry

    store = MemoryStore()
    store.ingest([Path(f) for f in files])
    settings = Settings(
        home=port_file.parent,
        node={"id": port_file.stem},
        privacy={"min_count": 1, "budget": {"enabled": False}},
        audit={"enabled": False},
        peer={"port": 0, "coordinators": [{"id": COORDINATOR, "public_key_file": str(pub_key)}]},
    )
    registry = DatasetRegistry(settings, opener=lambda _: store, lister=lambda: ["cohort"])

    async def run() -> None:
        server = await start_peer_server(settings, registry)
        port_file.write_text(str(server.port))
        await server.server.wait_for_termination()

    asyncio.run(run())


def _keys(n: int) -> list:
    """The cohort's alleles, padded with absent ones to `n` (absent ones cost a lookup too)."""
    import pysam

    from node.domain import AlleleKey, normalize_contig

    keys = []
    with pysam.VariantFile(str(COHORT / "merged10.vcf.gz")) as vcf:
        for rec in vcf:
            keys += [
                AlleleKey(normalize_contig(rec.chrom), rec.start, rec.ref, a) for a in rec.alts
            ]
    rng = random.Random(7)
    while len(keys) < n:
        keys.append(AlleleKey("1", rng.randrange(10**6, 10**8), "A", "C"))
    return keys[:n]


def _write_keys(folder: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / "coordinator.pem", folder / "coordinator.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def _start_nodes(folder: Path, pub: Path, n: int) -> dict[str, tuple[int, subprocess.Popen[bytes]]]:
    samples = sorted(COHORT.glob("S0*.vcf.gz"))
    procs = {}
    for i in range(n):
        files = [str(samples[j]) for j in range(len(samples)) if j % n == i] or [
            str(samples[i % len(samples)])
        ]
        port_file = folder / f"node-{i}.port"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.federation_bench",
                "--serve-node",
                str(port_file),
                str(pub),
                *files,
            ],
            cwd=REPO,
        )
        procs[f"node-{i}"] = (port_file, proc)
    ports = {}
    for name, (port_file, proc) in procs.items():
        for _ in range(600):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        ports[name] = (int(port_file.read_text()), proc)
    return ports


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds used so far by processes `pids` (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


async def _timed(peers: Any, keys: list, pids: list[int]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of nodes + this process, CPU seconds of this process)
    of one call by a Coordinator over `peers`: channels connected first, closed after,
    neither timed."""
    from node.peer.coordinator import Coordinator

    coordinator = Coordinator(peers)
    try:
        warm = await coordinator.allele_stats(keys[:10])
        assert warm.complete, warm.nodes
        cpu0, own0, started = _cpu_s(pids), time.process_time(), time.monotonic()
        result = await coordinator.allele_stats(keys, deadline_s=120)
        wall = time.monotonic() - started
        own = time.process_time() - own0
        cpu = _cpu_s(pids) - cpu0 + own
        assert result.complete, result.nodes
        assert len(result.alleles) == len(keys)  # per-allele objects: the caller's, untimed
    finally:
        await coordinator.close()
    return wall, cpu, own


async def _measure(
    peers_file: Path, keys: list, repeat: int, pids: dict[str, int]
) -> dict[str, Any]:
    """Federated call vs each node asked alone, the same way (a Coordinator with that one
    peer, all node processes up), interleaved in each round; medians over rounds."""
    from node.peer.peers import load_peers

    peers = load_peers(peers_file)
    everyone = list(pids.values())
    federated, slowest, cpu_fed, cpu_single = [], [], [], []
    own_fed: list[float] = []
    own_single: list[float] = []
    for _ in range(repeat):
        singles = []
        for entry in peers.peers:
            alone = peers.model_copy(update={"peers": [entry]})
            singles.append(await _timed(alone, keys, [pids[entry.id]]))
        wall, cpu, own = await _timed(peers, keys, everyone)
        federated.append(wall)
        cpu_fed.append(cpu)
        own_fed.append(own)
        slowest.append(max(w for w, _, _ in singles))
        cpu_single.append(statistics.mean(c for _, c, _ in singles))
        own_single.append(statistics.mean(o for _, _, o in singles))
    fed, slow = statistics.median(federated), statistics.median(slowest)
    cores = os.cpu_count() or 1
    bound = statistics.median(cpu_fed) / cores  # no schedule on `cores` CPUs can beat this
    return {
        "federated_s": statistics.median(federated),
        "federated_runs_s": federated,
        "slowest_single_s": slow,
        "slowest_single_runs_s": slowest,
        "overhead": fed / slow - 1,
        "cpu_federated_s": statistics.median(cpu_fed),
        "cpu_single_mean_s": statistics.median(cpu_single),
        "cpu_coordinator_federated_s": statistics.median(own_fed),
        "cpu_coordinator_single_s": statistics.median(own_single),
        "cores": cores,
        "cpu_bound_s": bound,
        "federated_vs_cpu_bound": fed / bound - 1,
    }


async def _hung(peers_file: Path, keys: list, deadline: float, repeat: int) -> dict[str, object]:
    """The federated call with one node stopped: wall time from the call to the
    coordinator closed (what `fednode federate count` waits), per round."""
    from node.peer.coordinator import Coordinator
    from node.peer.peers import load_peers

    walls, statuses = [], set()
    for _ in range(repeat):
        started = time.monotonic()
        coordinator = Coordinator(load_peers(peers_file))
        try:
            result = await coordinator.allele_stats(keys, deadline_s=deadline)
        finally:
            await coordinator.close()
        walls.append(time.monotonic() - started)
        statuses |= {f"{n.node_id}:{n.status}" for n in result.nodes if n.status != "OK"}
    return {
        "deadline_s": deadline,
        "elapsed_s": statistics.median(walls),
        "runs_s": walls,
        "not_ok": sorted(statuses),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--variants", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--deadline", type=float, default=3.0)
    parser.add_argument("--serve-node", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_node:
        _serve_node(Path(args.serve_node[0]), Path(args.serve_node[1]), args.serve_node[2:])
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        private, public = _write_keys(folder)
        nodes = _start_nodes(folder, public, args.nodes)
        try:
            peers_file = folder / "peers.yaml"
            peers_file.write_text(
                yaml.safe_dump(
                    {
                        "coordinator": {"id": COORDINATOR, "private_key": str(private)},
                        "peers": [
                            {"id": n, "address": f"127.0.0.1:{p}", "audience": n}
                            for n, (p, _) in nodes.items()
                        ],
                    }
                )
            )
            keys = _keys(args.variants)
            pids = {name: proc.pid for name, (_, proc) in nodes.items()}
            report: dict[str, Any] = {"nodes": args.nodes, "variants": len(keys)}
            report["load_before"] = os.getloadavg()
            report["all_up"] = asyncio.run(_measure(peers_file, keys, args.repeat, pids))
            os.kill(nodes["node-0"][1].pid, signal.SIGSTOP)
            report["one_hung"] = asyncio.run(_hung(peers_file, keys, args.deadline, args.repeat))
            report["load_after"] = os.getloadavg()
            print(json.dumps(report, indent=2))
        finally:
            for _, proc in nodes.values():
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    main()
