"""A store on object storage (`s3://`, served by moto's S3 server in a child process): the
same dataset layout through TileDB's VFS, statistics equal to bcftools, answers equal to
the same input on local disk, a failed ingest that changes nothing, and a node home whose
`store_uri` is an `s3://` prefix, from `fednode ingest` to a Beacon answer."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import moto.server  # noqa: F401  (a test extra; its server runs in a child process)
import pytest

from node.config import DatasetSettings, Settings
from node.domain import AlleleKey, Region
from node.errors import IngestError
from node.names import Granularity, SecurityLevel
from node.store.tiledbvcf import TileDBVCFStore, list_datasets
from node.web.app import create_app
from tests.moto_s3 import moto_s3
from tests.store import test_tiledbvcf as vcfs  # bcftools truth and VCF writers

pytestmark = pytest.mark.skipif(vcfs.BCFTOOLS is None, reason="bcftools is not installed")
BUCKET = "fednode"
WHOLE = (Region("1", 0, 300_000_000), Region("X", 0, 300_000_000))


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """TileDB configuration for moto's S3 server on loopback with one empty bucket."""
    with moto_s3(BUCKET) as (_, config):
        yield config


def _prefix() -> str:
    return f"s3://{BUCKET}/{uuid.uuid4().hex}"


def _answers(store: TileDBVCFStore, keys: list[AlleleKey]) -> tuple[Any, ...]:
    records = [r for region in WHOLE for batch in store.records(region) for r in batch]
    from_data = [r for region in WHOLE for b in store._data_batches(region, None)
                 for r in b.records()]
    assert records == from_data  # both read paths, through the same VFS
    variants = [v for region in WHOLE for v in store.variants(region)]
    return store.samples, store.contigs(), store.allele_stats(keys), records, variants


def test_ingest_on_object_storage_answers_as_bcftools_and_as_local_disk(
    s3: dict[str, str], tmp_path: Path
) -> None:
    names = [f"P{i}" for i in range(6)]
    vcf = vcfs.write_vcf(tmp_path / "c.vcf.gz", names, vcfs.cohort_rows(6, seed=21))
    truth = vcfs.fill_tags_truth(vcf)
    root = f"{_prefix()}/datasets"
    remote = TileDBVCFStore.create(f"{root}/ds", assembly="GRCh38", tiledb_config=s3)
    remote.ingest([vcf])
    remote.close()
    assert list_datasets(root, tiledb_config=s3) == ["ds"]
    remote = TileDBVCFStore.open(f"{root}/ds", tiledb_config=s3)
    assert vcfs.assert_stats_match(remote, truth) > 100
    local = TileDBVCFStore.create(str(tmp_path / "local"), assembly="GRCh38")
    local.ingest([vcf])
    keys = list(truth)
    assert _answers(remote, keys) == _answers(local, keys)


def test_a_failed_ingest_on_object_storage_changes_nothing(
    s3: dict[str, str], tmp_path: Path
) -> None:
    base = vcfs.write_vcf(tmp_path / "a.vcf.gz", ["A1", "A2", "A3"], vcfs.cohort_rows(3, seed=5))
    keys = list(vcfs.fill_tags_truth(base))
    uri = f"{_prefix()}/ds"
    store = TileDBVCFStore.create(uri, tiledb_config=s3)
    store.ingest([base])
    before = _answers(store, keys)
    rows = vcfs.cohort_rows(2, seed=9, records=40)
    fields = rows[30].split("\t")
    fields[1] = "12x4"  # an unparseable POS on the 31st record
    rows[30] = "\t".join(fields)
    bad = vcfs.write_vcf(tmp_path / "bad.vcf.gz", ["N1", "N2"], rows)
    line = int(vcfs.sh(f"gzip -dc {bad} | grep -c '^#'")) + 31
    with pytest.raises(IngestError, match=rf"bad\.vcf\.gz:{line}: malformed record"):
        store.ingest([bad])
    assert _answers(store, keys) == before
    assert _answers(TileDBVCFStore.open(uri, tiledb_config=s3), keys) == before
    rows = vcfs.cohort_rows(2, seed=9, records=40)
    good = vcfs.write_vcf(tmp_path / "b.vcf.gz", ["N1", "N2"], rows)
    store.ingest([good])
    assert store.samples == ("A1", "A2", "A3", "N1", "N2")
    assert vcfs.assert_stats_match(store, vcfs.fill_tags_truth(good)) > 0


async def test_a_home_with_an_s3_store_uri_ingests_and_answers(
    s3: dict[str, str], tmp_path: Path, aiohttp_client: Any
) -> None:
    names = [f"P{i}" for i in range(4)]
    vcf = vcfs.write_vcf(tmp_path / "c.vcf.gz", names, vcfs.cohort_rows(4, seed=3))
    home = tmp_path / "home"
    root = f"{_prefix()}/datasets"

    def fednode(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "node", *map(str, args)],
                              capture_output=True, text=True, timeout=300)

    assert fednode("init", home).returncode == 0
    config = home / "fednode.toml"
    text = config.read_text().replace('store_uri = "datasets"', f'store_uri = "{root}"')
    table = "\n".join(f'"{k}" = "{v}"' for k, v in s3.items())
    config.write_text(f"{text}\n[tiledb_config]\n{table}\n")
    done = fednode("ingest", home, "--dataset", "cohort", vcf)
    assert done.returncode == 0, done.stderr
    assert list(home.joinpath("datasets").iterdir()) == []  # the data went to the bucket
    assert list_datasets(root, tiledb_config=s3) == ["cohort"]

    truth = vcfs.fill_tags_truth(vcf)
    carried = next(k for k, v in truth.items() if v[0] > 0)
    absent = AlleleKey(carried.contig, carried.start, carried.ref, "TTTTTTTT")
    settings = Settings(home=home, datasets={"cohort": DatasetSettings(
        assembly="GRCh38", security_level=SecurityLevel.PUBLIC,
        max_granularity={SecurityLevel.PUBLIC: Granularity.COUNT})},
        privacy={"budget": {"enabled": False}})
    assert settings.store_uri == root and settings.tiledb_config == s3
    client = await aiohttp_client(create_app(settings))
    health = await (await client.get("/health")).json()
    assert health["datasets"] == ["cohort"]
    for key, exists in ((carried, True), (absent, False)):
        resp = await client.get("/api/g_variants", params={
            "referenceName": key.contig, "start": str(key.start), "referenceBases": key.ref,
            "alternateBases": key.alt, "datasetIds": "cohort"})
        body = await resp.json()
        assert resp.status == 200, body
        assert body["responseSummary"]["exists"] is exists
