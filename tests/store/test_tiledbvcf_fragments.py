"""Issue 14, finding 4: TileDB-VCF exports every sample of a large fednode ingest sorted.

TileDB-VCF reads `data` with an unordered query (reader.cc `next_read_batch_v4`), and
TileDB's unordered reader returns cells fragment after fragment, in (timestamp, name)
order. fednode used to write one fragment per batch of positions across all samples, all
at one timestamp, so the fragment order was the order of their random names and each
exported sample jumped back in position (`bcftools index`: "Unsorted positions"). Now
`data` gets one fragment per input over all its positions, as TileDB-VCF writes one per
batch of samples. Small write batches (`FLUSH_BYTES`) stand in for a large input here.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import tiledb

from node.domain import Region
from node.store.dataset import layout
from node.store.ingest.ingest_writer import IngestWriter
from node.store.tiledbvcf import TileDBVCFStore
from node.synth import generate_cohort
from tests.store import test_tiledbvcf_compat as compat
from tests.store.test_tiledbvcf import BCFTOOLS, sh
from tests.store.test_tiledbvcf_compat import _data_cells, assert_exports_equal_inputs, tdb

tiledbvcf = compat.tiledbvcf  # the fixture: the binary, or a skip saying why not
pytestmark = pytest.mark.skipif(BCFTOOLS is None, reason="bcftools is not installed")
SMALL_BATCH = 1 << 15  # bytes of cells per write batch: dozens of batches per input
GVCF = "tiledbvcf-fixture/inputs/synthetic_gvcf"  # <NON_REF> blocks up to ~100 kb: anchors


def _ingest(uri: Path, ingests: list[list[Path]], *, replace_last: bool = False) -> None:
    store = TileDBVCFStore.create(str(uri))
    for i, paths in enumerate(ingests):
        store.ingest(paths, replace=replace_last and i == len(ingests) - 1)
    store.close()


def _inputs(paths: list[Path]) -> dict[str, Path]:
    return {s: p for p in paths for s in sh(f"bcftools query -l {p}").split()}


def assert_exports_sorted_and_indexable(
    binary: Path, uri: Path, samples: list[str], out: Path
) -> None:
    """`tiledbvcf export -O z` of each sample; `bcftools index` refuses unsorted files."""
    out.mkdir()
    tdb(binary, "export", "-u", uri, "-O", "z", "-d", out, "-s", ",".join(samples))
    for sample in samples:
        path = out / f"{sample}.vcf.gz"
        query = sh(f"bcftools query -f '%CHROM\\t%POS\\n' {path}")
        rows = [line.split("\t") for line in query.splitlines()]
        back = sum(a[0] == b[0] and int(b[1]) < int(a[1]) for a, b in itertools.pairwise(rows))
        assert rows and back == 0, f"{sample}: {back} backward positions in {len(rows)}"
        sh(f"bcftools index -f {path}")  # refuses unsorted positions


def assert_fednode_reads_agree(uri: Path) -> None:
    """fednode's records from `data` equal those from `fednode_genotypes` (its own reads of
    the fragments written batch by batch)."""
    store = TileDBVCFStore.open(str(uri))
    for contig in store.contigs():
        region = Region(contig, 0, 300_000_000)
        packed = [r for b in store.records(region) for r in b]
        from_data = [r for b in store._data_batches(region, None) for r in b.records()]
        assert packed == from_data and packed, contig
    store.close()


def _data_fragments(uri: Path) -> int:
    return len(tiledb.array_fragments(str(uri / layout.DATA)))


def test_cohort_in_small_batches_exports_sorted(
    tiledbvcf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ingests of a joint call set's sample groups over contigs 9, 10 and X (10 sorts
    before 9 by name: a fragment cannot continue from 9 into 10)."""
    cohort = generate_cohort(
        tmp_path / "cohort.vcf.gz",
        samples=12,
        length=400_000,
        seed=4,
        contigs=("9", "10", "X"),
        groups=2,
    )
    monkeypatch.setattr(IngestWriter, "FLUSH_BYTES", SMALL_BATCH)
    uri = tmp_path / "ds"
    _ingest(uri, [[p] for p in cohort.paths])
    inputs = _inputs(list(cohort.paths))
    assert_exports_sorted_and_indexable(tiledbvcf, uri, sorted(inputs), tmp_path / "z")
    assert assert_exports_equal_inputs(tiledbvcf, uri, inputs, tmp_path / "v") > 1000
    region = "9:100000-300000,10:1-50000"
    assert assert_exports_equal_inputs(tiledbvcf, uri, inputs, tmp_path / "r", region) > 100
    # per input: 9 (and X after it), then 10, which cannot follow 9 in one fragment
    assert _data_fragments(uri) <= 2 * len(cohort.paths)
    assert_fednode_reads_agree(uri)


def test_batches_write_the_cells_one_batch_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However the cells are batched (anchor copies held back across batches included),
    `data` holds the same cells."""
    cohort = generate_cohort(
        tmp_path / "cohort.vcf.gz", samples=6, length=200_000, seed=9, contigs=("1", "2")
    )
    _ingest(tmp_path / "one", [list(cohort.paths)])
    monkeypatch.setattr(IngestWriter, "FLUSH_BYTES", SMALL_BATCH)
    _ingest(tmp_path / "many", [list(cohort.paths)])
    assert _data_cells(tmp_path / "many") == _data_cells(tmp_path / "one")
    assert _data_fragments(tmp_path / "many") == 1


def test_gvcf_blocks_in_small_batches_export_sorted(
    tiledbvcf: Path, shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Single-sample gVCFs with long reference blocks over 22 contigs: every anchor copy
    lands in its sample's fragment in order; the cells equal one batch's."""
    paths = [shared_dir / GVCF / f"G{i}.bcf" for i in (1, 2, 3)]
    for path in paths:
        if not path.is_file():
            pytest.skip(f"{path} not present: test input unavailable")
    _ingest(tmp_path / "one", [paths])
    monkeypatch.setattr(IngestWriter, "FLUSH_BYTES", SMALL_BATCH)
    uri = tmp_path / "ds"
    _ingest(uri, [paths])
    assert _data_cells(uri) == _data_cells(tmp_path / "one")
    inputs = _inputs(paths)
    assert_exports_sorted_and_indexable(tiledbvcf, uri, sorted(inputs), tmp_path / "z")
    assert assert_exports_equal_inputs(tiledbvcf, uri, inputs, tmp_path / "v") > 500
    assert_fednode_reads_agree(uri)


def test_replaced_samples_export_their_new_records_sorted(
    tiledbvcf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `replace` ingest's deletes are staged and published with its fragments: TileDB-VCF
    exports the replacing input only."""
    old = generate_cohort(tmp_path / "old.vcf.gz", samples=4, length=150_000, seed=1)
    new = generate_cohort(tmp_path / "new.vcf.gz", samples=4, length=150_000, seed=2)
    monkeypatch.setattr(IngestWriter, "FLUSH_BYTES", SMALL_BATCH)
    uri = tmp_path / "ds"
    _ingest(uri, [list(old.paths), list(new.paths)], replace_last=True)
    inputs = _inputs(list(new.paths))
    assert_exports_sorted_and_indexable(tiledbvcf, uri, sorted(inputs), tmp_path / "z")
    assert assert_exports_equal_inputs(tiledbvcf, uri, inputs, tmp_path / "v") > 100
    assert_fednode_reads_agree(uri)


@pytest.mark.parametrize("batch", [SMALL_BATCH, 1 << 18, 1 << 20, 64 << 20])
def test_small_inputs_share_fragments_and_export_sorted(
    tiledbvcf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    """Single-sample inputs whose cells all fit in the buffer share a `data` fragment; an
    input written in part before it ended closes its fragment. One-contig inputs (pooled)
    alternate with three-contig ones (each contig change writes the pool); at every batch
    size each sample exports sorted and equal to its input, and the cells equal those of
    one ingest per input."""
    cohort = generate_cohort(tmp_path / "c.vcf.gz", samples=8, length=60_000, seed=5,
                             contigs=("9", "10", "X"), groups=8)
    one = []  # inputs of one contig, their header as the others'
    for i, path in enumerate(cohort.paths[:6]):
        one.append(tmp_path / f"one{i}.vcf.gz")
        sh(f"bcftools view -r 10 -Oz -o {one[-1]} {path} && bcftools index -t {one[-1]}")
    paths = [*one[:3], cohort.paths[6], *one[3:], cohort.paths[7]]
    _ingest(tmp_path / "apart", [[p] for p in paths])
    monkeypatch.setattr(IngestWriter, "FLUSH_BYTES", batch)
    uri = tmp_path / "ds"
    _ingest(uri, [paths])
    assert _data_cells(uri) == _data_cells(tmp_path / "apart")
    if batch == 64 << 20:  # all pooled: a fragment per run of one-contig inputs and contig
        assert _data_fragments(uri) < len(paths)
    inputs = _inputs(paths)
    assert_exports_sorted_and_indexable(tiledbvcf, uri, sorted(inputs), tmp_path / "z")
    assert assert_exports_equal_inputs(tiledbvcf, uri, inputs, tmp_path / "v") > 500
    assert_fednode_reads_agree(uri)
