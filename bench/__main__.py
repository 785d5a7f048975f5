"""`python -m bench [--quick | --full] [--samples N] [--length BP] [--workdir DIR]`,
`python -m bench --region STORE BCF LENGTH` or `python -m bench --genotypes-cost VCF`."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench.store_bench import Sizes, genotypes_cost_bench, region_bench, run_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small cohorts (about a minute)")
    size.add_argument("--full", action="store_true",
                      help="the 2,504 x 1M-variant lookup store (long: hours of simulation)")
    parser.add_argument("--workdir", type=Path, help="keep cohorts and stores here")
    parser.add_argument("--samples", type=int, help="samples of the ingest cohort")
    parser.add_argument("--length", type=int, help="bp simulated for the ingest cohort")
    parser.add_argument("--region", nargs=3, metavar=("STORE", "BCF", "LENGTH"),
                        help="only (b)'s region read, on an existing store and its indexed "
                             "BCF (contig 1 of LENGTH bp)")
    parser.add_argument("--genotypes-cost", type=Path, metavar="VCF",
                        help="only the ingest of VCF with and without fednode_genotypes")
    args = parser.parse_args(argv)
    if args.genotypes_cost is not None:
        with tempfile.TemporaryDirectory(prefix="fednode-bench-") as tmp:
            genotypes_cost_bench(args.genotypes_cost, Path(tmp))
        return 0
    if args.region is not None:
        store, bcf, length = args.region
        region_bench(store, Path(bcf), min(Sizes.default().region_bp, int(length)), int(length))
        return 0
    sizes = Sizes.quick() if args.quick else Sizes.full() if args.full else Sizes.default()
    sizes = sizes.with_ingest(args.samples, args.length)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        run_all(sizes, args.workdir)
        return 0
    with tempfile.TemporaryDirectory(prefix="fednode-bench-") as tmp:
        run_all(sizes, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
