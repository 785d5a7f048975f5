"""Cells of a `data` or `fednode_genotypes` query as numpy columns: fixed-size arrays and
var-size (bytes, offsets).

`Var` keeps a var-size attribute as TileDB returns it (one byte buffer, one start offset
per cell) and answers the few questions the record reader asks of all cells at once:
is a cell equal to the previous one, what int32 sits at byte k of each cell, which sample
column does a name belong to.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext

import numpy as np

__all__ = ["Block", "Var", "name_columns", "submitted_blocks"]

_SHIFTS = 6  # distinct cell lengths compared by shifting the whole buffer
_WORDS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_FIXED = {
    "start_pos": np.uint32,
    "real_start_pos": np.uint32,
    "end_pos": np.uint32,
    "qual": np.float32,
    # fednode_genotypes
    "pos": np.uint32,
    "real_start": np.uint32,
    "end": np.uint32,
    "group": np.uint64,
    "shape": np.uint8,
}


class Var:
    """A var-size column: `data` (uint8) and per cell `starts`/`lengths` (int64), contiguous."""

    __slots__ = ("data", "lengths", "starts")

    def __init__(
        self, data: np.ndarray, offsets: np.ndarray, lengths: np.ndarray | None = None
    ) -> None:
        self.data = np.asarray(data).view(np.uint8).reshape(-1)
        self.starts = np.asarray(offsets, dtype=np.int64)
        if lengths is None:
            lengths = np.empty_like(self.starts)
            lengths[:-1] = self.starts[1:] - self.starts[:-1]
            lengths[-1:] = self.data.size - self.starts[-1:]
        self.lengths = lengths
        if self.starts.size and self.starts[0] != 0:  # a slice of a larger buffer
            self.data = self.data[int(self.starts[0]) :]
            self.starts = self.starts - self.starts[0]

    @property
    def n(self) -> int:
        return int(self.starts.size)

    def cell(self, i: int) -> bytes:
        start = int(self.starts[i])
        return self.data[start : start + int(self.lengths[i])].tobytes()

    def uniform(self) -> bool:
        return self.n > 0 and bool((self.lengths == self.lengths[0]).all())

    def matrix(self) -> np.ndarray:
        """(n, width) bytes; only for `uniform()` columns."""
        width = int(self.lengths[0])
        return self.data[: self.n * width].reshape(self.n, width)

    def words(self, at: int) -> np.ndarray:
        """The little-endian int32 at byte `at` of each cell (0 where the cell is shorter)."""
        if self.uniform() and int(self.lengths[0]) >= at + 4:
            m = self.matrix()
            return np.ascontiguousarray(m[:, at : at + 4]).view("<i4").reshape(-1)
        out = np.zeros(self.n, dtype=np.int32)
        inside = np.flatnonzero(self.lengths >= at + 4)
        if inside.size:
            where = self.starts[inside, None] + (at + np.arange(4))
            out[inside] = np.ascontiguousarray(self.data[where]).view("<i4").reshape(-1)
        return out

    def equal_previous(self) -> np.ndarray:
        """Per cell: its bytes equal the previous cell's (False for the first)."""
        same = np.zeros(self.n, dtype=bool)
        if self.n < 2:
            return same
        if self.uniform():
            m = self.matrix()
            word = _WORDS.get(m.shape[1])
            if word is not None:  # each cell one integer
                v = m.view(word).reshape(-1)
                same[1:] = v[1:] == v[:-1]
            else:
                same[1:] = (m[1:] == m[:-1]).all(axis=1) if m.shape[1] else True
            return same
        lengths = self.lengths
        candidates = np.flatnonzero(lengths[1:] == lengths[:-1]) + 1
        sizes = lengths[candidates]
        counts = np.bincount(sizes) if sizes.size else np.zeros(1, dtype=np.int64)
        # Cells are contiguous: cell i (length L) equals cell i-1 iff data[k] == data[k-L]
        # over its bytes. One shifted comparison per common length, prefix sums per cell.
        common = np.argsort(counts)[::-1][:_SHIFTS]
        common = common[counts[common] > 0]
        for size in common.tolist():
            pick = candidates[sizes == size]
            if size == 0:
                same[pick] = True
                continue
            mismatch = np.zeros(self.data.size + 1, dtype=np.int32)
            np.cumsum(self.data[size:] != self.data[:-size], out=mismatch[size + 1 :])
            first = self.starts[pick]
            same[pick] = mismatch[first + size] == mismatch[first]
        rest = candidates[~np.isin(sizes, common)]
        if rest.size:
            same[rest] = self._equal_previous_bytes(rest)
        return same

    def _equal_previous_bytes(self, cells: np.ndarray) -> np.ndarray:
        sizes = self.lengths[cells]
        first = np.cumsum(sizes) - sizes
        within = np.arange(int(sizes.sum())) - np.repeat(first, sizes)
        here = np.repeat(self.starts[cells], sizes) + within
        differ = self.data[here] != self.data[here - np.repeat(sizes, sizes)]
        return np.asarray(np.add.reduceat(differ, first) == 0)

    def slice(self, a: int, b: int) -> Var:
        """Cells a..b-1 without copying."""
        if b <= a:
            return Var(np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=np.int64))
        lo = int(self.starts[a])
        hi = int(self.starts[b - 1] + self.lengths[b - 1])
        return Var(self.data[lo:hi], self.starts[a:b] - lo, self.lengths[a:b])

    def take(self, index: np.ndarray) -> Var:
        """The cells at `index` (int positions or a bool mask), contiguous again."""
        if index.dtype == bool:
            index = np.flatnonzero(index)
        sizes = self.lengths[index]
        offsets = np.cumsum(sizes) - sizes
        within = np.arange(int(sizes.sum())) - np.repeat(offsets, sizes)
        data = self.data[np.repeat(self.starts[index], sizes) + within]
        return Var(data, offsets, sizes)

    @staticmethod
    def concat(parts: Sequence[Var]) -> Var:
        shifts = np.cumsum([0, *(p.data.size for p in parts[:-1])])
        offsets = np.concatenate([p.starts + k for p, k in zip(parts, shifts, strict=True)])
        return Var(np.concatenate([p.data for p in parts]), offsets)


class Block:
    """Cells of one query chunk: `start` (start_pos), fixed attributes, var attributes."""

    __slots__ = ("fixed", "start", "var")

    def __init__(
        self, start: np.ndarray, fixed: dict[str, np.ndarray], var: dict[str, Var]
    ) -> None:
        self.start, self.fixed, self.var = start, fixed, var

    @classmethod
    def of(
        cls, raw: Mapping[str, tuple[np.ndarray, np.ndarray, object]], start: str = "start_pos"
    ) -> Block:
        """From tiledb-py `PyQuery.results()`: name -> (data bytes, byte offsets, validity);
        `start` names the position dimension."""
        fixed: dict[str, np.ndarray] = {}
        var: dict[str, Var] = {}
        for name, (data, offsets, _validity) in raw.items():
            if name in _FIXED:
                fixed[name] = np.asarray(data).view(_FIXED[name])
            else:
                var[name] = Var(data, offsets)
        return cls(fixed.pop(start), fixed, var)

    @property
    def n(self) -> int:
        return int(self.start.size)

    def slice(self, a: int, b: int) -> Block:
        """Cells a..b-1 without copying."""
        fixed = {k: v[a:b] for k, v in self.fixed.items()}
        return Block(self.start[a:b], fixed, {k: v.slice(a, b) for k, v in self.var.items()})

    def take(self, index: np.ndarray) -> Block:
        if index.dtype == bool and index.all():
            return self
        fixed = {k: v[index] for k, v in self.fixed.items()}
        return Block(self.start[index], fixed, {k: v.take(index) for k, v in self.var.items()})

    @staticmethod
    def concat(parts: Sequence[Block]) -> Block:
        if len(parts) == 1:
            return parts[0]
        start = np.concatenate([p.start for p in parts])
        fixed = {k: np.concatenate([p.fixed[k] for p in parts]) for k in parts[0].fixed}
        var = {k: Var.concat([p.var[k] for p in parts]) for k in parts[0].var}
        return Block(start, fixed, var)


def name_columns(names: Var, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the index of its sample name in `columns`, and whether it is there at all.

    Names become fixed-width rows of big-endian uint64 words (order-preserving), so the
    lookup is a `searchsorted` over the distinct names rather than a dict per cell.
    """
    n = names.n
    if n == 0 or not columns:
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    encoded = [c.encode() for c in columns]
    width = -(-max(int(names.lengths.max()), max(map(len, encoded))) // 8) * 8
    cells = _padded(names, width)
    known = np.zeros((len(encoded), width), dtype=np.uint8)
    for i, raw in enumerate(encoded):
        known[i, : len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    cell_keys, known_keys = _keys(cells), _keys(known)
    if np.unique(known_keys).size < known_keys.size:  # colliding names: look each cell up
        index = {raw: i for i, raw in enumerate(encoded)}
        looked = np.asarray([index.get(names.cell(i), -1) for i in range(n)], dtype=np.int64)
        return looked.clip(0), looked >= 0
    order = np.argsort(known_keys, kind="stable")
    pos = np.searchsorted(known_keys[order], cell_keys).clip(0, len(order) - 1)
    col = order[pos]
    if width == 8:  # one word: the key is the name itself
        return col.astype(np.int64), known_keys[col] == cell_keys
    return col.astype(np.int64), (known[col] == cells).all(axis=1)


def _padded(names: Var, width: int) -> np.ndarray:
    if names.uniform() and int(names.lengths[0]) == width:
        return names.matrix()
    out = np.zeros((names.n, width), dtype=np.uint8)
    rows = np.repeat(np.arange(names.n), names.lengths)
    total = int(names.lengths.sum())
    within = np.arange(total) - np.repeat(names.starts, names.lengths)
    out[rows, within] = names.data[:total]
    return out


def _keys(rows: np.ndarray) -> np.ndarray:
    """One uint64 per row: its first 8 bytes big-endian, mixed with the rest (a hash: the
    caller checks the bytes, so a collision costs a miss, never a wrong column)."""
    words = np.ascontiguousarray(rows).view(">u8").astype(np.uint64)
    key = words[:, 0].copy()
    for k in range(1, words.shape[1]):
        key = key * np.uint64(0x9E3779B97F4A7C15) ^ words[:, k]
    return key


def submitted_blocks(
    indexer: object, lock: AbstractContextManager[object] | None, *, start: str = "start_pos"
) -> Iterator[Block]:
    """The chunks of a tiledb-py `multi_index` query as Blocks, one per incomplete submit.

    tiledb-py's public results are one Python object per var-size cell; its PyQuery hands
    out the buffers themselves (data + byte offsets, fresh per submit). Each submit and the
    taking of its buffers happen under `lock` (the store's: array handles are shared).
    """
    pyquery = getattr(indexer, "pyquery", None)
    if pyquery is None:  # an empty subarray: tiledb-py builds no query
        return
    while True:
        with lock if lock is not None else nullcontext():
            pyquery.submit()
            block = Block.of(pyquery.results(), start=start)
        yield block
        if not pyquery.is_incomplete:
            return
