"""/htsget/variants/{datasetId}: VCF/BCF generated from the store equal bcftools' view of
the VCF the store was built from (the in-memory reference store and TileDB)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from node.store.base import VariantStore
from node.store.memory import MemoryStore
from node.web.app import create_app
from tests.htsget.conftest import PUBLIC_RECORDS, file_registry, node_settings, require_tool, run
from tests.htsget.test_reads_clients import download

SOURCE = "vcf/sample1-bcbio-cancer.vcf.gz"
QUERY = "%CHROM\t%POS\t%ID\t%REF\t%ALT[\t%GT]\n"


def memory_store(source: Path, tmp: Path) -> VariantStore:
    store = MemoryStore()
    store.ingest([source])
    return store


def tiledb_store(source: Path, tmp: Path) -> VariantStore:
    from node.store.tiledbvcf import TileDBVCFStore

    store = TileDBVCFStore.create(str(tmp / "tiledb-ds"), assembly="GRCh38")
    store.ingest([source])
    return store


@pytest.fixture(params=[memory_store, tiledb_store], ids=["memory", "tiledb"])
async def store_server(request: pytest.FixtureRequest, home: Path, testdata: Path) -> object:
    store = request.param(testdata / SOURCE, home)
    settings = node_settings(home, cohort=PUBLIC_RECORDS)
    app = create_app(settings, registry_factory=file_registry({"cohort": store}))  # type: ignore[arg-type]
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    yield srv
    await srv.close()
    store.close()


@pytest.mark.parametrize("fmt", ["VCF", "BCF"])
@pytest.mark.parametrize(
    ("ref", "start", "end", "region"),
    [("chr22", None, None, "chr22"), ("22", 100, 160, "chr22:101-160"), ("chrM", 0, 20000, "chrM")],
)
async def test_store_variants_match_source(
    store_server: object,
    testdata: Path,
    tmp_path: Path,
    fmt: str,
    ref: str,
    start: int | None,
    end: int | None,
    region: str,
) -> None:
    bcftools = require_tool("bcftools")
    out = tmp_path / f"out.{fmt.lower()}"
    url = f"http://127.0.0.1:{store_server.port}/htsget/variants/cohort"  # type: ignore[attr-defined]
    kwargs = {"start": start, "end": end} if start is not None else {}
    await download(url, out, reference_name=ref, data_format=fmt, **kwargs)
    truth = await run(bcftools, "query", "-r", region, "-f", QUERY, str(testdata / SOURCE))
    assert truth.strip()
    assert await run(bcftools, "query", "-f", QUERY, str(out)) == truth


async def test_store_whole_dataset_and_header(
    store_server: object, testdata: Path, tmp_path: Path
) -> None:
    bcftools = require_tool("bcftools")
    out = tmp_path / "all.vcf.gz"
    url = f"http://127.0.0.1:{store_server.port}/htsget/variants/cohort"  # type: ignore[attr-defined]
    await download(url, out)
    truth = await run(bcftools, "query", "-f", QUERY, str(testdata / SOURCE))
    got = await run(bcftools, "query", "-f", QUERY, str(out))
    # Contigs come in the store's order (22 before MT), records within a contig in order.
    assert _by_contig(got) == _by_contig(truth)
    samples = await run(bcftools, "query", "-l", str(out))
    assert samples == await run(bcftools, "query", "-l", str(testdata / SOURCE))


def _by_contig(text: bytes) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.decode().splitlines():
        out.setdefault(line.split("\t")[0], []).append(line)
    return out
