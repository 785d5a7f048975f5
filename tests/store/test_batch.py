"""The columnar read (`genotype_batches`) against bcftools and the MemoryStore oracle."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.domain import Region
from node.store.memory import MemoryStore
from node.store.read.batch import MISSING, NO_ALLELE, GenotypeBatch, batches_of, genotype_batches
from node.store.read.columns import Var, name_columns
from node.store.tiledbvcf import TileDBVCFStore
from node.synth import generate_cohort

pytestmark = pytest.mark.skipif(shutil.which("bcftools") is None, reason="needs bcftools")
WHOLE = 300_000_000

# Mixed ploidy, missing and half-missing calls, phasing, two records at one position, a
# duplicated line, FILTER values, a long deletion (anchor copies) and INFO.
HAND_VCF = """##fileformat=VCFv4.2
##contig=<ID=1,length=100000>
##FILTER=<ID=q10,Description="low">
##INFO=<ID=DP,Number=1,Type=Integer,Description="depth">
##INFO=<ID=END,Number=1,Type=Integer,Description="end">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB\tLONGNAME_C\tD
1\t100\trs1\tA\tG\t50\tPASS\tDP=10\tGT\t0|1\t1/1\t./.\t0
1\t100\t.\tA\tAT,C\t.\tq10\t.\tGT\t1/2\t./1\t0|0\t2
1\t250\t.\tC\tT\t.\t.\t.\tGT\t0/0\t0/1\t1|0\t.
1\t250\t.\tC\tT\t.\t.\t.\tGT\t0/0\t0/1\t1|0\t.
1\t900\t.\tGAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\tG\t.\tPASS\t.\tGT\t0/1\t0/0\t1/1\t1
1\t5000\t.\tT\t<DEL>\t.\tPASS\tEND=7500\tGT\t0/1\t0/0\t./.\t1
"""


def sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True).stdout


def truth(vcf: Path, region: str, samples: list[str]) -> list[tuple[int, str, list[str]]]:
    """(POS, REF, GT per sample in `samples` order) per record, from bcftools."""
    out = sh(
        f"bcftools query -r {region} -s {','.join(samples)}"
        f" -f '%POS\\t%REF[\\t%SAMPLE=%GT]\\n' {vcf}"
    )
    rows = []
    for line in out.splitlines():
        pos, ref, *calls = line.split("\t")
        by_name = dict(c.split("=", 1) for c in calls)
        rows.append((int(pos), ref, [by_name[s] for s in samples]))
    return rows


def gt_text(batch: GenotypeBatch, row: int, col: int) -> str:
    codes = [int(a) for a in batch.alleles[row, col] if a != NO_ALLELE]
    sep = "|" if batch.phased[row, col] else "/"
    return sep.join("." if a == MISSING else str(a) for a in codes)


def flat(batches: list[GenotypeBatch]) -> list[tuple[int, str, list[str]]]:
    rows = []
    for b in batches:
        for r, site in enumerate(b.sites):
            rows.append(
                (site.start + 1, site.ref, [gt_text(b, r, c) for c in range(len(b.samples))])
            )
    return rows


@pytest.fixture(scope="module")
def hand(tmp_path_factory: pytest.TempPathFactory) -> tuple[TileDBVCFStore, Path]:
    tmp = tmp_path_factory.mktemp("hand")
    vcf = tmp / "hand.vcf.gz"
    sh(f"printf '{HAND_VCF}' | bcftools view -Oz -o {vcf} && bcftools index -t {vcf}")
    store = TileDBVCFStore.create(str(tmp / "ds"))
    store.ingest([vcf])
    return store, vcf


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[TileDBVCFStore, list[Path]]:
    """Two files (samples split in two groups), read with tiny TileDB buffers: many chunks."""
    tmp = tmp_path_factory.mktemp("cohort")
    info = generate_cohort(tmp / "c.vcf.gz", samples=60, length=40_000, seed=3, groups=2)
    store = TileDBVCFStore.create(str(tmp / "ds"))
    store.ingest(list(info.paths))
    store.close()
    small = TileDBVCFStore.open(str(tmp / "ds"), tiledb_config={"py.init_buffer_bytes": "8192"})
    return small, list(info.paths)


def test_hand_matrix_equals_bcftools(hand: tuple[TileDBVCFStore, Path]) -> None:
    store, vcf = hand
    for start, end in [(0, WHOLE), (99, 100), (150, 6000), (6000, 6001), (899, 900), (950, 960)]:
        got = flat(list(store.genotype_batches(Region("1", start, end))))
        assert got == truth(vcf, f"1:{start + 1}-{end}", list(store.samples))


def test_hand_subsets_keep_column_order(hand: tuple[TileDBVCFStore, Path]) -> None:
    store, vcf = hand
    for samples in (["D", "A"], ["LONGNAME_C"], ["B", "LONGNAME_C", "A"]):
        batches = list(store.genotype_batches(Region("1", 0, WHOLE), samples=samples))
        assert all(b.samples == tuple(samples) for b in batches)
        assert flat(batches) == truth(vcf, "1", samples)


def test_hand_sites(hand: tuple[TileDBVCFStore, Path]) -> None:
    store, _ = hand
    sites = [s for b in store.genotype_batches(Region("1", 0, WHOLE)) for s in b.sites]
    first = sites[0]
    assert (first.ids, first.qual, first.filters, dict(first.info)) == (
        ("rs1",),
        50.0,
        ("PASS",),
        {"DP": 10},
    )
    assert sites[1].filters == ("q10",) and sites[1].alts == ("AT", "C")
    assert sites[-1].end == 7500 and sites[-1].alts == ("<DEL>",)


def test_cohort_batches_equal_bcftools_across_chunks(
    cohort: tuple[TileDBVCFStore, list[Path]],
) -> None:
    store, paths = cohort
    groups = [sh(f"bcftools query -l {p}").split() for p in paths]
    assert [s for g in groups for s in g] == list(store.samples)
    rng, seen = random.Random(5), 0
    for _ in range(4):
        start = rng.randrange(0, 30_000)
        end = start + rng.choice([50, 2_000, 12_000])
        got = flat(list(store.genotype_batches(Region("1", start, end))))
        # every group file holds every site (`bcftools merge` would drop phase on 1|.)
        a, b = (truth(p, f"1:{start + 1}-{end}", g) for p, g in zip(paths, groups, strict=True))
        assert got == [(x[0], x[1], x[2] + y[2]) for x, y in zip(a, b, strict=True)]
        seen += len(got)
    assert seen > 20


def test_cohort_records_equal_memory_store(cohort: tuple[TileDBVCFStore, list[Path]]) -> None:
    store, paths = cohort
    memory = MemoryStore()
    for path in paths:
        memory.ingest([path])
    region = Region("1", 5_000, 25_000)
    for samples in (None, ["SYN00001", "SYN00059", "SYN00030"]):
        ours = [r for b in store.records(region, samples=samples, batch_size=5) for r in b]
        want = [r for b in memory.records(region, samples=samples) for r in b]
        assert _calls(ours) == _calls(want) and ours
        # the MemoryStore through the generic adapter gives the same cells (it keeps one
        # record per input file where TileDB merges equal sites)
        mine = list(store.genotype_batches(region, samples=samples))
        theirs = list(genotype_batches(memory, region, samples=samples))
        assert present_cells(mine) == present_cells(theirs)


def present_cells(batches: list[GenotypeBatch]) -> set[tuple[object, ...]]:
    return {
        (site.start, site.ref, site.alts, b.samples[c], gt_text(b, r, c))
        for b in batches
        for r, site in enumerate(b.sites)
        for c in np.flatnonzero(b.present[r]).tolist()
    }


def _calls(records: list) -> set[tuple[object, ...]]:  # type: ignore[type-arg]
    return {
        (r.start, r.end, r.ref, r.alts, c.sample, c.alleles, c.phased)
        for r in records
        for c in r.calls
    }


def test_batches_of_round_trips_records(hand: tuple[TileDBVCFStore, Path]) -> None:
    store, _ = hand
    records = [r for b in store.records(Region("1", 0, WHOLE)) for r in b]
    assert batches_of(records, store.samples).records() == records


# --- columns ------------------------------------------------------------------------------

cells = st.lists(st.binary(max_size=12), max_size=40)


def _var(values: list[bytes]) -> Var:
    lengths = np.array([len(v) for v in values], dtype=np.int64)
    data = np.frombuffer(b"".join(values), dtype=np.uint8) if values else np.zeros(0, np.uint8)
    return Var(data, np.cumsum(lengths) - lengths)


@given(
    st.lists(st.sampled_from([b"", b"A", b"AT", b"AT", b"ATG", b"C,T\0", b"x" * 9]), max_size=60)
)
def test_equal_previous_matches_python(values: list[bytes]) -> None:
    want = [i > 0 and values[i] == values[i - 1] for i in range(len(values))]
    assert _var(values).equal_previous().tolist() == want


@given(cells, st.data())
def test_take_slice_concat(values: list[bytes], data: st.DataObject) -> None:
    var = _var(values)
    index = data.draw(st.lists(st.integers(0, max(0, len(values) - 1)), max_size=20))
    if values:
        taken = var.take(np.asarray(index, dtype=np.int64))
        assert [taken.cell(i) for i in range(taken.n)] == [values[i] for i in index]
    a = data.draw(st.integers(0, len(values)))
    part = var.slice(a, len(values))
    both = Var.concat([var.slice(0, a), part]) if a and a < len(values) else var
    assert [both.cell(i) for i in range(both.n)] == values


@given(
    st.lists(
        st.text("ABCXYZ_0123456789", min_size=1, max_size=20), min_size=1, max_size=30, unique=True
    ),
    st.data(),
)
def test_name_columns(columns: list[str], data: st.DataObject) -> None:
    names = data.draw(st.lists(st.sampled_from([*columns, "NOT_THERE"]), max_size=40))
    col, found = name_columns(_var([n.encode() for n in names]), columns)
    for name, c, ok in zip(names, col.tolist(), found.tolist(), strict=True):
        assert ok == (name in columns)
        if ok:
            assert columns[c] == name


# --- export (htsget variants) through the batch path -------------------------------------


@pytest.mark.parametrize("with_dp", [False, True])
def test_export_equals_input(tmp_path: Path, with_dp: bool) -> None:
    """GT-only batches are written from the matrix, batches with FORMAT fields per call."""
    from node.store.read.export import export_variants

    gq = '##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="q">'
    text = HAND_VCF.replace("##FORMAT=<ID=GT", gq + "\n##FORMAT=<ID=GT")
    if with_dp:
        text = text.replace("\tGT\t0|1\t1/1\t./.\t0\n", "\tGT:GQ\t0|1:7\t1/1:3\t./.:.\t0:12\n")
    vcf = tmp_path / "in.vcf.gz"
    sh(f"printf '{text}' | bcftools view -Oz -o {vcf} && bcftools index -t {vcf}")
    store = TileDBVCFStore.create(str(tmp_path / "ds"))
    store.ingest([vcf])
    for fmt in ("VCF", "BCF"):
        out = tmp_path / f"out.{fmt.lower()}"
        out.write_bytes(export_variants(store, [Region("1", 0, WHOLE)], fmt=fmt, max_bytes=10**7))
        fields = "%GT:%GQ" if with_dp else "%GT"
        query = f"'%POS\\t%REF\\t%ALT\\t%FILTER[\\t{fields}]\\n'"
        want = sh(f"bcftools query -f {query} {vcf}").splitlines(keepends=True)
        # the duplicated line comes out once (export writes each record once)
        assert sh(f"bcftools query -f {query} {out}") == "".join(dict.fromkeys(want))


def test_gt_read_from_fmt_blob_when_not_extracted() -> None:
    """Datasets written without the `fmt_GT` attribute keep GT in the `fmt` blob."""
    from node.store.dataset import layout
    from node.store.read.columns import Block
    from node.store.read.gt_codes import cell_genotypes

    def blob(codes: list[int]) -> bytes:
        raw = np.asarray(codes, dtype="<i4").tobytes()
        return layout.encode_blob([("GT", layout.HT_INT, len(codes), raw)])

    fmt = _var([blob([2, 5]), blob([4]), blob([0, 0])])  # 0|1, 1, ./.
    alleles, phased = cell_genotypes(Block(np.array([1, 1, 2], np.uint32), {}, {"fmt": fmt}))
    assert alleles.tolist() == [[0, 1], [1, NO_ALLELE], [MISSING, MISSING]]
    assert phased.tolist() == [True, False, False]
