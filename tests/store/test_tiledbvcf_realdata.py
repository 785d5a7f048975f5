"""Real inputs from ../shared (Beacon and htsget test data, 1000 Genomes extracts) ingested
and compared with bcftools +fill-tags allele by allele."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.domain import Region
from node.store.tiledbvcf import TileDBVCFStore
from tests.store.test_tiledbvcf import BCFTOOLS, assert_stats_match, fill_tags_truth, sh

pytestmark = pytest.mark.skipif(BCFTOOLS is None, reason="bcftools is not installed")

SMALL_INPUTS = [
    "beacon-testdata/ega-beacon2-ri-tools-v2/vcf/case1C_subset.vcf.gz",
    "beacon-testdata/ega-beacon2-ri-tools-v2/vcf/synthetic_usecases_4beacon_testingV4.vcf.gz",
    "htsget-testdata/vcf/sample1-bcbio-cancer.vcf.gz",
    "htsget-testdata/vcf/spec-v4.3.vcf.gz",
]
# examples/test_1000G_hg38.vcf.gz (2,548 samples x 3,042 records) also matches, checked by
# hand; it takes ~3 minutes on two cores, so the suite runs the smaller one.
COHORTS = ["beacon-testdata/cnag-beacon2-cbi-tools/integration_assets/test_1000G.vcf.gz"]


def _input(shared_dir: Path, relative: str) -> Path:
    path = shared_dir / relative
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return path


def _check(vcf: Path, tmp_path: Path) -> TileDBVCFStore:
    store = TileDBVCFStore.create(str(tmp_path / "ds"))
    summary = store.ingest([vcf])
    assert summary.records == int(sh(f"bcftools view -H {vcf} | wc -l"))
    assert list(store.samples) == sh(f"bcftools query -l {vcf}").split()
    truth = fill_tags_truth(vcf)
    # every carried allele is checked, and uncarried ones at called sites (AC 0 over AN)
    assert assert_stats_match(store, truth) >= sum(1 for v in truth.values() if v[0] > 0) > 0
    return store


@pytest.mark.parametrize("relative", SMALL_INPUTS)
def test_small_real_inputs(shared_dir: Path, tmp_path: Path, relative: str) -> None:
    vcf = _input(shared_dir, relative)
    store = _check(vcf, tmp_path)
    contig = sh(f"bcftools query -f '%CHROM\\n' {vcf}").split()[0]
    stored = sh(f"bcftools view -H -t {contig} {vcf} | wc -l")
    records = [r for b in store.records(Region(contig, 0, 300_000_000)) for r in b]
    assert len(records) == int(stored) > 0
    assert all(r.source_contig == contig for r in records)


@pytest.mark.slow
@pytest.mark.parametrize("relative", COHORTS)
def test_1000_genomes_cohorts(shared_dir: Path, tmp_path: Path, relative: str) -> None:
    """2,504 / 2,548 samples: statistics of every allele equal bcftools'."""
    _check(_input(shared_dir, relative), tmp_path)
