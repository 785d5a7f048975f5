"""Allele-statistics lookups on a store of many variants, from a quick numpy cohort.

`python -m bench.lookup_bench --samples 8 --sites 1000000 --workdir DIR`

msprime takes hours for 1M sites at 2,504 samples, so this cohort is simpler: SNVs on
contig 1, one every 1-20 bp, allele frequencies from Beta(0.15, 1.5) (many rare alleles,
as in real cohorts), phased diploid genotypes drawn under Hardy-Weinberg, no missing calls.
It is written as VCF text straight into `bcftools view -Ob`. The store's lookups read the
per-dataset aggregate (`fednode_allele_stats`), whose size is the number of distinct
alleles, not samples, so the lookup figures hold for any sample count; the ingest time
does not (it scales with samples x sites).

Printed: generation, `bcftools view -Ob` of the cohort, ingest (wall, CPU, peak RSS), and
one `allele_stats([key])` call per key for `--keys` random carried alleles after one
warm-up call (which builds the contig's in-memory index): p50, p99, and how many answers
differ from the generator's own counts (must be 0).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from node.domain import AlleleKey

BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
CELLS = 20_000_000  # genotypes generated and written per step (bounds the memory)


Truth = dict[int, tuple[str, str, int]]  # 1-based pos -> (REF, ALT, AC) of carried alleles


def write_cohort(path: Path, samples: int, sites: int, seed: int) -> Truth:
    """A BCF at `path` (indexed); returns the carried alleles and their AC."""
    rng = np.random.default_rng(seed)
    names = "\t".join(f"S{i:06d}" for i in range(samples))
    header = (
        "##fileformat=VCFv4.2\n##contig=<ID=1,length=248956422>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{names}\n"
    )
    command = ["bcftools", "view", "-Ob", "-o", str(path), "-"]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(header.encode())
    truth: Truth = {}
    pos = 0
    chunk = max(1, CELLS // samples)
    for start in range(0, sites, chunk):
        n = min(chunk, sites - start)
        positions = pos + np.cumsum(rng.integers(1, 21, size=n))
        pos = int(positions[-1])
        freq = np.clip(rng.beta(0.15, 1.5, size=n), 0.0, 1.0)
        haps = rng.random((n, samples, 2)) < freq[:, None, None]
        ref = rng.integers(0, 4, size=n)
        alt = (ref + rng.integers(1, 4, size=n)) % 4
        cells = np.empty((n, samples, 4), dtype=np.uint8)  # "a|b\t", last tab -> newline
        cells[:, :, 0] = ord("0") + haps[:, :, 0]
        cells[:, :, 1] = ord("|")
        cells[:, :, 2] = ord("0") + haps[:, :, 1]
        cells[:, :, 3] = ord("\t")
        cells[:, -1, 3] = ord("\n")
        rows = cells.reshape(n, -1)
        ac = haps.sum(axis=(1, 2))
        lines = []
        for i in range(n):
            r, a = chr(BASES[ref[i]]), chr(BASES[alt[i]])
            p = int(positions[i])
            lines.append(f"1\t{p}\t.\t{r}\t{a}\t.\tPASS\t.\tGT\t".encode() + rows[i].tobytes())
            if ac[i]:
                truth[p] = (r, a, int(ac[i]))
        proc.stdin.write(b"".join(lines))
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError("bcftools view failed")
    subprocess.run(["bcftools", "index", str(path)], check=True)
    return truth


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lookup_bench", description=__doc__)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--sites", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    from node.store.tiledbvcf import TileDBVCFStore

    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    bcf = work / f"hwe_{args.samples}x{args.sites}.bcf"
    t = time.perf_counter()
    truth = write_cohort(bcf, args.samples, args.sites, args.seed)
    print(f"cohort {args.samples} x {args.sites} sites ({len(truth)} carried) "
          f"generated in {time.perf_counter() - t:.1f} s")  # fmt: skip
    t = time.perf_counter()
    subprocess.run(["bcftools", "view", "-Ob", "-o", str(work / "copy.bcf"), str(bcf)], check=True)
    base = time.perf_counter() - t
    uri = str(work / f"hwe_{args.samples}x{args.sites}.tdb")
    store = TileDBVCFStore.create(uri, assembly="GRCh38")
    t, c = time.perf_counter(), _cpu()
    store.ingest([bcf], threads=os.cpu_count() or 1)
    wall, cpu = time.perf_counter() - t, _cpu() - c
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"ingest {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS {rss:.0f} MiB; "
          f"bcftools view -Ob {base:.2f} s; ratio {wall / base:.1f}x")  # fmt: skip
    positions = random.Random(args.seed).sample(sorted(truth), min(args.keys, len(truth)))
    keys = [AlleleKey("1", p - 1, truth[p][0], truth[p][1]) for p in positions]
    store = TileDBVCFStore.open(uri)
    t = time.perf_counter()
    store.allele_stats(keys[:1])
    print(f"first lookup (builds the contig index): {(time.perf_counter() - t) * 1e3:.1f} ms")
    times, wrong = [], 0
    for key, p in zip(keys, positions, strict=True):
        t = time.perf_counter()
        (stats,) = store.allele_stats([key])
        times.append(time.perf_counter() - t)
        wrong += stats is None or stats.ac != truth[p][2] or stats.an != 2 * args.samples
    times.sort()
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
    print(f"allele_stats, one key per call, {len(keys)} keys: p50 "
          f"{statistics.median(times) * 1e3:.4f} ms, p99 {p99 * 1e3:.4f} ms; "
          f"answers differing from the generator: {wrong}")  # fmt: skip
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
