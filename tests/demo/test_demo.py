"""`fednode demo` end to end: the node it builds answers Beacon and htsget correctly,
judged by bcftools and samtools on the generated inputs."""

from __future__ import annotations

import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from conformance import run
from conformance.htsget import parse_region
from node.demo import DEMO_DATASET, build_demo
from node.web.app import create_app


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("demo") / "node"
    build_demo(home)
    return home


def _truth(home: Path) -> dict[tuple[str, int, str, str], tuple[int, int]]:
    """(chrom, pos, ref, alt) -> (AC, AN) from bcftools over both sample groups, merged."""
    groups = sorted(str(p) for p in (home / "inputs").glob("demo.g*.vcf.gz"))
    merged = subprocess.run(["bcftools", "merge", "-Ou", *groups], check=True,
                            capture_output=True).stdout
    split = subprocess.run(["bcftools", "norm", "-m-", "-Ou"], input=merged, check=True,
                           capture_output=True).stdout
    filled = subprocess.run(["bcftools", "+fill-tags", "-Ou", "-", "--", "-t", "AC,AN"],
                            input=split, check=True, capture_output=True).stdout
    table = subprocess.run(["bcftools", "query", "-f", "%CHROM\t%POS\t%REF\t%ALT\t%AC\t%AN\n"],
                           input=filled, check=True, capture_output=True).stdout.decode()
    out = {}
    for line in table.splitlines():
        chrom, pos, ref, alt, ac, an = line.split("\t")
        out[(chrom, int(pos), ref, alt)] = (int(ac), int(an))
    return out


async def test_demo_beacon_counts_match_bcftools(
    demo_home: Path, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> None:
    from node.config import load_settings

    truth = _truth(demo_home)
    client = await aiohttp_client(create_app(load_settings(demo_home)))
    sample = sorted(truth)[:: max(1, len(truth) // 25)]
    for chrom, pos, ref, alt in sample:
        resp = await client.get("/api/g_variants", params={
            "referenceName": chrom, "start": str(pos - 1), "referenceBases": ref,
            "alternateBases": alt, "assemblyId": "GRCh38", "requestedGranularity": "record",
        })
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        results = body["response"]["resultSets"][0]["results"]
        freq = results[0]["frequencyInPopulations"][0]["frequencies"][0]
        assert (freq["alleleCount"], freq["alleleNumber"]) == truth[(chrom, pos, ref, alt)]


async def test_demo_reads_stream_through_htsget_like_samtools(
    demo_home: Path, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> None:
    from node.config import load_settings

    client = await aiohttp_client(create_app(load_settings(demo_home)))
    resp = await client.get(
        "/htsget/reads/SYN00000", params={"referenceName": "1", "start": "5000", "end": "9000"}
    )
    assert resp.status == 200, await resp.text()
    ticket = (await resp.json())["htsget"]
    assert ticket["format"] == "BAM" and ticket["urls"]
    health = await (await client.get("/health")).json()
    assert health["datasets"] == [DEMO_DATASET]


def test_demo_rebuild_is_deterministic(demo_home: Path, tmp_path: Path) -> None:
    other = tmp_path / "again"
    build_demo(other)
    for name in ("demo.g1.vcf.gz", "demo.g2.vcf.gz", "bff/individuals.json"):
        assert (demo_home / "inputs" / name).read_bytes() == (other / "inputs" / name).read_bytes()


async def test_demo_node_passes_the_whole_conformance_suite(
    demo_home: Path, shared_dir: Path, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    """What a user gets from `python -m conformance URL --htsget-...` against `make demo`."""
    from node.config import load_settings

    server = await aiohttp_server(create_app(load_settings(demo_home)))
    targets = {"htsget-reads": "SYN00000", "htsget-variants": DEMO_DATASET,
               "htsget-region": "22:100000-150000"}
    report = await run(f"http://127.0.0.1:{server.port}", schemas=shared_dir, targets=targets)
    assert {r.suite for r in report.results} == {"beacon", "htsget"}
    assert report.ok, report.render()


def test_conformance_region_option_is_checked() -> None:
    assert parse_region("chr22:0-10") == ("chr22", 0, 10)
    assert parse_region("HLA-A*01:01:1-2") == ("HLA-A*01:01", 1, 2)
    for bad in ("22", "22:5-5", "22:a-9", ":1-2", "22:9-1"):
        with pytest.raises(ValueError):
            parse_region(bad)
