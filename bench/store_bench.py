"""Store benchmarks: ingest, allele-statistics lookups, region reads, count scaling.

(a) ingest of a synthetic 2,504-sample cohort into the TileDB store, in a child process
    (wall time, genotypes/s, peak RSS from that child's rusage) beside `bcftools view -Ob`
    converting the same file;
(b) allele-statistics lookup latency (p50/p99, one key per call) and a 1 Mb region (or
    the whole cohort when shorter) of records for all samples, read into genotype
    matrices, beside `bcftools view -r` (-Ou and -Ov) on an indexed BCF;
(c) count-query latency on cohorts of 100, 1,000 and 10,000 samples (should stay flat);
(a2) what `fednode_genotypes` costs at ingest: the same file ingested with and without it.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from node.domain import AlleleKey, Region, normalize_contig
from node.store.base import VariantStore
from node.synth import generate_cohort

__all__ = ["Sizes", "genotypes_cost_bench", "region_bench", "run_all"]

LOOKUPS = 1_000
SEED = 2026


@dataclass(frozen=True, slots=True)
class Sizes:
    ingest_samples: int
    ingest_length: int  # bp of contig 1 simulated (~4.5 variants/kb at 2,504 samples)
    lookup_length: int  # store for (b); 0 = reuse the ingest store
    scaling: tuple[int, ...]
    scaling_length: int
    region_bp: int = 1_000_000

    @classmethod
    def quick(cls) -> Sizes:
        return cls(200, 1_000_000, 0, (100, 1_000, 10_000), 50_000, 250_000)

    @classmethod
    def default(cls) -> Sizes:
        return cls(2_504, 23_000_000, 0, (100, 1_000, 10_000), 200_000)

    @classmethod
    def full(cls) -> Sizes:
        return cls(2_504, 23_000_000, 225_000_000, (100, 1_000, 10_000), 200_000)


    def with_ingest(self, samples: int | None, length: int | None) -> Sizes:
        """These sizes with the ingest cohort overridden (command-line --samples/--length)."""
        return replace(self, ingest_samples=samples or self.ingest_samples,
                       ingest_length=length or self.ingest_length)


def run_all(sizes: Sizes, work: Path) -> None:
    _facts()
    cohort = _cohort(work / "ingest.vcf.gz", sizes.ingest_samples, sizes.ingest_length)
    store_uri = str(work / "ingest.tdb")
    bcf = ingest_bench(cohort, store_uri, work)
    if sizes.lookup_length:
        big = _cohort(work / "lookup.vcf.gz", sizes.ingest_samples, sizes.lookup_length)
        store_uri = str(work / "lookup.tdb")
        bcf = ingest_bench(big, store_uri, work)
        cohort = big
    lookup_bench(cohort, store_uri)
    length = sizes.lookup_length or sizes.ingest_length
    region_bench(store_uri, bcf, min(sizes.region_bp, length), length)
    scaling_bench(sizes, work)


def _facts() -> None:
    print(f"# fednode store benchmarks, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"nproc: {os.cpu_count()}; python {sys.version.split()[0]}")


def _cohort(path: Path, samples: int, length: int) -> Path:
    t = time.perf_counter()
    info = generate_cohort(path, samples=samples, length=length, seed=SEED)
    print(f"cohort {path.name}: {samples} samples x {info.n_sites} sites "
          f"(simulated in {time.perf_counter() - t:.1f} s)")
    return info.paths[0]


def _child(args: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one child process, from its own rusage."""
    t = time.perf_counter()
    proc = subprocess.Popen(args)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} failed with exit code {proc.returncode}")
    return time.perf_counter() - t, usage.ru_maxrss * 1024  # Linux reports KiB


_INGEST = """
import sys
from pathlib import Path
from node.store.tiledbvcf import TileDBVCFStore
genotypes = len(sys.argv) < 4 or sys.argv[3] == "genotypes"
store = TileDBVCFStore.create(sys.argv[1], assembly="GRCh38", genotypes=genotypes)
store.ingest([Path(sys.argv[2])])
store.close()
"""


def ingest_bench(vcf: Path, store_uri: str, work: Path) -> Path:
    n_samples = int(_sh(f"bcftools query -l {vcf} | wc -l"))
    n_records = int(_sh(f"bcftools index -n {vcf}"))
    bcf = work / (vcf.name.removesuffix(".vcf.gz") + ".bcf")
    base_s, base_rss = _child(["bcftools", "view", "-Ob", "-o", str(bcf), str(vcf)])
    _sh(f"bcftools index {bcf}")
    ours_s, ours_rss = _child([sys.executable, "-c", _INGEST, store_uri, str(vcf)])
    genotypes = n_samples * n_records
    print(f"(a) ingest {n_samples} x {n_records}: {ours_s:.1f} s, "
          f"{genotypes / ours_s / 1e6:.2f} M genotypes/s, peak RSS {ours_rss / 2**20:.0f} MiB")
    print(f"    bcftools view -Ob: {base_s:.1f} s, peak RSS {base_rss / 2**20:.0f} MiB; "
          f"ratio {ours_s / base_s:.2f}x (target <= 3x, RSS <= 1.5 GB)")
    return bcf


def genotypes_cost_bench(vcf: Path, work: Path, runs: int = 3) -> tuple[float, float]:
    """Ingest wall time (median of `runs`, interleaved) with and without `fednode_genotypes`."""
    import shutil

    times: dict[str, list[float]] = {"genotypes": [], "data-only": []}
    rss: dict[str, int] = {}
    for k in range(runs):
        for mode in times:
            uri = work / f"cost-{mode}-{k}.tdb"
            seconds, peak = _child([sys.executable, "-c", _INGEST, str(uri), str(vcf), mode])
            times[mode].append(seconds)
            rss[mode] = max(rss.get(mode, 0), peak)
            shutil.rmtree(uri)
    with_array, without = (statistics.median(times[m]) for m in times)
    print(f"(a2) ingest of {vcf.name}, medians of {runs}: "
          f"with fednode_genotypes {with_array:.1f} s "
          f"(peak RSS {rss['genotypes'] / 2**20:.0f} MiB), without {without:.1f} s "
          f"({rss['data-only'] / 2**20:.0f} MiB); cost {with_array / without - 1:+.1%}")
    return with_array, without


def _keys(vcf: Path, n: int) -> list[AlleleKey]:
    """`n` random first-ALT keys of `vcf` that some genotype carries (AC > 0)."""
    out = _sh(f"bcftools +fill-tags {vcf} -- -t AC | bcftools query -i 'AC[0]>0'"
              f" -f '%CHROM\\t%POS\\t%REF\\t%ALT\\n'").splitlines()
    rows = random.Random(SEED).sample(out, min(n, len(out)))
    keys = []
    for row in rows:
        chrom, pos, ref, alts = row.split("\t")
        keys.append(AlleleKey(normalize_contig(chrom), int(pos) - 1, ref, alts.split(",")[0]))
    return keys


def _lookup_times(store: VariantStore, keys: list[AlleleKey]) -> list[float]:
    """Seconds per `allele_stats` call with one key, after a warm-up of ten keys."""
    store.allele_stats(keys[:10])  # open arrays, warm caches
    out = []
    for key in keys:
        t = time.perf_counter()
        store.allele_stats([key])
        out.append(time.perf_counter() - t)
    return out


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def lookup_bench(vcf: Path, store_uri: str) -> float:
    from node.store.tiledbvcf import TileDBVCFStore

    keys = _keys(vcf, LOOKUPS)
    store = TileDBVCFStore.open(store_uri)
    try:
        times = _lookup_times(store, keys)
        missing = sum(s is None for s in store.allele_stats(keys))
    finally:
        store.close()
    p50, p99 = _pct(times, 0.5) * 1e3, _pct(times, 0.99) * 1e3
    print(f"(b) allele_stats, one key per call, {len(keys)} keys: p50 {p50:.3f} ms, "
          f"p99 {p99:.3f} ms (target p50 < 1 ms); keys not found: {missing}")
    return p50


def region_bench(store_uri: str, bcf: Path, width: int, length: int, runs: int = 3) -> float:
    """A region of all samples: fednode's columnar read vs `bcftools view -r` on a BCF.

    fednode: `genotype_batches` (site fields decoded, GT of every sample as an int8
    matrix, FORMAT fields left undecoded until asked for; no `Record` objects).
    `bcftools -Ou`: uncompressed BCF to /dev/null; bcftools copies the records without
    unpacking the genotypes. `bcftools -Ov`: VCF text, every genotype decoded and printed.
    Medians of `runs` runs each, interleaved, in this process and its children.
    """
    from node.store.tiledbvcf import TileDBVCFStore

    start = 0 if width >= length else (length - width) // 2
    region = Region("1", start, start + width)
    where = f"1:{start + 1}-{start + width}"
    ours, plain, text = [], [], []
    n = cells = 0
    for _ in range(runs):
        store = TileDBVCFStore.open(store_uri)
        try:
            t = time.perf_counter()
            batches = list(store.genotype_batches(region))
            ours.append(time.perf_counter() - t)
        finally:
            store.close()
        n = sum(len(b) for b in batches)
        cells = sum(int(b.present.sum()) for b in batches)
        del batches
        plain.append(_timed(f"bcftools view -Ou -r {where} {bcf} > /dev/null"))
        text.append(_timed(f"bcftools view -Ov -r {where} {bcf} > /dev/null"))
    m, mu, mv = statistics.median(ours), statistics.median(plain), statistics.median(text)
    source = "fednode_genotypes" if _reads_genotypes_array(store_uri) else "data"
    print(f"(b) region {where} ({width / 1e6:g} Mb), all samples: {n} records, {cells} calls; "
          f"medians of {runs} runs")
    print(f"    fednode genotype_batches (columnar, from {source}): {m:.3f} s")
    print(f"    bcftools view -r -Ou: {mu:.3f} s (ratio {m / mu:.1f}x); "
          f"-Ov: {mv:.3f} s (ratio {m / mv:.1f}x); target <= 1x")
    return m


def _reads_genotypes_array(store_uri: str) -> bool:
    from node.store.tiledbvcf import TileDBVCFStore

    store = TileDBVCFStore.open(store_uri)
    try:
        return store.reads_genotypes_array
    finally:
        store.close()


def _timed(cmd: str) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, shell=True, check=True)
    return time.perf_counter() - t


def scaling_bench(sizes: Sizes, work: Path) -> None:
    from node.store.tiledbvcf import TileDBVCFStore

    medians = {}
    for n in sizes.scaling:
        vcf = _cohort(work / f"scale{n}.vcf.gz", n, sizes.scaling_length)
        uri = str(work / f"scale{n}.tdb")
        store = TileDBVCFStore.create(uri, assembly="GRCh38")
        store.ingest([vcf])
        keys = _keys(vcf, 300)
        medians[n] = statistics.median(_lookup_times(store, keys))
        store.close()
    low = min(medians.values())
    for n, m in medians.items():
        print(f"(c) count query at {n:>6} samples: median {m * 1e3:.3f} ms "
              f"({m / low:.2f}x the fastest)")
    print(f"(c) spread {max(medians.values()) / low:.2f}x (target: flat within 1.5x)")


def _sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True).stdout
