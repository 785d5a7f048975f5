"""Datasets TileDB-VCF itself writes (`tiledbvcf create` + `store` of per-sample files, run
here) served by fednode: Beacon-level answers equal bcftools on the input and fednode's
answers on its own dataset of the same input, for variant_stats versions 2 (TileDB-VCF's
default) and 3, before and after `build_aggregate`; and TileDB-VCF's own reading of its
`variant_stats` (`variant_stats_lookup`) equals its reader's (`vcfstats`)."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
import tiledb

from node.domain import AlleleKey, AlleleStats, Region
from node.names import VariantType
from node.store.dataset import layout
from node.store.ingest.aggregate_build import build_aggregate
from node.store.read.stats_lookup import variant_stats_lookup
from node.store.tiledbvcf import TileDBVCFStore
from tests.store.test_tiledbvcf import assert_stats_match, fill_tags_truth, sh
from tests.store.tiledbvcf_tool import TileDBVCF, gvcf_cohort, multi_record_cohort

WHOLE = 300_000_000
SAMPLES = [f"P{i:02d}" for i in range(12)]
REGIONS = [Region("1", 0, WHOLE), Region("X", 0, WHOLE), Region("1", 5_000, 12_000),
           Region("1", 13_611, 13_612), Region("X", 30_000, 35_000)]  # fmt: skip


@pytest.fixture(scope="module")
def tool(shared_dir: Path) -> TileDBVCF:
    return TileDBVCF.find(shared_dir)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[int]]:
    return multi_record_cohort(tmp_path_factory.mktemp("cohort") / "c.vcf.gz", SAMPLES, seed=5)


@pytest.fixture(scope="module")
def own(cohort: tuple[Path, set[int]], tmp_path_factory: pytest.TempPathFactory) -> TileDBVCFStore:
    """fednode's own dataset of the same (multi-sample) input: the second oracle."""
    store = TileDBVCFStore.create(str(tmp_path_factory.mktemp("own") / "ds"))
    store.ingest([cohort[0]])
    return store


@pytest.fixture(scope="module")
def written(
    tool: TileDBVCF, cohort: tuple[Path, set[int]], tmp_path_factory: pytest.TempPathFactory
) -> dict[int, Path]:
    """TileDB-VCF's datasets of the cohort, by variant_stats version (2 is its default)."""
    root = tmp_path_factory.mktemp("tiledbvcf")
    return {2: tool.store(cohort[0], root / "v2"), 3: tool.store(cohort[0], root / "v3", version=3)}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(params=[(2, False), (3, False), (2, True), (3, True)],
                ids=["v2", "v3", "v2-indexed", "v3-indexed"])  # fmt: skip
def theirs(
    request: pytest.FixtureRequest, written: dict[int, Path], tmp_path: Path
) -> TileDBVCFStore:
    version, indexed = request.param
    uri = _copy(written[version], tmp_path / "ds")
    with tiledb.open(str(uri / layout.VARIANT_STATS)) as arr:
        assert int(arr.meta["version"]) == version
    if indexed:
        build_aggregate(str(uri))
    store = TileDBVCFStore.open(str(uri))
    assert store.reads_genotypes_array is indexed  # one group: the fast path is used
    return store


def test_allele_statistics_equal_bcftools_and_own(
    theirs: TileDBVCFStore, own: TileDBVCFStore, cohort: tuple[Path, set[int]]
) -> None:
    vcf, differing = cohort
    truth = fill_tags_truth(vcf)
    # Where a second record lacks calls the first has, bcftools' AN is per record and
    # fednode's per site (a sample called in either): there fednode's own dataset decides.
    comparable = {k: v for k, v in truth.items() if k.start + 1 not in differing}
    assert assert_stats_match(theirs, comparable) > 100
    keys = list(truth)
    assert theirs.allele_stats(keys) == own.allele_stats(keys)
    at_two_records = [k for k in keys if sum(o.start == k.start for o in keys) > 1]
    assert len({k.start for k in at_two_records}) >= 8
    ans = {k.start: s.an for k, s in zip(keys, own.allele_stats(keys), strict=True) if s}
    for key, stats in zip(at_two_records, theirs.allele_stats(at_two_records), strict=True):
        assert stats is None or stats.an == ans[key.start] <= 2 * len(SAMPLES)


def test_variants_of_regions_equal_own(theirs: TileDBVCFStore, own: TileDBVCFStore) -> None:
    for region in REGIONS:
        assert list(theirs.variants(region)) == list(own.variants(region)), region
    snps = frozenset({VariantType.SNP})
    whole = Region("1", 0, WHOLE)
    assert list(theirs.variants(whole, variant_types=snps)) == list(
        own.variants(whole, variant_types=snps)
    )
    assert theirs.contigs() == own.contigs() == ("1", "X")


@pytest.fixture(params=[2, 3], ids=["v2", "v3"])
def both(
    request: pytest.FixtureRequest, written: dict[int, Path], tmp_path: Path
) -> tuple[TileDBVCFStore, TileDBVCFStore]:
    """One dataset TileDB-VCF wrote, as it is and with the fednode aggregate built."""
    uri = written[request.param]
    indexed = _copy(uri, tmp_path / "indexed")
    summary = build_aggregate(str(indexed))
    assert summary.genotypes and summary.groups == 1 and summary.samples == tuple(SAMPLES)
    return TileDBVCFStore.open(str(uri)), TileDBVCFStore.open(str(indexed))


def test_records_equal_own_and_bcftools(
    both: tuple[TileDBVCFStore, TileDBVCFStore],
    own: TileDBVCFStore,
    cohort: tuple[Path, set[int]],
) -> None:
    """Records, genotypes, FORMAT fields and INFO (a Flag before another field too), from
    `data` and from the aggregate's `fednode_genotypes`."""
    plain, indexed = both
    assert not plain.reads_genotypes_array and indexed.reads_genotypes_array
    some = ["P03", "P07", "P11"]
    for theirs in both:
        for region in REGIONS:
            mine = [r for b in theirs.records(region) for r in b]
            assert mine == [r for b in own.records(region) for r in b], region
            subset = [r for b in theirs.records(region, samples=some) for r in b]
            assert subset == [r for b in own.records(region, samples=some) for r in b]
    region = Region("1", 0, WHOLE)
    flagged = [r for b in indexed.records(region) for r in b if r.info.get("DB") is True]
    assert any("AF_IN" in r.info for r in flagged)
    calls: Counter[tuple[object, ...]] = Counter()
    for r in [x for c in ("1", "X") for b in indexed.records(Region(c, 0, WHOLE)) for x in b]:
        for c in r.calls:
            sep = "|" if c.phased else "/"
            gt = sep.join("." if a is None else str(a) for a in c.alleles)
            calls[(c.sample, r.source_contig, r.start + 1, r.ref, ",".join(r.alts), gt)] += 1
    fmt = "'[%SAMPLE\\t%CHROM\\t%POS\\t%REF\\t%ALT\\t%GT\\n]'"
    expected: Counter[tuple[object, ...]] = Counter()
    for line in sh(f"bcftools query -f {fmt} {cohort[0]}").splitlines():
        sample, chrom, pos, ref, alt, gt = line.split("\t")
        expected[(sample, chrom, int(pos), ref, alt, gt)] += 1
    assert calls == expected and sum(calls.values()) > 1000


def test_genotype_matrices_equal_data_path(
    both: tuple[TileDBVCFStore, TileDBVCFStore], own: TileDBVCFStore
) -> None:
    plain, indexed = both
    for region in REGIONS:
        rows = [_matrix_rows(s.genotype_batches(region)) for s in (plain, indexed, own)]
        assert rows[0] == rows[1] == rows[2], region


def _matrix_rows(batches: object) -> list[tuple[object, ...]]:
    out = []
    for b in batches:  # type: ignore[attr-defined]
        for i, site in enumerate(b.sites):
            cells = tuple(
                (tuple(int(a) for a in b.alleles[i, j] if a != -2), bool(b.phased[i, j]))
                if b.present[i, j] else None
                for j in range(len(b.samples))
            )  # fmt: skip
            out.append((site, b.samples, cells))
    return out


@pytest.mark.parametrize("version", [2, 3])
def test_variant_stats_lookup_is_tiledbvcf_reader(
    tool: TileDBVCF, written: dict[int, Path], own: TileDBVCFStore, version: int
) -> None:
    """Both versions read as TileDB-VCF reads them (its AN counts a sample once per record
    at a multi-record site: not the Beacon's answer, see stats_lookup)."""
    uri = written[version]
    rows = tool.variant_stats(uri, ["chr1:1-300000000", "chrX:1-300000000"])
    assert rows and any(an > 2 * len(SAMPLES) for *_, an in rows)  # double-counted sites
    with tiledb.open(str(uri / layout.VARIANT_STATS)) as arr:
        for contig in ("chr1", "chrX"):
            mine = [r for r in rows if r[0] == contig and r[2] not in ("ref", "nr")]
            points = [(pos, *allele.split(",")) for _, pos, allele, _, _ in mine]
            found = variant_stats_lookup(arr, contig, points)  # type: ignore[arg-type]
            assert [(f.ac, f.an) if f else None for f in found] == [(r[3], r[4]) for r in mine]
            assert variant_stats_lookup(arr, contig, [(1, "A", "T")]) == [None]
    # An allele nobody carries at a called site: AC 0 over the site's AN; before any
    # record nobody is called: unknown.
    last = max(p for c, p, *_ in rows if c == "chr1")
    (carried, *_) = [v for v in own.variants(Region("1", last, last + 1)) if v.start == last]
    uncarried, uncalled = AlleleKey("1", last, "N", "N"), AlleleKey("1", 0, "N", "N")
    assert own.allele_stats([uncarried, uncalled]) == [
        AlleleStats(0, carried.stats.an, 0, 0, 0, carried.stats.n_called), None]


@pytest.mark.parametrize("version", [2, 3])
def test_gvcf_reference_blocks_count_as_called(
    tool: TileDBVCF, tmp_path: Path, version: int
) -> None:
    """Per-sample gVCFs: a sample inside a `<NON_REF>` block at a variant site is called
    hom-ref there (AN), as on fednode's own dataset of the same files; before and after
    the build (the samples share no records: no fednode_genotypes)."""
    files = gvcf_cohort(tmp_path / "in", [f"G{i}" for i in range(6)], seed=3)
    own = TileDBVCFStore.create(str(tmp_path / "own"))
    own.ingest(files)
    uri = tool.store_files(files, tmp_path / "theirs", version=version)
    region = Region("1", 0, 100_000)
    expected = list(own.variants(region))
    records = [r for b in own.records(region) for r in b]
    assert len(expected) > 20 and any(v.stats.an > 2 * v.stats.n_carriers for v in expected)
    keys = [AlleleKey(v.contig, v.start, v.ref, v.alt) for v in expected]
    for build in (False, True):
        if build:
            assert not build_aggregate(str(uri)).genotypes
        theirs = TileDBVCFStore.open(str(uri))
        assert list(theirs.variants(region)) == expected
        assert theirs.allele_stats(keys) == own.allele_stats(keys)
        assert [r for b in theirs.records(region) for r in b] == records
