"""Binning indices: BAI (SAM v1 §5.2), CSI (CSIv1) and TBI (tabix) → chunk lists.

A query gives the chunks (virtual-offset pairs) that may hold records overlapping a
0-based half-open interval; records outside it may come along (htsget allows that), records
inside it are never missed.
"""

from __future__ import annotations

import gzip
import struct
from array import array
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from node.errors import InvalidInput

__all__ = ["BinIndex", "Chunk", "parse_index"]

_BAI_MIN_SHIFT, _BAI_DEPTH = 14, 5
_NO_BOUND = 1 << 64


@dataclass(frozen=True, slots=True)
class Chunk:
    """Virtual offsets [beg, end) of a run of records."""

    beg: int
    end: int


@dataclass(frozen=True, slots=True)
class RefIndex:
    """One reference's bins as flat arrays, bins ascending: the chunks of `bin_ids[i]` are
    `beg/end[first[i]:first[i + 1]]`. No Python object per chunk: a whole-genome BAI holds
    ~10^5 of them, which cost memory and a garbage collector's full pass ~0.2 s."""

    bin_ids: array[int]
    first: array[int]
    beg: array[int]
    end: array[int]
    linear: array[int]

    def chunk_range(self, lo_bin: int, hi_bin: int) -> range:
        """Indices of the chunks of bins lo_bin..hi_bin (inclusive)."""
        i, j = bisect_left(self.bin_ids, lo_bin), bisect_left(self.bin_ids, hi_bin + 1)
        return range(self.first[i], self.first[j])

    def first_beg(self, bin_id: int) -> int | None:
        """The smallest chunk start of `bin_id`; None when the bin is absent or empty."""
        return min((self.beg[k] for k in self.chunk_range(bin_id, bin_id)), default=None)


@dataclass(frozen=True, slots=True)
class BinIndex:
    min_shift: int
    depth: int
    refs: tuple[RefIndex, ...]
    # Reference names stored in the index itself (TBI, and CSI of tabix-indexed text).
    names: tuple[str, ...] | None

    @property
    def meta_bin(self) -> int:
        # CSIv1 §: the pseudo-bin that holds per-reference metadata, not records.
        return ((1 << (3 * self.depth + 3)) - 1) // 7 + 1

    def chunks(self, ref_id: int, beg: int, end: int) -> list[Chunk]:
        """Chunks that may hold records of `ref_id` overlapping [beg, end)."""
        if ref_id < 0 or ref_id >= len(self.refs) or end <= beg:
            return []
        ref = self.refs[ref_id]
        min_off, max_off = self._linear_min(ref, beg), self._right_bound(ref, end)
        begs, ends = ref.beg, ref.end
        return [
            Chunk(begs[k], ends[k])
            for lo, hi in self._reg2bins(beg, end)
            for k in ref.chunk_range(lo, hi)
            if ends[k] > min_off and begs[k] < max_off
        ]

    def placed_end(self) -> int:
        """The virtual offset after the last placed record: unplaced reads start here."""
        ends = [0]
        for ref in self.refs:
            bins = np.frombuffer(ref.bin_ids, dtype=np.int64)
            first = np.frombuffer(ref.first, dtype=np.int64)
            per_chunk_bin = np.repeat(bins, first[1:] - first[:-1])
            placed = np.frombuffer(ref.end, dtype=np.uint64)[per_chunk_bin != self.meta_bin]
            if len(placed):
                ends.append(int(placed.max()))
        return max(ends)

    def _linear_min(self, ref: RefIndex, beg: int) -> int:
        if not ref.linear:
            return 0
        window = beg >> self.min_shift
        return ref.linear[min(window, len(ref.linear) - 1)]

    def _right_bound(self, ref: RefIndex, end: int) -> int:
        """A virtual offset after which every record starts at or beyond `end`.

        As htslib's hts_itr_query: the first chunk of the nearest non-empty bin to the
        right of `end` (moving up to the parent at a first child, whose range begins
        where the child's does). Coordinate-sorted records from there on start at or after
        that bin's start, which is past `end`; chunks beginning there cannot overlap.
        """
        first_leaf = ((1 << (3 * self.depth)) - 1) // 7
        bin_id = first_leaf + ((end - 1) >> self.min_shift) + 1
        if bin_id >= self.meta_bin - 1:  # past the last leaf: nothing to the right
            return _NO_BOUND
        while True:
            while bin_id % 8 == 1:
                bin_id = (bin_id - 1) >> 3
            if bin_id == 0:
                return _NO_BOUND
            found = ref.first_beg(bin_id)
            if found is not None:
                return found
            bin_id += 1

    def _reg2bins(self, beg: int, end: int) -> list[tuple[int, int]]:
        """Per level, the inclusive range of bins overlapping [beg, end).

        CSIv1 §reg2bins, generalised from SAM v1 §5.3 to any min_shift/depth."""
        end -= 1
        ranges: list[tuple[int, int]] = []
        first = 0
        for level in range(self.depth + 1):
            shift = self.min_shift + 3 * (self.depth - level)
            ranges.append((first + (beg >> shift), first + (end >> shift)))
            first += 1 << (3 * level)
        return ranges


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> tuple[int, ...]:
        try:
            values = struct.unpack_from(fmt, self.data, self.pos)
        except struct.error as exc:
            raise InvalidInput("truncated index file") from exc
        self.pos += struct.calcsize(fmt)
        return values

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise InvalidInput("truncated index file")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def parse_index(data: bytes) -> BinIndex:
    """A BAI, CSI or TBI file's content (CSI and TBI are BGZF-compressed)."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    magic = data[:4]
    r = _Reader(data)
    r.pos = 4
    if magic == b"BAI\x01":
        return _parse_refs(r, _BAI_MIN_SHIFT, _BAI_DEPTH, names=None, csi=False)
    if magic == b"TBI\x01":
        (n_ref,) = r.take("<i")
        tbi_names = _tabix_names(r)
        return _parse_refs(r, _BAI_MIN_SHIFT, _BAI_DEPTH, names=tbi_names, csi=False, n_ref=n_ref)
    if magic == b"CSI\x01":
        min_shift, depth, l_aux = r.take("<iii")
        aux = _Reader(r.raw(l_aux))
        csi_names = _tabix_names(aux) if l_aux >= 28 else None
        return _parse_refs(r, min_shift, depth, names=csi_names, csi=True)
    raise InvalidInput("not a BAI, CSI or TBI index")


def _tabix_names(r: _Reader) -> tuple[str, ...]:
    # TBI header: format, col_seq, col_beg, col_end, meta, skip, l_nm, names (NUL-ended).
    r.take("<iiiiii")
    (l_nm,) = r.take("<i")
    blob = r.raw(l_nm)
    return tuple(n.decode() for n in blob.split(b"\x00")[:-1])


def _parse_refs(
    r: _Reader,
    min_shift: int,
    depth: int,
    *,
    names: tuple[str, ...] | None,
    csi: bool,
    n_ref: int | None = None,
) -> BinIndex:
    if n_ref is None:
        (n_ref,) = r.take("<i")
    refs = tuple(_parse_ref(r, csi=csi) for _ in range(n_ref))
    return BinIndex(min_shift, depth, refs, names)


def _parse_ref(r: _Reader, *, csi: bool) -> RefIndex:
    (n_bin,) = r.take("<i")
    try:
        ids, counts, raw, r.pos = _parse_bins(r.data, r.pos, n_bin, csi=csi)
    except (struct.error, IndexError, ValueError) as exc:
        raise InvalidInput("truncated index file") from exc
    linear = array("Q")
    if not csi:
        (n_intv,) = r.take("<i")
        linear.frombytes(r.raw(8 * max(n_intv, 0)))
    return _ref_index(ids, counts, raw, linear)


def _ref_index(ids: list[int], counts: list[int], raw: bytes, linear: array[int]) -> RefIndex:
    """Bins sorted by id, each keeping its chunks in file order (stable sorts)."""
    pairs = np.frombuffer(raw, dtype="<u8").reshape(-1, 2)
    id_arr, count_arr = np.array(ids, dtype=np.int64), np.array(counts, dtype=np.int64)
    chunks = pairs[np.argsort(np.repeat(id_arr, count_arr), kind="stable")]
    order = np.argsort(id_arr, kind="stable")
    first = np.concatenate(([0], np.cumsum(count_arr[order]))).astype(np.int64)
    return RefIndex(
        _as_array("q", id_arr[order]),
        _as_array("q", first),
        _as_array("Q", chunks[:, 0]),
        _as_array("Q", chunks[:, 1]),
        linear,
    )


def _as_array(typecode: str, values: npt.NDArray[Any]) -> array[int]:
    """A compact array of 64-bit integers ('q' signed, 'Q' unsigned) from numpy values."""
    out = array(typecode)
    out.frombytes(np.ascontiguousarray(values, dtype=_DTYPES[typecode]).tobytes())
    return out


_DTYPES = {"q": np.dtype("=i8"), "Q": np.dtype("=u8")}


_BIN = struct.Struct("<Ii")  # bin, n_chunk
_CSI_BIN = struct.Struct("<IQi")  # bin, loffset, n_chunk


def _parse_bins(
    data: bytes, pos: int, n_bin: int, *, csi: bool
) -> tuple[list[int], list[int], bytes, int]:
    """A reference's bin ids, chunk counts and raw chunk pairs, in file order: one tight
    loop (a whole-genome BAI has ~10^5 bins). CSI's loffset is skipped: chunks suffice."""
    head = _CSI_BIN if csi else _BIN
    step, unpack_head = head.size, head.unpack_from
    ids: list[int] = []
    counts: list[int] = []
    raw = bytearray()
    for _ in range(n_bin):
        fields = unpack_head(data, pos)
        n_chunk = fields[-1]
        if n_chunk < 0 or pos + step + 16 * n_chunk > len(data):
            raise ValueError("chunks run past the end of the index")
        ids.append(fields[0])
        counts.append(n_chunk)
        pos += step
        raw += data[pos : pos + 16 * n_chunk]
        pos += 16 * n_chunk
    return ids, counts, bytes(raw), pos
