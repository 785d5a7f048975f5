"""The ingest's memory budget (issue 18 item 3): `fednode ingest --memory-budget-mb B` for
each budget, interleaved in one run, on the cases that peaked highest before budgets.

    python -m bench.budget_bench [--budgets 4000,500,300] [--runs 3] [--cases cohort,single]
                                 [--workers 1]

Cases: `cohort`, 2,504 samples x about 20,000 records (`generate_cohort`, 4.4 Mb, as
`bench.ingest_bench`'s default); `single`, one sample x 1 M SNV records
(`ingest_bench._single`); `1000g`, the 1000 Genomes 2,504 x 1,042 test file of ../shared
(~200-byte INFO in every cell, 2,504 headers of 15.9 KB). Per
case and budget: median wall time, CPU, the largest single
process's peak RSS (`wait4`, which also counts what the child shared with this process
before exec: this process stays near 80 MiB) and the process tree's sampled peak, and the
median wall time against the first budget's (4000: every buffer at `IngestWriter`'s
constant, as before budgets).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.ingest_bench import SEED, SHARED, Run, _run, _single
from node.synth import generate_cohort

__all__ = ["main"]

G1000 = SHARED / "beacon-testdata/cnag-beacon2-cbi-tools/integration_assets/test_1000G.vcf.gz"


def _inputs(work: Path, cases: list[str]) -> dict[str, Path]:
    found = {}
    for case in cases:
        if case == "cohort":
            info = generate_cohort(work / "cohort.vcf.gz", samples=2504, length=4_400_000,
                                   seed=SEED)
            found[case] = info.paths[0]
        elif case == "single":
            found[case] = _single(work, 1_000_000)
        elif case == "1000g" and G1000.is_file():
            found[case] = G1000
        else:
            raise SystemExit(f"unknown case {case!r} (cohort, single, 1000g with ../shared)")
    return found


def _line(case: str, budget: str, runs: list[Run], first: float) -> str:
    wall = statistics.median(r.wall for r in runs)
    walls = ", ".join(f"{r.wall:.1f}" for r in runs)
    return (
        f"{case:>7} @ {budget:>5} MB: median {wall:.1f} s (runs {walls}), CPU "
        f"{statistics.median(r.cpu for r in runs):.1f} s, peak RSS "
        f"{max(r.rss for r in runs) / 2**20:.0f} MiB per process, "
        f"{max(r.tree_rss for r in runs) / 2**20:.0f} MiB process tree; "
        f"{wall / first:.2f}x the first budget's median"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.budget_bench", description=__doc__)
    parser.add_argument("--budgets", default="4000,500,300")
    parser.add_argument("--cases", default="cohort,single")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--work", type=Path)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="budget-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"# ingest memory budgets, {time.strftime('%Y-%m-%d %H:%M %Z')}; nproc "
          f"{os.cpu_count()}; load {load}; workers {args.workers}; work {work}")
    budgets, cases = args.budgets.split(","), args.cases.split(",")
    inputs = _inputs(work, cases)
    home = work / "home"
    subprocess.run([sys.executable, "-m", "node", "init", str(home), "--force"], check=True,
                   capture_output=True)
    timings: dict[tuple[str, str], list[Run]] = {(c, b): [] for c in cases for b in budgets}
    for i in range(args.runs):  # interleaved, so load changes touch every budget alike
        for case in cases:
            for budget in budgets:
                dataset = f"{case}_{budget}_{i}"
                timings[case, budget].append(_run([
                    sys.executable, "-m", "node", "ingest", str(home), "--dataset", dataset,
                    "--memory-budget-mb", budget, "--workers", str(args.workers),
                    str(inputs[case]),
                ]))
                shutil.rmtree(home / "datasets" / dataset)
    for case in cases:
        first = statistics.median(r.wall for r in timings[case, budgets[0]])
        for budget in budgets:
            print(_line(case, budget, timings[case, budget], first))
    print(f"# load at the end {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
