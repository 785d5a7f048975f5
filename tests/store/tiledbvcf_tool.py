"""The real TileDB-VCF (`../shared/tiledbvcf-bin`) writing datasets for tests, and a cohort
with the cases its datasets make hard for a reader: several records at one position,
INFO flags before other fields, missing and half-missing calls, haploid calls."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.store.test_tiledbvcf import cohort_rows, sh, write_vcf

__all__ = ["TileDBVCF", "multi_record_cohort"]


class TileDBVCF:
    """The `tiledbvcf` and `vcfstats` binaries of ../shared/tiledbvcf-bin."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin" / "tiledbvcf"
        self.vcfstats = root / "bin" / "vcfstats"

    @classmethod
    def find(cls, shared_dir: Path) -> TileDBVCF:
        tool = cls(shared_dir / "tiledbvcf-bin")
        if not tool.bin.is_file():
            pytest.skip(f"{tool.bin} not present: TileDB-VCF is needed to write the datasets")
        if shutil.which("bcftools") is None:
            pytest.skip("bcftools is not installed (per-sample files come from bcftools +split)")
        done = subprocess.run([str(tool.bin), "version"], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"tiledbvcf does not run ({done.stderr.strip()[:200]}); "
                        "install Debian's libhts3 and libfmt9")
        return tool

    def store(self, vcf: Path, uri: Path, *, version: int | None = None) -> Path:
        """A dataset TileDB-VCF writes of `vcf` (split per sample, as it refuses
        multi-sample files), with its defaults (variant_stats v2) or `version`."""
        files = split_samples(vcf, uri.parent / f"{uri.name}.inputs")
        return self.store_files(files, uri, version=version)

    def store_files(self, files: list[Path], uri: Path, *, version: int | None = None) -> Path:
        if not uri.exists():
            extra = [] if version is None else ["--variant-stats-version", str(version)]
            self._run("create", "-u", str(uri), *extra)
        self._run("store", "-u", str(uri), "-t", "2", *map(str, files))
        return uri

    def delete(self, uri: Path, samples: list[str]) -> None:
        self._run("delete", "-u", str(uri), "-s", ",".join(samples))

    def stat(self, uri: Path) -> str:
        done = subprocess.run([str(self.bin), "stat", "-u", str(uri)], capture_output=True,
                              text=True, check=True)  # fmt: skip
        return done.stdout

    def export(self, uri: Path, out: Path) -> str:
        """Every sample exported as VCF (`tiledbvcf export`), concatenated in name order."""
        out.mkdir(parents=True, exist_ok=True)
        self._run("export", "-u", str(uri), "-O", "v", "-d", str(out))
        return "".join(p.read_text() for p in sorted(out.glob("*.vcf")))

    def variant_stats(self, uri: Path, regions: list[str]) -> set[tuple[str, int, str, int, int]]:
        """TileDB-VCF's own reader of `variant_stats` (contig, 0-based pos, allele, AC, AN)."""
        done = subprocess.run(
            [str(self.vcfstats), str(uri), "vs", *regions], capture_output=True, text=True,
            check=True,
        )  # fmt: skip
        out = set()
        for line in done.stdout.splitlines():
            contig, pos, allele, ac, an, _af = line.split("\t")
            out.add((contig, int(pos), allele, int(ac), int(an)))
        return out

    def _run(self, *args: str) -> None:
        done = subprocess.run([str(self.bin), *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise AssertionError(f"tiledbvcf {args[0]} failed: {done.stderr[-2000:]}")


def split_samples(vcf: Path, folder: Path) -> list[Path]:
    """One indexed BCF per sample (`bcftools +split`: every record, ./. included)."""
    folder.mkdir(parents=True, exist_ok=True)
    sh(f"bcftools +split -Ob -o {folder} {vcf}")
    files = sorted(folder.glob("*.bcf"))
    for f in files:
        sh(f"bcftools index -f {f}")
    return files


def multi_record_cohort(path: Path, samples: list[str], *, seed: int) -> tuple[Path, set[int]]:
    """`cohort_rows` plus second records at some positions: an insertion beside an SNV with
    the same calls missing (bcftools' per-record AN is then fednode's per-site AN), and at
    the positions returned (1-based), one where other samples are missing (there only
    fednode's own dataset is the oracle). Some records carry a Flag before another field.
    """
    rng = random.Random(seed)
    rows, differing = [], set()
    for i, row in enumerate(cohort_rows(len(samples), seed=seed, records=90)):
        cols = row.split("\t")
        if i % 9 == 3:
            cols[7] = "DB;AF_IN=0.25" if cols[7] == "." else f"DB;{cols[7]}"
        rows.append("\t".join(cols))
        if len(cols[3]) == 1 and len(cols[4]) == 1 and i % 4 == 0:  # an SNV: add an insertion
            second = [*cols[:4], cols[3] + "TT", cols[5], cols[6], "DB;AF_IN=0.5", cols[8]]
            differ = i % 8 == 0
            for call in cols[9:]:
                gt, rest = call.split(":", 1)
                if differ and rng.random() < 0.3:
                    gt = "./." if len(gt) == 3 else "."
                second.append(f"{_same_calls_missing(rng, gt)}:{rest}")
            if differ:
                differing.add(int(cols[1]))
            rows.append("\t".join(second))
    return write_vcf(path, samples, rows), differing


def _same_calls_missing(rng: random.Random, like: str) -> str:
    """A genotype with `like`'s ploidy, phasing and missing alleles, others 0 or 1."""
    sep = "|" if "|" in like else "/" if "/" in like else ""
    parts = like.split(sep) if sep else [like]
    return sep.join("." if a == "." else rng.choice("01") for a in parts)


def gvcf_cohort(folder: Path, samples: list[str], *, seed: int) -> list[Path]:
    """One gVCF per sample: variant records (ALT `X,<NON_REF>`) at sites some samples share,
    `<NON_REF>` reference blocks (some longer than TileDB-VCF's anchor gap) between them,
    and gaps without any record; indexed, ready for `tiledbvcf store`."""
    rng = random.Random(seed)
    sites = sorted(rng.sample(range(200, 19_000), 40))
    bases = {s: rng.choice("ACGT") for s in sites}
    header = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=chr1,length=100000>",
        '##INFO=<ID=END,Number=1,Type=Integer,Description="End">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">',
        '##ALT=<ID=NON_REF,Description="Any other allele">',
    ]
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for sample in samples:
        rows, pos = [], 100
        for site in [*sites, 20_000]:
            if site > pos and rng.random() < 0.85:  # a block up to the base before the site
                end = site - 1 if rng.random() < 0.8 else rng.randint(pos, site - 1)
                gt = rng.choice(["0/0", "0/0", "0/0", "./."])
                rows.append(_row(pos, "N", "<NON_REF>", f"END={end}", gt, rng))
            if site == 20_000:
                break
            if rng.random() < 0.5:
                ref = bases[site]
                alt = {"A": "G", "C": "T", "G": "A", "T": "C"}[ref]
                gt = rng.choice(["0/1", "1/1", "0/1", "./1"])
                rows.append(_row(site, ref, f"{alt},<NON_REF>", ".", gt, rng))
                pos = site + 1
            else:
                pos = site  # the next block covers the site
        columns = f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{sample}"
        text = "\n".join([*header, columns, *rows]) + "\n"
        path = folder / f"{sample}.vcf"
        path.write_text(text)
        sh(f"bgzip -f {path} && tabix -f -p vcf {path}.gz")
        files.append(folder / f"{sample}.vcf.gz")
    return files


def _row(pos: int, ref: str, alt: str, info: str, gt: str, rng: random.Random) -> str:
    return "\t".join(["chr1", str(pos), ".", ref, alt, ".", ".", info, "GT:DP",
                      f"{gt}:{rng.randint(1, 60)}"])  # fmt: skip
