"""Every HTTP access is audited once: refused tokens (401), denials (403), info endpoints,
invalid requests and htsget data blocks, without the token; probes are not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from node.privacy.audit import verify
from node.privacy.gate import anonymous_key
from node.store.memory import MemoryStore
from tests.privacy.test_http_privacy import (
    RARE,
    Client,
    app_settings,
    ask,
    client_for,
    store,  # noqa: F401  (the module-scoped fixture)
)

BOGUS = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.c2VjcmV0LXNpZ25hdHVyZQ"


async def _client(aiohttp_client: Client, home: Path, cohort: MemoryStore) -> TestClient:
    settings = app_settings(home, 1e-12, client_address_header="X-Forwarded-For")
    return await client_for(aiohttp_client, settings, cohort)


def _entries(home: Path) -> list[dict[str, Any]]:
    assert verify(home / "audit.jsonl").ok
    return [json.loads(line) for line in (home / "audit.jsonl").read_text().splitlines()]


async def test_refused_token_is_audited_without_the_token(
    aiohttp_client: Client, tmp_path: Path, store: MemoryStore  # noqa: F811
) -> None:
    client = await _client(aiohttp_client, tmp_path, store)
    resp = await client.get("/api/g_variants", params=RARE,
                            headers={"Authorization": f"Bearer {BOGUS}",
                                     "X-Forwarded-For": "198.51.100.4"})
    assert resp.status == 401
    (entry,) = _entries(tmp_path)
    assert entry["query"]["outcome"] == "unauthenticated"
    assert entry["query"]["status"] == 401 and entry["query"]["route"] == "/api/g_variants"
    assert entry["requester"] == anonymous_key("198.51.100.4")
    raw = (tmp_path / "audit.jsonl").read_text()
    assert BOGUS not in raw and "c2VjcmV0" not in raw and "mallory" not in raw


async def test_info_invalid_and_denied_accesses_are_audited_once_each(
    aiohttp_client: Client, tmp_path: Path, store: MemoryStore  # noqa: F811
) -> None:
    client = await _client(aiohttp_client, tmp_path, store)
    assert (await client.get("/api/info")).status == 200
    assert (await client.get("/api/g_variants", params={"start": "x"})).status == 400
    assert (await ask(client, RARE, "198.51.100.5"))[0] == 403  # the budget: its own entry
    assert (await client.get("/health")).status == 200
    assert (await client.get("/metrics")).status == 200
    entries = _entries(tmp_path)
    assert [e["query"]["outcome"] for e in entries] == ["answered", "rejected", "refused"]
    assert entries[0]["query"]["route"] == "/api/info"
    assert entries[2]["query"]["path"] == "/api/g_variants"  # written by the Beacon handler
    assert len({e["request_id"] for e in entries}) == 3


async def test_htsget_block_with_a_forged_token_is_audited_without_it(
    aiohttp_client: Client, tmp_path: Path, store: MemoryStore  # noqa: F811
) -> None:
    client = await _client(aiohttp_client, tmp_path, store)
    forged = "forged-block-token-0123456789"
    resp = await client.get(f"/htsget/data/{forged}")
    assert resp.status >= 400
    (entry,) = _entries(tmp_path)
    assert entry["query"]["route"] == "/htsget/data/{token}"
    assert entry["query"]["params"] == {} and entry["query"]["outcome"] != "answered"
    assert forged not in (tmp_path / "audit.jsonl").read_text()
