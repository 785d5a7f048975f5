"""Regression (issue 16): after a full disk the node answered 503 on every request, even
once space was freed, because a short write left half a line. It must fail closed while
the disk is full and answer again, with the rollback in the chain, once space is back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from node.config import AuditSettings, Settings
from node.privacy import audit
from node.privacy.audit import verify
from node.store.memory import MemoryStore
from node.store.registry import DatasetRegistry
from node.web.app import create_app
from tests.privacy.test_audit_recovery import _Disk

Client = Callable[..., Awaitable[TestClient]]


async def test_the_node_answers_again_once_space_is_back(
    aiohttp_client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path, audit=AuditSettings(fsync=False))
    store = MemoryStore(assembly="GRCh38")

    def registry(s: Settings) -> DatasetRegistry:
        return DatasetRegistry(s, opener=lambda _: store, lister=lambda: [])

    client = await aiohttp_client(create_app(settings, registry_factory=registry))
    assert (await client.get("/api/info")).status == 200
    log = tmp_path / "audit.jsonl"
    disk = _Disk(log, free=25)
    monkeypatch.setattr(audit.os, "write", disk.write)
    for _ in range(3):  # a short write, then nothing: closed, with a 503 (never a 500)
        assert (await client.get("/api/info")).status == 503
    disk.free = None  # space is back
    assert (await client.get("/api/info")).status == 200
    report = verify(log)
    assert report.ok and report.notice_kinds() == {"rolled-back"}
