"""Fixtures of the peer API tests: a coordinator key and in-process nodes on MemoryStore."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from node.peer.server import PeerServer, start_peer_server
from tests.peer.helpers import (
    COHORT,
    SPLIT,
    ec_key,
    memory_registry,
    node_settings,
    public_pem,
)


@pytest.fixture(scope="session")
def coordinator_key() -> ec.EllipticCurvePrivateKey:
    return ec_key()


@pytest.fixture
def cohort(shared_dir: Path) -> Path:
    return shared_dir / COHORT


@pytest.fixture
async def start_node(
    coordinator_key: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    """Start an in-process node over MemoryStores: `await start_node(id, {ds: [files]})`."""
    servers: list[PeerServer] = []

    async def start(node_id: str, datasets: dict[str, list[Path]], **peer: Any) -> PeerServer:
        home = tmp_path / f"home-{len(servers)}"
        settings = node_settings(node_id, public_pem(coordinator_key), home=home, **peer)
        server = await start_peer_server(settings, memory_registry(settings, datasets))
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop(0)


@pytest.fixture
async def three_nodes(cohort, start_node) -> dict[str, int]:
    ports = {}
    for node_id, datasets in SPLIT.items():
        files = {ds: [cohort / f"{s}.vcf.gz" for s in samples] for ds, samples in datasets.items()}
        ports[node_id] = (await start_node(node_id, files)).port
    return ports
