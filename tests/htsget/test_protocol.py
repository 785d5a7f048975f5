"""htsget 1.3 protocol behaviour: errors, class=header, POST multi-region, empty results,
CORS, Range on blocks, signed block URLs, access by dataset security level."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from jsonschema import Draft202012Validator

from node.config import DatasetSettings
from node.htsget.models import CONTENT_TYPE
from node.htsget.signing import BlockSigner
from node.reads.catalog import ReadsCatalog
from node.reads.layout import file_version
from node.web.app import create_app
from tests.htsget.conftest import file_registry, node_settings, require_tool, run
from tests.htsget.fetch import assemble
from tests.htsget.test_reads_clients import sam_records

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
BAM = "bam/htsnexus_test_NA12878.bam"
READS = "/htsget/reads/htsnexus_test_NA12878"


@pytest.fixture
async def http(server: TestServer) -> Any:
    async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{server.port}") as session:
        yield session


# Every ticket and error of these tests is checked against the schemas in schemas/.
TICKET = Draft202012Validator(json.loads((SCHEMAS / "htsget-ticket.schema.json").read_text()))
ERROR = Draft202012Validator(json.loads((SCHEMAS / "htsget-error.schema.json").read_text()))


async def ticket_of(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith(CONTENT_TYPE)
    ticket = dict(await resp.json(content_type=None))
    TICKET.validate(ticket)
    return ticket


async def expect_error(resp: aiohttp.ClientResponse, status: int, name: str) -> None:
    assert resp.status == status, await resp.text()
    body = json.loads(await resp.text())
    ERROR.validate(body)
    assert body["htsget"]["error"] == name


@pytest.mark.parametrize(
    ("path", "status", "name"),
    [
        ("/htsget/reads/no-such-id", 404, "NotFound"),
        (READS + "?format=VCF", 400, "UnsupportedFormat"),
        (READS + "?format=sam", 400, "UnsupportedFormat"),
        ("/htsget/variants/spec-v4.3?format=BAM", 400, "UnsupportedFormat"),
        (READS + "?class=body", 400, "InvalidInput"),
        (READS + "?class=header&referenceName=11", 400, "InvalidInput"),
        (READS + "?start=5", 400, "InvalidInput"),
        (READS + "?referenceName=11&start=x", 400, "InvalidInput"),
        (READS + "?referenceName=11&start=-1", 400, "InvalidInput"),
        (READS + "?referenceName=11&end=4294967296", 400, "InvalidInput"),
        (READS + "?referenceName=11&start=10&end=5", 400, "InvalidRange"),
        (READS + "?referenceName=no-such-ref", 404, "NotFound"),
        (READS + "?referenceName=*&start=1", 400, "InvalidInput"),
        (READS + "?fields=QNAME,NOPE", 400, "InvalidInput"),
        (READS + "?tags=NM,MD&notags=MD", 400, "InvalidInput"),
        ("/htsget/variants/spec-v4.3?referenceName=*", 400, "InvalidInput"),
        ("/htsget/data/not-a-token", 400, "InvalidInput"),
        ("/htsget/nothing-here", 404, "NotFound"),
    ],
)
async def test_get_errors(http: aiohttp.ClientSession, path: str, status: int, name: str) -> None:
    async with http.get(path) as resp:
        await expect_error(resp, status, name)


@pytest.mark.parametrize(
    ("body", "query", "status", "name"),
    [
        (b"{not json", "", 400, "InvalidInput"),
        (b"[]", "", 400, "InvalidInput"),
        (b'{"regions": []}', "", 400, "InvalidInput"),
        (b'{"regions": [{"start": 1}]}', "", 400, "InvalidInput"),
        (b'{"regions": [{"referenceName": "11", "start": 5, "end": 5}]}', "", 400, "InvalidRange"),
        (b'{"format": "SAM"}', "", 400, "UnsupportedFormat"),
        (b'{"class": "header", "regions": [{"referenceName": "11"}]}', "", 400, "InvalidInput"),
        (b'{"unknown": 1}', "", 400, "InvalidInput"),
        (b"{}", "?format=BAM", 400, "InvalidInput"),
        (
            json.dumps({"regions": [{"referenceName": "11"}] * 5000}).encode(),
            "",
            413,
            "PayloadTooLarge",
        ),
    ],
)
async def test_post_errors(
    http: aiohttp.ClientSession, body: bytes, query: str, status: int, name: str
) -> None:
    async with http.post(READS + query, data=body) as resp:
        await expect_error(resp, status, name)


async def test_get_start_equal_end_is_a_valid_empty_range(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    samtools = require_tool("samtools")
    async with http.get(READS + "?referenceName=11&start=5000000&end=5000000") as resp:
        data = await assemble(http, await ticket_of(resp))
    out = tmp_path / "empty.bam"
    out.write_bytes(data)
    await run(samtools, "quickcheck", str(out))


async def test_empty_result_is_a_valid_file(
    http: aiohttp.ClientSession, testdata: Path, tmp_path: Path
) -> None:
    samtools = require_tool("samtools")
    async with http.get(READS + "?referenceName=1&start=0&end=1000000") as resp:
        ticket = await ticket_of(resp)
    out = tmp_path / "empty.bam"
    out.write_bytes(await assemble(http, ticket))
    await run(samtools, "quickcheck", str(out))
    assert sam_records(await run(samtools, "view", str(out))) == []
    header = await run(samtools, "view", "--no-PG", "-H", str(out))
    assert header == await run(samtools, "view", "--no-PG", "-H", str(testdata / BAM))


@pytest.mark.parametrize(
    ("path", "tool", "args"),
    [
        (READS + "?class=header", "samtools", ("view", "--no-PG", "-H")),
        (READS + "?class=header&format=CRAM", "samtools", ("view", "--no-PG", "-H")),
        ("/htsget/variants/spec-v4.3?class=header", "bcftools", ("view", "--no-version", "-h")),
        (
            "/htsget/variants/spec-v4.3?class=header&format=BCF",
            "bcftools",
            ("view", "--no-version", "-h"),
        ),
    ],
)
async def test_class_header(
    http: aiohttp.ClientSession,
    testdata: Path,
    tmp_path: Path,
    path: str,
    tool: str,
    args: tuple[str, ...],
) -> None:
    exe = require_tool(tool)
    async with http.get(path) as resp:
        ticket = await ticket_of(resp)
    assert all(u.get("class") == "header" for u in ticket["htsget"]["urls"])
    out = tmp_path / "header.bin"
    out.write_bytes(await assemble(http, ticket))
    fmt = ticket["htsget"]["format"]
    source = {
        "BAM": BAM,
        "CRAM": "cram/htsnexus_test_NA12878.cram",
        "VCF": "vcf/spec-v4.3.vcf.gz",
        "BCF": "bcf/spec-v4.3.bcf",
    }[fmt]
    assert await run(exe, *args, str(out)) == await run(exe, *args, str(testdata / source))


async def test_post_multi_region_one_header_merged_no_duplicates(
    http: aiohttp.ClientSession, testdata: Path, tmp_path: Path
) -> None:
    samtools = require_tool("samtools")
    regions = [
        {"referenceName": "11", "start": 5_020_000, "end": 5_040_000},
        {"referenceName": "11", "start": 4_999_000, "end": 5_030_000},  # overlaps the first
        {"referenceName": "20", "start": 0, "end": 100_000_000},
        {"referenceName": "*"},
    ]
    async with http.post(READS, json={"format": "BAM", "regions": regions}) as resp:
        ticket = await ticket_of(resp)
    out = tmp_path / "multi.bam"
    out.write_bytes(await assemble(http, ticket))
    await run(samtools, "quickcheck", str(out))
    got = sam_records(await run(samtools, "view", str(out)))
    assert len(got) == len(set(got)), "a record was sent twice"
    source = sam_records(await run(samtools, "view", str(testdata / BAM)))
    kept = set(got)
    assert got == [r for r in source if r in kept], "records are not in file order"
    await run(samtools, "index", str(out))
    wanted = ["11:4999001-5040000", "20"]
    truth = sam_records(await run(samtools, "view", "-M", str(testdata / BAM), *wanted))
    assert truth and sam_records(await run(samtools, "view", "-M", str(out), *wanted)) == truth
    unplaced = sam_records(await run(samtools, "view", str(testdata / BAM), "*"))
    assert sam_records(await run(samtools, "view", str(out), "*")) == unplaced


async def test_service_info(http: aiohttp.ClientSession) -> None:
    for kind, formats in (("reads", ["BAM", "CRAM"]), ("variants", ["VCF", "BCF"])):
        async with http.get(f"/htsget/{kind}/service-info") as resp:
            info = await resp.json()
        assert info["type"] == {"group": "org.ga4gh", "artifact": "htsget", "version": "1.3.0"}
        assert info["htsget"]["datatype"] == kind and info["htsget"]["formats"] == formats
        # fields/tags are not applied to byte ranges, and the node says so.
        assert info["htsget"]["fieldsParameterEffective"] is False
        assert info["htsget"]["tagsParametersEffective"] is False
    # ... and it is true: asking for fewer fields and no tags gives the same blocks.
    region = "?referenceName=11&start=5000000&end=5001000"
    plain = _claims(await ticket_of(await http.get(READS + region)))
    narrowed = _claims(await ticket_of(await http.get(READS + region + "&fields=QNAME&tags=")))
    assert narrowed == plain and len(plain) >= 3


def _claims(ticket: dict[str, Any]) -> list[object]:
    """Each block of a ticket: a data URI as is, a block URL as its signed claims."""
    out: list[object] = []
    for entry in ticket["htsget"]["urls"]:
        url = str(entry["url"])
        if url.startswith("data:"):
            out.append(url)
            continue
        part = url.rsplit("/", 1)[1].split(".")[0]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        out.append({k: v for k, v in claims.items() if k != "x"})
    return out


async def test_cors_preflight_and_simple(http: aiohttp.ClientSession) -> None:
    origin = "http://browser.example"
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,range",
    }
    async with http.options(READS, headers=headers) as resp:
        assert resp.status in (200, 204)
        assert resp.headers["Access-Control-Allow-Origin"] == "*"  # server.cors_origins
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
        allowed = resp.headers["Access-Control-Allow-Headers"].lower()
        assert {"authorization", "content-type", "range"} <= set(
            allowed.replace(" ", "").split(",")
        )
    async with http.get(
        READS + "?referenceName=11&start=5000000&end=5001000", headers={"Origin": origin}
    ) as resp:
        ticket = await ticket_of(resp)
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
    block = next(u["url"] for u in ticket["htsget"]["urls"] if u["url"].startswith("http"))
    async with http.get(block, headers={"Origin": origin, "Range": "bytes=0-9"}) as resp:
        assert resp.status == 206
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
    async with http.get(READS + "?format=nope", headers={"Origin": origin}) as resp:
        assert resp.status == 400 and resp.headers["Access-Control-Allow-Origin"] == "*"


async def _first_block(http: aiohttp.ClientSession) -> tuple[str, bytes]:
    async with http.get(READS + "?referenceName=11") as resp:
        ticket = await ticket_of(resp)
    url = [u["url"] for u in ticket["htsget"]["urls"] if u["url"].startswith("http")][-1]
    async with http.get(url) as resp:
        return url, await resp.read()


async def test_block_range_requests(http: aiohttp.ClientSession, testdata: Path) -> None:
    url, whole = await _first_block(http)
    assert len(whole) > 2000
    source = (testdata / BAM).read_bytes()
    assert whole in source  # a block is a verbatim byte range of the file
    for header, lo, hi in (
        ("bytes=0-1023", 0, 1024),
        ("bytes=1000-", 1000, len(whole)),
        ("bytes=-100", len(whole) - 100, len(whole)),
    ):
        async with http.get(url, headers={"Range": header}) as resp:
            assert resp.status == 206
            body = await resp.read()
            assert body == whole[lo:hi]
            assert resp.headers["Content-Range"] == f"bytes {lo}-{hi - 1}/{len(whole)}"
            assert int(resp.headers["Content-Length"]) == hi - lo
    async with http.get(url, headers={"Range": f"bytes={len(whole)}-"}) as resp:
        assert resp.status == 416
    async with http.get(url) as resp:  # retry-safe: the same bytes again
        assert await resp.read() == whole


async def test_block_tokens_are_signed_and_expire(
    http: aiohttp.ClientSession, home: Path, testdata: Path
) -> None:
    url, _ = await _first_block(http)
    prefix, token = url.rsplit("/", 1)
    part, mac = token.split(".")
    forged = part[:-2] + ("AA" if part[-2:] != "AA" else "BB")
    async with http.get(f"{prefix}/{forged}.{mac}") as resp:
        await expect_error(resp, 403, "PermissionDenied")
    secret = (home / "htsget.secret").read_bytes()
    stale = BlockSigner(secret, ttl_s=10, clock=lambda: 1_000_000.0)
    version = file_version(testdata / BAM)
    claims = {"k": "f", "id": "htsnexus_test_NA12878", "f": "BAM", "v": version, "s": 0, "e": 10}
    async with http.get(f"{prefix}/{stale.sign(claims)}") as resp:
        await expect_error(resp, 403, "PermissionDenied")
    fresh = BlockSigner(secret, ttl_s=60)
    async with http.get(f"{prefix}/{fresh.sign(claims)}") as resp:
        assert resp.status == 200 and len(await resp.read()) == 10
    assert (home / "htsget.secret").stat().st_mode & 0o077 == 0


async def test_controlled_dataset_needs_a_grant(home: Path) -> None:
    settings = node_settings(home)
    locked = settings.model_copy(update={"datasets": {"htsget-public": DatasetSettings()}})
    app = create_app(locked, registry_factory=file_registry())  # type: ignore[arg-type]
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    try:
        url = f"http://127.0.0.1:{srv.port}{READS}"
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            await expect_error(resp, 401, "InvalidAuthentication")
    finally:
        await srv.close()


async def test_bad_bearer_token_is_invalid_authentication(http: aiohttp.ClientSession) -> None:
    headers = {"Authorization": "Bearer not-a-jwt"}
    async with http.get(READS, headers=headers) as resp:
        await expect_error(resp, 401, "InvalidAuthentication")
    async with http.get(READS, headers={"Authorization": "Basic abc"}) as resp:
        await expect_error(resp, 401, "InvalidAuthentication")


async def test_block_urls_refuse_a_changed_file(testdata: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.bam"
    shutil.copyfile(testdata / BAM, copy)
    ReadsCatalog(tmp_path / "reads").add(dataset="htsget-public", entry_id="copy", path=copy)
    app = create_app(node_settings(tmp_path), registry_factory=file_registry())  # type: ignore[arg-type]
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{srv.port}") as http:
            async with http.get("/htsget/reads/copy?referenceName=11") as resp:
                ticket = await ticket_of(resp)
            block = [u["url"] for u in ticket["htsget"]["urls"] if u["url"].startswith("http")]
            async with http.get(block[0]) as resp:
                assert resp.status == 200
            stat = copy.stat()
            os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
            async with http.get(block[0]) as resp:
                await expect_error(resp, 404, "NotFound")
            async with http.get("/htsget/reads/copy?referenceName=11") as resp:
                fresh = await ticket_of(resp)
            url = next(u["url"] for u in fresh["htsget"]["urls"] if u["url"].startswith("http"))
            async with http.get(url) as resp:
                assert resp.status == 200
    finally:
        await srv.close()


async def test_post_multi_region_cram(
    http: aiohttp.ClientSession, testdata: Path, tmp_path: Path
) -> None:
    samtools = require_tool("samtools")
    regions = [
        {"referenceName": "20", "start": 6_000_000, "end": 6_100_000},
        {"referenceName": "11", "start": 5_000_000, "end": 5_010_000},
        {"referenceName": "11", "start": 5_005_000, "end": 5_070_000},
    ]
    async with http.post(READS, json={"format": "CRAM", "regions": regions}) as resp:
        ticket = await ticket_of(resp)
    out = tmp_path / "multi.cram"
    out.write_bytes(await assemble(http, ticket))
    await run(samtools, "quickcheck", str(out))
    got = sam_records(await run(samtools, "view", str(out)))
    assert len(got) == len(set(got))
    await run(samtools, "index", str(out))
    wanted = ["11:5000001-5070000", "20:6000001-6100000"]
    source = str(testdata / "cram/htsnexus_test_NA12878.cram")
    truth = sam_records(await run(samtools, "view", "-M", source, *wanted))
    assert truth and sam_records(await run(samtools, "view", "-M", str(out), *wanted)) == truth


@pytest.mark.parametrize("fmt", ["VCF", "BCF"])
async def test_post_multi_region_variant_file(
    http: aiohttp.ClientSession, testdata: Path, tmp_path: Path, fmt: str
) -> None:
    bcftools = require_tool("bcftools")
    regions = [
        {"referenceName": "chr22", "start": 100, "end": 200},
        {"referenceName": "chrM", "start": 0, "end": 16000},
        {"referenceName": "chr22", "start": 150, "end": 100_000_000},
    ]
    body = {"format": fmt, "regions": regions}
    async with http.post("/htsget/variants/sample1-bcbio-cancer", json=body) as resp:
        ticket = await ticket_of(resp)
    out = tmp_path / f"multi.{fmt.lower()}"
    out.write_bytes(await assemble(http, ticket))
    got = (await run(bcftools, "view", "-H", str(out))).decode().splitlines()
    assert len(got) == len(set(got))
    source = testdata / f"{fmt.lower()}/sample1-bcbio-cancer.{'vcf.gz' if fmt == 'VCF' else 'bcf'}"
    truth = await run(bcftools, "view", "-H", "-r", "chrM:1-16000,chr22:101-100000000", str(source))
    assert truth.strip() and "\n".join(got) + "\n" == truth.decode()
