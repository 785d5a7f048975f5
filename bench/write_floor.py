"""The TileDB write floor of an ingest: how long TileDB itself takes to store the cells the
TileDB-VCF layout requires, with nothing else running, beside `bcftools view -Ob`.

`python -m bench.write_floor VCF [--runs N]`. A child process ingests VCF while recording
every `write_columns` call (array, schema, columns); once the ingest is done it replays
the same columns into fresh arrays of the same schemas (sorted beforehand, as the ingest
sorts them) and times only the TileDB writes. Parsing, statistics and sorting cost nothing
in the replay, so its time bounds from below what any ingest writing this layout with
TileDB can take on this machine; its CPU time divided by the cores bounds it from below
even with perfect parallelism across processes.

`--filters none` replays into the same schemas with every filter removed (no compression,
no checksums; dimensions, offsets and validity too): the share of the floor that is
TileDB-VCF's choice of filters rather than TileDB storing the cells at all.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = r"""
import json, os, sys, time
from pathlib import Path
import tiledb
from node.store.dataset import layout
from node.store.ingest.global_order import sorted_columns
from node.store.tiledbvcf import TileDBVCFStore
from node.store.dataset.write_buffers import Var

write = layout.write_columns
recorded = []

def recording(array, columns, *, ordered=False):
    recorded.append((array.uri, array.schema, array.ctx, dict(columns), ordered))
    return write(array, columns, ordered=ordered)

layout.write_columns = recording
store_uri, vcf, replay_dir, filters = sys.argv[1:5]

def unfiltered(schema):
    none = tiledb.FilterList([])
    dims = [tiledb.Dim(name=d.name, domain=d.domain, tile=d.tile, dtype=d.dtype,
                       filters=none) for d in (schema.domain.dim(i)
                                               for i in range(schema.domain.ndim))]
    attrs = [tiledb.Attr(name=a.name, dtype=a.dtype, var=a.isvar, nullable=a.isnullable,
                         filters=none) for a in (schema.attr(i) for i in range(schema.nattr))]
    return tiledb.ArraySchema(domain=tiledb.Domain(*dims), attrs=attrs, sparse=schema.sparse,
                              cell_order=schema.cell_order, tile_order=schema.tile_order,
                              capacity=schema.capacity,
                              allows_duplicates=schema.allows_duplicates,
                              coords_filters=none, offsets_filters=none,
                              validity_filters=none)

start = time.perf_counter()
store = TileDBVCFStore.create(store_uri, assembly="GRCh38")
store.ingest([Path(vcf)])
store.close()
ingest = time.perf_counter() - start

def cells(schema, columns):
    first = columns[schema.domain.dim(0).name]
    return int(first.offsets.size) if isinstance(first, Var) else len(first)

arrays = {}
for uri, schema, ctx, columns, ordered in recorded:
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    target = f"{replay_dir}/{name}"
    if tiledb.object_type(target, ctx=ctx) is None:
        tiledb.Array.create(target, unfiltered(schema) if filters == "none" else schema,
                            ctx=ctx)
    sparse_dups = schema.sparse and schema.allows_duplicates
    if sparse_dups and not ordered:
        columns = sorted_columns(schema, columns)
    with tiledb.open(target, "w", ctx=ctx) as arr:
        wall, cpu = time.perf_counter(), sum(os.times()[:2])
        write(arr, columns, ordered=True)
        wall, cpu = time.perf_counter() - wall, sum(os.times()[:2]) - cpu
    row = arrays.setdefault(name, {"writes": 0, "cells": 0, "seconds": 0.0, "cpu": 0.0})
    row["writes"] += 1
    row["cells"] += cells(schema, columns)
    row["seconds"] += wall
    row["cpu"] += cpu
print(json.dumps({"ingest": ingest, "arrays": arrays}))
"""


def _bcftools(vcf: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["bcftools", "view", "-Ob", "-o", str(out), str(vcf)], check=True)
    return time.perf_counter() - start


def _child(vcf: Path, work: Path, k: int, filters: str) -> dict[str, object]:
    store, replay = work / f"store-{k}", work / f"replay-{k}"
    replay.mkdir()
    out = subprocess.run([sys.executable, "-c", _CHILD, str(store), str(vcf), str(replay),
                          filters], check=True, capture_output=True, text=True).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    subprocess.run(["rm", "-rf", str(store), str(replay)], check=True)
    return result


def run(vcf: Path, runs: int, filters: str = "as-is") -> None:
    n_samples = len(subprocess.run(["bcftools", "query", "-l", str(vcf)], check=True,
                                   capture_output=True, text=True).stdout.split())
    cores = os.cpu_count() or 1
    base: list[float] = []
    results = []
    with tempfile.TemporaryDirectory(prefix="fednode-floor-") as tmp:
        work = Path(tmp)
        for k in range(runs):
            base.append(_bcftools(vcf, work / "out.bcf"))
            results.append(_child(vcf, work, k, filters))
        base.append(_bcftools(vcf, work / "out.bcf"))
    bcf = statistics.median(base)
    ingest = statistics.median(float(r["ingest"]) for r in results)  # type: ignore[arg-type]
    names = sorted(results[0]["arrays"])  # type: ignore[call-overload]
    print(f"(a3) {vcf.name}: {n_samples} samples; medians of {runs} runs, {cores} cores; "
          f"replay filters {filters}")
    print(f"    {'array':<22}{'writes':>8}{'cells':>14}{'write s':>10}{'CPU s':>9}"
          f"{'us/cell':>9}")
    floor_wall = floor_cpu = 0.0
    for name in names:
        rows = [r["arrays"][name] for r in results]  # type: ignore[index]
        wall = statistics.median(row["seconds"] for row in rows)
        cpu = statistics.median(row["cpu"] for row in rows)
        cells = rows[0]["cells"]
        floor_wall += wall
        floor_cpu += cpu
        print(f"    {name:<22}{rows[0]['writes']:>8}{cells:>14,}{wall:>10.2f}{cpu:>9.2f}"
              f"{wall / max(cells, 1) * 1e6:>9.2f}")
    print(f"    bcftools view -Ob: {bcf:.2f} s (median of {len(base)})")
    print(f"    whole ingest:      {ingest:.2f} s = {ingest / bcf:.1f}x bcftools")
    print(f"    TileDB writes alone (replay): {floor_wall:.2f} s = {floor_wall / bcf:.1f}x "
          f"bcftools; CPU {floor_cpu:.2f} s, / {cores} cores = {floor_cpu / cores:.2f} s "
          f"= {floor_cpu / cores / bcf:.1f}x (the floor with perfect parallelism)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.write_floor", description=__doc__)
    parser.add_argument("vcf", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--filters", choices=("as-is", "none"), default="as-is",
                        help="replay with the schemas' filters, or with none at all")
    args = parser.parse_args(argv)
    run(args.vcf, args.runs, args.filters)
    return 0


if __name__ == "__main__":
    sys.exit(main())
