"""Property tests: random small cohorts, MemoryStore against bcftools, TileDB store against both.

A cohort is a few contigs (some `chr`-prefixed) with sites fixed up front (position, REF,
an ALT pool of SNVs, MNPs, indels, or one symbolic/breakend ALT); each of 1-3 files holds
a disjoint group of samples and a random subset of the sites, with missing, half-missing,
haploid, phased and unphased calls. Truth is `bcftools merge -m all` (absent = ./.) then
`+fill-tags`, `view -r` and `query`.
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pysam
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.domain import AlleleKey, AlleleStats, Region, Variant, normalize_contig
from node.names import VariantType
from node.store.base import VariantStore
from node.store.memory import MemoryStore, is_placeholder_allele

CONTIGS = ("1", "chr2", "X", "chrM")
BASES = "ACGT"
SYMBOLIC = ("<DEL>", "<DUP>", "<INV>", "<CNV>")
SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# Each TileDB example creates a dataset and ingests 1-3 files (about a second).
TILEDB_SETTINGS = settings(SETTINGS, max_examples=25)


@dataclass(frozen=True)
class Site:
    contig: str
    pos: int  # 1-based
    ref: str
    alts: tuple[str, ...]
    end: int | None  # INFO/END for symbolic ALTs


@dataclass(frozen=True)
class Cohort:
    sites: tuple[Site, ...]
    files: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]  # (samples, VCF lines)


seq = st.text(BASES, min_size=1, max_size=4)


@st.composite
def sites_on(draw: st.DrawFn, contig: str) -> list[Site]:
    positions = draw(st.lists(st.integers(1, 3000), min_size=1, max_size=8, unique=True))
    out = []
    for pos in sorted(positions):
        ref = draw(seq)
        kind = draw(st.sampled_from(["seq", "seq", "seq", "sym", "bnd"]))
        if kind == "sym":
            out.append(Site(contig, pos, ref[0], (draw(st.sampled_from(SYMBOLIC)),),
                            pos + draw(st.integers(1, 400))))
        elif kind == "bnd":
            out.append(Site(contig, pos, ref[0], (f"{ref[0]}[{contig}:{pos + 500}[",), None))
        else:
            alts = draw(st.lists(seq.filter(lambda a, r=ref: _untrimmable(r, a)), min_size=1,
                                 max_size=3, unique=True))
            out.append(Site(contig, pos, ref, tuple(alts), None))
    return out


def _untrimmable(ref: str, alt: str) -> bool:
    """bcftools merge trims a trailing base shared by all alleles; keep keys as written."""
    return alt != ref and (len(ref) == 1 or len(alt) == 1 or ref[-1] != alt[-1])


@st.composite
def genotype(draw: st.DrawFn, n_alleles: int, haploid: bool) -> str:
    allele = st.one_of(st.none(), st.integers(0, n_alleles - 1))
    alleles = [draw(allele) for _ in range(1 if haploid else 2)]
    text = ["." if a is None else str(a) for a in alleles]
    return (draw(st.sampled_from("/|"))).join(text)


@st.composite
def cohorts(draw: st.DrawFn) -> Cohort:
    contigs = draw(st.lists(st.sampled_from(CONTIGS), min_size=1, max_size=2, unique=True))
    sites = tuple(s for c in contigs for s in draw(sites_on(c)))
    n_samples = draw(st.integers(1, 6))
    cuts = sorted(draw(st.sets(st.integers(1, n_samples - 1), max_size=2))) if n_samples > 1 else []
    bounds = [0, *cuts, n_samples]
    names = [f"P{i}" for i in range(n_samples)]
    files = []
    for lo, hi in itertools.pairwise(bounds):
        samples = tuple(names[lo:hi])
        lines = []
        for site in sites:
            if not draw(st.booleans()):
                continue
            alts = [a for a in site.alts if draw(st.booleans())] or [site.alts[0]]
            info = f"END={site.end}" if site.end else "."
            haploid = site.contig == "chrM"
            gts = [draw(genotype(len(alts) + 1, haploid or draw(st.booleans()))) for _ in samples]
            lines.append("\t".join([site.contig, str(site.pos), ".", site.ref, ",".join(alts),
                                    ".", "PASS", info, "GT", *gts]))
        files.append((samples, tuple(lines)))
    return Cohort(sites, tuple(files))


HEADER = [
    "##fileformat=VCFv4.3",
    *(f"##contig=<ID={c},length=10000>" for c in CONTIGS),
    '##INFO=<ID=END,Number=1,Type=Integer,Description="End position">',
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
    *(f'##ALT=<ID={a[1:-1]},Description="{a}">' for a in SYMBOLIC),
]


def sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True).stdout


def write_cohort(cohort: Cohort, folder: Path) -> tuple[list[Path], Path]:
    """The cohort's files (bgzipped, indexed) and their `bcftools merge -m all`."""
    paths = []
    for k, (samples, lines) in enumerate(cohort.files):
        text = folder / f"f{k}.vcf"
        columns = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT"
        text.write_text("\n".join([*HEADER, "\t".join([columns, *samples]), *lines]) + "\n")
        paths.append(Path(pysam.tabix_index(str(text), preset="vcf", force=True)))
    merged = folder / "merged.vcf.gz"
    if len(paths) == 1:
        sh(f"cp {paths[0]} {merged}")
    else:
        sh(f"bcftools merge -m all -Oz -o {merged} {' '.join(map(str, paths))}")
    sh(f"bcftools index -f -t {merged}")
    return paths, merged


def truth_stats(merged: Path) -> dict[AlleleKey, AlleleStats]:
    """fill-tags per allele; one-allele calls (haploid, `./1`) are AC_Hemi: carriers only."""
    query = r"%CHROM\t%POS\t%REF\t%ALT\t%AC\t%AN\t%AC_Hom\t%AC_Het\t%AC_Hemi\t%NS\n"
    out = sh(f"bcftools +fill-tags {merged} -- -t AC,AN,AC_Hom,AC_Het,AC_Hemi,NS"
             f" | bcftools query -f '{query}'")
    truth = {}
    for line in out.splitlines():
        chrom, pos, ref, alts, *cols = line.split("\t")
        for i, alt in enumerate(alts.split(",")):
            ac, an, hom, het, hemi, ns = (int(c.split(",")[i] if "," in c else c) for c in cols)
            key = AlleleKey(normalize_contig(chrom), int(pos) - 1, ref, alt)
            truth[key] = AlleleStats(ac, an, hom // 2, het, hom // 2 + het + hemi, ns)
    return truth


def site_truth(truth: dict[AlleleKey, AlleleStats], key: AlleleKey) -> AlleleStats | None:
    """What a store answers for an allele absent from `truth` (one record per position):
    AC 0 over the called alleles of the record at its position, None when none is called."""
    for k, stats in truth.items():
        if (k.contig, k.start) == (key.contig, key.start) and stats.n_called:
            return AlleleStats(0, stats.an, 0, 0, 0, stats.n_called)
    return None


def flat_records(
    store: VariantStore, region: Region, samples: list[str]
) -> set[tuple[object, ...]]:
    """(contig, start, end, REF, sample, allele bases) per call: independent of grouping."""
    rows = set()
    for batch in store.records(region, samples=samples, batch_size=3):
        for r in batch:
            alleles = (r.ref, *r.alts)
            for c in r.calls:
                bases = tuple(None if a is None else alleles[a] for a in c.alleles)
                rows.add((r.contig, r.start, r.end, r.ref, c.sample, bases))
    return rows


def truth_records(paths: list[Path], region: str, samples: list[str]) -> set[tuple[object, ...]]:
    rows = set()
    fmt = r"[%CHROM\t%POS\t%END\t%REF\t%SAMPLE\t%TGT\n]"
    for path in paths:
        present = [s for s in sh(f"bcftools query -l {path}").split() if s in samples]
        if not present:
            continue
        out = sh(f"bcftools query -r {region} -s {','.join(present)} -f '{fmt}' {path}")
        for line in out.splitlines():
            chrom, pos, end, ref, sample, tgt = line.split("\t")
            bases = tuple(None if b == "." else b for b in tgt.replace("|", "/").split("/"))
            rows.add((normalize_contig(chrom), int(pos) - 1, int(end), ref, sample, bases))
    return rows


def ingest_memory(paths: list[Path]) -> MemoryStore:
    store = MemoryStore()
    for path in paths:
        store.ingest([path])
    return store


queries = st.tuples(
    st.sampled_from(CONTIGS), st.integers(0, 3200), st.integers(0, 600),
    st.one_of(st.none(), st.sets(st.sampled_from(list(VariantType)), min_size=1).map(frozenset)),
    st.one_of(st.none(), st.integers(1, 4)), st.one_of(st.none(), st.integers(1, 500)),
)


def _variant_keys(merged: Path, contig: str, start: int, end: int) -> list[tuple[int, str, str]]:
    region = f"{contig}:{start + 1}-{end}"
    out = sh(f"bcftools +fill-tags -r {region} {merged} -- -t AC"
             " | bcftools query -f '%POS\\t%REF\\t%ALT\\t%AC\\n'")
    keys = set()
    for pos, ref, alts, acs in (x.split("\t") for x in out.splitlines()):
        for alt, ac in zip(alts.split(","), acs.split(","), strict=True):
            if ac != "0" and not is_placeholder_allele(alt):
                keys.add((int(pos) - 1, ref, alt))
    return sorted(keys)


@SETTINGS
@given(cohort=cohorts(), query=queries, data=st.data())
def test_memory_store_equals_bcftools(cohort: Cohort, query: tuple, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths, merged = write_cohort(cohort, Path(tmp))
        store = ingest_memory(paths)
        truth = truth_stats(merged)
        keys = list(truth)
        # an allele no called genotype carries (AC 0) has the site's AN; where nobody is
        # called (NS 0) the allele number is unknown: None
        assert store.allele_stats(keys) == [truth[k] if truth[k].n_called else None for k in keys]
        absent = [AlleleKey(k.contig, k.start, k.ref, k.alt + "A") for k in keys]
        absent += [AlleleKey(k.contig, k.start + 1, k.ref, k.alt) for k in keys]
        absent = [k for k in absent if k not in truth]
        assert store.allele_stats(absent) == [site_truth(truth, k) for k in absent]
        contig, start, width, *_ = query
        if start + width > start:
            got = [(v.start, v.ref, v.alt) for v in store.variants(
                Region(normalize_contig(contig), start, start + width))]
            assert got == _variant_keys(merged, contig, start, start + width)
        samples = data.draw(st.lists(st.sampled_from(store.samples), min_size=1, unique=True))
        region = Region(normalize_contig(contig), start, start + width + 1)
        bcf_region = f"{contig}:{start + 1}-{start + width + 1}"
        assert flat_records(store, region, samples) == truth_records(paths, bcf_region, samples)


def _tiledb_store_class() -> type | None:
    try:
        from node.store.tiledbvcf import TileDBVCFStore
    except ImportError:
        return None
    return TileDBVCFStore


needs_tiledb = pytest.mark.skipif(
    _tiledb_store_class() is None, reason="node.store.tiledbvcf not written yet"
)


@contextlib.contextmanager
def both_stores(cohort: Cohort) -> Iterator[tuple[MemoryStore, VariantStore, Path]]:
    """The cohort ingested file by file into a MemoryStore and a TileDB store."""
    cls = _tiledb_store_class()
    assert cls is not None
    with tempfile.TemporaryDirectory() as tmp:
        paths, merged = write_cohort(cohort, Path(tmp))
        tiledb = cls.create(str(Path(tmp) / "ds"), assembly="GRCh38")
        try:
            for path in paths:
                tiledb.ingest([path])
            yield ingest_memory(paths), tiledb, merged
        finally:
            tiledb.close()


@needs_tiledb
@pytest.mark.slow
@TILEDB_SETTINGS
@given(cohort=cohorts(), query=queries)
def test_tiledb_stats_and_variants_equal_memory_store(cohort: Cohort, query: tuple) -> None:
    contig, start, width, types, lo, hi = query
    region = Region(normalize_contig(contig), start, start + width)
    filters = {"variant_types": types, "min_length": lo, "max_length": hi}
    with both_stores(cohort) as (memory, tiledb, merged):
        assert tiledb.samples == memory.samples
        assert tiledb.contigs() == memory.contigs()
        keys = list(truth_stats(merged))
        keys += [AlleleKey(k.contig, k.start, k.ref, k.alt + "T") for k in keys]
        assert tiledb.allele_stats(keys) == memory.allele_stats(keys)
        got = [_variant_row(v) for v in tiledb.variants(region, **filters)]
        assert got == [_variant_row(v) for v in memory.variants(region, **filters)]


@needs_tiledb
@pytest.mark.slow
@TILEDB_SETTINGS
@given(cohort=cohorts(), query=queries, data=st.data())
def test_tiledb_records_equal_memory_store(
    cohort: Cohort, query: tuple, data: st.DataObject
) -> None:
    contig, start, width, *_ = query
    region = Region(normalize_contig(contig), start, start + width)
    with both_stores(cohort) as (memory, tiledb, _):
        samples = data.draw(st.lists(st.sampled_from(memory.samples), min_size=1, unique=True))
        assert flat_records(tiledb, region, samples) == flat_records(memory, region, samples)


def _variant_row(v: Variant) -> tuple[object, ...]:
    return (v.contig, v.start, v.end, v.ref, v.alt, v.variant_type, v.stats)


@needs_tiledb
@pytest.mark.parametrize("seed", range(3))
def test_tiledb_reference_blocks_equal_memory_store(tmp_path: Path, seed: int) -> None:
    """gVCF cohorts (blocks, gaps, variants; MemoryStore checked against merge --gvcf)."""
    from tests.store.test_memory import _gvcf_cohort

    cls = _tiledb_store_class()
    assert cls is not None
    paths = _gvcf_cohort(tmp_path, seed)
    memory, tiledb = MemoryStore(), cls.create(str(tmp_path / "ds"), assembly="GRCh38")
    try:
        for path in paths:
            memory.ingest([path])
            tiledb.ingest([path])
        region = Region("1", 0, 4000)
        want = [_variant_row(v) for v in memory.variants(region)]
        assert [_variant_row(v) for v in tiledb.variants(region)] == want and want
        # Every position, carried or not: AC 0 over what records and blocks call there.
        absent = [AlleleKey("1", p, "N", "<INS>") for p in range(region.start, region.end)]
        assert tiledb.allele_stats(absent) == memory.allele_stats(absent)
        assert any(absent_stats is None for absent_stats in memory.allele_stats(absent))
        for sample in memory.samples:
            assert flat_records(tiledb, region, [sample]) == flat_records(memory, region, [sample])
    finally:
        tiledb.close()
