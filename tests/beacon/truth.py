"""bcftools as the independent truth for the Beacon variant tests."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def bcftools(*args: str) -> str:
    done = subprocess.run(["bcftools", *args], check=True, capture_output=True, text=True)
    return done.stdout


def indexed_copy(vcf: Path, out: Path) -> Path:
    """A BGZF copy with a CSI index, so bcftools can answer region queries."""
    bcftools("view", "-Oz", "-o", str(out), str(vcf))
    bcftools("index", str(out))
    return out


@dataclass(frozen=True)
class TruthAllele:
    pos: int  # VCF POS (1-based)
    ref: str
    alt: str
    ac: int
    an: int
    n_hom: int
    n_het: int

    @property
    def internal_id(self) -> str:
        return f"chr1_{self.pos}_{self.ref}_{self.alt}"


def _pipeline(*stages: list[str]) -> str:
    """stdout of `stage1 | stage2 | ...` (no shell)."""
    data: bytes | None = None
    for stage in stages:
        data = subprocess.run(stage, input=data, check=True, capture_output=True).stdout
    assert data is not None
    return data.decode()


def alleles(vcf: Path, region: str | None = None, *, kind: str | None = None) -> list[TruthAllele]:
    """Alleles of records overlapping `region` (bcftools -r, 1-based inclusive), split
    into one line per ALT, with statistics recomputed by +fill-tags."""
    view = ["bcftools", "view", "-Ou"] + (["-r", region] if region else []) + [str(vcf)]
    # The type is decided per allele, after splitting (bcftools -v looks at whole records).
    kinds = ["bcftools", "view", "-Ou"] + (["-v", kind] if kind else []) + ["-"]
    text = _pipeline(
        view,
        ["bcftools", "norm", "-m-", "-Ou", "-"],
        kinds,
        ["bcftools", "+fill-tags", "-Ou", "-", "--", "-t", "AC,AN,AC_Hom,AC_Het"],
        ["bcftools", "query", "-f", "%POS\t%REF\t%ALT\t%AC\t%AN\t%AC_Hom\t%AC_Het\n"],
    )
    out = []
    for line in text.splitlines():
        pos, ref, alt, ac, an, hom, het = line.split("\t")
        out.append(TruthAllele(int(pos), ref, alt, int(ac), int(an), int(hom) // 2, int(het)))
    return out


def carriers(vcf: Path, pos: int, ref: str, alt: str) -> dict[str, str]:
    """Sample → GT of the samples carrying `alt` at `pos` (multi-allelics split first)."""
    text = _pipeline(
        ["bcftools", "view", "-Ou", "-r", f"1:{pos}", str(vcf)],
        ["bcftools", "norm", "-m-", "-Ou", "-"],
        ["bcftools", "query", "-i", f'POS={pos} && REF="{ref}" && ALT="{alt}"',
         "-f", "[%SAMPLE\t%GT\n]"],
    )
    out = {}
    for line in text.splitlines():
        sample, gt = line.split("\t")
        if "1" in gt.replace("|", "/").split("/"):
            out[sample] = gt
    return out
