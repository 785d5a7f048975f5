"""How much of a few-sample ingest is the parser's floor (issue 18, items 1 and 2).

`python -m bench.parse_floor [VCF ...] [--records N] [--runs R]`: CPU seconds per record,
medians of R runs, each step beside `bcftools view -Ob` of the same file in the same run:

- cyvcf2 iterating the records (htslib's parse, nothing read from Python);
- cyvcf2 with every field a `data` cell stores read into Python (site fields, INFO items,
  each FORMAT key, the genotypes): the least any cyvcf2-based ingest can do per record;
- fednode's parse (`VcfInput.records`: the same fields encoded as TileDB-VCF's blobs);
- the whole `fednode ingest` (a child process; its CPU includes TileDB's threads);
- `tiledbvcf store` of the same file, when ../shared/tiledbvcf-bin is present.

Without a file argument, a one-sample VCF of `--records` SNVs is simulated
(`bench.ingest_bench._single`).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TILEDBVCF = REPO.parent / "shared" / "tiledbvcf-bin" / "bin" / "tiledbvcf"


def _child_cpu(cmd: list[str], **kwargs: object) -> float:
    """CPU seconds (user + system) of a child process and its threads."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _own_cpu(step: Callable[[], int]) -> tuple[float, int]:
    started = time.process_time()
    records = step()
    return time.process_time() - started, records


def _iterate(path: Path) -> int:
    import cyvcf2

    return sum(1 for _ in cyvcf2.VCF(str(path)))


def _every_field(path: Path) -> int:
    import cyvcf2

    count = 0
    for v in cyvcf2.VCF(str(path)):
        _ = (v.CHROM, v.start, v.end, v.REF, v.ALT, v.ID, v.QUAL, v.FILTER, list(v.INFO))
        _ = [v.format(k) for k in v.FORMAT if k != "GT"], v.genotype.array()
        count += 1
    return count


def _fednode_parse(path: Path) -> int:
    from node.store.ingest.vcfio import VcfInput

    return sum(1 for _ in VcfInput(path).records())


def measure(path: Path, runs: int, work: Path) -> None:
    rows: dict[str, list[float]] = {}
    records = 0
    for run in range(runs):
        rows.setdefault("bcftools view -Ob", []).append(
            _child_cpu(["bcftools", "view", "-Ob", "-o", os.devnull, str(path)]))
        for name, step in (
            ("cyvcf2 iteration", _iterate),
            ("cyvcf2 every stored field", _every_field),
            ("fednode parse (VcfInput.records)", _fednode_parse),
        ):
            seconds, records = _own_cpu(lambda s=step: s(path))  # type: ignore[misc]
            rows.setdefault(name, []).append(seconds)
        home = work / f"home{run}"
        subprocess.run([sys.executable, "-m", "node", "init", str(home)], check=True,
                       stdout=subprocess.DEVNULL, cwd=REPO)
        rows.setdefault("fednode ingest (whole, child)", []).append(_child_cpu(
            [sys.executable, "-m", "node", "ingest", str(home), "--dataset", "d", str(path)],
            cwd=REPO))
        if TILEDBVCF.is_file() and str(path).endswith((".bcf", ".vcf.gz")):
            uri = work / f"tiledbvcf{run}"
            subprocess.run([str(TILEDBVCF), "create", "-u", str(uri)], check=True,
                           stdout=subprocess.DEVNULL)
            rows.setdefault("tiledbvcf store -t 2", []).append(
                _child_cpu([str(TILEDBVCF), "store", "-u", str(uri), "-t", "2", str(path)]))
    base = statistics.median(rows["bcftools view -Ob"])
    print(f"{path.name}: {records:,} records; CPU medians of {runs} run(s); "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"    {'step':36s} {'CPU s':>8s} {'us/record':>10s} {'x bcftools':>11s}")
    for name, values in rows.items():
        seconds = statistics.median(values)
        print(f"    {name:36s} {seconds:8.2f} {seconds / records * 1e6:10.2f} "
              f"{seconds / base:10.1f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fednode-parse-floor-") as tmp:
        work = Path(tmp)
        files = list(args.files)
        if not files:
            from bench.ingest_bench import _single

            files = [_single(work, args.records)]
        for path in files:
            measure(path.resolve(), args.runs, work / path.name.replace(".", "_"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
