"""A synthetic cohort split over nodes, and bcftools' truth of the merged cohort.

Splits (issue 17): by samples (every node's VCF holds every site, AC 0 where its samples
lack an allele); by sites (each node's VCF keeps only the records some of its samples
carry an ALT of, `bcftools view -c1`), with or without gVCF reference blocks (`<*>`, 0/0,
INFO/END) over the rest of the contig. Truth: `bcftools merge` (`--gvcf REF.fa` with
blocks) of the nodes' files, then `+fill-tags`.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pysam

from node.domain import AlleleKey, normalize_contig
from node.synth import generate_cohort

CONTIG = "22"
LENGTH = 200_000
_PLACEHOLDERS = {"<*>", "<NON_REF>", "*"}


@dataclass(frozen=True)
class Split:
    files: tuple[Path, ...]  # one VCF per node
    merged: Path  # bcftools' merge of the files: the whole cohort


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def by_samples(folder: Path, *, samples: int = 90, seed: int = 17) -> Split:
    info = generate_cohort(folder / "c.vcf.gz", samples=samples, length=LENGTH, seed=seed,
                           contigs=(CONTIG,), groups=3)
    return Split(info.paths, _merge(info.paths, folder / "merged.vcf.gz"))


def by_sites(folder: Path, *, blocks: bool, samples: int = 90, seed: int = 17) -> Split:
    whole = by_samples(folder, samples=samples, seed=seed)
    own = []
    for i, path in enumerate(whole.files):
        out = folder / f"own{i}.vcf.gz"
        sh("bcftools", "view", "-c1", "-Oz", "-o", str(out), str(path))
        own.append(out)
    if not blocks:
        return Split(tuple(_indexed(p) for p in own), _merge(own, folder / "merged-own.vcf.gz"))
    fasta = _reference(whole.merged, folder / "ref.fa")
    gvcfs = [_with_blocks(p, fasta, folder / f"g{i}.vcf") for i, p in enumerate(own)]
    merged = folder / "merged-gvcf.vcf.gz"
    sh("bcftools", "merge", "--gvcf", str(fasta), "-Oz", "-o", str(merged), *map(str, gvcfs))
    return Split(tuple(gvcfs), merged)


def _indexed(path: Path) -> Path:
    sh("bcftools", "index", "-f", "-t", str(path))
    return path


def _merge(files: tuple[Path, ...] | list[Path], out: Path) -> Path:
    sh("bcftools", "merge", "-Oz", "-o", str(out), *map(str, files))
    return out


def _reference(vcf: Path, out: Path) -> Path:
    """A reference agreeing with the REF of every record (A elsewhere), faidx-indexed."""
    seq = bytearray(b"A" * LENGTH)
    for line in sh("bcftools", "query", "-f", "%POS\t%REF\n", str(vcf)).splitlines():
        pos, ref = line.split("\t")
        seq[int(pos) - 1 : int(pos) - 1 + len(ref)] = ref.encode()
    out.write_text(f">{CONTIG}\n" + seq[:LENGTH].decode() + "\n")
    pysam.faidx(str(out))
    return out


def _with_blocks(vcf: Path, fasta: Path, out: Path) -> Path:
    """`vcf` plus 0/0 reference blocks over every base its records do not cover."""
    ref = pysam.FastaFile(str(fasta))
    header = sh("bcftools", "view", "-h", str(vcf)).splitlines()
    samples = header[-1].split("\t")[9:]
    header[-1:-1] = ['##ALT=<ID=*,Description="Any other allele">',
                     '##INFO=<ID=END,Number=1,Type=Integer,Description="Block end">']
    block = "\t".join(["0/0"] * len(samples))
    rows, covered = [], 0  # covered: the last base (1-based) records cover so far
    for line in sh("bcftools", "view", "-H", str(vcf)).splitlines():
        fields = line.split("\t")
        pos, span = int(fields[1]), len(fields[3])
        if pos > covered + 1:
            rows.append(_block(covered + 1, pos - 1, ref, block))
        rows.append(line)
        covered = max(covered, pos + span - 1)
    if covered < LENGTH:
        rows.append(_block(covered + 1, LENGTH, ref, block))
    out.write_text("\n".join([*header, *rows]) + "\n")
    return Path(pysam.tabix_index(str(out), preset="vcf", force=True))


def _block(start: int, end: int, ref: pysam.FastaFile, calls: str) -> str:
    base = ref.fetch(CONTIG, start - 1, start)
    return "\t".join([CONTIG, str(start), ".", base, "<*>", ".", ".", f"END={end}", "GT", calls])


def fill_tags(vcf: Path) -> dict[AlleleKey, tuple[int, int]]:
    """(AC, AN) of every ALT of `vcf` (placeholders left out), from `bcftools +fill-tags`."""
    tagged = subprocess.run(["bcftools", "+fill-tags", str(vcf), "-Ou", "--", "-t", "AC,AN"],
                            check=True, capture_output=True).stdout
    out = subprocess.run(["bcftools", "query", "-f", "%CHROM\t%POS\t%REF\t%ALT\t%AC\t%AN\n", "-"],
                         input=tagged, check=True, capture_output=True).stdout.decode()
    truth = {}
    for line in out.splitlines():
        chrom, pos, ref, alts, acs, an = line.split("\t")
        for alt, ac in zip(alts.split(","), acs.split(","), strict=True):
            if alt not in _PLACEHOLDERS:
                key = AlleleKey(normalize_contig(chrom), int(pos) - 1, ref, alt)
                truth[key] = (int(ac), int(an))
    return truth


def called_at(vcf: Path) -> tuple[set[int], list[tuple[int, int]]]:
    """Where some sample of `vcf` is called (0-based): starts of records with AN > 0, and
    the [start, end] spans of its reference blocks (bcftools' view of the file)."""
    tagged = subprocess.run(["bcftools", "+fill-tags", str(vcf), "-Ou", "--", "-t", "AN"],
                            check=True, capture_output=True).stdout
    out = subprocess.run(["bcftools", "query", "-f", "%POS\t%END\t%ALT\t%AN\n", "-"],
                         input=tagged, check=True, capture_output=True).stdout.decode()
    starts, blocks = set(), []
    for line in out.splitlines():
        pos, end, alt, an = line.split("\t")
        if alt in _PLACEHOLDERS:
            blocks.append((int(pos) - 1, int(end) - 1))
        elif int(an) > 0:
            starts.add(int(pos) - 1)
    return starts, blocks


def knows(called: tuple[set[int], list[tuple[int, int]]], start: int) -> bool:
    starts, blocks = called
    return start in starts or any(lo <= start <= hi for lo, hi in blocks)
