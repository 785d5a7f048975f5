"""Layering (STYLE.md §1): the Beacon protocol code and the service layer never import a
transport or storage engine; only node/web/beacon.py knows aiohttp. The peer use cases
(node/peer/service.py) know no grpc nor wire message, and the peer transport
(node/peer/server.py) leaves node/privacy to them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

FORBIDDEN = ("aiohttp", "grpc", "tiledb", "node.web", "node.peer")
MODULES = [*sorted((REPO / "node" / "beacon").glob("*.py")), REPO / "node" / "service.py"]
PEER_SERVICE = REPO / "node" / "peer" / "service.py"
PEER_WIRE = ("aiohttp", "grpc", "tiledb", "node.web", "node.peer._pb", "node.peer.server",
             "node.peer.status", "node.peer.messages", "node.peer.columns")


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)  # and what it names: `from node.peer import server`
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_protocol_code_imports_no_transport(path: Path) -> None:
    bad = {n for n in imported(path) if n.split(".")[0] in FORBIDDEN or n.startswith(FORBIDDEN)}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_service_does_not_import_protocols() -> None:
    assert not {n for n in imported(REPO / "node" / "service.py") if n.startswith("node.beacon")}


def test_peer_service_imports_no_transport() -> None:
    bad = {n for n in imported(PEER_SERVICE) if n.split(".")[0] in PEER_WIRE
           or n.startswith(PEER_WIRE)}
    assert not bad, f"service.py imports {sorted(bad)}"


def test_peer_service_loads_no_grpc() -> None:
    """Not even through what it imports (a fresh interpreter: nothing loaded before)."""
    code = ("import sys, node.peer.service; print(sorted(m for m in sys.modules "
            "if m.split('.')[0] == 'grpc' or m.startswith('node.peer._pb')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_peer_server_leaves_privacy_to_the_service() -> None:
    server = REPO / "node" / "peer" / "server.py"
    assert not {n for n in imported(server) if n.startswith("node.privacy")}
