"""TileDBVCFStore against bcftools on the same input: statistics, records, ingest rules."""

from __future__ import annotations

import random
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from node.domain import AlleleKey, Region, normalize_contig
from node.errors import Conflict, IngestError, InvalidInput, NotFound
from node.names import VariantType
from node.store.base import VariantStore
from node.store.tiledbvcf import TileDBVCFStore, list_datasets

BCFTOOLS = shutil.which("bcftools")
pytestmark = pytest.mark.skipif(BCFTOOLS is None, reason="bcftools is not installed")
WHOLE = 300_000_000


def sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True).stdout


def fill_tags_truth(vcf: Path) -> dict[AlleleKey, tuple[int, int, int, int, int]]:
    """bcftools +fill-tags per ALT allele: (AC, AN, hom-alt samples, AC_Het, NS).

    Multi-allelic records are split first (`norm -m-` keeps per-allele AC); AC_Hom counts
    alleles, so hom-alt samples = AC_Hom / 2 for diploid calls.
    """
    out = sh(
        f"bcftools norm -m- {vcf} -Ou | bcftools +fill-tags -- -t AC,AN,AC_Hom,AC_Het,NS "
        "| bcftools query -f '%CHROM\\t%POS\\t%REF\\t%ALT\\t%AC\\t%AN\\t%AC_Hom\\t%AC_Het\\t%NS\\n'"
    )
    truth, seen = {}, Counter[AlleleKey]()
    for line in out.splitlines():
        chrom, pos, ref, alt, *values = line.split("\t")
        if alt == ".":
            continue  # no ALT: not an allele
        ac, an, hom, het, ns = (0 if v == "." else int(v) for v in values)
        key = AlleleKey(normalize_contig(chrom), int(pos) - 1, ref, alt)
        truth[key] = (ac, an, hom // 2, het, ns)
        seen[key] += 1
    # The same allele in two records of one input: bcftools reports each record, the store
    # sums them (one allele, one answer); such keys are left out of the comparison.
    return {k: v for k, v in truth.items() if seen[k] == 1}


def assert_stats_match(
    store: VariantStore, truth: dict[AlleleKey, tuple[int, int, int, int, int]]
) -> int:
    keys = list(truth)
    got = store.allele_stats(keys)
    checked = 0
    for key, stats in zip(keys, got, strict=True):
        ac, an, hom, het, ns = truth[key]
        # Nobody called (NS 0): the allele number is unknown; an uncarried allele at a
        # called site is AC 0 over the site's AN (checked below like the others).
        if ns == 0 or key.alt in ("<NON_REF>", "<*>", "*"):
            assert stats is None, key
            continue
        assert stats is not None, key
        assert (stats.ac, stats.an, stats.n_hom_alt, stats.n_het, stats.n_called) == (
            ac,
            an,
            hom,
            het,
            ns,
        ), key
        assert stats.n_carriers >= stats.n_het + stats.n_hom_alt
        checked += 1
    return checked


def write_vcf(
    path: Path,
    samples: list[str],
    rows: list[str],
    *,
    contig_prefix: str = "chr",
    extra_header: str = "",
    reference: str = "GRCh38",
) -> Path:
    header = [
        "##fileformat=VCFv4.2",
        f"##reference={reference}",
        *(f"##contig=<ID={contig_prefix}{c},length=200000000>" for c in ("1", "2", "X")),
        '##INFO=<ID=END,Number=1,Type=Integer,Description="End">',
        '##INFO=<ID=SVTYPE,Number=1,Type=String,Description="SV type">',
        '##INFO=<ID=DB,Number=0,Type=Flag,Description="dbSNP">',
        '##INFO=<ID=AF_IN,Number=A,Type=Float,Description="input AF">',
        '##FILTER=<ID=q10,Description="Quality below 10">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">',
        '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allele depths">',
        '##FORMAT=<ID=FT,Number=1,Type=String,Description="Sample filter">',
        '##ALT=<ID=DEL,Description="Deletion">',
        *([extra_header] if extra_header else []),
        "\t".join(
            [
                "#CHROM",
                "POS",
                "ID",
                "REF",
                "ALT",
                "QUAL",
                "FILTER",
                "INFO",
                *(["FORMAT", *samples] if samples else []),
            ]
        ),
    ]
    text = "\n".join(header + rows) + "\n"
    plain = path.with_suffix("")
    plain.write_text(text)
    sh(f"bgzip -f {plain}")
    return path


def random_genotype(rng: random.Random, n_alleles: int, *, haploid: bool) -> str:
    pick = lambda: str(rng.choice(range(n_alleles))) if rng.random() > 0.1 else "."  # noqa: E731
    if haploid:
        return pick()
    sep = "|" if rng.random() < 0.5 else "/"
    return f"{pick()}{sep}{pick()}"


def cohort_rows(
    samples: int, *, seed: int, contig_prefix: str = "chr", records: int = 120
) -> list[str]:
    """Edge cases by construction: multi-allelic, indels, <DEL> with END, ./., ./1, haploid X."""
    rng = random.Random(seed)
    rows, pos = [], 1000
    for i in range(records):
        pos += rng.randint(1, 400)
        chrom = "X" if i >= records - 20 else "1"
        kind = i % 6
        if kind == 0:
            ref, alts, info = "A", ["G", "T"], "AF_IN=0.1,0.2"
        elif kind == 1:
            ref, alts, info = "CAT", ["C"], "DB"
        elif kind == 2:
            ref, alts, info = "G", ["GTTA", "A"], "."
        elif kind == 3:
            ref, alts, info = "T", ["<DEL>"], f"END={pos + 500};SVTYPE=DEL"
        else:
            ref, alts, info = rng.choice("ACGT"), [], "."
            alts = [rng.choice([b for b in "ACGT" if b != ref])]
        calls = []
        for _ in range(samples):
            gt = random_genotype(rng, 1 + len(alts), haploid=chrom == "X")
            ad = ",".join(str(rng.randint(0, 30)) for _ in range(1 + len(alts)))
            calls.append(f"{gt}:{rng.randint(0, 60)}:{ad}:{rng.choice(['PASS', 'lowDP'])}")
        filt = rng.choice(["PASS", ".", "q10"])
        qual = rng.choice([".", str(rng.randint(1, 99))])
        ident = rng.choice([".", f"rs{i}"])
        rows.append(
            "\t".join(
                [
                    f"{contig_prefix}{chrom}",
                    str(pos),
                    ident,
                    ref,
                    ",".join(alts),
                    qual,
                    filt,
                    info,
                    "GT:DP:AD:FT",
                    *calls,
                ]
            )
        )
    return rows


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    samples = [f"P{i:02d}" for i in range(12)]
    return write_vcf(tmp_path / "cohort.vcf.gz", samples, cohort_rows(12, seed=7))


@pytest.fixture
def store(tmp_path: Path) -> TileDBVCFStore:
    return TileDBVCFStore.create(str(tmp_path / "ds"))


def test_create_open_exists_and_listing(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    root.mkdir()
    assert list_datasets(str(root)) == []
    assert list_datasets(str(tmp_path / "absent")) == []
    TileDBVCFStore.create(str(root / "b"), assembly="GRCh37")
    TileDBVCFStore.create(str(root / "a"))
    (root / "not-a-dataset").mkdir()
    assert list_datasets(str(root)) == ["a", "b"]
    assert TileDBVCFStore.exists(str(root / "a"))
    assert not TileDBVCFStore.exists(str(root / "not-a-dataset"))
    store = TileDBVCFStore.open(str(root / "b"))
    assert isinstance(store, VariantStore)
    assert store.assembly == "GRCh37" and store.samples == () and store.contigs() == ()
    with pytest.raises(NotFound):
        TileDBVCFStore.open(str(root / "zzz"))
    with pytest.raises(Conflict):
        TileDBVCFStore.create(str(root / "a"))


def test_statistics_match_fill_tags(store: TileDBVCFStore, cohort: Path) -> None:
    summary = store.ingest([cohort], threads=2)
    assert summary.records == int(sh(f"bcftools view -H {cohort} | wc -l"))
    assert summary.samples_added == tuple(sh(f"bcftools query -l {cohort}").split())
    assert store.samples == summary.samples_added
    assert store.assembly == "GRCh38"
    assert assert_stats_match(store, fill_tags_truth(cohort)) > 100


def test_records_match_bcftools_query(store: TileDBVCFStore, cohort: Path) -> None:
    store.ingest([cohort])
    sh(f"tabix -f -p vcf {cohort}")
    fmt = "%CHROM\\t%POS\\t%REF\\t%ALT\\t%ID\\t%FILTER[\\t%SAMPLE=%GT:%DP:%FT]\\n"
    expected = sh(f"bcftools query -r chr1:2000-30000 -f '{fmt}' {cohort}")
    got = []
    for batch in store.records(Region("1", 1999, 30000), batch_size=7):
        assert len(batch) <= 7
        for r in batch:
            calls = {c.sample: c for c in r.calls}
            cols = [
                r.source_contig,
                str(r.start + 1),
                r.ref,
                ",".join(r.alts),
                ";".join(r.ids) or ".",
                ";".join(r.filters) or ".",
            ]
            for sample in store.samples:
                c = calls.get(sample)
                assert c is not None, (r.start, sample)  # ./. calls are stored too
                sep = "|" if c.phased else "/"
                gt = sep.join("." if a is None else str(a) for a in c.alleles)
                cols.append(f"{sample}={gt}:{c.fields.get('DP', '.')}:{c.fields.get('FT', '.')}")
            got.append("\t".join(cols))
    lines = expected.splitlines()
    assert len(got) == len(lines) > 10
    subset = [r for b in store.records(Region("1", 1999, 30000), samples=["P03", "P07"]) for r in b]
    assert {c.sample for r in subset for c in r.calls} == {"P03", "P07"}
    assert len(subset) <= len(got)
    for mine, theirs in zip(got, lines, strict=True):
        for a, b in zip(mine.split("\t"), theirs.split("\t"), strict=True):
            assert a == b


def test_variants_region_types_and_lengths(store: TileDBVCFStore, cohort: Path) -> None:
    store.ingest([cohort])
    truth = fill_tags_truth(cohort)
    region = Region("1", 0, WHOLE)
    variants = list(store.variants(region))
    expected = sorted(
        (k.start, k.ref, k.alt) for k, v in truth.items() if k.contig == "1" and v[0] > 0
    )
    assert [(v.start, v.ref, v.alt) for v in variants] == expected
    assert all(v.stats.ac == truth[v.key][0] and v.source_contig == "chr1" for v in variants)
    dels = [v for v in variants if v.alt == "<DEL>"]
    assert dels and all(v.variant_type is VariantType.DEL and v.end - v.start == 501 for v in dels)
    only = list(store.variants(region, variant_types=frozenset({VariantType.SNP})))
    assert only and all(len(v.ref) == len(v.alt) == 1 for v in only)
    long = list(store.variants(region, min_length=4, max_length=4))
    assert long and all(v.length == 4 for v in long)
    # A deletion starting before the region but overlapping it is found (REF span 0-based).
    first_del = dels[0]
    inside = list(store.variants(Region("1", first_del.start + 100, first_del.start + 101)))
    assert first_del.key in [v.key for v in inside]


def test_later_ingest_and_replace_keep_statistics_right(
    tmp_path: Path, store: TileDBVCFStore
) -> None:
    full = cohort_rows(10, seed=11)
    names = [f"S{i}" for i in range(10)]
    merged = write_vcf(tmp_path / "all.vcf.gz", names, full)
    first = write_vcf(tmp_path / "first.vcf.gz", names[:6], [_subset(r, range(6)) for r in full])
    second = write_vcf(
        tmp_path / "second.vcf.gz", names[6:], [_subset(r, range(6, 10)) for r in full[::2]]
    )
    # bcftools merge is the truth for "a sample without a record is not called".
    sh(f"tabix -f -p vcf {first} && tabix -f -p vcf {second}")
    sh(f"bcftools merge -m none {first} {second} -Oz -o {tmp_path / 'merged.vcf.gz'}")
    store.ingest([first])
    store.ingest([second])
    assert store.samples == tuple(names)
    assert assert_stats_match(store, fill_tags_truth(tmp_path / "merged.vcf.gz")) > 50
    with pytest.raises(Conflict, match="S6"):
        store.ingest([second])
    # Replace S6..S9 with their full records: the dataset now equals `merged` (all records).
    full_second = write_vcf(
        tmp_path / "second_full.vcf.gz", names[6:], [_subset(r, range(6, 10)) for r in full]
    )
    summary = store.ingest([full_second], replace=True)
    assert summary.samples_replaced == tuple(names[6:]) and summary.samples_added == ()
    assert store.samples == tuple(names)
    assert assert_stats_match(store, fill_tags_truth(merged)) > 50
    reopened = TileDBVCFStore.open(store.uri)
    assert assert_stats_match(reopened, fill_tags_truth(merged)) > 50


def _subset(row: str, keep: range) -> str:
    cols = row.split("\t")
    return "\t".join(cols[:9] + [cols[9 + i] for i in keep])


def test_contig_naming_and_assembly(tmp_path: Path, store: TileDBVCFStore) -> None:
    plain = write_vcf(
        tmp_path / "plain.vcf.gz",
        ["A", "B"],
        cohort_rows(2, seed=3, contig_prefix=""),
        contig_prefix="",
    )
    store.ingest([plain])
    assert store.contigs() == ("1", "X")
    records = [r for b in store.records(Region("chr1", 0, WHOLE)) for r in b]
    assert records and all(r.contig == "1" and r.source_contig == "1" for r in records)
    other = TileDBVCFStore.create(str(tmp_path / "b37"))
    b37 = write_vcf(tmp_path / "b37.vcf.gz", ["C"], cohort_rows(1, seed=4), reference="hs37d5.fa")
    with pytest.raises(IngestError, match="GRCh37"):
        other.ingest([b37], assembly="GRCh38")
    with pytest.raises(InvalidInput):
        store.ingest([b37])


def test_bad_inputs_are_clear_errors(tmp_path: Path, store: TileDBVCFStore) -> None:
    with pytest.raises(IngestError, match="no such file"):
        store.ingest([tmp_path / "missing.vcf.gz"])
    garbage = tmp_path / "garbage.vcf"
    garbage.write_text("this is not a VCF\n")
    with pytest.raises(IngestError, match=r"garbage\.vcf"):
        store.ingest([garbage])
    sites = write_vcf(tmp_path / "sites.vcf.gz", [], ["chr1\t100\t.\tA\tG\t.\t.\t."])
    with pytest.raises(IngestError, match="no samples"):
        store.ingest([sites])
    with pytest.raises(NotFound):
        next(store.records(Region("1", 0, 10), samples=["nobody"]))
    assert store.samples == ()
