"""The demo's reads agree with its cohort: checked by bcftools, not by our own code."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pysam

from node.demo.reads import simulate_bam, write_reference
from node.synth import generate_cohort


def _run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def test_reference_agrees_with_every_ref_allele(tmp_path: Path) -> None:
    cohort = generate_cohort(tmp_path / "c.vcf.gz", samples=20, length=50_000, seed=7)
    write_reference(cohort.paths[0], tmp_path / "ref.fa", length=51_000, seed=7)
    # `bcftools norm -c e` exits non-zero on the first REF that disagrees with the FASTA.
    result = subprocess.run(
        ["bcftools", "norm", "-c", "e", "-f", str(tmp_path / "ref.fa"), "-Ou", "-o", "/dev/null",
         str(cohort.paths[0])],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr


def test_reads_carry_the_samples_snv_genotypes(tmp_path: Path) -> None:
    cohort = generate_cohort(
        tmp_path / "c.vcf.gz", samples=10, length=30_000, seed=11, missing_rate=0.0,
        indel_rate=0.0, multiallelic_rate=0.0,
    )
    vcf, sample = cohort.paths[0], cohort.samples[3]
    seqs = write_reference(vcf, tmp_path / "ref.fa", length=31_000, seed=11)
    simulate_bam(vcf, sample, seqs, tmp_path / "s.bam", coverage=40, seed=3)
    assert _run("samtools", "quickcheck", "-v", str(tmp_path / "s.bam")) == ""
    # Independent truth: bcftools calls variants from the reads alone.
    pileup = subprocess.run(
        ["bcftools", "mpileup", "-a", "AD", "-f", str(tmp_path / "ref.fa"), "-Ou",
         str(tmp_path / "s.bam")], check=True, capture_output=True,
    ).stdout
    called = subprocess.run(
        ["bcftools", "call", "-m", "-v", "-Ov"], input=pileup, check=True, capture_output=True,
    ).stdout.decode()
    calls = {
        int(line.split("\t")[1]): line.split("\t")[9].split(":")[0].replace("|", "/")
        for line in called.splitlines() if not line.startswith("#")
    }
    truth = {}
    with pysam.VariantFile(str(vcf)) as source:
        for rec in source.fetch():
            gt = rec.samples[sample]["GT"]
            if any(gt):
                truth[rec.pos] = "/".join(str(a) for a in sorted(gt))
    agree = sum(calls.get(pos) == gt for pos, gt in truth.items())
    assert truth and agree >= 0.9 * len(truth), (agree, len(truth))
    assert len(set(calls) - set(truth)) <= 0.05 * len(truth)
