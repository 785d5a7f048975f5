"""Beacon count throughput of `fednode serve --workers N` against one worker:
`python -m bench.workers_bench [--workers 2] [--runs 3] [--seconds 10]`.

The node is the real command (`fednode serve HOME --workers N`, audit on unless `--audit off`,
budget off as in `bench.beacon_bench`'s default) over the 2,504-sample 1000 Genomes chr1 subset of
../shared, ingested once into a home (`--workdir` keeps it). The load is `wrk` (one thread,
64 keep-alive connections) cycling through the same count queries as
`bench.beacon_bench`. Each run measures one worker, then N, in the same run (alternating,
so both see the same machine); the report has per-run figures, medians and the median of
the per-run ratios. Target (issue 18): >= 1.7x with 2 workers on 2 cores. wrk shares the
cores with the servers, as any load generator on one machine does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.beacon_bench import DATASET, VCF, _free_port, _queries, _wait_ready, _wrk

_DATASET_TABLE = f"""
[datasets.{DATASET}]
assembly = "GRCh37"
security_level = "PUBLIC"
max_granularity = {{ PUBLIC = "count" }}
"""


def _fednode(*args: str | Path) -> None:
    subprocess.run([sys.executable, "-m", "node", *map(str, args)], check=True,
                   stdout=subprocess.DEVNULL)


def _home(work: Path) -> Path:
    home = work / "home"
    if (home / "datasets" / DATASET).exists():
        return home
    _fednode("init", home)
    with (home / "fednode.toml").open("a") as fh:
        fh.write(_DATASET_TABLE)
    _fednode("ingest", home, "--dataset", DATASET, VCF)
    return home


@contextlib.contextmanager
def _serving(home: Path, workers: int, port: int, audit: str) -> Iterator[list[int]]:
    """The parent's pid while the server runs."""
    env = {**os.environ, "FEDNODE_PRIVACY__BUDGET__ENABLED": "false",
           "FEDNODE_AUDIT__ENABLED": "true" if audit == "on" else "false"}
    with (home / f"serve-{workers}.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "node", "serve", str(home), "--port", str(port),
             "--workers", str(workers)], env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        yield [proc.pid]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def _children_cpu(pid: int) -> float:
    """CPU seconds of the workers (children of `pid`) so far."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _measure(home: Path, workers: int, queries: list[dict[str, str]], seconds: float,
             audit: str) -> dict[str, float]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api/g_variants"
    with _serving(home, workers, port, audit) as (pid,):
        asyncio.run(_wait_ready(url, 600))
        _wrk(url, queries, 64, max(1.0, seconds / 5))  # warm-up
        cpu = _children_cpu(pid)
        out = _wrk(url, queries, 64, seconds)
        out["server_cpu_ms_per_request"] = 1000 * (_children_cpu(pid) - cpu) / out["requests"]
    return out


def run(work: Path, *, workers: int, runs: int, seconds: float, audit: str = "on"
        ) -> dict[str, Any]:
    home = _home(work)
    queries = _queries(5000)
    pairs = []
    for _ in range(runs):
        one = _measure(home, 1, queries, seconds, audit)
        many = _measure(home, workers, queries, seconds, audit)
        pairs.append({"one": one, "many": many, "ratio": many["rps"] / one["rps"]})
    median = {side: {k: statistics.median(p[side][k] for p in pairs) for k in pairs[0][side]}
              for side in ("one", "many")}
    ratio = statistics.median(p["ratio"] for p in pairs)
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
            "workers": workers, "audit": audit,
            "seconds": seconds, "runs": pairs, "median": median, "median_ratio": ratio,
            "load_average": os.getloadavg(), "meets_target": ratio >= 1.7}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workers_bench", description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workdir", type=Path, help="keep the ingested home here")
    parser.add_argument("--audit", choices=("on", "off"), default="on",
                        help="the audit log (off: to measure its share only)")
    args = parser.parse_args(argv)
    if not VCF.is_file():
        print(f"the 2,504-sample VCF is not at {VCF} (../shared missing)", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        work = args.workdir or Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="fednode-workers-bench-")))
        work.mkdir(parents=True, exist_ok=True)
        print(json.dumps(run(work, workers=args.workers, runs=args.runs,
                             seconds=args.seconds, audit=args.audit), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
