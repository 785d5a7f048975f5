"""node.synth: deterministic, valid VCF with a realistic spectrum, checked with bcftools."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from node.errors import InvalidInput
from node.synth import CohortInfo, generate_cohort


def sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> CohortInfo:
    out = tmp_path_factory.mktemp("synth") / "c.vcf.gz"
    return generate_cohort(
        out, samples=100, length=500_000, seed=11, contigs=("1", "chrX", "MT"),
        haploid_contigs=("MT",), indel_rate=0.1, multiallelic_rate=0.05, missing_rate=0.01,
        phased=False,
    )


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    args = {"samples": 20, "length": 50_000, "contigs": ("1", "Y")}
    a = generate_cohort(tmp_path / "a.vcf.gz", seed=5, **args)  # type: ignore[arg-type]
    b = generate_cohort(tmp_path / "b.vcf.gz", seed=5, **args)  # type: ignore[arg-type]
    c = generate_cohort(tmp_path / "c.vcf.gz", seed=6, **args)  # type: ignore[arg-type]
    assert a.paths[0].read_bytes() == b.paths[0].read_bytes()
    assert a.paths[0].read_bytes() != c.paths[0].read_bytes()
    assert a.n_sites > 0


def test_valid_vcf_per_bcftools(cohort: CohortInfo) -> None:
    path = cohort.paths[0]
    assert sh(f"bcftools query -l {path}").split() == list(cohort.samples)
    assert int(sh(f"bcftools view -H {path} | wc -l")) == cohort.n_sites
    # the tabix index answers region queries
    contigs = sh(f"bcftools index -s {path}").split()
    assert contigs[::3] == list(cohort.contigs)
    assert int(sh(f"bcftools view -H -r chrX {path} | wc -l")) > 0


def test_frequency_spectrum_is_realistic(cohort: CohortInfo) -> None:
    out = sh(f"bcftools +fill-tags {cohort.paths[0]} -t 1 -- -t AC,AN"
             " | bcftools query -f '%AC\\t%AN\\n'")
    rows = [line.split("\t") for line in out.splitlines()]
    freqs = [sum(int(x) for x in ac.split(",")) / int(an) for ac, an in rows]
    singletons = sum(1 for ac, _ in rows if ac == "1")
    assert len(freqs) > 500
    assert sum(f < 0.05 for f in freqs) > len(freqs) / 2  # most sites are rare
    assert singletons > len(freqs) / 10
    assert sum(f > 0.2 for f in freqs) > len(freqs) / 50  # and some are common


def test_injected_features_present(cohort: CohortInfo) -> None:
    path = cohort.paths[0]
    indels = int(sh(f"bcftools view -H -v indels {path} | wc -l"))
    multi = int(sh(f"bcftools view -H -m3 {path} | wc -l"))
    missing = sh(f"bcftools query -f '[%GT\\n]' {path} | grep -c '\\.' || true")
    assert indels == cohort.n_indels and indels > cohort.n_sites * 0.05
    assert multi == cohort.n_multiallelic and multi > 0
    assert int(missing) > 0 and cohort.n_missing_calls >= int(missing)


def test_haploid_contig_has_haploid_calls(cohort: CohortInfo) -> None:
    path = cohort.paths[0]
    mt = set(sh(f"bcftools query -r MT -f '[%GT\\n]' {path}").split())
    auto = set(sh(f"bcftools query -r 1 -f '[%GT\\n]' {path}").split())
    assert mt and all("/" not in g and "|" not in g for g in mt)
    assert auto and all("/" in g for g in auto)  # unphased diploid


def test_groups_split_samples_over_files(tmp_path: Path) -> None:
    whole = generate_cohort(tmp_path / "w.vcf.gz", samples=9, length=20_000, seed=2)
    split = generate_cohort(tmp_path / "s.vcf.gz", samples=9, length=20_000, seed=2, groups=3)
    assert [p.name for p in split.paths] == ["s.g1.vcf.gz", "s.g2.vcf.gz", "s.g3.vcf.gz"]
    names = [sh(f"bcftools query -l {p}").split() for p in split.paths]
    assert [len(n) for n in names] == [3, 3, 3]
    merged = tmp_path / "m.vcf"
    sh(f"bcftools merge -o {merged} {' '.join(map(str, split.paths))}")
    query = "bcftools query -f '%CHROM\\t%POS\\t%REF\\t%ALT[\\t%GT]\\n'"
    # bcftools merge drops the phase bit next to a missing allele ("0|." -> "0/.")
    assert _unphase_missing(sh(f"{query} {merged}")) == _unphase_missing(
        sh(f"{query} {whole.paths[0]}")
    )


def _unphase_missing(text: str) -> str:
    return re.sub(r"[^\t\n]*\.[^\t\n]*", lambda m: m.group(0).replace("|", "/"), text)


@pytest.mark.parametrize(
    "bad",
    [{"samples": 0}, {"length": 10}, {"ploidy": 3}, {"groups": 50}, {"missing_rate": 1.5}],
)
def test_bad_arguments_are_invalid_input(tmp_path: Path, bad: dict[str, float]) -> None:
    args: dict[str, float] = {"samples": 10, "length": 10_000, "seed": 1, **bad}
    with pytest.raises(InvalidInput):
        generate_cohort(tmp_path / "x.vcf.gz", **args)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        generate_cohort(tmp_path / "x.vcf", samples=10, length=10_000, seed=1)
