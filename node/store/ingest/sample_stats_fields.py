"""Per-sample statistics of FORMAT DP and GQ, as TileDB-VCF's sample_stats keeps them.

Each sample's first DP / GQ value, when the header types it Integer and it is present, is
summed, squared and summed, counted, and kept as min and max in uint64 (TileDB-VCF casts
the int32 and lets the sums wrap). `FieldStats` folds records in numpy blocks (many
samples); `SmallFieldStats` keeps Python integers (a few samples; a test compares the two).
The values are read from the `fmt` blobs the parser built: record by record
(`add_blobs`, `format_ints`) or, for a block of few-sample records, every blob of one
layout at once as int32 columns (`block_fields`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from operator import attrgetter
from typing import TYPE_CHECKING

import numpy as np

from node.store.dataset import layout
from node.store.dataset.write_buffers import VarChunk

if TYPE_CHECKING:
    from node.store.ingest.vcfio import ParsedRecord

__all__ = [
    "FIELDS",
    "U64_MAX",
    "FieldStats",
    "SmallFieldStats",
    "add_blobs",
    "block_fields",
    "concat",
    "format_ints",
]

FIELDS = (b"DP", b"GQ")
U64_MAX = np.iinfo(np.uint64).max

_MASK = (1 << 64) - 1


class SmallFieldStats:
    """`FieldStats` of a few samples, kept in Python integers (no numpy call per record);
    `fold` gives the same uint64 arrays (a test compares both on random values)."""

    __slots__ = ("_totals", "count", "max", "min", "sum", "sum2")

    def __init__(self, n: int) -> None:
        self._totals = [[0, 0, 0, _MASK, 0] for _ in range(n)]  # sum, sum2, count, min, max

    def add_value(self, sample: int, value: int) -> None:
        """One present value (int32) of `sample`, cast to uint64 as C++ does."""
        u = value & _MASK
        t = self._totals[sample]
        t[0] = (t[0] + u) & _MASK
        t[1] = (t[1] + u * u) & _MASK
        t[2] += 1
        if u < t[3]:
            t[3] = u
        if u > t[4]:
            t[4] = u

    def add(self, values: np.ndarray | list[int], present: np.ndarray | list[bool]) -> None:
        for i, (value, ok) in enumerate(zip(list(values), list(present), strict=True)):
            if ok:
                self.add_value(i, int(value))

    def add_values(self, sample: int, values: np.ndarray) -> None:
        """`add_value` of each of `values` (int32, none missing), in one numpy pass."""
        if not values.size:
            return
        u = values.astype(np.int64).astype(np.uint64)  # as `value & _MASK`
        t = self._totals[sample]
        t[0] = (t[0] + int(u.sum(dtype=np.uint64))) & _MASK  # uint64 sums wrap
        t[1] = (t[1] + int((u * u).sum(dtype=np.uint64))) & _MASK
        t[2] += int(u.size)
        t[3] = min(t[3], int(u.min()))
        t[4] = max(t[4], int(u.max()))

    def fold(self) -> None:
        columns = np.array(self._totals, dtype=np.uint64).reshape(-1, 5)
        self.sum, self.sum2, self.count, self.min, self.max = (
            np.ascontiguousarray(columns[:, i]) for i in range(5)
        )


class FieldStats:
    """Sum, sum of squares, count, min and max of one FORMAT field per sample (uint64,
    wrapping as TileDB-VCF's C++ does). Records are buffered and folded in blocks: one
    numpy pass per block instead of several per record (a one-sample VCF's records)."""

    __slots__ = ("_present", "_values", "count", "max", "min", "sum", "sum2")
    BLOCK_CELLS = 1 << 16  # values buffered (records x samples) before a fold

    def __init__(self, n: int) -> None:
        self.sum = np.zeros(n, dtype=np.uint64)
        self.sum2 = np.zeros(n, dtype=np.uint64)
        self.count = np.zeros(n, dtype=np.uint64)
        self.min = np.full(n, U64_MAX, dtype=np.uint64)
        self.max = np.zeros(n, dtype=np.uint64)
        self._values: list[np.ndarray | list[int]] = []
        self._present: list[np.ndarray | list[bool]] = []

    def add(self, values: np.ndarray | list[int], present: np.ndarray | list[bool]) -> None:
        self._values.append(values)
        self._present.append(present)
        if len(self._values) * max(1, len(self.sum)) >= self.BLOCK_CELLS:
            self.fold()

    def fold(self) -> None:
        """Take the buffered records into the totals (sums wrap modulo 2**64, as adding
        them one by one does)."""
        if not self._values:
            return
        # records x samples (each record's values an array, or a list for a few samples)
        v = np.asarray(self._values, dtype=np.int64).astype(np.uint64)
        present = np.asarray(self._present, dtype=bool)
        self._values, self._present = [], []
        zero = np.uint64(0)
        with np.errstate(over="ignore"):
            self.sum += np.where(present, v, zero).sum(axis=0, dtype=np.uint64)
            self.sum2 += np.where(present, v * v, zero).sum(axis=0, dtype=np.uint64)
        self.count += present.sum(axis=0).astype(np.uint64)
        self.min = np.minimum(self.min, np.where(present, v, np.uint64(U64_MAX)).min(axis=0))
        self.max = np.maximum(self.max, np.where(present, v, zero).max(axis=0))


_FMT = attrgetter("fmt")
_DATA, _LENGTHS = attrgetter("data"), attrgetter("lengths")
_TEMPLATES = 4  # blob layouts read at once per block; cells of any other layout one by one


def add_blobs(fields: dict[bytes, SmallFieldStats], fmt: VarChunk) -> None:
    """The DP/GQ values of one record's blobs (cell i: sample i)."""
    cells = [fmt.data] if len(fmt) == 1 else fmt.cells()
    for i, blob in enumerate(cells):
        for key, value in _first_ints(blob, FIELDS):
            fields[key].add_value(i, value)


def block_fields(
    fields: dict[bytes, SmallFieldStats], records: Sequence[ParsedRecord], n: int
) -> None:
    """`add_blobs` of each record of a block of `n`-sample records.

    Most blobs of a block share one layout (the same fields, types and value counts;
    only the values differ), so a layout is read from one blob (`_template`) and the
    DP/GQ values of every blob of the same length and the same layout bytes are taken
    as one int32 column. Other blobs are read one by one, as `add` reads them."""
    if not n:
        return
    chunks = list(map(_FMT, records))
    if None in chunks or list(map(len, map(_LENGTHS, chunks))).count(n) < len(chunks):
        odd = [c for c in chunks if c is not None and len(c) not in (0, n)]
        chunks = [c for c in chunks if c is not None and len(c) == n]
        for fmt in odd:
            add_blobs(fields, fmt)
        if not chunks:
            return
    blobs = list(map(_DATA, chunks))
    data = b"".join(blobs)
    if n == 1:
        lengths = np.fromiter(map(len, blobs), np.int64, len(blobs))
    else:
        lengths = np.concatenate([c.lengths for c in chunks]).astype(np.int64)
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    left = np.ones(len(lengths), dtype=bool)  # cells not read yet
    todo = np.arange(len(lengths))
    for _ in range(_TEMPLATES):
        first = int(todo[0])
        found = _template(data[int(starts[first]) : int(ends[first])])
        if found is None:
            break  # not readable: `_first_ints` raises on it as `add` does
        mask, picks = found
        width = mask.size
        if width and todo.size == len(lengths) and width * todo.size == buf.size:
            same, matrix = todo, buf.reshape(-1, width)  # every blob of this length
        else:
            same = todo[lengths[todo] == width]
            matrix = buf[starts[same, None] + np.arange(width)]
        match = (matrix[:, mask] == matrix[0, mask]).all(axis=1)
        hit, rows = (same, matrix) if match.all() else (same[match], matrix[match])
        for key, at in picks:
            values = np.ascontiguousarray(rows[:, at : at + 4]).view("<i4").reshape(-1)
            ok = values != layout.INT32_MISSING
            _add_cells(fields[key], hit[ok] % n, values[ok], n)
        left[hit] = False
        todo = np.flatnonzero(left)
        if not todo.size:
            break
    for cell in todo.tolist():
        blob = data[int(starts[cell]) : int(ends[cell])]
        for key, value in _first_ints(blob, FIELDS):
            fields[key].add_value(cell % n, value)


def _add_cells(stats: SmallFieldStats, samples: np.ndarray, values: np.ndarray, n: int) -> None:
    if n == 1:
        stats.add_values(0, values)
        return
    for sample in range(n):
        stats.add_values(sample, values[samples == sample])


def _template(blob: bytes) -> tuple[np.ndarray, list[tuple[bytes, int]]] | None:
    """The layout of one fmt blob as `_first_ints` walks it: which bytes it reads to
    find the fields (a blob of the same length and the same bytes there has the same
    fields at the same offsets), and the offset of each DP/GQ value it would take;
    None when the walk fails."""
    mask = np.zeros(len(blob), dtype=bool)
    if len(blob) < 4:
        mask[:] = True
        return mask, []
    mask[:4] = True
    picks = []
    at = 4
    try:
        for _ in range(_U32.unpack_from(blob, 0)[0]):
            stop = blob.index(b"\0", at)
            htype, count = _TYPE_COUNT.unpack_from(blob, stop + 1)
            if count < 0:
                return None
            start = stop + 9
            mask[at:start] = True
            if count > 0 and htype == layout.HT_INT and blob[at:stop] in FIELDS:
                if start + 4 > len(blob):
                    return None
                picks.append((blob[at:stop], start))
            at = start + count * (1 if htype == layout.HT_STR else 4)
    except (ValueError, struct.error):
        return None
    return mask, picks


def concat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.uint64)


def format_ints(
    chunk: VarChunk, keys: Sequence[bytes]
) -> dict[bytes, tuple[np.ndarray, np.ndarray]]:
    """Per sample, the first value of each Integer FORMAT field of `keys` in `fmt` blobs
    (layout: uint32 field count, then per field `key\\0`, int32 type, int32 count,
    values), and whether it is there and not missing.

    Every sample's blob of one record holds the same fields in the same order (`vcfio`
    writes it so), so the fields are walked for all samples at once: only the value
    counts differ from sample to sample.
    """
    n = len(chunk)
    data = np.frombuffer(chunk.data, dtype=np.uint8)
    lengths = chunk.lengths.astype(np.int64)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    first = chunk.data[: int(lengths[0])]
    (n_fields,) = struct.unpack_from("<I", first, 0)
    out: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
    offset = np.full(n, 4, dtype=np.int64)
    for _ in range(n_fields):
        at = int(offset[0])
        stop = first.index(b"\0", at)
        key, htype = first[at:stop], struct.unpack_from("<i", first, stop + 1)[0]
        offset += stop - at + 1
        counts = _int32_at(data, starts + offset + 4)
        offset += 8
        if key in keys and htype == layout.HT_INT:
            has = counts > 0
            values = _int32_at(data, np.where(has, starts + offset, 0))
            out[key] = (values, has & (values != layout.INT32_MISSING))
            if len(out) == len(keys):
                break
        offset += counts * (1 if htype == layout.HT_STR else 4)
    return out


def _int32_at(data: np.ndarray, at: np.ndarray) -> np.ndarray:
    at = np.minimum(at, max(data.size - 4, 0))
    raw = data[at[:, None] + np.arange(4)]
    return np.ascontiguousarray(raw).view("<i4").reshape(-1).astype(np.int64)


_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_TYPE_COUNT = struct.Struct("<ii")


def _first_ints(blob: bytes, keys: Sequence[bytes]) -> list[tuple[bytes, int]]:
    """The first value of each Integer field of `keys` in one fmt blob, when present and
    not missing (what `format_ints` reads, for one sample)."""
    if len(blob) < 4:
        return []
    out = []
    at = 4
    for _ in range(_U32.unpack_from(blob, 0)[0]):
        stop = blob.index(b"\0", at)
        htype, count = _TYPE_COUNT.unpack_from(blob, stop + 1)
        start = stop + 9
        if count > 0 and htype == layout.HT_INT and blob[at:stop] in keys:
            (value,) = _I32.unpack_from(blob, start)
            if value != layout.INT32_MISSING:
                out.append((blob[at:stop], value))
        at = start + count * (1 if htype == layout.HT_STR else 4)
    return out
