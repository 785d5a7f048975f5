"""issue 16, HTTP limits and errors: parser limits follow the settings, every refusal is
a protocol error body and an audit entry, body limits honour `server.max_body_bytes`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from node.config import Settings
from node.store.registry import DatasetRegistry
from node.web.app import create_app
from node.web.serve import NodeRunner


def _empty_registry(settings: Settings) -> DatasetRegistry:
    def lister() -> Iterable[str]:
        return ()

    return DatasetRegistry(settings, opener=lambda _: None, lister=lister)  # type: ignore[arg-type,return-value]


def _audit(home: Path) -> list[dict[str, object]]:
    path = home / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def _client(aiohttp_client: object, settings: Settings) -> TestClient:
    app = create_app(settings, registry_factory=_empty_registry)
    return await aiohttp_client(app)  # type: ignore[operator,no-any-return]


async def test_a_16kb_bearer_token_reaches_the_api_and_is_audited(
    aiohttp_client: object, tmp_path: Path
) -> None:
    client = await _client(aiohttp_client, Settings(home=tmp_path))
    token = "Bearer " + "a" * 16_000  # within auth.max_token_bytes (16384)
    resp = await client.get("/api/g_variants", headers={"Authorization": token})
    assert resp.content_type == "application/json", await resp.text()
    assert "error" in await resp.json()  # refused by the API (not a valid JWT), not the parser
    assert any(e.get("query", {}).get("route") == "/api/g_variants"  # type: ignore[union-attr]
               for e in _audit(tmp_path))


async def test_a_long_url_reaches_the_api(aiohttp_client: object, tmp_path: Path) -> None:
    client = await _client(aiohttp_client, Settings(home=tmp_path))
    filters = ",".join(f"HP:{i:07d}" for i in range(1_000))  # ~11 KB of filters
    resp = await client.get(f"/api/individuals?filters={filters}")
    assert resp.content_type == "application/json", await resp.text()


@pytest.fixture
async def node_url(tmp_path: Path) -> AsyncIterator[str]:
    """The node served by `serve`'s runner (small limits), on a free port."""
    settings = Settings(home=tmp_path, server={"max_url_bytes": 1024, "max_header_bytes": 1024},
                        auth={"max_token_bytes": 1024})
    runner = NodeRunner(create_app(settings, registry_factory=_empty_registry))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"127.0.0.1:{port}"
    await runner.cleanup()


async def _raw(address: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.parametrize(
    ("path", "header"),
    [("/api/g_variants?filters=" + "x" * 2000, ""),
     ("/api/info", "Authorization: Bearer " + "a" * 2000 + "\r\n")],
)
async def test_parser_refusals_are_beacon_errors_and_audited(
    node_url: str, tmp_path: Path, path: str, header: str
) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: {node_url}\r\n{header}\r\n".encode()
    status, headers, body = await _raw(node_url, request)
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["error"]["errorCode"] == 400 and doc["meta"]["beaconId"]
    refused = [e for e in _audit(tmp_path) if e.get("query", {}).get("route") == "unparsed"]  # type: ignore[union-attr]
    assert refused and refused[-1]["query"]["target"].startswith("/api")  # type: ignore[index]


async def test_parser_refusals_under_htsget_are_htsget_errors(node_url: str) -> None:
    request = f"GET /htsget/reads/x?{'a' * 2000} HTTP/1.1\r\nHost: {node_url}\r\n\r\n".encode()
    status, headers, body = await _raw(node_url, request)
    assert status == 400
    assert json.loads(body)["htsget"]["error"] == "InvalidInput"
    assert "htsget" in headers["content-type"]


_BEACON_BODY = {"meta": {"apiVersion": "v2.0"}, "query": {"requestParameters": {}}}


async def test_beacon_post_body_limit_is_server_max_body_bytes(
    aiohttp_client: object, tmp_path: Path
) -> None:
    client = await _client(aiohttp_client, Settings(home=tmp_path))
    big = {**_BEACON_BODY, "padding": "x" * 100_000}  # over the old 64 KiB, under 1 MiB
    resp = await client.post("/api/individuals", json=big)
    assert resp.status == 400, await resp.text()  # read, then refused for its content

    small = await _client(aiohttp_client, Settings(home=tmp_path / "s",
                                                   server={"max_body_bytes": 2048}))
    resp = await small.post("/api/individuals", json=big)
    assert resp.status == 413
    assert (await resp.json())["error"]["errorCode"] == 413
