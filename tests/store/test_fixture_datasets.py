"""Datasets written by TileDB-VCF 0.40 itself (../shared/tiledbvcf-fixture) read through fednode,
checked against bcftools on their inputs; and fednode's own writes of the same inputs compared
with them cell by cell."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tiledb

from node.domain import Region, normalize_contig
from node.store.dataset import layout
from node.store.tiledbvcf import TileDBVCFStore
from tests.store.test_tiledbvcf import BCFTOOLS, assert_stats_match, fill_tags_truth, sh

pytestmark = pytest.mark.skipif(BCFTOOLS is None, reason="bcftools is not installed")
WHOLE = 300_000_000
INPUTS = {
    "ds_small": "inputs/small/small*.bcf",
    "ds_synthetic_gvcf10": "inputs/synthetic_gvcf/G*.bcf",
    "ds_snp_cohort10": "inputs/snp_cohort10/S0*.vcf.gz",
}


@pytest.fixture(scope="module")
def fixture_dir(shared_dir: Path) -> Path:
    path = shared_dir / "tiledbvcf-fixture"
    if not path.is_dir():
        pytest.skip(f"{path} not present: TileDB-VCF fixture datasets unavailable")
    return path


def inputs(fixture_dir: Path, name: str) -> list[Path]:
    return sorted(fixture_dir.glob(INPUTS[name]))


@pytest.fixture(scope="module")
def ours(fixture_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, TileDBVCFStore]:
    """The fixture inputs ingested by fednode into fresh datasets."""
    root = tmp_path_factory.mktemp("roundtrip")
    stores = {}
    for name in INPUTS:
        with tiledb.open(str(fixture_dir / name / layout.VARIANT_STATS)) as arr:
            version = int(arr.meta["version"])  # as the fixture was created
        store = TileDBVCFStore.create(str(root / name), variant_stats_version=version)
        store.ingest(inputs(fixture_dir, name))
        stores[name] = store
    return stores


@pytest.mark.parametrize("name", list(INPUTS))
def test_samples_and_contigs(fixture_dir: Path, name: str) -> None:
    store = TileDBVCFStore.open(str(fixture_dir / name))
    files = " ".join(map(str, inputs(fixture_dir, name)))
    expected = sorted(
        {s for f in inputs(fixture_dir, name) for s in sh(f"bcftools query -l {f}").split()}
    )
    assert list(store.samples) == expected
    chroms = {
        normalize_contig(c)
        for c in sh(f"for f in {files}; do bcftools query -f '%CHROM\\n' $f; done").split()
    }
    assert set(store.contigs()) == chroms


def test_cohort_statistics_match_fill_tags(fixture_dir: Path) -> None:
    """variant_stats (per sample rows, normalised alleles) summed per allele = fill-tags."""
    store = TileDBVCFStore.open(str(fixture_dir / "ds_snp_cohort10"))
    merged = fixture_dir / "inputs/snp_cohort10/merged10.vcf.gz"
    assert assert_stats_match(store, fill_tags_truth(merged)) > 3000


def test_cohort_variants_are_input_alleles_with_statistics(fixture_dir: Path) -> None:
    store = TileDBVCFStore.open(str(fixture_dir / "ds_snp_cohort10"))
    truth = fill_tags_truth(fixture_dir / "inputs/snp_cohort10/merged10.vcf.gz")
    region = Region("1", 20_500_000, 21_000_000)
    got = {v.key: v for v in store.variants(region)}
    expected = {k for k, v in truth.items() if region.start <= k.start < region.end and v[0] > 0}
    assert set(got) == expected and len(expected) > 100
    assert any(len(k.ref) > 1 for k in expected)  # indels come back as in the VCF, not trimmed
    assert all((got[k].stats.ac, got[k].stats.an) == truth[k][:2] for k in expected)


def _input_calls(files: list[Path], region: str | None = None) -> Counter[tuple[object, ...]]:
    fmt = "'[%SAMPLE]\\t%CHROM\\t%POS\\t%REF\\t%ALT\\t%END\\t[%GT]\\n'"
    where = f"-r {region}" if region else ""
    out: Counter[tuple[object, ...]] = Counter()
    for f in files:
        for line in sh(f"bcftools query {where} -f {fmt} {f}").splitlines():
            sample, chrom, pos, ref, alt, end, gt = line.split("\t")
            stop = int(end) if end != "." else int(pos) + len(ref) - 1
            out[(sample, chrom, int(pos), ref, alt, stop, gt.replace("|", "/"))] += 1
    return out


def _store_calls(store: TileDBVCFStore, region: Region) -> Counter[tuple[object, ...]]:
    out: Counter[tuple[object, ...]] = Counter()
    for batch in store.records(region):
        for r in batch:
            for c in r.calls:
                gt = "/".join("." if a is None else str(a) for a in c.alleles)
                out[
                    (c.sample, r.source_contig, r.start + 1, r.ref, ",".join(r.alts), r.end, gt)
                ] += 1
    return out


@pytest.mark.parametrize("name", ["ds_small", "ds_synthetic_gvcf10"])
def test_records_match_inputs(fixture_dir: Path, name: str) -> None:
    store = TileDBVCFStore.open(str(fixture_dir / name))
    got: Counter[tuple[object, ...]] = Counter()
    for contig in store.contigs():
        got += _store_calls(store, Region(contig, 0, WHOLE))
    assert got == _input_calls(inputs(fixture_dir, name)) and sum(got.values()) >= 14


def test_long_gvcf_blocks_are_returned_once_per_region(fixture_dir: Path) -> None:
    """Anchors: a 100 kb block overlapping a region comes back exactly once (bcftools -r)."""
    store = TileDBVCFStore.open(str(fixture_dir / "ds_synthetic_gvcf10"))
    files = inputs(fixture_dir, "ds_synthetic_gvcf10")
    rng = random.Random(2)
    for _ in range(12):
        start = rng.randint(0, 3_000_000)
        end = start + rng.choice([1, 10, 500, 5000])
        expected = _input_calls(files, f"1:{start + 1}-{end}")
        assert _store_calls(store, Region("1", start, end)) == expected


@pytest.mark.slow
def test_round_trip_layout_is_tiledbvcf_v4(
    fixture_dir: Path, ours: dict[str, TileDBVCFStore]
) -> None:
    """fednode writes the same schemas, metadata and (byte-identical) data cells."""
    theirs, mine = fixture_dir / "ds_snp_cohort10", Path(ours["ds_snp_cohort10"].uri)
    for name in layout.TILEDBVCF_ARRAYS:
        a, b = (
            tiledb.ArraySchema.load(str(theirs / name)),
            tiledb.ArraySchema.load(str(mine / name)),
        )
        assert repr(b) == repr(a)
        # Not in the schema's repr: the filters of var-size offsets, validity, coordinates
        # (the last only differs on vcf_headers, where tiledb-py cannot set it without
        # overwriting the dimensions' own filters; see layout._sparse).
        parts = ["offsets_filters", "validity_filters"]
        parts += ["coords_filters"] if name != layout.HEADERS else []
        for part in parts:
            assert repr(getattr(b, part)) == repr(getattr(a, part)), (name, part)
    with tiledb.Group(str(theirs)) as a, tiledb.Group(str(mine)) as b:
        assert (
            layout.meta_str(a.meta, "dataset_type")
            == layout.meta_str(b.meta, "dataset_type")
            == "vcf"
        )
        assert {m.name for m in a} <= {m.name for m in b}
        extra = {m.name for m in b} - {m.name for m in a}
        assert extra == {layout.FEDNODE_STATS, layout.FEDNODE_COVERAGE, layout.FEDNODE_GENOTYPES}
    with tiledb.open(str(theirs / "data")) as a, tiledb.open(str(mine / "data")) as b:
        for key in ("version", "tile_capacity", "anchor_gap", "extra_attributes"):
            assert layout.meta_str(a.meta, key) == layout.meta_str(b.meta, key)
    with (
        tiledb.open(str(theirs / "variant_stats")) as a,
        tiledb.open(str(mine / "variant_stats")) as b,
    ):
        assert a.meta["version"] == b.meta["version"] == 3
    for name in ("data", "metadata/vcf_headers"):
        assert _cells(theirs / name) == _cells(mine / name)
    assert _cells(theirs / "variant_stats", drop={"max_length"}) == _cells(
        mine / "variant_stats", drop={"max_length"}
    )
    assert _summed(theirs / "allele_count", "count") == _summed(mine / "allele_count", "count")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(INPUTS))
def test_round_trip_cells_and_counters(
    fixture_dir: Path, ours: dict[str, TileDBVCFStore], name: str
) -> None:
    theirs, mine = fixture_dir / name, Path(ours[name].uri)
    # ds_synthetic_gvcf10 was created with `-a fmt_GT,fmt_DP`: DP sits in its own attribute.
    drop = {"fmt", "fmt_DP"} if name == "ds_synthetic_gvcf10" else set()
    assert _cells(theirs / "data", drop=drop) == _cells(mine / "data", drop=drop)
    assert _cells(theirs / "metadata/vcf_headers") == _cells(mine / "metadata/vcf_headers")
    counters = ("n_records", "n_called", "n_not_called", "n_hom_ref", "n_het", "n_multiallelic")
    assert _sample_counters(theirs, counters) == _sample_counters(mine, counters)
    reference = TileDBVCFStore.open(str(theirs))
    for contig in ours[name].contigs():
        region = Region(contig, 0, WHOLE)
        ref = [r for b in reference.records(region) for r in b]
        assert [r for b in ours[name].records(region) for r in b] == ref


def _cells(uri: Path, drop: set[str] = frozenset()) -> Counter[tuple[object, ...]]:  # type: ignore[assignment]
    with tiledb.open(str(uri)) as arr:
        data = arr[:]
    names = sorted(k for k in data if k not in drop)
    out: Counter[tuple[object, ...]] = Counter()
    for i in range(len(data[names[0]])):
        out[tuple(_value(data[k][i]) for k in names)] += 1
    return out


def _value(v: object) -> object:
    if isinstance(v, bytes | np.ndarray):
        return bytes(v)
    if isinstance(v, float | np.floating) and v != v:
        return "nan"
    return v


def _summed(uri: Path, count: str) -> Counter[tuple[object, ...]]:
    with tiledb.open(str(uri)) as arr:
        data = arr[:]
    names = sorted(k for k in data if k != count)
    out: Counter[tuple[object, ...]] = Counter()
    for i in range(len(data[count])):
        out[tuple(_value(data[k][i]) for k in names)] += int(data[count][i])
    return out


def _sample_counters(uri: Path, counters: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    with tiledb.open(str(uri / "sample_stats")) as arr:
        data = arr[:]
    out: dict[str, np.ndarray] = {}
    for i, sample in enumerate(data["sample"]):
        row = np.array([int(data[c][i]) for c in counters])
        out[sample.decode()] = out.get(sample.decode(), 0) + row
    return {k: tuple(int(x) for x in v) for k, v in out.items()}


def test_ingest_into_a_tiledbvcf_written_dataset(fixture_dir: Path, tmp_path: Path) -> None:
    """New samples added by fednode to a TileDB-VCF dataset: statistics stay those of
    `bcftools merge` (here over the variant_stats rows both wrote)."""
    import shutil

    from tests.store.test_tiledbvcf import write_vcf

    copy = tmp_path / "cohort"
    shutil.copytree(fixture_dir / "ds_snp_cohort10", copy)
    store = TileDBVCFStore.open(str(copy))
    merged10 = fixture_dir / "inputs/snp_cohort10/merged10.vcf.gz"
    rows = sh(f"bcftools view -H {merged10}").splitlines()[:400]
    new_rows = []
    for row in rows:
        cols = row.split("\t")
        calls = [c.split(":")[0] for c in cols[9:12]]
        new_rows.append("\t".join([*cols[:7], ".", "GT", *calls]))
    extra = write_vcf(tmp_path / "extra.vcf.gz", ["N1", "N2", "N3"], new_rows)
    store.ingest([extra])
    assert store.samples[-3:] == ("N1", "N2", "N3") and len(store.samples) == 13
    sh(f"tabix -f -p vcf {extra}")
    both = tmp_path / "both.vcf.gz"
    sh(f"bcftools merge -m none {merged10} {extra} -Oz -o {both}")
    truth = fill_tags_truth(both)
    assert assert_stats_match(TileDBVCFStore.open(str(copy)), truth) > 3000
