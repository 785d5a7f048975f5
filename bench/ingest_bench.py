"""Ingest on every core (issue 18): `fednode ingest` with 1 and N worker processes and on a
Dask LocalCluster, beside `bcftools view -Ob` of the same file in the same run.

    python -m bench.ingest_bench [--samples 2504] [--length 4400000] [--runs 3]
                                 [--modes 1,2,dask] [--vcf FILE.vcf.gz]
    python -m bench.ingest_bench --single 1000000 --modes 1   # one sample, 1 M records
    python -m bench.ingest_bench --split 300 --modes tiledbvcf,1,2   # per-sample files

Each ingest is the real command (`python -m node ingest HOME --dataset ID ...`) in a fresh
process, into a new dataset. Figures per mode: median wall time over `--runs`, CPU seconds
(user + sys of the command and every worker it waited for, from `wait4`), cells/s (samples
x records / wall), the largest single process's peak RSS and the peak of the whole process
tree's RSS (sampled 5 times a second), and the ratio of the median wall time to the median
of `bcftools view -Ob` (run `--runs` times, interleaved with the ingests). The speed-up of
N workers is against the 1-worker median of the same run. `--single N` ingests a
one-sample VCF of N SNV records (GT:GQ:DP, seeded) instead of the cohort: the per-record
cost (issue 18 item 1). `--split N` ingests N single-sample BCFs (`bcftools +split` of the
first N samples of the 1000 Genomes chr22 test file in ../shared, 3,042 records each) in one
command, beside `tiledbvcf store -t 2` of the same files (mode `tiledbvcf`, the real
TileDB-VCF 0.40.2 of ../shared/tiledbvcf-bin) and `bcftools view -Ob` of each file in turn
(issue 18 item 2). Modes `read1` and `read2` run `bench.read_floor` on the files with 1 or 2
processes: cyvcf2 reading every stored value and doing nothing with it, the floor of any
ingest that parses through cyvcf2. Mode `cyvcf2` is one worker with the block reader off
(FEDNODE_INGEST__BLOCK_READER=false: every record through the cyvcf2 parser), its baseline.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from node.synth import generate_cohort

__all__ = ["main"]

SEED = 2026
SHARED = Path(__file__).resolve().parents[2] / "shared"
CHR22 = SHARED / "beacon-testdata/cnag-beacon2-cbi-tools/examples/test_1000G_hg38.vcf.gz"
TILEDBVCF = SHARED / "tiledbvcf-bin/bin/tiledbvcf"


@dataclass(frozen=True, slots=True)
class Run:
    wall: float
    cpu: float
    rss: int  # the largest single process (bytes)
    tree_rss: int  # the process tree's sampled peak (bytes)


def _run(args: list[str], env: dict[str, str] | None = None) -> Run:
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    peak = [0]
    done = threading.Event()
    threading.Thread(target=_sample, args=(proc.pid, peak, done), daemon=True).start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(args[:4])} failed: {err[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return Run(wall, cpu, usage.ru_maxrss * 1024, peak[0])


def _sample(pid: int, peak: list[int], done: threading.Event) -> None:
    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return
    while not done.is_set():
        try:
            procs = [root, *root.children(recursive=True)]
            total = sum(p.memory_info().rss for p in procs if p.is_running())
        except psutil.Error:
            total = 0
        peak[0] = max(peak[0], total)
        done.wait(0.2)


def _ingest_args(home: Path, dataset: str, vcfs: list[Path], mode: str) -> list[str]:
    base = [sys.executable, "-m", "node", "ingest", str(home), "--dataset", dataset]
    if mode == "dask":
        return [*base, "--dask", "local", "--workers", "2", *map(str, vcfs)]
    return [*base, "--workers", mode, *map(str, vcfs)]


def _split(work: Path, samples: int) -> list[Path]:
    """Single-sample BCFs (indexed) of the first `samples` samples of the chr22 file."""
    if not CHR22.is_file():
        raise SystemExit(f"{CHR22} not present: --split needs ../shared")
    folder = work / f"split{samples}"
    if not folder.is_dir():
        names = subprocess.run(["bcftools", "query", "-l", str(CHR22)], capture_output=True,
                               text=True, check=True).stdout.split()[:samples]
        listing = work / "samples.txt"
        listing.write_text("".join(f"{n}\n" for n in names))
        subset = work / "subset.bcf"
        subprocess.run(["bcftools", "view", "-S", str(listing), "-Ob", "-o", str(subset),
                        str(CHR22)], check=True)
        folder.mkdir()
        subprocess.run(["bcftools", "+split", "-Ob", "-o", str(folder), str(subset)],
                       check=True)
        for f in sorted(folder.glob("*.bcf")):
            subprocess.run(["bcftools", "index", "-f", str(f)], check=True)
    return sorted(folder.glob("*.bcf"))


def _tiledbvcf_store(work: Path, vcfs: list[Path], i: int) -> Run:
    """`tiledbvcf create` (untimed), then `tiledbvcf store -t 2` of the files (timed)."""
    uri = work / f"tiledbvcf{i}"
    shutil.rmtree(uri, ignore_errors=True)
    subprocess.run([str(TILEDBVCF), "create", "-u", str(uri)], check=True,
                   capture_output=True)
    listing = work / "files.txt"
    listing.write_text("".join(f"{f}\n" for f in vcfs))
    run = _run([str(TILEDBVCF), "store", "-u", str(uri), "-t", "2", "-f", str(listing)])
    shutil.rmtree(uri)
    return run


def _cohort(work: Path, samples: int, length: int) -> Path:
    started = time.perf_counter()
    info = generate_cohort(work / "cohort.vcf.gz", samples=samples, length=length, seed=SEED)
    print(f"cohort: {samples} samples x {info.n_sites} sites over {length:,} bp "
          f"(simulated in {time.perf_counter() - started:.0f} s)")
    return info.paths[0]


def _single(work: Path, records: int) -> Path:
    """A one-sample VCF of `records` SNVs over contig 1, bgzipped and indexed."""
    rng = random.Random(SEED)
    path = work / "single.vcf"
    with path.open("w") as out:
        out.write(
            "##fileformat=VCFv4.2\n##contig=<ID=1,length=248956422>\n##reference=GRCh38\n"
            '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
            '##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">\n'
            '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n"
        )
        pos, step = 10_000, max(1, 240_000_000 // records)
        for _ in range(records):
            pos += rng.randint(1, 2 * step - 1)
            ref = rng.choice("ACGT")
            alt = rng.choice([b for b in "ACGT" if b != ref])
            gt = rng.choice(("0/1", "1/1", "0|1"))
            out.write(f"1\t{pos}\t.\t{ref}\t{alt}\t{rng.randint(10, 99)}\tPASS\t"
                      f"DP={rng.randint(5, 60)}\tGT:GQ:DP\t{gt}:{rng.randint(1, 99)}:"
                      f"{rng.randint(5, 60)}\n")
    subprocess.run(["bgzip", "-f", str(path)], check=True)
    subprocess.run(["tabix", "-f", "-p", "vcf", f"{path}.gz"], check=True)
    return Path(f"{path}.gz")


def _count(vcf: Path) -> tuple[int, int]:
    samples = subprocess.run(["bcftools", "query", "-l", str(vcf)], capture_output=True,
                             text=True, check=True).stdout.split()
    records = subprocess.run(["bcftools", "index", "-n", str(vcf)], capture_output=True,
                             text=True, check=True).stdout
    return len(samples), int(records)


def _describe(name: str, runs: list[Run], cells: int, base: float, one: float | None) -> str:
    wall = statistics.median(r.wall for r in runs)
    cpu = statistics.median(r.cpu for r in runs)
    rss = max(r.rss for r in runs) / 2**20
    tree = max(r.tree_rss for r in runs) / 2**20
    walls = ", ".join(f"{r.wall:.1f}" for r in runs)
    speed = f"; {one / wall:.2f}x the 1-worker median" if one else ""
    return (
        f"{name:>10}: median {wall:.1f} s (runs {walls}), CPU {cpu:.1f} s, "
        f"{cells / wall / 1e6:.2f} M cells/s, peak RSS {rss:.0f} MiB per process, "
        f"{tree:.0f} MiB process tree; {wall / base:.1f}x bcftools{speed}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.ingest_bench", description=__doc__)
    parser.add_argument("--samples", type=int, default=2504)
    parser.add_argument("--length", type=int, default=4_400_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", default="1,2,dask")
    parser.add_argument("--vcf", type=Path, help="an indexed VCF to ingest instead")
    parser.add_argument("--single", type=int, metavar="RECORDS",
                        help="ingest a one-sample VCF of RECORDS records instead")
    parser.add_argument("--split", type=int, metavar="SAMPLES",
                        help="ingest SAMPLES single-sample files of the chr22 test file")
    parser.add_argument("--work", type=Path)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# ingest on every core, {time.strftime('%Y-%m-%d %H:%M %Z')}; nproc "
          f"{os.cpu_count()}; python {sys.version.split()[0]}; work {work}")
    if args.split:
        vcfs = _split(work, args.split)
        samples, records = len(vcfs), sum(_count(v)[1] for v in vcfs)
        cells = records
        print(f"input: {samples} single-sample files of {CHR22.name}, {records:,} records")
    else:
        vcf = _single(work, args.single) if args.single else (
            args.vcf or _cohort(work, args.samples, args.length))
        vcfs = [vcf]
        samples, records = _count(vcf)
        cells = samples * records
        print(f"input {vcf.name}: {samples} samples x {records} records = {cells:,} cells; "
              f"{records and cells // records} cells per record")
    home = work / "home"
    subprocess.run([sys.executable, "-m", "node", "init", str(home), "--force"], check=True,
                   capture_output=True)
    modes = args.modes.split(",")
    timings: dict[str, list[Run]] = {m: [] for m in ["bcftools", *modes]}
    for i in range(args.runs):  # interleaved, so load changes touch every mode alike
        out = work / "out.bcf"
        views = "; ".join(f"bcftools view -Ob -o {out} {v}" for v in vcfs)
        timings["bcftools"].append(_run(["sh", "-c", views]))
        for mode in modes:
            if mode == "tiledbvcf":
                timings[mode].append(_tiledbvcf_store(work, vcfs, i))
                continue
            if mode.startswith("read"):
                timings[mode].append(_run([sys.executable, "-m", "bench.read_floor",
                                           "--processes", mode[4:], *map(str, vcfs)]))
                continue
            dataset = f"d{mode}_{i}"
            if mode == "cyvcf2":  # one worker, every record through the cyvcf2 parser
                env = {**os.environ, "FEDNODE_INGEST__BLOCK_READER": "false"}
                timings[mode].append(_run(_ingest_args(home, dataset, vcfs, "1"), env))
            else:
                timings[mode].append(_run(_ingest_args(home, dataset, vcfs, mode)))
            shutil.rmtree(home / "datasets" / dataset)
    base = statistics.median(r.wall for r in timings["bcftools"])
    print(f"{'bcftools':>10}: median {base:.2f} s (`bcftools view -Ob`, runs "
          f"{', '.join(f'{r.wall:.2f}' for r in timings['bcftools'])})")
    one = statistics.median(r.wall for r in timings["1"]) if "1" in timings else None
    for mode in modes:
        name = {"1": "1 worker", "dask": "dask local", "tiledbvcf": "tiledbvcf",
                "read1": "read 1", "read2": "read 2", "cyvcf2": "1, cyvcf2"}.get(
                    mode, f"{mode} workers")
        speed = one if mode not in ("1", "tiledbvcf", "read1", "read2") else None
        print(_describe(name, timings[mode], cells, base, speed))
    if "tiledbvcf" in timings:
        theirs = statistics.median(r.wall for r in timings["tiledbvcf"])
        for mode in modes:
            if mode != "tiledbvcf":
                mine = statistics.median(r.wall for r in timings[mode])
                print(f"{mode:>10}: {mine / theirs:.2f}x the time of `tiledbvcf store -t 2`")


if __name__ == "__main__":
    main()
