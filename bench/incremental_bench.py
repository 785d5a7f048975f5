"""Samples added daily (issue 18, items 6 and 7): 100 successive single-sample additions
to a dataset of N samples, beside the same additions to an empty dataset, and query
latency after the additions against the same dataset after `fednode store consolidate`.

    python -m bench.incremental_bench [--base 2504] [--adds 100] [--length 200000]
                                      [--empty 10] [--queries 300] [--workdir DIR]

One seeded synthetic cohort of N + adds samples (`node.synth`); the first N go into the
dataset in one ingest (the "biobank"), each of the others is a one-sample BCF (`bcftools
+split`) added by its own `TileDBVCFStore.ingest` (the `fednode ingest` path, in this
process, timed from call to return: staging, writing, publishing). Baseline in the same
run: `--empty` of those files each ingested into a new empty dataset. Figures: median
time per addition into the N-sample dataset (all, first 10, last 10) and into an empty
one, and their ratios (issue target: within 1.5x). Queries, on a store opened afresh:
index build (`warm`), point queries (`allele_stats` of one random allele), region
queries (`records` of a random 10 kb window, every sample), medians; after the additions
and after consolidation (vacuumed at once), ratio against consolidated (target 1.5x).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from node.domain import AlleleKey, Region
from node.store.dataset.consolidation import consolidate
from node.store.tiledbvcf import TileDBVCFStore
from node.synth import generate_cohort

__all__ = ["main"]

SEED = 2026


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def _inputs(work: Path, base: int, adds: int, length: int) -> tuple[Path, list[Path]]:
    cohort = generate_cohort(work / "cohort.vcf.gz", samples=base + adds, length=length,
                             seed=SEED)  # fmt: skip
    names = cohort.samples
    base_vcf = work / "base.bcf"
    (work / "base.txt").write_text("\n".join(names[:base]) + "\n")
    (work / "adds.txt").write_text("\n".join(names[base:]) + "\n")
    _sh("bcftools", "view", "-S", str(work / "base.txt"), "-Ob", "-o", str(base_vcf),
        str(cohort.paths[0]))  # fmt: skip
    _sh("bcftools", "index", "-f", str(base_vcf))
    split = work / "split"
    split.mkdir()
    _sh("bcftools", "+split", "-S", str(work / "adds.txt"), "-Ob", "-o", str(split),
        str(cohort.paths[0]))  # fmt: skip
    files = sorted(split.glob("*.bcf"))
    for f in files:
        _sh("bcftools", "index", "-f", str(f))
    return base_vcf, files


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _add(uri: str, path: Path) -> float:
    store = TileDBVCFStore.open(uri)
    try:
        return _timed(lambda: store.ingest([path]))
    finally:
        store.close()


def _queries(uri: str, n: int, length: int) -> dict[str, float]:
    """Median latencies (s) of a store opened afresh: index build, point, region."""
    rng = random.Random(SEED)
    store = TileDBVCFStore.open(uri)
    try:
        warm = _timed(store.warm)
        variants = list(store.variants(Region("1", 0, length)))
        keys = [AlleleKey("1", v.start, v.ref, v.alt) for v in rng.sample(variants, n)]
        point = [_timed(lambda k=k: store.allele_stats([k])) for k in keys]  # type: ignore[misc]
        region = []
        for _ in range(max(1, n // 6)):
            start = rng.randrange(0, max(1, length - 10_000))
            window = Region("1", start, start + 10_000)
            region.append(_timed(lambda w=window: sum(map(len, store.records(w)))))  # type: ignore[misc]
    finally:
        store.close()
    return {"warm": warm, "point": statistics.median(point), "region": statistics.median(region)}


def run(args: argparse.Namespace, work: Path) -> None:
    print(f"# incremental_bench {time.strftime('%Y-%m-%d %H:%M')}: base {args.base} samples, "
          f"{args.adds} additions, {args.length} bp", flush=True)  # fmt: skip
    base_vcf, files = _inputs(work, args.base, args.adds, args.length)
    uri = str(work / "ds")
    store = TileDBVCFStore.create(uri)
    base_s = _timed(lambda: store.ingest([base_vcf]))
    store.close()
    print(f"base ingest: {base_s:.1f} s", flush=True)
    empty = []
    for i, path in enumerate(files[: args.empty]):
        fresh = str(work / f"empty{i}")
        TileDBVCFStore.create(fresh).close()
        empty.append(_add(fresh, path))
        shutil.rmtree(fresh)
    adds = []
    for i, path in enumerate(files):
        adds.append(_add(uri, path))
        if (i + 1) % 10 == 0:
            print(f"  {i + 1} additions, last {adds[-1]:.3f} s", flush=True)
    m_empty, m_all = statistics.median(empty), statistics.median(adds)
    first, last = statistics.median(adds[:10]), statistics.median(adds[-10:])
    print(f"per addition (median): empty dataset {m_empty:.3f} s; into {args.base}: all "
          f"{m_all:.3f} s ({m_all / m_empty:.2f}x), first 10 {first:.3f} s "
          f"({first / m_empty:.2f}x), last 10 {last:.3f} s ({last / m_empty:.2f}x)")  # fmt: skip
    after = _queries(uri, args.queries, args.length)
    summary = consolidate(uri, vacuum_after_s=0)
    print(f"consolidate: {sum(summary.before.values())} -> {sum(summary.after.values())} "
          f"fragments in {summary.seconds:.1f} s")  # fmt: skip
    merged = _queries(uri, args.queries, args.length)
    for name in ("warm", "point", "region"):
        a, m = after[name], merged[name]
        print(f"{name}: after {args.adds} additions {a * 1000:.2f} ms, consolidated "
              f"{m * 1000:.2f} ms ({a / m:.2f}x)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.incremental_bench",
                                     description=__doc__)  # fmt: skip
    parser.add_argument("--base", type=int, default=2504, help="samples already in the dataset")
    parser.add_argument("--adds", type=int, default=100, help="single-sample additions")
    parser.add_argument("--length", type=int, default=200_000, help="bp simulated")
    parser.add_argument("--empty", type=int, default=10, help="baseline additions (empty)")
    parser.add_argument("--queries", type=int, default=300, help="point queries per phase")
    parser.add_argument("--workdir", type=Path, help="keep inputs and datasets here")
    args = parser.parse_args(argv)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        run(args, args.workdir)
        return 0
    with tempfile.TemporaryDirectory(prefix="fednode-incremental-") as tmp:
        run(args, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
