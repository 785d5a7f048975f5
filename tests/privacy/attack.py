"""The Shringarpure-Bustamante membership attack, run over HTTP against a Beacon.

The cohort's allele statistics come from bcftools (`+fill-tags`), not from node code, and
are served by `StatsStore`, a statistics-only VariantStore: the Beacon answers exact-
allele boolean queries from allele statistics alone, and parsing 1,000 genotypes per
site in Python (MemoryStore) would take minutes for the ~30,000 sites the attack needs.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import subprocess
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from aiohttp.test_utils import TestClient

from node.domain import AlleleKey, AlleleStats, Record, Region, Variant
from node.names import VariantType
from node.store.base import IngestSummary

DELTA = 1e-6  # the paper's sequencing error
_FMT = "%POS\t%REF\t%ALT\t%AC\t%AN\t%AC_Het\t%AC_Hom\n"


@dataclass(frozen=True)
class Site:
    pos: int  # 1-based VCF POS
    ref: str
    alt: str


def _tagged(path: Path) -> list[list[str]]:
    fill = subprocess.run(
        ["bcftools", "+fill-tags", str(path), "-Ou", "--", "-t", "AC,AN,AC_Het,AC_Hom"],
        capture_output=True, check=True)
    out = subprocess.run(["bcftools", "query", "-f", _FMT], input=fill.stdout,
                         capture_output=True, check=True)
    return [line.split("\t") for line in out.stdout.decode().splitlines()]


def cohort_stats(beacon: Path, held_out: Path) -> tuple[list[Site], list[AlleleStats], np.ndarray]:
    """Biallelic sites, the beacon's statistics of each, and each allele's frequency in
    the whole simulated population (members and non-members: the attacker's reference)."""
    with ThreadPoolExecutor(2) as pool:
        rows_b, rows_h = pool.map(_tagged, (beacon, held_out))
    sites, stats, freq = [], [], []
    for b, h in zip(rows_b, rows_h, strict=True):
        if "," in b[2]:
            continue
        ac, an, het, hom_alleles = (int(x) for x in b[3:7])
        sites.append(Site(int(b[0]), b[1], b[2]))
        stats.append(AlleleStats(ac=ac, an=an, n_hom_alt=hom_alleles // 2, n_het=het,
                                 n_carriers=het + hom_alleles // 2, n_called=an // 2))
        freq.append((ac + int(h[3])) / (an + int(h[4])))
    return sites, stats, np.array(freq)


def carried(path: Path, samples: Sequence[str], n_sites: int, keep: Sequence[bool]
            ) -> list[np.ndarray]:
    """For each sample, the indices (into the biallelic sites) of the alleles it carries."""
    out = subprocess.run(["bcftools", "query", "-s", ",".join(samples), "-f", "[%GT\t]\n",
                          str(path)], capture_output=True, check=True, text=True).stdout
    rows = [line.rstrip("\t").split("\t") for line, k in zip(out.splitlines(), keep,
                                                              strict=True) if k]
    assert len(rows) == n_sites
    has = np.array([["1" in gt for gt in row] for row in rows])
    return [np.nonzero(has[:, j])[0] for j in range(len(samples))]


class StatsStore:
    """A VariantStore holding only per-allele statistics (no genotypes, no records)."""

    def __init__(self, samples: Sequence[str], sites: Sequence[Site],
                 stats: Sequence[AlleleStats]) -> None:
        self._samples = tuple(samples)
        self._by_key = {AlleleKey("1", s.pos - 1, s.ref, s.alt): st
                        for s, st in zip(sites, stats, strict=True) if st.ac > 0}
        self._variants = sorted(
            (Variant("1", k.start, k.start + len(k.ref), k.ref, k.alt, VariantType.SNP, st)
             for k, st in self._by_key.items()), key=lambda v: (v.start, v.ref, v.alt))
        self._starts = [v.start for v in self._variants]

    @property
    def samples(self) -> tuple[str, ...]:
        return self._samples

    @property
    def assembly(self) -> str:
        return "GRCh38"

    def contigs(self) -> tuple[str, ...]:
        return ("1",)

    def allele_stats(self, keys: Sequence[AlleleKey]) -> list[AlleleStats | None]:
        return [self._by_key.get(k) for k in keys]

    def variants(self, region: Region, **_: object) -> Iterator[Variant]:
        if region.contig != "1":
            return
        lo = bisect.bisect_left(self._starts, region.start - 1)
        for v in self._variants[lo:]:
            if v.start >= region.end:
                return
            if v.end > region.start:
                yield v

    def records(self, region: Region, **_: object) -> Iterator[list[Record]]:
        return iter(())

    def ingest(self, paths: Sequence[Path], **_: object) -> IngestSummary:
        raise NotImplementedError("statistics-only store")

    def close(self) -> None:
        pass


def sb_terms(freq: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per allele, the statistic's term for a "yes" and for a "no" (SB 2015): with
    D_N = (1-f)^(2N), yes: log[(1-D_N)/(1-δD_{N-1})], no: log[D_N/(δD_{N-1})]."""
    f = np.clip(freq, 1e-12, 1 - 1e-12)
    log_keep = np.log1p(-f)
    d_n1 = np.exp((2 * n - 2) * log_keep)
    yes = np.log(-np.expm1(2 * n * log_keep)) - np.log1p(-DELTA * d_n1)
    no = 2 * log_keep - math.log(DELTA)  # log D_N - log(δ D_{N-1}), without underflow
    return yes, no


@dataclass(frozen=True)
class Outcome:
    statistic: float
    answers: tuple[int | None, ...]  # 1 yes, 0 no, None refused


async def attack(client: TestClient, sites: Sequence[Site], queries: Sequence[int],
                 yes: np.ndarray, no: np.ndarray, *, requester: str,
                 limit: asyncio.Semaphore) -> Outcome:
    """Ask about each allele in `queries` (in order, as one requester); refused answers
    carry no information. Large statistic: evidence the victim is *not* in the beacon."""
    answers: list[int | None] = []
    total = 0.0
    for i in queries:
        s = sites[i]
        params = {"referenceName": "1", "start": str(s.pos - 1), "referenceBases": s.ref,
                  "alternateBases": s.alt, "assemblyId": "GRCh38",
                  "requestedGranularity": "boolean"}
        async with limit:
            resp = await client.get("/api/g_variants", params=params,
                                    headers={"X-Forwarded-For": requester})
            doc = await resp.json()
        if resp.status == 403:
            answers.append(None)
            continue
        assert resp.status == 200, doc
        x = int(doc["responseSummary"]["exists"])
        answers.append(x)
        total += float(yes[i] if x else no[i])
    return Outcome(total, tuple(answers))


def power_at(members: Sequence[float], non_members: Sequence[float], fpr: float) -> float:
    """Share of members detected by the test "statistic below t", with t chosen on the
    non-members so that at most `fpr` of them fall below it."""
    ordered = sorted(non_members)
    t = ordered[math.floor(fpr * len(ordered))]
    return sum(m < t for m in members) / len(members)
