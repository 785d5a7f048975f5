"""The floor of any ingest built on cyvcf2 (issue 18 items 1, 2): read every value a
TileDB-VCF dataset stores, as cyvcf2 hands it over, and do nothing with it.

    python -m bench.read_floor [--processes N] FILE [FILE ...]

Per record: CHROM, POS, END, REF, ALT, ID, QUAL, the FILTERs, every INFO key and value, the
genotypes as an array and every other FORMAT key's values. The files are shared out over
`--processes` processes (round robin), as `fednode ingest --workers N` shares them. Used as
a mode of `bench.ingest_bench` (`read1`, `read2`): no ingest whose parsing goes through
cyvcf2 can be faster than this on the same files.
"""

from __future__ import annotations

import argparse
import multiprocessing
from pathlib import Path

import cyvcf2

__all__ = ["main", "read_all"]


def read_all(paths: list[str]) -> int:
    """Records read; every stored value of each touched once."""
    records = 0
    for path in paths:
        vcf = cyvcf2.VCF(path)
        for v in vcf:
            _ = (v.CHROM, v.POS, v.end, v.REF, v.ALT, v.ID, v.QUAL, v.FILTER)
            for _ in v.INFO:
                pass
            fmt = v.FORMAT
            if "GT" in fmt:
                v.genotype.array()
            for key in fmt:
                if key != "GT":
                    v.format(key)
            records += 1
        vcf.close()
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.read_floor", description=__doc__)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    files = [str(f) for f in args.files]
    shares = [files[i :: args.processes] for i in range(args.processes)]
    if args.processes == 1:
        records = read_all(files)
    else:
        with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
            records = sum(pool.map(read_all, shares))
    print(f"{records} records")


if __name__ == "__main__":
    main()
