"""Layering (STYLE.md §1): the Beacon protocol code and the service layer never import a
transport or storage engine; only node/web/beacon.py knows aiohttp."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

FORBIDDEN = ("aiohttp", "grpc", "tiledb", "node.web", "node.peer")
MODULES = [*sorted((REPO / "node" / "beacon").glob("*.py")), REPO / "node" / "service.py"]


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_protocol_code_imports_no_transport(path: Path) -> None:
    bad = {n for n in imported(path) if n.split(".")[0] in FORBIDDEN or n.startswith(FORBIDDEN)}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_service_does_not_import_protocols() -> None:
    assert not {n for n in imported(REPO / "node" / "service.py") if n.startswith("node.beacon")}
