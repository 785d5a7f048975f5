"""Reads matching the demo cohort: a reference sequence and simulated BAMs.

The reference is random sequence with each VCF site's REF written in, so the cohort's
REF alleles agree with it. Reads for a sample are drawn from its two haplotypes with the
sample's SNV alleles applied (indels are not simulated into reads: demo data only).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pysam

__all__ = ["simulate_bam", "write_reference"]

READ_LENGTH = 100


def write_reference(vcf: Path, fasta: Path, *, length: int, seed: int) -> dict[str, bytearray]:
    """Write (and faidx) a FASTA whose bases agree with every REF allele of `vcf`."""
    rng = np.random.default_rng(seed)
    with pysam.VariantFile(str(vcf)) as source:
        contigs = [str(c) for c in source.header.contigs]
        sequences: dict[str, bytearray] = {
            c: bytearray(np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, length)].tobytes())
            for c in contigs
        }
        for rec in source.fetch():
            seq = sequences[rec.chrom]
            ref = (rec.ref or "").encode()
            seq[rec.start : rec.start + len(ref)] = ref
    with fasta.open("w") as out:
        for name, seq in sequences.items():
            out.write(f">{name}\n")
            for i in range(0, len(seq), 60):
                out.write(seq[i : i + 60].decode() + "\n")
    pysam.faidx(str(fasta))
    return sequences


def simulate_bam(
    vcf: Path,
    sample: str,
    sequences: dict[str, bytearray],
    bam: Path,
    *,
    coverage: float,
    seed: int,
) -> int:
    """Write a sorted, indexed BAM of `sample`'s reads; returns the number of reads."""
    rng = np.random.default_rng(seed)
    haplotypes = _haplotypes(vcf, sample, sequences)
    header = {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [{"SN": name, "LN": len(seq)} for name, seq in sequences.items()],
        "RG": [{"ID": sample, "SM": sample}],
    }
    unsorted = bam.with_suffix(".unsorted.bam")
    count = 0
    with pysam.AlignmentFile(str(unsorted), "wb", header=header) as out:
        for tid, (name, seq) in enumerate(sequences.items()):
            n_reads = int(len(seq) * coverage / READ_LENGTH)
            starts = np.sort(rng.integers(0, len(seq) - READ_LENGTH, n_reads))
            which = rng.integers(0, 2, n_reads)
            reverse = rng.random(n_reads) < 0.5
            for i, (start, hap) in enumerate(zip(starts, which, strict=True)):
                bases = haplotypes[name][hap][start : start + READ_LENGTH]
                out.write(_read(f"{sample}.{name}.{i}", tid, int(start), bases, bool(reverse[i]),
                                sample, out.header))
                count += 1
    pysam.sort("-o", str(bam), str(unsorted))
    unsorted.unlink()
    pysam.index(str(bam))
    return count


def _haplotypes(
    vcf: Path, sample: str, sequences: dict[str, bytearray]
) -> dict[str, Sequence[bytearray]]:
    haps: dict[str, Sequence[bytearray]] = {
        name: [bytearray(seq), bytearray(seq)] for name, seq in sequences.items()
    }
    with pysam.VariantFile(str(vcf)) as source:
        source.subset_samples([sample])
        for rec in source.fetch():
            alleles = rec.alleles or ()
            gt: tuple[int | None, ...] = rec.samples[sample]["GT"] or ()
            for h, allele in enumerate(gt[:2]):
                if allele and len(alleles[allele]) == len(alleles[0]) == 1:
                    haps[rec.chrom][h][rec.start] = ord(alleles[allele])
            if len(gt) == 1 and gt[0] and len(alleles[gt[0]]) == len(alleles[0]) == 1:
                haps[rec.chrom][1][rec.start] = ord(alleles[gt[0]])
    return haps


def _read(
    name: str, tid: int, start: int, bases: bytearray, reverse: bool, group: str,
    header: pysam.AlignmentHeader,
) -> pysam.AlignedSegment:
    read = pysam.AlignedSegment(header)
    read.query_name = name
    read.reference_id = tid
    read.reference_start = start
    read.query_sequence = bases.decode()
    read.flag = 16 if reverse else 0
    read.mapping_quality = 60
    read.cigartuples = [(0, len(bases))]
    read.query_qualities = pysam.qualitystring_to_array("I" * len(bases))
    read.set_tag("RG", group)
    return read
