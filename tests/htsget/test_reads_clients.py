"""Reads and variants downloaded through real htsget clients equal samtools/bcftools output
for the same region of the source file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import htsget
import pytest

from tests.htsget.conftest import require_tool, run

BAM = "bam/htsnexus_test_NA12878.bam"
CRAM = "cram/htsnexus_test_NA12878.cram"
READS_ID = "htsnexus_test_NA12878"


def sam_records(text: bytes) -> list[str]:
    return [line for line in text.decode().splitlines() if line and not line.startswith("@")]


async def download(url: str, path: Path, **kwargs: object) -> None:
    def fetch() -> None:
        with path.open("wb") as fh:
            htsget.get(url, fh, **kwargs)

    await asyncio.to_thread(fetch)


async def overlapping(samtools: str, path: Path, region: str, *extra: str) -> list[str]:
    """Records of a downloaded file overlapping `region` (htsget may send more)."""
    await run(samtools, "index", str(path))
    return sam_records(await run(samtools, "view", *extra, str(path), region))


@pytest.mark.parametrize(
    ("ref", "start", "end"),
    [("11", 4_999_976, 5_002_000), ("11", 5_010_000, 5_100_000), ("20", 0, 100_000_000)],
)
async def test_bam_region_with_htsget_client(
    server: object, testdata: Path, tmp_path: Path, ref: str, start: int, end: int
) -> None:
    samtools = require_tool("samtools")
    out = tmp_path / "out.bam"
    url = f"http://127.0.0.1:{server.port}/htsget/reads/{READS_ID}"  # type: ignore[attr-defined]
    await download(url, out, reference_name=ref, start=start, end=end, data_format="BAM")
    region = f"{ref}:{start + 1}-{end}"
    truth = sam_records(await run(samtools, "view", str(testdata / BAM), region))
    assert truth, "the region must hold reads for the test to mean anything"
    assert await overlapping(samtools, out, region) == truth
    # No record twice and the file is whole (samtools quickcheck checks the EOF block).
    got_all = sam_records(await run(samtools, "view", str(out)))
    assert len(got_all) == len(set(got_all))
    await run(samtools, "quickcheck", str(out))


async def test_unplaced_reads(server: object, testdata: Path, tmp_path: Path) -> None:
    samtools = require_tool("samtools")
    out = tmp_path / "unplaced.bam"
    url = f"http://127.0.0.1:{server.port}/htsget/reads/{READS_ID}"  # type: ignore[attr-defined]
    await download(url, out, reference_name="*", data_format="BAM")
    truth = sam_records(await run(samtools, "view", str(testdata / BAM), "*"))
    assert truth
    # Placed reads sharing the first block may come along (htsget allows extra records).
    assert await overlapping(samtools, out, "*") == truth
    got_all = sam_records(await run(samtools, "view", str(out)))
    assert len(got_all) == len(set(got_all)) and got_all[-len(truth) :] == truth


async def test_samtools_follows_ticket(server: object, testdata: Path, tmp_path: Path) -> None:
    """htslib follows a ticket URL itself; the region goes in the query string."""
    samtools = require_tool("samtools")
    port = server.port  # type: ignore[attr-defined]
    url = (
        f"http://127.0.0.1:{port}/htsget/reads/{READS_ID}"
        "?format=BAM&referenceName=11&start=5000000&end=5050000"
    )
    out = tmp_path / "via-samtools.bam"
    await run(samtools, "view", "-b", "-o", str(out), url)
    region = "11:5000001-5050000"
    truth = sam_records(await run(samtools, "view", str(testdata / BAM), region))
    assert truth
    assert await overlapping(samtools, out, region) == truth


async def test_cram_region(server: object, testdata: Path, tmp_path: Path) -> None:
    samtools = require_tool("samtools")
    out = tmp_path / "out.cram"
    url = f"http://127.0.0.1:{server.port}/htsget/reads/{READS_ID}"  # type: ignore[attr-defined]
    await download(
        url, out, reference_name="11", start=5_000_000, end=5_050_000, data_format="CRAM"
    )
    region = "11:5000001-5050000"
    truth = sam_records(await run(samtools, "view", str(testdata / CRAM), region))
    assert truth
    assert await overlapping(samtools, out, region) == truth
    await run(samtools, "quickcheck", str(out))


@pytest.mark.parametrize(
    ("entry_id", "rel", "fmt"),
    [
        ("spec-v4.3", "vcf/spec-v4.3.vcf.gz", "VCF"),
        ("spec-v4.3", "bcf/spec-v4.3.bcf", "BCF"),
        ("sample1-bcbio-cancer", "vcf/sample1-bcbio-cancer.vcf.gz", "VCF"),
        ("sample1-bcbio-cancer", "bcf/sample1-bcbio-cancer.bcf", "BCF"),
    ],
)
async def test_variant_files(
    server: object, testdata: Path, tmp_path: Path, entry_id: str, rel: str, fmt: str
) -> None:
    bcftools = require_tool("bcftools")
    source = testdata / rel
    contigs = (await run(bcftools, "index", "-s", str(source))).decode().split()
    ref = contigs[-3] if len(contigs) >= 3 else contigs[0]
    port = server.port  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}/htsget/variants/{entry_id}"
    for kwargs, region in (({}, None), ({"reference_name": ref}, ref)):
        out = tmp_path / f"out.{fmt.lower()}"
        await download(url, out, data_format=fmt, **kwargs)
        view = [bcftools, "view", "-H"]
        truth = await run(*view, str(source), *(["-r", region] if region else []))
        got = await run(*view, str(out))
        assert truth.strip() and got == truth
        got_header = await run(bcftools, "view", "--no-version", "-h", str(out))
        assert got_header == await run(bcftools, "view", "--no-version", "-h", str(source))
