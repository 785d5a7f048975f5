"""Retries: only UNAVAILABLE is retried, with backoff, and never past the deadline; a
peer's own `timeout_s` bounds its calls within the whole call's deadline."""

from __future__ import annotations

import time
from typing import Any

import grpc
import yaml

from node.domain import AlleleKey
from node.peer.coordinator import Coordinator
from node.peer.peers import load_peers
from tests.deadline import ended_by
from tests.peer import fakes
from tests.peer.helpers import write_peers

KEYS = [AlleleKey("1", 100, "A", "C")]


def _counting(code: grpc.StatusCode) -> tuple[list[float], fakes.Handler]:
    calls: list[float] = []

    async def handler(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        calls.append(time.monotonic())
        await context.abort(code, "try later")
        return b""

    return calls, handler


def _peers(tmp_path, key, ports: dict[str, int], deadline: float, **extra: Any):
    path = write_peers(tmp_path, key, ports, deadline_s=deadline)
    doc = yaml.safe_load(path.read_text())
    doc.update(extra.pop("top", {}))
    for peer in doc["peers"]:
        peer.update(extra.get(peer["id"], {}))
    path.write_text(yaml.safe_dump(doc))
    return load_peers(path)


async def _ask(peers) -> tuple[Any, float]:
    coordinator = Coordinator(peers)
    started = time.monotonic()
    try:
        return await coordinator.allele_stats(KEYS), time.monotonic() - started
    finally:
        await coordinator.close()


async def test_only_unavailable_is_retried_with_backoff(tmp_path, coordinator_key):
    unavailable, flaky = _counting(grpc.StatusCode.UNAVAILABLE)
    internal, broken = _counting(grpc.StatusCode.INTERNAL)
    servers = [await fakes.start_fake(h) for h in (flaky, broken)]
    try:
        peers = _peers(
            tmp_path,
            coordinator_key,
            {"flaky": servers[0][1], "broken": servers[1][1]},
            5.0,
            top={"max_attempts": 3},
        )
        result, _ = await _ask(peers)
    finally:
        for server, _ in servers:
            await server.stop(0)
    assert {n.node_id: n.status for n in result.nodes} == {
        "flaky": "UNAVAILABLE",
        "broken": "INTERNAL",
    }
    assert len(unavailable) == 3 and len(internal) == 1


async def test_retries_stop_at_the_deadline(tmp_path, coordinator_key):
    unavailable, flaky = _counting(grpc.StatusCode.UNAVAILABLE)
    server, port = await fakes.start_fake(flaky)
    deadline = 0.25
    try:
        peers = _peers(
            tmp_path, coordinator_key, {"flaky": port}, deadline, top={"max_attempts": 5}
        )
        result, elapsed = await _ask(peers)
    finally:
        await server.stop(0)
    # Unbounded, 5 attempts back off for up to 1.5 s (0.1 + 0.2 + 0.4 + 0.8, jittered).
    assert result.nodes[0].status in {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
    assert ended_by(elapsed, deadline)
    assert all(ended_by(t - unavailable[0], deadline) for t in unavailable)


async def test_a_peer_timeout_bounds_that_peer_only(tmp_path, coordinator_key, three_nodes):
    hung, port = await fakes.start_fake(fakes.hang)
    try:
        ports = {"node-a": three_nodes["node-a"], "hung": port}
        peers = _peers(tmp_path, coordinator_key, ports, 5.0, hung={"timeout_s": 0.3})
        result, elapsed = await _ask(peers)
    finally:
        await hung.stop(0)
    status = {n.node_id: n.status for n in result.nodes}
    assert status == {"node-a": "OK", "hung": "DEADLINE_EXCEEDED"}
    assert ended_by(elapsed, 0.3)  # not the 5 s deadline of the whole call


async def test_unresolvable_and_unroutable_peers_end_at_the_deadline(
    tmp_path, coordinator_key, three_nodes
):
    """Name resolution and TCP connect are inside the call's deadline too."""
    path = write_peers(tmp_path, coordinator_key, {"node-a": three_nodes["node-a"]}, deadline_s=1.0)
    doc = yaml.safe_load(path.read_text())
    doc["peers"] += [
        {"id": "no-name", "address": "no-such-node.invalid:50051"},
        {"id": "black-hole", "address": "10.255.255.1:50051"},  # SYNs go unanswered
    ]
    path.write_text(yaml.safe_dump(doc))
    result, elapsed = await _ask(load_peers(path))
    assert ended_by(elapsed, 1.0)  # not the TCP connect timeout
    status = {n.node_id: n.status for n in result.nodes}
    assert status["node-a"] == "OK"
    assert status["no-name"] in {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
    assert status["black-hole"] in {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
