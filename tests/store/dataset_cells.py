"""What a dataset holds, independent of how its writes were split into fragments.

A partitioned ingest (worker processes, Dask) must leave the dataset a one-writer ingest
leaves. Fragments, their timestamps and the URIs naming them differ by construction; the
cells must not. Per array: every cell (all dimensions and attributes, raw bytes), as a
sorted list; arrays whose rows are signed deltas summed on read (`allele_count`,
fednode's aggregate and coverage) compared by their sums per key, since readers see only
those. Plus the array metadata (fragment-URI keys replaced by the sample lists they map
to) and the dataset state. variant_stats version 3's per-row `max_length` (a writer's
running maximum, which depends on how the work was split, in TileDB-VCF's threads as in
fednode's tasks) is compared by its largest value only.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tiledb

from node.store.dataset import layout

__all__ = ["dataset_cells"]

SUMMED = {
    layout.ALLELE_COUNT: ("count",),
    layout.FEDNODE_STATS: layout.FEDNODE_COUNTS,
    layout.FEDNODE_COVERAGE: ("an", "n_called"),
}


def dataset_cells(uri: Path | str, config: Mapping[str, str] | None = None) -> dict[str, object]:
    ctx = tiledb.Ctx(dict(config or {}))
    out: dict[str, object] = {}
    with tiledb.Group(str(uri), ctx=ctx) as group:
        committed = int(group.meta["fednode_committed"])
        state = json.loads(group.meta["fednode_state"])
    out["state"] = state
    for name in layout.ALL_ARRAYS:
        with tiledb.open(f"{uri}/{name}", timestamp=committed, ctx=ctx) as arr:
            cells = arr[:]
            meta = dict(arr.meta.items())
        if name == layout.FEDNODE_GENOTYPES:  # groups are named by the ingest's timestamp
            cells["group"] = cells["group"] & 0xFFFF
            meta = {_input_of(k): v for k, v in meta.items()}
        if name == layout.VARIANT_STATS and "max_length" in cells:
            # version 3's per-row max_length is the running maximum of whichever writer
            # wrote the row (TileDB-VCF's threads too); readers use the array metadata
            running = cells.pop("max_length")
            out[f"{name}/max_length"] = int(running.max()) if running.size else 0
        rows = _rows(cells)
        summed = SUMMED.get(name)
        out[name] = _sums(cells, rows, summed) if summed else sorted(rows)
        out[f"{name}/meta"] = _meta(meta)
    return out


def _rows(cells: dict[str, np.ndarray]) -> list[tuple[object, ...]]:
    columns = sorted(cells)
    n = len(cells[columns[0]]) if columns else 0
    return [tuple(_value(cells[c][i]) for c in columns) for i in range(n)]


def _value(v: object) -> object:
    if v is np.ma.masked:  # a null of a nullable attribute
        return None
    if isinstance(v, np.ndarray):
        return v.tobytes()
    if isinstance(v, np.generic):
        return v.tobytes()
    return v


def _sums(
    cells: dict[str, np.ndarray], rows: list[tuple[object, ...]], summed: tuple[str, ...]
) -> dict[tuple[object, ...], tuple[int, ...]]:
    columns = sorted(cells)
    keys = [i for i, c in enumerate(columns) if c not in summed]
    counts = [i for i, c in enumerate(columns) if c in summed]
    totals: dict[tuple[object, ...], list[int]] = defaultdict(lambda: [0] * len(counts))
    for i, row in enumerate(rows):
        key = tuple(row[k] for k in keys)
        for j, c in enumerate(counts):
            totals[key][j] += int(cells[columns[c]][i])
    return {k: tuple(v) for k, v in totals.items() if any(v)}


def _input_of(key: str) -> str:
    prefix, _, group = key.rpartition("_")
    return f"{prefix}_{int(group) & 0xFFFF}" if prefix == "samples" and group.isdigit() else key


def _meta(meta: dict[str, object]) -> object:
    """Fragment-URI keys (stats arrays, `__fragments/...`) become the set of samples they
    name (one writer names all of an ingest's samples per fragment, a task its input's);
    the rest is kept."""
    plain = {k: v for k, v in meta.items() if "__fragments" not in k}
    samples = set()
    for key, value in meta.items():
        if "__fragments" in key:
            text = value.decode() if isinstance(value, bytes) else str(value)
            samples.update(text.split(","))
    return plain, sorted(samples)
