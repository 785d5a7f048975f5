"""issue 16 for htsget: format case, unknown keys, strict integers, CORS, ticket URLs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from node.config import Settings
from node.errors import InvalidInput
from node.htsget.parse import parse_get, parse_post
from node.web.app import create_app
from node.web.htsget_data import _RangeError, parse_range
from tests.htsget.conftest import file_registry, node_settings

READS = "/htsget/reads/htsnexus_test_NA12878"


def test_format_is_case_insensitive_get_and_post() -> None:
    assert parse_get("reads", "x", {"format": ["bam"]}).format == "BAM"
    body = b'{"format": "bam", "regions": [{"referenceName": "11"}]}'
    assert parse_post("reads", "x", body, has_query=False, max_regions=10).format == "BAM"


def test_unknown_keys_are_refused_alike_in_get_and_post() -> None:
    with pytest.raises(InvalidInput, match="referencename"):
        parse_get("reads", "x", {"referencename": ["11"]})
    with pytest.raises(InvalidInput, match="referencename"):
        parse_post("reads", "x", b'{"referencename": "11"}', has_query=False, max_regions=10)


@pytest.mark.parametrize("value", ["\uff11\uff10", "1_0", "+10"])
def test_coordinates_and_ranges_take_ascii_digits_only(value: str) -> None:
    with pytest.raises(InvalidInput):
        parse_get("reads", "x", {"referenceName": ["11"], "start": [value]})
    with pytest.raises(_RangeError):
        parse_range(f"bytes={value}-20", 100)


async def _client(aiohttp_client: Any, settings: Settings) -> TestClient:
    app = create_app(settings, registry_factory=file_registry())  # type: ignore[arg-type]
    return await aiohttp_client(TestServer(app, host="127.0.0.1"))  # type: ignore[no-any-return]


async def test_cors_default_is_star_without_credentials(aiohttp_client: Any, home: Path) -> None:
    client = await _client(aiohttp_client, node_settings(home))
    resp = await client.get(READS + "?class=header", headers={"Origin": "null"})
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in resp.headers
    api = await client.get("/api/info", headers={"Origin": "https://evil.example"})
    assert api.headers["Access-Control-Allow-Origin"] == "*"


async def test_cors_configured_origins_only(aiohttp_client: Any, home: Path) -> None:
    settings = node_settings(home).model_copy(update={"server": Settings().server.model_copy(
        update={"cors_origins": ["https://igv.example"]})})
    client = await _client(aiohttp_client, settings)
    ok = await client.get(READS + "?class=header", headers={"Origin": "https://igv.example"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://igv.example"
    assert "Access-Control-Allow-Credentials" not in ok.headers
    for origin in ("https://evil.example", "null"):
        resp = await client.get(READS + "?class=header", headers={"Origin": origin})
        assert "Access-Control-Allow-Origin" not in resp.headers
        api = await client.get("/api/info", headers={"Origin": origin})
        assert "Access-Control-Allow-Origin" not in api.headers


def test_null_origin_cannot_be_configured() -> None:
    with pytest.raises(ValueError, match="null"):
        Settings(server={"cors_origins": ["null"]})


async def test_ticket_urls_never_follow_a_foreign_host(aiohttp_client: Any, home: Path) -> None:
    client = await _client(aiohttp_client, node_settings(home))
    evil = await client.get(READS + "?class=header", headers={"Host": "evil.example"})
    assert evil.status == 400
    assert (await evil.json())["htsget"]["error"] == "InvalidInput"
    own = await client.get(READS + "?class=header", headers={"Host": "localhost:1234"})
    assert own.status == 200
    assert (await own.json())["htsget"]["urls"][0]["url"].startswith("http://localhost:1234/")
    beacon_map = await client.get("/api/map", headers={"Host": "evil.example"})
    assert beacon_map.status == 400


async def test_public_url_and_trusted_proxies(aiohttp_client: Any, home: Path) -> None:
    base = node_settings(home)
    public = base.model_copy(update={"htsget": base.htsget.model_copy(
        update={"public_url": "https://node.example.org/"})})
    client = await _client(aiohttp_client, public)
    resp = await client.get(READS + "?class=header", headers={"Host": "evil.example"})
    assert (await resp.json())["htsget"]["urls"][0]["url"].startswith("https://node.example.org/htsget/")

    proxied = base.model_copy(update={"server": base.server.model_copy(update={
        "trusted_proxies": ["127.0.0.0/8"], "allowed_hosts": ["node.example.org"]})})
    client = await _client(aiohttp_client, proxied)
    headers = {"X-Forwarded-Host": "node.example.org", "X-Forwarded-Proto": "https"}
    resp = await client.get(READS + "?class=header", headers=headers)
    assert (await resp.json())["htsget"]["urls"][0]["url"].startswith("https://node.example.org/")
    forged = await client.get(READS + "?class=header", headers={"X-Forwarded-Host": "evil.example"})
    assert forged.status == 400
