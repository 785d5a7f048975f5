"""The region overlap rule (`node/store/read/overlap.py`) against `bcftools view -r`, with region
edges on the records' first and last bases and one base either side (issue 16: moving
`end >= s` to `end > s` survived every store test, none put an edge on a record's end).

One cohort, ingested once: SNVs, MNPs, indels, symbolic `<DEL>`s and gVCF `<*>` blocks with
INFO/END (some longer than the anchor gap, so regions meet their anchor copies), records
sharing a position and records ending where the next starts. Each path that applies the
rule is compared with bcftools: `fednode_genotypes` (GenotypeReader), `data` read in
global order and by windows (BatchReader), `data` cell by cell (RecordReader) and the
aggregate (`variants`: ALT alleles, placeholders aside).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pysam
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.domain import Region
from node.store.dataset import layout
from node.store.read.cell_reader import RecordReader
from node.store.read.records import BatchReader
from node.store.tiledbvcf import TileDBVCFStore
from tests.store.test_tiledbvcf import BCFTOOLS, sh

pytestmark = pytest.mark.skipif(BCFTOOLS is None, reason="bcftools is not installed")
SAMPLES = ("S1", "S2", "S3")
PLACEHOLDERS = {"<*>", "<NON_REF>", "*"}
HEADER = [
    "##fileformat=VCFv4.3",
    "##contig=<ID=1,length=100000>",
    '##INFO=<ID=END,Number=1,Type=Integer,Description="End position">',
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
    '##ALT=<ID=DEL,Description="Deletion">',
    '##ALT=<ID=*,Description="Any other allele">',
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(SAMPLES),
]
Key = tuple[int, str, str]  # 1-based POS, REF, ALT as bcftools writes them


def _lines(rng: random.Random) -> Iterator[tuple[int, str]]:
    """(POS, VCF line) of records of every kind, some touching, some sharing a position."""
    pos = 50
    while pos < 9_000:
        kind = rng.choice(["snv", "snv", "mnp", "del", "ins", "sym", "block", "twin"])
        ref = rng.choice("ACGT")
        alt = {"A": "G", "C": "T", "G": "A", "T": "C"}[ref]
        info, span = ".", 1
        if kind == "mnp":
            ref, alt, span = ref + "C", alt + "G", 2
        elif kind == "del":
            span = rng.randint(2, 6)
            ref, alt = ref + "".join(rng.choices("ACGT", k=span - 1)), ref
        elif kind == "ins":
            alt = ref + "".join(rng.choices("ACGT", k=rng.randint(1, 4)))
        elif kind in ("sym", "block"):
            span = rng.choice([2, 40, layout.ANCHOR_GAP, 2 * layout.ANCHOR_GAP + 17])
            alt, info = ("<DEL>" if kind == "sym" else "<*>"), f"END={pos + span - 1}"
        gts = ["0/1", rng.choice(["0/0", "1/1", "./."]), rng.choice(["0|1", "0/0"])]
        if kind == "block":
            gts = ["0/0", "0/0", "./."]
        yield pos, "\t".join(["1", str(pos), ".", ref, alt, ".", "PASS", info, "GT", *gts])
        if kind == "twin":  # a second record at the same position
            yield pos, "\t".join(["1", str(pos), ".", ref, alt + "T", ".", "PASS", ".", "GT",
                                  "1/1", "0/1", "0/0"])  # fmt: skip
        # The next record starts inside this one, right after it, or further on.
        pos += max(1, rng.choice([span - 1, span, span + 1, rng.randint(2, 300)]))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, TileDBVCFStore]]:
    folder = tmp_path_factory.mktemp("edges")
    rows = sorted(_lines(random.Random(16)), key=lambda r: r[0])
    text = folder / "edges.vcf"
    text.write_text("\n".join([*HEADER, *(line for _, line in rows)]) + "\n")
    vcf = Path(pysam.tabix_index(str(text), preset="vcf", force=True))
    store = TileDBVCFStore.create(str(folder / "ds"), assembly="GRCh38")
    store.ingest([vcf])
    yield vcf, store
    store.close()


def _edges(vcf: Path) -> list[int]:
    """Every record's first and last base (1-based, as bcftools gives them) and ±1."""
    out: set[int] = set()
    for line in sh(f"bcftools query -f '%POS\\t%END\\n' {vcf}").splitlines():
        first, last = map(int, line.split("\t"))
        out.update(x for e in (first, last) for x in (e - 1, e, e + 1) if x >= 1)
    return sorted(out)


EDGES: dict[Path, list[int]] = {}


def _truth(vcf: Path, first: int, last: int) -> Counter[Key]:
    """The records `bcftools view -r` (record overlap, its default) gives for 1:first-last."""
    where = f"1:{first}-{last}"
    text = sh(f"bcftools view -H --regions-overlap record -r {where} {vcf}")
    return Counter((int(c[1]), c[3], c[4]) for c in (ln.split("\t") for ln in text.splitlines()))


def _keys(records: Iterator[tuple[int, str, tuple[str, ...]]]) -> Counter[Key]:
    return Counter((start + 1, ref, ",".join(alts) or ".") for start, ref, alts in records)


def _batch_keys(batches: Iterator[object]) -> Counter[Key]:
    return _keys((s.start, s.ref, s.alts) for b in batches for s in b.sites)  # type: ignore[attr-defined]


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_region_edges_on_record_ends_equal_bcftools(
    cohort: tuple[Path, TileDBVCFStore], data: st.DataObject
) -> None:
    vcf, store = cohort
    edges = EDGES.setdefault(vcf, _edges(vcf))
    first = data.draw(st.sampled_from(edges), label="first base (1-based)")
    last = data.draw(st.sampled_from([e for e in edges if e >= first]), label="last base")
    region = Region("1", first - 1, last)  # half-open, 0-based
    truth = _truth(vcf, first, last)

    assert store._state.genotypes
    assert _batch_keys(store.genotype_batches(region)) == truth, "fednode_genotypes"
    assert _batch_keys(store._data_batches(region, None)) == truth, "data, global order"
    reader = BatchReader(store._array(layout.DATA), store._headers())
    scanned = reader.record_cells(["1"], region, SAMPLES, subset=False, lock=None, scan=True)
    assert _batch_keys(c.batch for c in scanned) == truth, "data, by windows"
    cells = RecordReader(store._array(layout.DATA), store._headers())
    records = cells.records(["1"], region, None, lock=None)
    assert _keys((r.start, r.ref, r.alts) for r in records) == truth, "data, cell by cell"

    alleles = {
        (pos, ref, alt)
        for pos, ref, alts in truth
        for alt in alts.split(",")
        if alt not in PLACEHOLDERS
    }
    variants = [(v.start + 1, v.ref, v.alt) for v in store.variants(region)]
    assert len(variants) == len(set(variants))
    assert set(variants) == alleles, "aggregate (variants)"
