"""Reads on object storage: BAM/CRAM registered by `fednode reads add` as `s3://` objects
(moto's S3 server) or `http://` URLs, downloaded with the real htsget client, equal to
samtools on the local file; a changed object (ETag) refuses the old ticket's block URLs;
bad locations are one-line CLI errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from node.cli import main
from node.reads.remote import s3_client
from node.web.app import create_app
from tests.htsget.conftest import file_registry, node_settings, require_tool, run
from tests.htsget.test_reads_clients import download, overlapping, sam_records
from tests.moto_s3 import moto_s3

BUCKET = "fednode-reads"
BAM = "bam/htsnexus_test_NA12878.bam"
CRAM = "cram/htsnexus_test_NA12878.cram"
REGION = ("11", 4_999_976, 5_050_000)


@pytest.fixture(scope="module")
def s3(shared_dir: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The server, holding the BAM and CRAM of ../shared with their indices."""
    data = shared_dir / "htsget-testdata"
    with moto_s3(BUCKET) as (endpoint, config):
        client = s3_client(config)
        for rel in (BAM, BAM + ".bai", CRAM, CRAM + ".crai"):
            client.put_object(Bucket=BUCKET, Key=rel, Body=(data / rel).read_bytes(),
                              ACL="public-read")  # public: also fetched as http:// URLs
        yield endpoint, config


def _home(tmp_path: Path, config: dict[str, str]) -> Path:
    home = tmp_path / "node"
    assert main(["init", str(home)]) == 0
    table = "\n".join(f'"{k}" = "{v}"' for k, v in config.items())
    with (home / "fednode.toml").open("a") as fh:
        fh.write(f"\n[tiledb_config]\n{table}\n")
    return home


def _add(home: Path, entry_id: str, location: str, *extra: str) -> int:
    return main(["reads", "add", str(home), "--dataset", "htsget-public", "--id", entry_id,
                 *extra, location])  # fmt: skip


async def _serve(home: Path) -> TestServer:
    app = create_app(node_settings(home), registry_factory=file_registry())  # type: ignore[arg-type]
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    return srv


@pytest.mark.parametrize(("rel", "fmt"), [(BAM, "BAM"), (CRAM, "CRAM")])
async def test_s3_reads_through_the_htsget_client_equal_samtools(
    s3: tuple[str, dict[str, str]], testdata: Path, tmp_path: Path, rel: str, fmt: str
) -> None:
    samtools = require_tool("samtools")
    home = _home(tmp_path, s3[1])
    assert _add(home, "na12878", f"s3://{BUCKET}/{rel}") == 0  # index found beside it
    srv = await _serve(home)
    try:
        ref, start, end = REGION
        out = tmp_path / f"out.{fmt.lower()}"
        url = f"http://127.0.0.1:{srv.port}/htsget/reads/na12878"
        await download(url, out, reference_name=ref, start=start, end=end, data_format=fmt)
    finally:
        await srv.close()
    region = f"{ref}:{start + 1}-{end}"
    truth = sam_records(await run(samtools, "view", str(testdata / rel), region))
    assert truth, "the region must hold reads for the test to mean anything"
    assert await overlapping(samtools, out, region) == truth
    got_all = sam_records(await run(samtools, "view", str(out)))
    assert len(got_all) == len(set(got_all))
    await run(samtools, "quickcheck", str(out))


async def test_http_url_reads_equal_samtools(
    s3: tuple[str, dict[str, str]], testdata: Path, tmp_path: Path
) -> None:
    samtools = require_tool("samtools")
    home = _home(tmp_path, {})
    base = f"{s3[0]}/{BUCKET}/{BAM}"
    assert _add(home, "na12878", base, "--index", base + ".bai") == 0
    srv = await _serve(home)
    try:
        out = tmp_path / "out.bam"
        url = f"http://127.0.0.1:{srv.port}/htsget/reads/na12878"
        await download(url, out, reference_name="20", data_format="BAM")
    finally:
        await srv.close()
    truth = sam_records(await run(samtools, "view", str(testdata / BAM), "20"))
    assert truth
    assert await overlapping(samtools, out, "20") == truth


async def test_a_changed_object_refuses_the_old_ticket(
    s3: tuple[str, dict[str, str]], testdata: Path, tmp_path: Path
) -> None:
    home = _home(tmp_path, s3[1])
    client = s3_client(s3[1])
    key = f"copy-{tmp_path.name}.bam"
    original = (testdata / BAM).read_bytes()
    client.put_object(Bucket=BUCKET, Key=key, Body=original)
    assert _add(home, "copy", f"s3://{BUCKET}/{key}", "--index",
                f"s3://{BUCKET}/{BAM}.bai") == 0  # fmt: skip
    srv = await _serve(home)
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{srv.port}/htsget/reads/copy?referenceName=11"
            async with http.get(url) as resp:
                assert resp.status == 200
                ticket: dict[str, Any] = await resp.json(content_type=None)
            blocks = [u["url"] for u in ticket["htsget"]["urls"] if u["url"].startswith("http")]
            async with http.get(blocks[-1]) as resp:
                assert resp.status == 200  # served while the object is the ticketed one
            # Same size, one byte different (in the last block, not the one fetched first):
            # only the ETag tells the versions apart.
            changed = original[:-40] + bytes([original[-40] ^ 1]) + original[-39:]
            client.put_object(Bucket=BUCKET, Key=key, Body=changed)
            for block in (blocks[0], blocks[-1]):
                async with http.get(block) as resp:
                    body = await resp.json(content_type=None)
                    assert resp.status == 404, body
                    assert body["htsget"]["error"] == "NotFound"
                    assert "changed" in body["htsget"]["message"]
    finally:
        await srv.close()


def test_bad_locations_are_one_line_errors(
    s3: tuple[str, dict[str, str]], testdata: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = _home(tmp_path, s3[1])
    capsys.readouterr()
    cases = [
        (f"s3://{BUCKET}/missing.bam", "no object missing.bam"),
        ("https://user:secret@example.org/x.bam", "must not carry credentials"),
        (f"{s3[0]}/{BUCKET}/{BAM}?X-Amz-Signature=abc", "must not carry credentials"),
        ("ftp://example.org/x.bam", "unsupported location scheme"),
    ]
    for location, message in cases:
        assert _add(home, "x", location) == 2, location
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
        assert "secret" not in err and "Traceback" not in err
    client = s3_client(s3[1])
    client.put_object(Bucket=BUCKET, Key="lonely.bam", Body=(testdata / BAM).read_bytes())
    assert _add(home, "x", f"s3://{BUCKET}/lonely.bam") == 2  # no index beside it
    assert "no index beside" in capsys.readouterr().err
    client.put_object(Bucket=BUCKET, Key="notes.txt", Body=b"not genomic\n")
    assert _add(home, "x", f"s3://{BUCKET}/notes.txt") == 2
    assert "notes.txt: not BGZF" in capsys.readouterr().err
    assert not (home / "reads" / "catalog.json").exists()  # nothing was registered
