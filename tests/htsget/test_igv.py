"""igv.js (npm `igv`) in headless Chromium loads an alignment and a variant track from the
node through `sourceType: "htsget"`, from another origin (tickets and blocks need CORS).
What igv.js loaded, read from its own API, is checked against samtools/bcftools."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import REPO
from tests.htsget.conftest import require_tool, run

IGV_DIST = REPO / "node_modules" / "igv" / "dist"
PAGES = Path(__file__).parent / "igv"
READS_LOCUS = ("11", 5_000_000, 5_002_000)
VARIANTS_LOCUS = ("20", 14_000, 18_000)


def _requirements() -> str:
    node, chromium = shutil.which("node"), shutil.which("chromium")
    if node is None or chromium is None:
        pytest.skip("node and chromium are needed (make test installs them)")
    if (
        not (IGV_DIST / "igv.min.js").is_file()
        or not (REPO / "node_modules/playwright-core").is_dir()
    ):
        pytest.skip("igv / playwright-core not installed: run `npm ci` (make test does)")
    return node


@pytest.fixture
async def page_server() -> AsyncIterator[TestServer]:
    async def chrom_sizes(request: web.Request) -> web.Response:
        return web.Response(text="11\t135006516\n20\t63025520\n")

    app = web.Application()
    app.router.add_get("/chrom.sizes", chrom_sizes)
    app.router.add_static("/igv", IGV_DIST)
    app.router.add_static("/page", PAGES)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    yield srv
    await srv.close()


async def test_igv_loads_htsget_tracks(
    server: TestServer,
    page_server: TestServer,
    testdata: Path,
    tmp_path: Path,
) -> None:
    node = _requirements()
    samtools, bcftools = require_tool("samtools"), require_tool("bcftools")
    out_dir = tmp_path  # the test's own output folder: screenshots land here
    reads_locus = "{}:{}-{}".format(*READS_LOCUS)
    variants_locus = "{}:{}-{}".format(*VARIANTS_LOCUS)
    raw = await run(
        node,
        str(PAGES / "driver.mjs"),
        f"http://127.0.0.1:{page_server.port}/page/page.html",
        f"http://127.0.0.1:{server.port}",
        "htsnexus_test_NA12878",
        "spec-v4.3",
        str(out_dir),
        reads_locus,
        variants_locus,
    )
    result = json.loads(raw)
    assert result["errors"] == []
    assert (out_dir / "igv-0.png").stat().st_size > 0

    got_reads = set(result[reads_locus]["alignment"])
    bam = str(testdata / "bam/htsnexus_test_NA12878.bam")
    in_locus = _name_pos(await run(samtools, "view", "-F", "0x4", bam, reads_locus))
    on_contig = _name_pos(await run(samtools, "view", bam, READS_LOCUS[0]))
    assert got_reads, "igv.js loaded no alignments"
    # igv.js loads a window around the locus and filters duplicates / QC-failed reads.
    assert got_reads <= on_contig
    assert len(got_reads & in_locus) >= 0.9 * len(in_locus)

    got_variants = result[variants_locus]["variant"]
    vcf = await run(
        bcftools,
        "query",
        "-r",
        variants_locus,
        "-f",
        "%CHROM\t%POS\n",
        str(testdata / "vcf/spec-v4.3.vcf.gz"),
    )
    assert got_variants and sorted(got_variants) == sorted(vcf.decode().splitlines())


def _name_pos(sam: bytes) -> set[str]:
    return {"\t".join(line.split("\t")[0:4:3]) for line in sam.decode().splitlines()}
