"""MemoryStore against bcftools: statistics (+fill-tags), regions (view -r), genotypes (query)."""

from __future__ import annotations

import random
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.domain import AlleleKey, AlleleStats, Region, normalize_contig
from node.errors import Conflict, IngestError, NotFound
from node.names import VariantType
from node.store.memory import MemoryStore, classify, is_placeholder_allele
from node.synth import generate_cohort

FILL = "AC,AN,AC_Hom,AC_Het,AC_Hemi,NS"
QUERY = r"%CHROM\t%POS\t%REF\t%ALT\t%AC\t%AN\t%AC_Hom\t%AC_Het\t%AC_Hemi\t%NS\n"

BEACON = "beacon-testdata"
G1000 = f"{BEACON}/cnag-beacon2-cbi-tools/integration_assets/test_1000G.vcf.gz"
EGA = [
    f"{BEACON}/ega-beacon2-ri-tools-v2/vcf/case1C_subset.vcf.gz",
    f"{BEACON}/ega-beacon2-ri-tools-v2/vcf/synthetic_usecases_4beacon_testingV4.vcf.gz",
]
HTSGET = ["htsget-testdata/vcf/sample1-bcbio-cancer.vcf.gz", "htsget-testdata/vcf/spec-v4.3.vcf.gz"]
COHORT10 = "tiledbvcf-fixture/inputs/snp_cohort10"


def sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True).stdout


def fill_tags(path: Path) -> Iterator[tuple[AlleleKey, AlleleStats]]:
    """bcftools' per-allele statistics, as AlleleStats (ploidy <= 2).

    A one-allele call (haploid or `./1`) is hemizygous (AC_Hemi): a carrier, neither
    hom nor het; diploid hom-alt calls add two copies to AC_Hom.
    """
    out = sh(f"bcftools +fill-tags '{path}' -- -t {FILL} | bcftools query -f '{QUERY}'")
    for line in out.splitlines():
        chrom, pos, ref, alts, ac, an, hom, het, hemi, ns = line.split("\t")
        for i, alt in enumerate(alts.split(",")):
            if alt == "." or is_placeholder_allele(alt):
                continue
            def n(col: str, i: int = i) -> int:
                value = col.split(",")[i] if "," in col else col
                return 0 if value == "." else int(value)
            hom_alt = n(hom) // 2
            stats = AlleleStats(n(ac), n(an), hom_alt, n(het), hom_alt + n(het) + n(hemi), n(ns))
            yield AlleleKey(normalize_contig(chrom), int(pos) - 1, ref, alt), stats


def assert_matches_fill_tags(store: MemoryStore, truth_vcf: Path) -> int:
    truth = list(fill_tags(truth_vcf))
    repeats = Counter(k for k, _ in truth)
    unique = [(k, s if s.n_called else None) for k, s in truth if repeats[k] == 1]
    got = store.allele_stats([k for k, _ in unique])
    mismatches = [(k, s, g) for (k, s), g in zip(unique, got, strict=True) if s != g]
    assert not mismatches, mismatches[:5]
    # A key on several lines (exact duplicate records): per-sample maximum, so AC <= AN.
    for key in (k for k, c in repeats.items() if c > 1):
        stats = store.allele_stats([key])[0]
        if stats is None:
            assert all(s.ac == 0 for k, s in truth if k == key)
            continue
        assert stats.ac <= stats.an
        assert stats.ac >= max(s.ac for k, s in truth if k == key)
    return len(unique)


@pytest.fixture(scope="module")
def g1000(shared_dir: Path) -> MemoryStore:
    store = MemoryStore(assembly="GRCh37")
    store.ingest([shared_dir / G1000])
    return store


@pytest.fixture(scope="module")
def g1000_indexed(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("g1000") / "g1000.vcf.gz"
    sh(f"bcftools view -Oz -o {out} {shared_dir / G1000} && bcftools index -t {out}")
    return out


@pytest.mark.slow
def test_1000g_stats_equal_fill_tags(g1000: MemoryStore, shared_dir: Path) -> None:
    assert len(g1000.samples) == 2504
    assert assert_matches_fill_tags(g1000, shared_dir / G1000) > 1000


@pytest.mark.parametrize("name", EGA + HTSGET)
def test_small_files_stats_equal_fill_tags(shared_dir: Path, name: str) -> None:
    store = MemoryStore()
    store.ingest([shared_dir / name])
    assert assert_matches_fill_tags(store, shared_dir / name) > 0


def test_single_sample_ingests_equal_merged_fill_tags(shared_dir: Path) -> None:
    """Ten one-sample files ingested one by one == bcftools merge (missing = ./.)."""
    folder = shared_dir / COHORT10
    store = MemoryStore()
    for k in range(10):
        summary = store.ingest([folder / f"S{k:03d}.vcf.gz"])
        assert summary.samples_added == (f"S{k:03d}",)
    assert store.samples == tuple(f"S{k:03d}" for k in range(10))
    assert assert_matches_fill_tags(store, folder / "merged10.vcf.gz") > 3_000


def test_synthetic_cohort_split_ingest_equals_fill_tags(tmp_path: Path) -> None:
    whole = generate_cohort(
        tmp_path / "c.vcf.gz", samples=30, length=200_000, seed=3, contigs=("1", "Y")
    )
    split = generate_cohort(
        tmp_path / "s.vcf.gz", samples=30, length=200_000, seed=3, contigs=("1", "Y"), groups=3
    )
    store = MemoryStore()
    for path in split.paths:
        store.ingest([path])
    assert store.samples == whole.samples
    assert assert_matches_fill_tags(store, whole.paths[0]) == whole.n_sites + whole.n_multiallelic


def _region_keys(vcf: Path, region: str) -> list[tuple[int, str, str]]:
    """Alleles of records overlapping `region` carried by at least one genotype (AC > 0)."""
    out = sh(f"bcftools +fill-tags -r {region} {vcf} -- -t AC"
             " | bcftools query -f '%POS\\t%REF\\t%ALT\\t%AC\\n'")
    keys = set()
    for line in out.splitlines():
        pos, ref, alts, acs = line.split("\t")
        keys |= {(int(pos) - 1, ref, a) for a, ac in zip(alts.split(","), acs.split(","),
                                                         strict=True) if ac not in ("0", ".")}
    return sorted(k for k in keys if not is_placeholder_allele(k[2]))


@pytest.mark.parametrize("region", ["1:10000-20000", "1:54712-54712", "1:1-1000000", "2:1-10"])
def test_variants_region_equals_bcftools_view(
    g1000: MemoryStore, g1000_indexed: Path, region: str
) -> None:
    contig, span = region.split(":")
    lo, hi = (int(x) for x in span.split("-"))
    found = list(g1000.variants(Region(contig, lo - 1, hi)))
    assert [(v.start, v.ref, v.alt) for v in found] == _region_keys(g1000_indexed, region)
    assert all(v.stats == g1000.allele_stats([v.key])[0] for v in found)


def test_classify_equals_bcftools_type(shared_dir: Path) -> None:
    """classify() against bcftools' own TYPE for sequence-resolved alleles."""
    names = {"SNP": VariantType.SNP, "MNP": VariantType.MNP, "INDEL": VariantType.INDEL}
    checked = Counter[str]()
    for name in (G1000, HTSGET[1], COHORT10 + "/merged10.vcf.gz"):
        fmt = "%REF\\t%ALT\\t%TYPE\\n"
        out = sh(f"bcftools norm -m -any {shared_dir / name} | bcftools query -f '{fmt}'")
        for line in out.splitlines():
            ref, alt, kind = line.split("\t")
            if kind in names:
                assert classify(ref, alt) is names[kind], line
                checked[kind] += 1
    assert checked["SNP"] > 1000 and checked["INDEL"] > 100


@pytest.mark.parametrize(
    ("alt", "expected"),
    [("<DEL>", "DEL"), ("<DUP:TANDEM>", "DUP"), ("<INV>", "INV"), ("<CNV>", "CNV"),
     ("<INS:ME:ALU>", "INS"), ("G]17:198982]", "BND"), ("]13:123456]T", "BND"), (".A", "BND"),
     ("<NON_REF>", "REF"), ("<*>", "REF"), ("<FOO>", "SV")],
)
def test_classify_symbolic_alleles_per_vcf_spec(alt: str, expected: str) -> None:
    # VCF 4.3 §1.4.5 (symbolic) and §5.4 (breakends) name these classes.
    assert classify("A", alt) == VariantType(expected)


def test_type_and_length_filters(g1000: MemoryStore) -> None:
    region = Region("1", 0, 2_000_000)
    every = list(g1000.variants(region))
    snps = list(g1000.variants(region, variant_types=frozenset({VariantType.SNP})))
    long = list(g1000.variants(region, min_length=3, max_length=10))
    assert snps == [v for v in every if v.variant_type is VariantType.SNP]
    assert long == [v for v in every if 3 <= max(len(v.ref), len(v.alt)) <= 10]
    assert snps and long


def _render(alleles: tuple[int | None, ...], phased: bool) -> str:
    return ("|" if phased else "/").join("." if a is None else str(a) for a in alleles)


@pytest.mark.parametrize("name", [*HTSGET, COHORT10 + "/merged10.vcf.gz"])
def test_records_genotypes_equal_bcftools_query(shared_dir: Path, name: str) -> None:
    path = shared_dir / name
    store = MemoryStore()
    store.ingest([path])
    samples = list(store.samples[::2])
    chrom = sh(f"bcftools query -f '%CHROM\\n' {path} | head -1").strip()
    region = f"{chrom}:1-30000000"
    truth = sh(
        f"bcftools view -r {region} -s {','.join(samples)} {path}"
        f" | bcftools query -f '[%POS\\t%REF\\t%ALT\\t%SAMPLE\\t%GT\\n]'"
    ).splitlines()
    got = [
        "\t".join([str(r.start + 1), r.ref, ",".join(r.alts) or ".", c.sample,
                   _render(c.alleles, c.phased)])
        for batch in store.records(Region(normalize_contig(chrom), 0, 30_000_000),
                                   samples=samples, batch_size=7)
        for r in batch
        for c in r.calls
    ]
    assert got == truth and truth


def test_reingest_conflicts_unless_replace(shared_dir: Path) -> None:
    path = shared_dir / HTSGET[1]
    store = MemoryStore()
    store.ingest([path])
    before = list(store.variants(Region("20", 0, 10**8)))
    with pytest.raises(Conflict):
        store.ingest([path])
    summary = store.ingest([path], replace=True)
    assert summary.samples_replaced == store.samples and summary.samples_added == ()
    assert list(store.variants(Region("20", 0, 10**8))) == before


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.vcf"
    junk.write_text("this is not a VCF\n")
    store = MemoryStore()
    with pytest.raises(IngestError, match=r"junk\.vcf"):
        store.ingest([junk])
    with pytest.raises(IngestError):
        store.ingest([tmp_path / "absent.vcf.gz"])
    assert store.samples == ()
    with pytest.raises(NotFound):
        list(store.records(Region("1", 0, 10), samples=["nobody"]))


def _gvcf_cohort(folder: Path, seed: int, n_samples: int = 4, length: int = 3000) -> list[Path]:
    """One-sample gVCFs: reference blocks, gaps, and variants at a shared pool of sites."""
    rng = random.Random(seed)
    seq = "".join(rng.choice("ACGT") for _ in range(length + 10))
    (folder / "ref.fa").write_text(f">1\n{seq}\n")
    pool = {p: rng.choice([1, 1, 1, 3]) for p in rng.sample(range(2, length - 5), 60)}
    header = ["##fileformat=VCFv4.2", f"##contig=<ID=1,length={length + 10}>",
              '##INFO=<ID=END,Number=1,Type=Integer,Description="End">',
              '##ALT=<ID=NON_REF,Description="any other allele">',
              '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">']
    paths = []
    for k in range(n_samples):
        mine = sorted(p for p in pool if rng.random() < 0.5)
        rows, pos = [], 1
        while pos < length:
            upcoming = next((p for p in mine if p >= pos), length)
            if pos == upcoming:
                ref = seq[pos - 1:pos - 1 + pool[pos]]
                alt = ref[0] if len(ref) > 1 else rng.choice([b for b in "ACGT" if b != ref])
                gt = rng.choice(["0/1", "1/1", "0/0", "./1"])
                rows.append(f"1\t{pos}\t.\t{ref}\t{alt},<NON_REF>\t.\t.\t.\tGT\t{gt}")
                pos += len(ref)
            elif rng.random() < 0.8:
                end = min(upcoming - 1, pos + rng.randint(0, 80))
                rows.append(f"1\t{pos}\t.\t{seq[pos - 1]}\t<NON_REF>\t.\t.\tEND={end}\tGT\t0/0")
                pos = end + 1
            else:
                pos = min(upcoming, pos + rng.randint(1, 20))
        text = folder / f"G{k}.vcf"
        text.write_text("\n".join([*header, f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"
                                   f"\tFORMAT\tG{k}", *rows]) + "\n")
        sh(f"bgzip -f {text} && tabix -f -p vcf {text}.gz")
        paths.append(Path(f"{text}.gz"))
    return paths


@pytest.mark.parametrize("seed", range(4))
def test_reference_blocks_count_as_hom_ref_like_merge_gvcf(tmp_path: Path, seed: int) -> None:
    """A sample whose gVCF block covers a site is called 0/0 there (`bcftools merge --gvcf`)."""
    paths = _gvcf_cohort(tmp_path, seed)
    merged = tmp_path / "merged.vcf.gz"
    sh(f"samtools faidx {tmp_path / 'ref.fa'} && bcftools merge --gvcf {tmp_path / 'ref.fa'}"
       f" -Oz -o {merged} {' '.join(map(str, paths))}")
    store = MemoryStore()
    for path in paths:
        store.ingest([path])
    assert assert_matches_fill_tags(store, merged) > 10
    assert all(v.variant_type is not VariantType.REF for v in store.variants(Region("1", 0, 4000)))
