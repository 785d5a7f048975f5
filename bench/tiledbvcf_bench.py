"""fednode serving a dataset TileDB-VCF wrote, before and after `build_aggregate`.

`python -m bench.tiledbvcf_bench [--workdir DIR] [--vcf VCF]`

The 1000 Genomes chr22 extract of ../shared (2,548 samples x 3,042 records, all within
1 Mb: 10.5-11.0 Mb) split per sample (`bcftools +split`: TileDB-VCF refuses multi-sample
files) and stored by the real TileDB-VCF 0.40.2 (`tiledbvcf create` + `store`, defaults:
variant_stats version 2); beside it fednode's own dataset of the same file. Measured, each
in a child process (wall time, peak RSS from its rusage):

- the region read: `genotype_batches` over the 1 Mb (every genotype), from `data` (no
  aggregate), from fednode's own dataset, and after the build (from fednode_genotypes);
- the build itself (`build_aggregate`, what `fednode index` runs);
- allele-statistics lookups, one key per call (p50), in the three cases;

and checked: the three give the same genotype matrices and statistics.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
VCF = SHARED / "beacon-testdata/cnag-beacon2-cbi-tools/examples/test_1000G_hg38.vcf.gz"
TILEDBVCF = SHARED / "tiledbvcf-bin/bin/tiledbvcf"
REGION = ("22", 10_000_000, 11_000_000)

_READ = """
import hashlib, sys, time
from node.domain import Region
from node.store.tiledbvcf import TileDBVCFStore
store = TileDBVCFStore.open(sys.argv[1])
t = time.perf_counter()
digest, records, calls = hashlib.sha256(), 0, 0
for b in store.genotype_batches(Region(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))):
    records += len(b)
    calls += int(b.present.sum())
    for i, site in enumerate(b.sites):
        digest.update(repr((site.start, site.ref, site.alts, b.samples)).encode())
        digest.update(b.alleles[i].astype("i2").tobytes() + b.phased[i].tobytes()
                      + b.present[i].tobytes())
print(time.perf_counter() - t, records, calls, digest.hexdigest(), store.reads_genotypes_array)
"""

_BUILD = """
import sys
from node.store.ingest.aggregate_build import build_aggregate
s = build_aggregate(sys.argv[1])
print(s.seconds, len(s.samples), s.cells, s.groups, s.genotypes)
"""

_LOOKUP = """
import random, statistics, sys, time
from node.domain import AlleleKey, Region
from node.store.tiledbvcf import TileDBVCFStore
own, store = TileDBVCFStore.open(sys.argv[1]), TileDBVCFStore.open(sys.argv[2])
region = Region(sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
keys = [AlleleKey(v.contig, v.start, v.ref, v.alt) for v in own.variants(region)]
keys = random.Random(2026).sample(keys, min(int(sys.argv[6]), len(keys)))
store.allele_stats(keys[:3])
times = []
for key in keys:
    t = time.perf_counter()
    store.allele_stats([key])
    times.append(time.perf_counter() - t)
same = store.allele_stats(keys) == own.allele_stats(keys)
print(statistics.median(times), len(keys), same)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tiledbvcf_bench", description=__doc__)
    parser.add_argument("--workdir", type=Path, help="keep the split files and datasets here")
    parser.add_argument("--vcf", type=Path, default=VCF)
    parser.add_argument("--lookups", type=int, default=200)
    args = parser.parse_args(argv)
    for need in (args.vcf, TILEDBVCF):
        if not need.exists():
            print(f"{need} not present: this benchmark needs ../shared", file=sys.stderr)
            return 1
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        run(args.vcf, args.workdir, args.lookups)
        return 0
    with tempfile.TemporaryDirectory(prefix="fednode-tiledbvcf-bench-") as tmp:
        run(args.vcf, Path(tmp), args.lookups)
    return 0


def run(vcf: Path, work: Path, lookups: int) -> None:
    print(f"# fednode on a TileDB-VCF-written dataset, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"nproc: {os.cpu_count()}; load average: {os.getloadavg()[0]:.1f}; input {vcf.name}")
    theirs, own = prepare(vcf, work)
    contig, lo, hi = REGION
    where = [contig, str(lo), str(hi)]
    before = _read(theirs, where)
    mine = _read(own, where)
    lookup_before = _lookup(own, theirs, where, lookups // 10)
    indexed = work / "tiledbvcf-indexed"
    shutil.rmtree(indexed, ignore_errors=True)
    shutil.copytree(theirs, indexed)
    built, build_s, build_rss = _child(_BUILD, [indexed])
    after = _read(indexed, where)
    lookup_after = _lookup(own, indexed, where, lookups)
    lookup_own = _lookup(own, own, where, lookups)
    print(f"region {contig}:{lo + 1}-{hi} (1 Mb), all samples: {after[1]} records, "
          f"{after[2]} calls; one child process each")
    for label, r in (("TileDB-VCF's dataset, from data", before),
                     ("fednode's own dataset", mine),
                     ("TileDB-VCF's dataset + aggregate", after)):  # fmt: skip
        print(f"  {label:34s} {r[0]:8.3f} s   peak RSS {r[5] / 2**20:6.0f} MiB   "
              f"(fednode_genotypes: {r[4]})")
    same = before[3] == mine[3] == after[3]
    print(f"  the three matrices are {'identical' if same else 'DIFFERENT'}")
    seconds, samples, cells, groups, genotypes = built
    print(f"build_aggregate: {float(seconds):.1f} s ({build_s:.1f} s with start-up), peak RSS "
          f"{build_rss / 2**20:.0f} MiB; {samples} samples, {cells} cells, {groups} group(s), "
          f"fednode_genotypes {genotypes}")
    for label, (p50, n, equal) in (("from data", lookup_before), ("after build", lookup_after),
                                  ("fednode's own", lookup_own)):  # fmt: skip
        print(f"allele_stats one key per call, {label:13s}: p50 {p50 * 1e3:8.3f} ms over {n} "
              f"keys; equal to fednode's own: {equal}")


def prepare(vcf: Path, work: Path) -> tuple[Path, Path]:
    """TileDB-VCF's dataset of `vcf` (per-sample files) and fednode's own, made once."""
    theirs, own = work / "tiledbvcf", work / "fednode"
    if not theirs.exists():
        split = work / "split"
        split.mkdir(exist_ok=True)
        t = time.perf_counter()
        _sh(f"bcftools +split -Ob -o {split} {vcf}")
        files = sorted(split.glob("*.bcf"))
        for f in files:
            _sh(f"bcftools index -f {f}")
        listing = work / "files.txt"
        listing.write_text("".join(f"{f}\n" for f in files))
        _sh(f"{TILEDBVCF} create -u {theirs}")
        _sh(f"{TILEDBVCF} store -u {theirs} -t {os.cpu_count() or 1} -e 100 -f {listing}")
        print(f"TileDB-VCF stored {len(files)} per-sample files in {time.perf_counter() - t:.0f} s")
    if not own.exists():
        script = ("import sys; from pathlib import Path; from node.store.tiledbvcf import "
                  "TileDBVCFStore; TileDBVCFStore.create(sys.argv[1]).ingest([Path(sys.argv[2])])")
        _, seconds, _ = _child(script, [own, vcf], parse=False)
        print(f"fednode ingested {vcf.name} in {seconds:.0f} s")
    return theirs, own


def _read(uri: Path, where: list[str]) -> tuple[float, int, int, str, bool, int]:
    words, _, rss = _child(_READ, [uri, *where])
    seconds, records, calls, digest, genotypes = words
    return float(seconds), int(records), int(calls), digest, genotypes == "True", rss


def _lookup(own: Path, uri: Path, where: list[str], n: int) -> tuple[float, int, bool]:
    words, _, _ = _child(_LOOKUP, [own, uri, *where, n])
    p50, keys, same = words
    return float(p50), int(keys), same == "True"


def _child(
    script: str, args: list[object], *, parse: bool = True
) -> tuple[list[str], float, int]:
    """The child's printed words, its wall seconds and peak RSS (bytes, from its rusage)."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", script, *map(str, args)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)  # fmt: skip
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"benchmark child failed: {script.strip().splitlines()[0]}")
    words = out.split() if parse else []
    return words, time.perf_counter() - t, usage.ru_maxrss * 1024


def _sh(cmd: str) -> str:
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True).stdout


if __name__ == "__main__":
    sys.exit(main())
