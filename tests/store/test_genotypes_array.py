"""`fednode_genotypes` (one cell per input record, genotypes packed) against two oracles:
the `data` path (one cell per sample and record, forced through `_data_batches`) and
`bcftools query -r` on each sample's live input file.

Random histories: 1-3 ingests of 1-2 files each, later-added samples, `--replace` of
earlier samples, several records at one position (equal ones from different inputs merge,
different ones do not), duplicated lines, missing and half-missing calls, haploid calls,
multi-allelics, indels, `<DEL>`s and gVCF reference blocks longer than the anchor gap,
FORMAT fields besides GT in some files.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pysam
import pytest
import tiledb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.domain import Region
from node.store.dataset import layout
from node.store.dataset.dataset_state import STATE
from node.store.read.batch import NO_ALLELE, GenotypeBatch
from node.store.tiledbvcf import TileDBVCFStore
from tests.store.test_tiledbvcf import BCFTOOLS, sh

pytestmark = pytest.mark.skipif(BCFTOOLS is None, reason="bcftools is not installed")
CONTIGS = ("1", "X")
HEADER = [
    "##fileformat=VCFv4.3",
    *(f"##contig=<ID={c},length=100000>" for c in CONTIGS),
    '##INFO=<ID=END,Number=1,Type=Integer,Description="End position">',
    '##INFO=<ID=DB,Number=0,Type=Flag,Description="dbSNP">',
    '##FILTER=<ID=q10,Description="Quality below 10">',
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
    '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">',
    '##ALT=<ID=DEL,Description="Deletion">',
    '##ALT=<ID=*,Description="Any other allele">',
]
COLUMNS = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT"


@dataclass(frozen=True)
class SiteSpec:
    contig: str
    pos: int
    ref: str
    alts: tuple[str, ...]
    info: str  # without END
    end: int | None
    qual: str
    filters: str
    ident: str


@dataclass(frozen=True)
class History:
    ingests: tuple[tuple[tuple[tuple[str, ...], tuple[str, ...]], ...], ...]  # files
    replace: tuple[bool, ...]


@st.composite
def site_specs(draw: st.DrawFn) -> list[SiteSpec]:
    out = []
    for contig in CONTIGS:
        positions = draw(st.lists(st.integers(1, 6000), max_size=7, unique=True))
        for pos in sorted(positions):
            kind = draw(st.sampled_from(["snv", "multi", "indel", "block", "del"]))
            ref = draw(st.sampled_from("ACGT"))
            others = [b for b in "ACGT" if b != ref]
            end = None
            if kind == "snv":
                alts: tuple[str, ...] = (draw(st.sampled_from(others)),)
            elif kind == "multi":
                alts = tuple(draw(st.lists(st.sampled_from(others), min_size=2, unique=True)))
            elif kind == "indel":
                tail = draw(st.text("ACGT", min_size=1, max_size=3))
                alts = (ref + tail,) if draw(st.booleans()) else (ref,)
                ref = ref if alts[0] != ref else ref + tail
            elif kind == "block":
                alts, end = ("<*>",), pos + draw(st.integers(0, 3 * layout.ANCHOR_GAP))
            else:
                alts, end = ("<DEL>",), pos + draw(st.integers(1, 2 * layout.ANCHOR_GAP))
            out.append(
                SiteSpec(
                    contig, pos, ref, alts,
                    draw(st.sampled_from([".", "DB"])), end,
                    draw(st.sampled_from([".", "30", "7.5"])),
                    draw(st.sampled_from(["PASS", ".", "q10", "q10;PASS"])),
                    draw(st.sampled_from([".", f"rs{pos}"])),
                )
            )  # fmt: skip
    return out


@st.composite
def call(draw: st.DrawFn, n_alleles: int, *, haploid: bool, block: bool) -> str:
    allele = st.one_of(st.none(), st.integers(0, 0 if block else n_alleles - 1))
    alleles = [draw(allele) for _ in range(1 if haploid else 2)]
    text = ["." if a is None else str(a) for a in alleles]
    return draw(st.sampled_from("/|")).join(text)


@st.composite
def file_lines(draw: st.DrawFn, sites: list[SiteSpec], samples: tuple[str, ...]) -> list[str]:
    with_dp = draw(st.booleans())
    lines = []
    for site in sites:
        if not draw(st.booleans()):
            continue
        alts = site.alts
        if len(alts) > 1 and draw(st.booleans()):
            alts = alts[:1]  # a different record at the same position
        info = ";".join(
            x for x in (site.info, f"END={site.end}" if site.end else "") if x and x != "."
        )
        haploid = site.contig == "X" or draw(st.booleans())
        block = alts == ("<*>",)
        calls = []
        for _ in samples:
            gt = draw(call(len(alts) + 1, haploid=haploid or draw(st.booleans()), block=block))
            calls.append(f"{gt}:{draw(st.sampled_from(['.', '3', '12']))}" if with_dp else gt)
        line = "\t".join(
            [site.contig, str(site.pos), site.ident, site.ref, ",".join(alts), site.qual,
             site.filters, info or ".", "GT:DP" if with_dp else "GT", *calls]
        )  # fmt: skip
        lines.append(line)
        if draw(st.integers(0, 15)) == 0:
            lines.append(line)  # a duplicated input line
    return lines


@st.composite
def histories(draw: st.DrawFn) -> History:
    sites = draw(site_specs())
    known: list[str] = []
    ingests, replace = [], []
    for k in range(draw(st.integers(1, 3))):
        again = draw(st.lists(st.sampled_from(known), max_size=2, unique=True)) if known else []
        files = []
        for f in range(draw(st.integers(1, 2))):
            n = draw(st.integers(0 if again and f == 0 else 1, 3))
            new = [f"{draw(st.sampled_from('ZAm'))}{k}{f}{i}" for i in range(n)]
            names = tuple(draw(st.permutations([*new, *(again if f == 0 else [])])))
            files.append((names, tuple(draw(file_lines(sites, names)))))
            known += new
        ingests.append(tuple(files))
        replace.append(bool(again))
    return History(tuple(ingests), tuple(replace))


def write_history(history: History, folder: Path) -> tuple[list[list[Path]], dict[str, Path]]:
    """Each ingest's files (bgzipped, indexed), and each sample's live file."""
    paths: list[list[Path]] = []
    live: dict[str, Path] = {}
    for k, files in enumerate(history.ingests):
        paths.append([])
        for f, (samples, lines) in enumerate(files):
            text = folder / f"i{k}f{f}.vcf"
            text.write_text("\n".join([*HEADER, "\t".join([COLUMNS, *samples]), *lines]) + "\n")
            path = Path(pysam.tabix_index(str(text), preset="vcf", force=True))
            paths[-1].append(path)
            live.update(dict.fromkeys(samples, path))
    return paths, live


def ingest_history(history: History, paths: list[list[Path]], uri: str) -> TileDBVCFStore:
    store = TileDBVCFStore.create(uri, assembly="GRCh38")
    for files, replace in zip(paths, history.replace, strict=True):
        store.ingest(files, replace=replace)
    return store


def matrix_rows(batches: Iterable[GenotypeBatch]) -> list[tuple[object, ...]]:
    """Every row of the batches: its site and, per column, the call (None: no call)."""
    out: list[tuple[object, ...]] = []
    for b in batches:
        for i, site in enumerate(b.sites):
            cells: list[object] = []
            for j, sample in enumerate(b.samples):
                if not b.present[i, j]:
                    cells.append((sample, None))
                    continue
                alleles = tuple(int(a) for a in b.alleles[i, j] if a != NO_ALLELE)
                fields = dict(b.fields(i, j)) if b.fields is not None else {}
                cells.append((sample, alleles, bool(b.phased[i, j]), fields))
            out.append((site, tuple(cells)))
    return out


def store_calls(store: TileDBVCFStore, region: Region, samples: list[str]) -> Counter[object]:
    out: Counter[object] = Counter()
    for batch in store.records(region, samples=samples, batch_size=7):
        for r in batch:
            for c in r.calls:
                sep = "|" if c.phased else "/"
                gt = sep.join("." if a is None else str(a) for a in c.alleles)
                out[
                    (r.source_contig, r.start + 1, r.end, r.ref, ",".join(r.alts), c.sample, gt)
                ] += 1
    return out


def bcftools_calls(live: dict[str, Path], region: Region, samples: list[str]) -> Counter[object]:
    fmt = r"[%CHROM\t%POS\t%END\t%REF\t%ALT\t%SAMPLE\t%GT\n]"
    where = f"{region.contig}:{region.start + 1}-{region.end}"
    out: Counter[object] = Counter()
    for sample in samples:
        path = live[sample]
        if region.contig not in pysam.TabixFile(str(path)).contigs:
            continue
        for line in sh(f"bcftools query -r {where} -s {sample} -f '{fmt}' {path}").splitlines():
            chrom, pos, end, ref, alt, name, gt = line.split("\t")
            out[(chrom, int(pos), int(end), ref, alt, name, gt)] += 1
    return out


regions = st.tuples(st.sampled_from(CONTIGS), st.integers(0, 7000), st.integers(1, 4000))


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), queries=st.lists(regions, min_size=1, max_size=3), data=st.data())
def test_genotypes_array_equals_data_path_and_bcftools(
    history: History, queries: list[tuple[str, int, int]], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths, live = write_history(history, Path(tmp))
        store = ingest_history(history, paths, str(Path(tmp) / "ds"))
        try:
            assert store._state.genotypes
            wanted = [Region(c, 0, 100_000) for c in CONTIGS]
            wanted += [Region(c, s, s + w) for c, s, w in queries]
            for region in wanted:
                subset = data.draw(
                    st.lists(st.sampled_from(store.samples), min_size=1, unique=True)
                )
                for samples in (None, subset):
                    new = matrix_rows(store.genotype_batches(region, samples=samples))
                    assert new == matrix_rows(store._data_batches(region, samples))
                names = list(store.samples)
                assert store_calls(store, region, names) == bcftools_calls(live, region, names)
                assert store_calls(store, region, subset) == bcftools_calls(live, region, subset)
        finally:
            store.close()


def _cohort(folder: Path, name: str, samples: list[str], *, records: int, seed: int) -> Path:
    """A plain cohort: `records` sites on 1, GT and DP, a few long blocks."""
    import random

    rng = random.Random(seed)
    lines, pos = [], 100
    for i in range(records):
        pos += rng.randint(1, 60)
        if i % 50 == 7:
            alts, info = "<*>", f"END={pos + rng.randint(1000, 4000)}"
        else:
            alts, info = rng.choice(["G", "T", "G,T", "AC"]), "."
        n = 1 + alts.count(",") + 1
        calls = [
            f"{rng.randrange(n) if alts != '<*>' else 0}/{rng.choice(['.', '0', '1'])}:"
            f"{rng.randint(0, 40)}"
            for _ in samples
        ]
        calls = [c.replace("/1", "/0") if alts == "<*>" else c for c in calls]
        lines.append(
            "\t".join(["1", str(pos), ".", "A", alts, "50", "PASS", info, "GT:DP", *calls])
        )
    text = folder / f"{name}.vcf"
    text.write_text("\n".join([*HEADER, "\t".join([COLUMNS, *samples]), *lines]) + "\n")
    return Path(pysam.tabix_index(str(text), preset="vcf", force=True))


def committed_cells(store: TileDBVCFStore) -> dict[str, object]:
    """`fednode_genotypes` cells and sample groups as of the committed timestamp."""
    uri = f"{store.uri}/{layout.FEDNODE_GENOTYPES}"
    with tiledb.open(uri, timestamp=store._state.committed) as arr:
        cells = arr[:]
        meta = {k: layout.meta_str(arr.meta, k) for k in arr.meta}
    columns = {k: [getattr(x, "tobytes", lambda x=x: x)() for x in v] for k, v in cells.items()}
    return {"cells": columns, "meta": meta}


def test_replace_and_later_samples(tmp_path: Path) -> None:
    """A replaced sample's older genotypes are gone; later samples appear; both paths agree."""
    first = _cohort(tmp_path, "a", ["S2", "S1", "S3"], records=300, seed=1)
    later = _cohort(tmp_path, "b", ["S4", "S1"], records=200, seed=2)
    store = TileDBVCFStore.create(str(tmp_path / "ds"))
    store.ingest([first])
    store.ingest([later], replace=True)
    live = dict.fromkeys(["S2", "S3"], first) | dict.fromkeys(["S4", "S1"], later)
    for region in (Region("1", 0, 100_000), Region("1", 4000, 6500)):
        new = matrix_rows(store.genotype_batches(region))
        assert new == matrix_rows(store._data_batches(region, None))
        names = list(store.samples)
        assert store_calls(store, region, names) == bcftools_calls(live, region, names)
    assert store.samples == ("S2", "S1", "S3", "S4")


def test_tiledbvcf_datasets_read_data(shared_dir: Path) -> None:
    """A dataset TileDB-VCF wrote has no `genotypes` flag: its records come from `data`."""
    fixture = shared_dir / "tiledbvcf-fixture" / "ds_small"
    if not fixture.is_dir():
        pytest.skip(f"{fixture} not present: TileDB-VCF fixture datasets unavailable")
    theirs = TileDBVCFStore.open(str(fixture))
    assert not theirs._state.genotypes
    assert sum(len(b) for b in theirs.genotype_batches(Region("1", 0, 300_000_000))) > 0
    assert theirs._genotype_reader is None


def test_older_fednode_datasets_read_data_and_never_start_the_array(tmp_path: Path) -> None:
    """A dataset older fednode wrote has no `genotypes` flag either: `data` is read, and a
    new ingest into it does not start the array half-way."""
    uri = str(tmp_path / "old")
    store = TileDBVCFStore.create(uri)
    store.ingest([_cohort(tmp_path, "a", ["S1", "S2"], records=100, seed=3)])
    with tiledb.Group(uri) as group:
        state = json.loads(layout.meta_str(group.meta, STATE))
    del state["genotypes"]
    with tiledb.Group(uri, "w") as group:  # what fednode wrote before the array existed
        group.meta[STATE] = json.dumps(state)
    old = TileDBVCFStore.open(uri)
    assert not old._state.genotypes
    before = committed_cells(old)
    old.ingest([_cohort(tmp_path, "b", ["S3"], records=100, seed=4)])
    assert not old._state.genotypes and committed_cells(TileDBVCFStore.open(uri)) == before
    rows = matrix_rows(old.genotype_batches(Region("1", 0, 100_000)))
    assert rows == matrix_rows(old._data_batches(Region("1", 0, 100_000), None)) and rows
    assert old._genotype_reader is None


def test_many_chunks_and_batches_give_the_same_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small TileDB buffers (many incomplete submits) and small batches (cut between
    positions, the anchor window kept whole) change nothing but batch boundaries."""
    from node.store import tiledbvcf
    from node.store.read import genotype_reader

    store = TileDBVCFStore.create(str(tmp_path / "ds"))
    store.ingest([_cohort(tmp_path, "a", ["S2", "S1"], records=400, seed=5)])
    store.ingest([_cohort(tmp_path, "b", ["S3", "S1"], records=300, seed=6)], replace=True)
    regions = [Region("1", 0, 100_000), Region("1", 2500, 9000), Region("1", 5001, 5002)]
    whole = {r: matrix_rows(store.genotype_batches(r)) for r in regions}
    monkeypatch.setattr(genotype_reader, "_BATCH_BYTES", 16)
    tiny = {"py.init_buffer_bytes": "2048"}
    monkeypatch.setattr(tiledbvcf, "BULK_READ", tiny)
    monkeypatch.setattr(tiledbvcf, "SMALL_READ", tiny)
    small = TileDBVCFStore.open(store.uri)
    for region in regions:
        batches = list(small.genotype_batches(region))
        assert (
            matrix_rows(batches) == whole[region] == matrix_rows(small._data_batches(region, None))
        )
        assert region.end - region.start < 10 or len(batches) > 3
