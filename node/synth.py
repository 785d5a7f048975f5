"""Deterministic synthetic cohorts: msprime genealogies written as bgzipped, indexed VCF.

Allele-frequency spectra come from a coalescent simulation with human-like parameters
(Ne 10,000, recombination 1e-8 and mutation 1.25e-8 per bp per generation), so most
sites are rare, singletons abound and some sites are common. On top of the simulated
SNVs a seeded generator injects indels, extra ALT alleles and missing calls at the
requested rates. The same arguments always produce byte-identical files.

Typical use (the demo dataset)::

    info = generate_cohort(Path("demo.vcf.gz"), samples=200, length=1_000_000, seed=42)
    info.paths  # (PosixPath('demo.vcf.gz'),), indexed with demo.vcf.gz.tbi

Genotypes are formatted with numpy into fixed-width byte rows, so 2,504 samples x
100k+ sites stream to disk without holding the genotype matrix.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import msprime
import numpy as np
import pysam

from node.errors import InvalidInput

__all__ = ["CohortInfo", "generate_cohort"]

NE = 10_000
RECOMBINATION_RATE = 1e-8
MUTATION_RATE = 1.25e-8
MAX_SAMPLES = 100_000
MAX_LENGTH = 250_000_000
_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
_DOT = ord(".")


@dataclass(frozen=True, slots=True)
class CohortInfo:
    """What `generate_cohort` wrote: files (one per sample group) and counts over all contigs."""

    paths: tuple[Path, ...]
    samples: tuple[str, ...]
    contigs: tuple[str, ...]
    n_sites: int
    n_indels: int
    n_multiallelic: int
    n_missing_calls: int


@dataclass(frozen=True, slots=True)
class _Site:
    pos: int  # 1-based VCF POS
    ref: str
    alts: tuple[str, ...]
    haplotypes: np.ndarray  # allele index per haplotype, -1 = missing


def generate_cohort(
    path: Path,
    *,
    samples: int,
    length: int,
    seed: int,
    contigs: Sequence[str] = ("1",),
    ploidy: int = 2,
    haploid_contigs: Sequence[str] = ("Y", "MT"),
    indel_rate: float = 0.08,
    multiallelic_rate: float = 0.03,
    missing_rate: float = 0.005,
    phased: bool = True,
    groups: int = 1,
    sample_prefix: str = "SYN",
) -> CohortInfo:
    """Write a synthetic cohort of `samples` samples over `length` bp of each contig.

    `path` must end in `.vcf.gz`; with `groups` > 1 the samples are split into that many
    contiguous groups written as `<stem>.g1.vcf.gz`, ... (every file holds every site, as
    batches of one joint call set do), for "samples added in later ingests". Contigs
    named in `haploid_contigs` (and every contig when `ploidy` is 1) get haploid calls.
    Each file gets a tabix index.
    """
    _check(samples=samples, length=length, ploidy=ploidy, groups=groups, path=path)
    for rate in (indel_rate, multiallelic_rate, missing_rate):
        if not 0.0 <= rate <= 1.0:
            raise InvalidInput(f"rates must be within [0, 1], got {rate}")
    names = tuple(f"{sample_prefix}{i:05d}" for i in range(samples))
    bounds = np.linspace(0, samples, groups + 1).astype(int)
    paths = _group_paths(path, groups)
    writers = [pysam.BGZFile(str(p), "wb", index=None) for p in paths]
    counts = np.zeros(4, dtype=np.int64)
    try:
        for w, lo, hi in zip(writers, bounds[:-1], bounds[1:], strict=True):
            w.write(_header(names[lo:hi], contigs, length).encode())
        for index, contig in enumerate(contigs):
            hap_ploidy = 1 if contig in haploid_contigs else ploidy
            rng = np.random.default_rng([seed, index])
            sites = _simulate(samples, length, seed + index, hap_ploidy)
            for site in _inject(sites, rng, indel_rate, multiallelic_rate, missing_rate):
                counts += _site_counts(site)
                _write_site(writers, bounds, contig, site, hap_ploidy, phased)
    finally:
        for w in writers:
            w.close()
    for p in paths:
        pysam.tabix_index(str(p), preset="vcf", force=True)
    n_sites, n_indels, n_multi, n_missing = (int(c) for c in counts)
    return CohortInfo(paths, names, tuple(contigs), n_sites, n_indels, n_multi, n_missing)


def _check(*, samples: int, length: int, ploidy: int, groups: int, path: Path) -> None:
    if not 1 <= samples <= MAX_SAMPLES:
        raise InvalidInput(f"samples must be within 1..{MAX_SAMPLES}")
    if not 1_000 <= length <= MAX_LENGTH:
        raise InvalidInput(f"length must be within 1000..{MAX_LENGTH}")
    if ploidy not in (1, 2):
        raise InvalidInput("ploidy must be 1 or 2")
    if not 1 <= groups <= samples:
        raise InvalidInput("groups must be within 1..samples")
    if not path.name.endswith(".vcf.gz"):
        raise InvalidInput(f"{path.name}: the output name must end in .vcf.gz")


def _group_paths(path: Path, groups: int) -> tuple[Path, ...]:
    if groups == 1:
        return (path,)
    stem = path.name.removesuffix(".vcf.gz")
    return tuple(path.with_name(f"{stem}.g{k + 1}.vcf.gz") for k in range(groups))


def _header(names: Sequence[str], contigs: Sequence[str], length: int) -> str:
    lines = ["##fileformat=VCFv4.2", "##source=fednode.synth (msprime)"]
    lines += [f"##contig=<ID={c},length={length + 1000}>" for c in contigs]
    lines += [
        '##FILTER=<ID=PASS,Description="All filters passed">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT",
                   *names]),
    ]
    return "\n".join(lines) + "\n"


def _simulate(samples: int, length: int, seed: int, ploidy: int) -> Iterator[_Site]:
    ts = msprime.sim_ancestry(
        samples=samples,
        ploidy=ploidy,
        population_size=NE,
        sequence_length=length,
        recombination_rate=RECOMBINATION_RATE,
        random_seed=seed,
    )
    ts = msprime.sim_mutations(ts, rate=MUTATION_RATE, random_seed=seed)
    for var in ts.variants():
        alleles = tuple(a for a in var.alleles if a is not None)
        if len(alleles) < 2 or len(alleles) > 4:
            continue
        yield _Site(int(var.site.position) + 1, alleles[0], alleles[1:], var.genotypes)


def _inject(
    sites: Iterator[_Site],
    rng: np.random.Generator,
    indel_rate: float,
    multiallelic_rate: float,
    missing_rate: float,
) -> Iterator[_Site]:
    for site in sites:
        haps = site.haplotypes.astype(np.int8)
        ref, alts = site.ref, site.alts
        roll = rng.random()
        if len(alts) == 1 and roll < indel_rate:
            ref, alts = _indel(ref, rng)
        elif len(alts) == 1 and roll < indel_rate + multiallelic_rate:
            alts, haps = _second_alt(ref, alts, haps, rng)
        if missing_rate > 0:
            haps[rng.random(haps.size) < missing_rate] = -1
        yield _Site(site.pos, ref, alts, haps)


def _indel(ref: str, rng: np.random.Generator) -> tuple[str, tuple[str]]:
    extra = _BASES[rng.integers(0, 4, int(rng.integers(1, 6)))].tobytes().decode()
    if rng.random() < 0.5:
        return ref + extra, (ref,)  # deletion of `extra`
    return ref, (ref + extra,)  # insertion of `extra`


def _second_alt(
    ref: str, alts: tuple[str, ...], haps: np.ndarray, rng: np.random.Generator
) -> tuple[tuple[str, ...], np.ndarray]:
    other = next(b for b in "ACGT" if b not in (ref, *alts))
    carriers = np.flatnonzero(haps == 1)
    pool = carriers[rng.random(carriers.size) < 0.5] if carriers.size > 1 else np.array([], int)
    if pool.size == 0:
        pool = rng.choice(np.flatnonzero(haps == 0), size=1) if (haps == 0).any() else carriers
    haps[pool] = 2
    return (*alts, other), haps


def _site_counts(site: _Site) -> np.ndarray:
    is_indel = any(len(a) != len(site.ref) for a in site.alts)
    n_missing = int((site.haplotypes < 0).sum())
    return np.array([1, int(is_indel), int(len(site.alts) > 1), n_missing], dtype=np.int64)


def _write_site(
    writers: list[pysam.BGZFile],
    bounds: np.ndarray,
    contig: str,
    site: _Site,
    ploidy: int,
    phased: bool,
) -> None:
    fixed = f"{contig}\t{site.pos}\t.\t{site.ref}\t{','.join(site.alts)}\t.\tPASS\t.\tGT\t"
    calls = site.haplotypes.reshape(-1, ploidy)
    for w, lo, hi in zip(writers, bounds[:-1], bounds[1:], strict=True):
        w.write(fixed.encode() + _genotype_bytes(calls[lo:hi], phased))


def _genotype_bytes(calls: np.ndarray, phased: bool) -> bytes:
    """Tab-separated GT fields ending in a newline; allele indexes are single digits."""
    n, ploidy = calls.shape
    if ploidy == 2 and not phased:
        calls = np.sort(calls, axis=1)  # unphased calls are written in allele order
    chars = np.where(calls < 0, _DOT, calls + ord("0")).astype(np.uint8)
    width = 2 * ploidy
    out = np.empty((n, width), dtype=np.uint8)
    out[:, 0:width:2] = chars
    if ploidy == 2:
        out[:, 1] = ord("|") if phased else ord("/")
    out[:, -1] = ord("\t")
    out[-1, -1] = ord("\n")
    return out.tobytes()
