"""Ingest wall time and peak RSS of one cohort, per code tree (issue 14, findings 4 and 7).

    python -m bench.ingest_layout_bench [--samples N] [--length BP] [--runs K]
                                        [--workdir DIR] [ROOT ...]

Each ROOT is a fednode tree (default: this one). The ingest runs in a child process with
that tree first on PYTHONPATH, so a tree from before a change and one after it are measured
on the same cohort, machine and interpreter. Per run: wall seconds and the child's peak
RSS (its own rusage), the `data` fragments written, and, when `../shared/tiledbvcf-bin` is
present, how many times TileDB-VCF's export of the first sample goes back in position
(0 = sorted, what `bcftools index` needs).
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

import tiledb

from node.synth import generate_cohort

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[1]
TILEDBVCF = REPO.parent / "shared" / "tiledbvcf-bin" / "bin" / "tiledbvcf"
SEED = 2026

_INGEST = """
import sys
from pathlib import Path
from node.store.tiledbvcf import TileDBVCFStore
store = TileDBVCFStore.create(sys.argv[1])
store.ingest([Path(sys.argv[2])])
store.close()
"""


def _child(args: list[str], root: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one child process, from its own rusage."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, cwd=root)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"ingest with {root} failed")
    return time.perf_counter() - started, usage.ru_maxrss * 1024  # Linux reports KiB


def _backward_positions(uri: Path, sample: str, out: Path) -> int | None:
    if not TILEDBVCF.is_file():
        return None
    out.mkdir()
    subprocess.run(
        [str(TILEDBVCF), "export", "-u", str(uri), "-O", "v", "-d", str(out), "-s", sample],
        check=True,
        capture_output=True,
    )
    back, last = 0, ("", -1)
    with open(out / f"{sample}.vcf") as vcf:
        for line in vcf:
            if line.startswith("#"):
                continue
            contig, pos = line.split("\t", 2)[:2]
            back += contig == last[0] and int(pos) < last[1]
            last = (contig, int(pos))
    return back


def run(roots: list[Path], vcf: Path, sample: str, runs: int, work: Path) -> None:
    for r, root in enumerate(roots):
        seconds, peaks = [], []
        for i in range(runs):
            uri = work / f"ds-{r}-{i}"
            shutil.rmtree(uri, ignore_errors=True)
            wall, rss = _child([sys.executable, "-c", _INGEST, str(uri), str(vcf)], root)
            seconds.append(wall)
            peaks.append(rss)
        fragments = len(tiledb.array_fragments(str(uri / "data")))
        export = work / f"export-{r}"
        shutil.rmtree(export, ignore_errors=True)
        back = _backward_positions(uri, sample, export)
        each = ", ".join(f"{s:.1f}" for s in seconds)
        print(
            f"{root}: ingest {statistics.median(seconds):.1f} s (runs {each}), "
            f"peak RSS {max(peaks) / 2**20:.0f} MiB, data fragments {fragments}, "
            f"TileDB-VCF export of {sample}: "
            + ("binary absent" if back is None else f"{back} backward positions")
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest_layout_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("roots", nargs="*", type=Path, default=[REPO])
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--length", type=int, default=5_200_000, help="bp of contig 1 simulated")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--workdir", type=Path, help="keep the cohort and datasets here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fednode-layout-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        vcf = work / f"cohort-{args.samples}-{args.length}.vcf.gz"
        if not vcf.is_file():
            info = generate_cohort(vcf, samples=args.samples, length=args.length, seed=SEED)
            print(f"cohort: {args.samples} samples x {info.n_sites} sites")
        run([r.resolve() for r in args.roots], vcf, "SYN00000", args.runs, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
