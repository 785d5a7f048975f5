"""Cells sorted into a sparse array's global order, so writes skip TileDB's own sort.

An unordered write makes TileDB sort every cell by its coordinates (string dimensions
compared byte by byte); for the 3.3M `variant_stats` rows of a 2,504-sample ingest that
sort took ~80% of the write. numpy sorts the same keys in a fraction of the time, and a
global-order write of sorted cells stores the same tiles. Our position dimensions have a
single tile spanning the domain, so the global order is the row-major order of the
dimensions. Cells with equal coordinates keep their input order (a stable sort).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tiledb

from node.store.dataset.write_buffers import Null, Var
from node.store.dataset.write_query import GLOBAL_ORDER, WriteQuery

__all__ = ["FragmentStream", "sorted_columns"]

# Variable-length bytes gathered at once: the gather builds an 8-byte index per byte (three
# such arrays at its peak), so blocks of cells are cut by bytes, not by cells (2^18 cells of
# ~200-byte INFO blobs peaked at ~240 MiB; `memory_budget`).
_GATHER_BYTES = 1 << 20


def sorted_columns(schema: tiledb.ArraySchema, columns: Mapping[str, object]) -> dict[str, object]:
    """`columns` permuted into the global order of `schema` (returned as is when sorted)."""
    keys = []
    for dim in reversed([schema.domain.dim(i) for i in range(schema.domain.ndim)]):
        column = columns[dim.name]
        keys.append(_ranks(column) if isinstance(column, Var) else np.asarray(column))
    order = np.lexsort(keys)
    if np.array_equal(order, np.arange(order.size)):
        return dict(columns)
    return {name: _take(column, order) for name, column in columns.items()}


def _ranks(column: Var) -> np.ndarray:
    """Byte-wise rank of each string of `column` (shorter prefixes first, as TileDB)."""
    lengths = _lengths(column)
    if lengths.size == 0:
        return np.zeros(0, dtype=np.int64)
    width = max(int(lengths.max()), 1)
    data = column.data.view(np.uint8)
    padded = np.zeros((lengths.size, width), dtype=np.uint8)
    for j in range(width):  # one pass per byte position, not per cell
        present = lengths > j
        padded[present, j] = data[column.offsets[present] + np.uint64(j)]
    if width <= 8:  # big-endian integers of the zero-padded bytes sort like the bytes
        wide = np.zeros((lengths.size, 8), dtype=np.uint8)
        wide[:, :width] = padded
        return wide.view(">u8").reshape(-1)
    _, inverse = np.unique(padded.view(f"S{width}").reshape(-1), return_inverse=True)
    return inverse.reshape(-1)


def _lengths(column: Var) -> np.ndarray:
    total = np.uint64(column.data.view(np.uint8).size if column.offsets.size else 0)
    ends = np.append(column.offsets[1:], total)
    return (ends - column.offsets).astype(np.int64)


def _take(column: object, order: np.ndarray) -> object:
    if isinstance(column, Null):
        return column
    if not isinstance(column, Var):
        return np.asarray(column)[order]
    lengths = _lengths(column)
    data = column.data.view(np.uint8)
    out = Var([], "u1")
    if lengths.size and (lengths == lengths[0]).all():
        width = int(lengths[0])
        moved = data.reshape(-1, width)[order].reshape(-1) if width else data[:0]
    else:
        moved = np.concatenate(
            [_gather(data, column.offsets, lengths, rows) for rows in _blocks(lengths, order)]
        )
    new_lengths = lengths[order]
    out.offsets = np.zeros(order.size, dtype=np.uint64)
    if order.size > 1:
        np.cumsum(new_lengths[:-1], out=out.offsets[1:])
    out.data = moved.view(column.data.dtype) if moved.size else column.data[:1]
    return out


def _blocks(lengths: np.ndarray, order: np.ndarray) -> list[np.ndarray]:
    """`order` cut into runs of cells of about `_GATHER_BYTES` bytes (a larger cell alone)."""
    ends = np.cumsum(lengths[order])
    total = int(ends[-1]) if ends.size else 0
    marks = np.arange(_GATHER_BYTES, total, _GATHER_BYTES, dtype=np.int64)
    return np.split(order, np.unique(np.searchsorted(ends, marks, side="right")))


def _gather(
    data: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    sizes = lengths[rows]
    total = int(sizes.sum())
    if total == 0:
        return data[:0]
    starts = offsets[rows].astype(np.int64)
    first = np.cumsum(sizes) - sizes  # where each cell begins in the output
    index = np.arange(total, dtype=np.int64) + np.repeat(starts - first, sizes)
    return np.asarray(data[index])


class FragmentStream:
    """One fragment of a sparse array written by successive global-order submissions.

    TileDB's global-order writer writes the full tiles of each submission and keeps only
    the last partial tile until the next, so a fragment of any size is written from
    bounded batches. Each submission must continue the global order (TileDB refuses
    otherwise); `last` is the (contig, position) of the last cell submitted, for callers
    that start a new fragment instead. The fragment exists once `finalize` returns.
    """

    def __init__(self, array: tiledb.Array) -> None:
        self._array = array
        try:
            self._query = WriteQuery(array, GLOBAL_ORDER)
        except BaseException:
            array.close()
            raise
        self.last: tuple[bytes, int] | None = None

    @property
    def schema(self) -> tiledb.ArraySchema:
        return self._array.schema

    def submit(self, columns: Mapping[str, object], last: tuple[bytes, int]) -> None:
        """Append `columns` (already in global order, after every cell submitted so far)."""
        self._query.set_columns(columns)
        self._query.submit()
        self.last = last

    def finalize(self) -> str | None:
        """Commit the fragment (none when nothing was submitted); returns its URI."""
        try:
            if self.last is None:
                self._query.free()
                return None
            return self._query.finalize()
        finally:
            self._array.close()

    def abandon(self) -> None:
        """Close without committing: the fragment's files stay invisible."""
        try:
            self._query.free()
        finally:
            self._array.close()


