"""Where a few-sample ingest spends its CPU, per stage and per record (issue 18 items 1, 2).

    python -m bench.ingest_stages [VCF ...] [--records 200000] [--runs 3] [--cyvcf2]

Ingests the files in one ingest (default: a simulated one-sample VCF of `--records` SNVs,
GT:GQ:DP, as `bench.ingest_bench --single`) into a new dataset in this process, `--runs`
times, with a CPU timer (`time.thread_time`: the calling thread's CPU) around each stage of
the main thread: parsing (`VcfInput._parse`, cyvcf2; few-sample files: the block
reader's `_read` and `_decode`, the `ParsedRecord`s made of its blocks counted in "main
thread, other"), the `data` cells, each statistics builder's block
(`StatsCollector._aggregate_block`, `VariantStatsRows.add_block`,
`AlleleCountRows.add_block`, `SampleStatsRows.add_block`), the packed genotypes
(`GenotypeRows.add_block`), and the flushes' main-thread part. "writer threads" is the
process's CPU (`time.process_time`) less the main thread's: the columns built and written
on the two writer threads, and TileDB's own threads. Printed: us of CPU per record, median
of the runs, each beside `bcftools view -Ob` of the same file in the same run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.ingest_bench import _single
from node.store.ingest import (
    allele_count_rows,
    bcf_blocks,
    genotype_rows,
    ingest_writer,
    sample_stats_rows,
    stats,
    vcfio,
    vs_rows,
)
from node.store.tiledbvcf import TileDBVCFStore

__all__ = ["main"]

# (stage, class, method): each timed on the thread that calls it
STAGES: list[tuple[str, type, str]] = [
    ("parse (cyvcf2)", vcfio.VcfInput, "_parse"),
    ("block read (htslib)", bcf_blocks.BlockReader, "_read"),
    ("block decode", bcf_blocks.BlockReader, "_decode"),
    ("data cells", ingest_writer.IngestWriter, "_cells"),
    ("fednode aggregate", stats.StatsCollector, "_aggregate_block"),
    ("variant_stats rows", vs_rows.VariantStatsRows, "add_block"),
    ("allele_count rows", allele_count_rows.AlleleCountRows, "add_block"),
    ("sample_stats rows", sample_stats_rows.SampleStatsRows, "add_block"),
    ("packed genotypes", genotype_rows.GenotypeRows, "add_block"),
    ("flush data (main thread)", ingest_writer.IngestWriter, "flush_data"),
    ("flush genotypes (main thread)", ingest_writer.IngestWriter, "flush_genotypes"),
    ("flush statistics (main thread)", ingest_writer.IngestWriter, "flush_stats"),
]


def _timed(totals: dict[str, float], stage: str, method: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return method(*args, **kwargs)
        finally:
            totals[stage] += time.thread_time() - started

    return timed


def _ingest(vcfs: list[Path], work: Path) -> tuple[dict[str, float], int]:
    """One ingest with every stage timed: CPU seconds per stage, and the record count."""
    totals: dict[str, float] = defaultdict(float)
    saved = [(cls, name, getattr(cls, name)) for _, cls, name in STAGES]
    for (stage, cls, name), (_, _, method) in zip(STAGES, saved, strict=True):
        setattr(cls, name, _timed(totals, stage, method))
    try:
        store = TileDBVCFStore.create(str(work))
        process, thread = time.process_time(), time.thread_time()
        records = store.ingest(vcfs).records
        main_thread = time.thread_time() - thread
        totals["whole ingest (process)"] = time.process_time() - process
        totals["writer threads"] = totals["whole ingest (process)"] - main_thread
        totals["main thread, other"] = main_thread - sum(totals[s] for s, _, _ in STAGES)
    finally:
        for cls, name, method in saved:
            setattr(cls, name, method)
    return totals, records


def _bcftools_cpu(vcfs: list[Path]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for vcf in vcfs:
        subprocess.run(["bcftools", "view", "-Ob", "-o", os.devnull, str(vcf)], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.ingest_stages", description=__doc__)
    parser.add_argument("vcfs", type=Path, nargs="*")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cyvcf2", action="store_true",
                        help="every record through the cyvcf2 parser (no block reader)")
    args = parser.parse_args(argv)
    vcfio.BLOCKS = not args.cyvcf2
    with tempfile.TemporaryDirectory(prefix="fednode-stages-") as tmp:
        work = Path(tmp)
        vcfs = args.vcfs or [_single(work, args.records)]
        per_stage: dict[str, list[float]] = defaultdict(list)
        base: list[float] = []
        records = 0
        for run in range(args.runs):
            base.append(_bcftools_cpu(vcfs))
            totals, records = _ingest(vcfs, work / f"ds{run}")
            for stage, seconds in totals.items():
                per_stage[stage].append(seconds)
        bcftools = statistics.median(base)
        name = vcfs[0].name if len(vcfs) == 1 else f"{len(vcfs)} files"
        print(f"{name}: {records} records, {args.runs} runs (CPU medians)")
        print(f"{'stage':34s} {'us/record':>10s} {'x bcftools':>11s}")
        rows = [(s, statistics.median(v)) for s, v in per_stage.items()]
        rows.append(("bcftools view -Ob", bcftools))
        for stage, seconds in rows:
            ratio = seconds / bcftools if bcftools else float("nan")
            print(f"{stage:34s} {seconds / records * 1e6:10.2f} {ratio:10.1f}x")


if __name__ == "__main__":
    main()
