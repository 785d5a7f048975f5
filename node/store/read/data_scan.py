"""Long reads of `data` (whole contigs: `aggregate_build`; regions of `SCAN_SPAN` bp and up):
unordered, one window of positions at a time, sorted into (start_pos, sample) order here.

A global-order read of a dataset TileDB-VCF wrote (one fragment per batch of samples, all
overlapping in position) merges every fragment cell by cell, and with its default memory
budget re-decodes the tiles it holds on every incomplete submit: 40 s for the 7.75M cells
of 2,548 samples x 3,042 records, against 3.5 s unordered with a budget the size of the
result buffers (measured). Sorting a window in numpy costs less than the difference; the
var-size bytes are moved run by run (cells of one fragment arrive in runs), never byte by
byte. Windows aim at `_WINDOW_CELLS` cells: the first from the fragments' cell density,
the next from what the last held; one far denser than that is read again, narrower.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from threading import Lock

import numpy as np
import tiledb

from node.store.read.columns import Block, Var, name_columns, submitted_blocks

__all__ = ["SCAN_READ", "scan_blocks"]

SCAN_READ = {"py.init_buffer_bytes": str(32 << 20), "sm.mem.total_budget": str(32 << 20)}
_WINDOW_CELLS = 250_000  # cells a window aims at (its memory: about this x 300 bytes)
_MAX_WINDOW = 10_000_000  # bp
_DECODE_CELLS = 1 << 16  # cells handed on at once (a window goes on in such slices)


def scan_blocks(
    data: tiledb.Array,
    source: str,
    lo: int,
    hi: int,
    columns: Sequence[str],
    samples: Sequence[str] | None,
    attrs: Sequence[str],
    lock: Lock | None,
) -> Iterator[Block]:
    """`attrs` of the cells of [lo, hi] (all samples', or `samples`') in (start_pos,
    sample) order, cells of equal coordinates in read order; samples not in `columns`
    sort anywhere (the caller drops them)."""
    ranges: object = slice(None) if samples is None else [slice(x, x) for x in sorted(samples)]
    names = sorted(columns)
    width, start = _first_width(data, source), lo
    with _scan_array(data) as array:
        while start <= hi:
            stop = min(hi, start + width - 1)
            parts = _window(array, source, start, stop, ranges, attrs, lock)
            if parts is None:  # far denser than expected: a narrower window
                width = max(1, width // 8)
                continue
            cells = sum(p.n for p in parts)
            if cells:
                block = _sorted(Block.concat(parts), names)
                for at in range(0, block.n, _DECODE_CELLS):
                    yield block.slice(at, min(block.n, at + _DECODE_CELLS))
            # Aim the next window at _WINDOW_CELLS, growing at most 2x past sparse ones.
            width = max(1, min(width * 2, width * _WINDOW_CELLS // max(cells, 1)))
            start = stop + 1


def _window(
    array: tiledb.Array,
    source: str,
    lo: int,
    hi: int,
    ranges: object,
    attrs: Sequence[str],
    lock: Lock | None,
) -> list[Block] | None:
    """The cells of one window, or None when it holds many more than a window should."""
    query = array.query(
        attrs=list(attrs), dims=["start_pos", "sample"], order="U", return_incomplete=True
    )
    parts: list[Block] = []
    cells = 0
    for part in submitted_blocks(query.multi_index[[source], slice(lo, hi), ranges], lock):
        parts.append(part)
        cells += part.n
        if cells > 2 * _WINDOW_CELLS and hi > lo:
            return None
    return parts


def _first_width(data: tiledb.Array, source: str) -> int:
    """bp holding about _WINDOW_CELLS cells, from the fragments' cell counts and spans."""
    density = 0.0
    for fragment in tiledb.array_fragments(data.uri, ctx=data.ctx):
        contigs, positions = fragment.nonempty_domain[:2]
        if str(contigs[0]) <= source <= str(contigs[1]):
            density += fragment.cell_num / (int(positions[1]) - int(positions[0]) + 1)
    if not density:
        return _MAX_WINDOW
    return int(min(_MAX_WINDOW, max(1_000, _WINDOW_CELLS / density)))


@contextmanager
def _scan_array(data: tiledb.Array) -> Iterator[tiledb.Array]:
    """`data` again, at the same timestamps, with the scan's read settings."""
    config = {**data.ctx.config().dict(), **SCAN_READ}
    array = tiledb.open(data.uri, ctx=tiledb.Ctx(config), timestamp=data.timestamp_range)
    try:
        yield array
    finally:
        array.close()


def _sorted(block: Block, names: Sequence[str]) -> Block:
    """`block` in (start_pos, sample) order; equal cells keep their read order."""
    rank, _ = name_columns(block.var["sample"], names)
    order = np.lexsort((np.arange(block.n), rank, block.start))
    if (order == np.arange(block.n)).all():
        return block
    fixed = {k: v[order] for k, v in block.fixed.items()}
    return Block(block.start[order], fixed, {k: _moved(v, order) for k, v in block.var.items()})


def _moved(var: Var, order: np.ndarray) -> Var:
    """`var.take(order)`, copying runs of consecutive cells as whole slices."""
    breaks = np.flatnonzero(np.diff(order) != 1) + 1
    if breaks.size * 4 > order.size:  # short runs: the per-byte gather is cheaper
        return var.take(order)
    first = order[np.concatenate([[0], breaks])]
    last = order[np.concatenate([breaks, [order.size]]) - 1]
    lo, hi = var.starts[first].tolist(), (var.starts[last] + var.lengths[last]).tolist()
    data = np.concatenate([var.data[a:b] for a, b in zip(lo, hi, strict=True)])
    lengths = var.lengths[order]
    return Var(data, np.cumsum(lengths) - lengths, lengths)
