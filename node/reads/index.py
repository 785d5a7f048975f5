"""Binning indices: BAI (SAM v1 §5.2), CSI (CSIv1) and TBI (tabix) → chunk lists.

A query gives the chunks (virtual-offset pairs) that may hold records overlapping a
0-based half-open interval; records outside it may come along (htsget allows that), records
inside it are never missed.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass

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
    bins: dict[int, tuple[Chunk, ...]]
    linear: tuple[int, ...]


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
        found: list[Chunk] = []
        for bin_id in self._reg2bins(beg, end):
            found.extend(c for c in ref.bins.get(bin_id, ()) if c.end > min_off and c.beg < max_off)
        return found

    def placed_end(self) -> int:
        """The virtual offset after the last placed record: unplaced reads start here."""
        meta = self.meta_bin
        ends = [
            c.end
            for ref in self.refs
            for bin_id, chunks in ref.bins.items()
            if bin_id != meta
            for c in chunks
        ]
        return max(ends, default=0)

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
            chunks = ref.bins.get(bin_id)
            if chunks:
                return min(c.beg for c in chunks)
            bin_id += 1

    def _reg2bins(self, beg: int, end: int) -> list[int]:
        # CSIv1 §reg2bins, generalised from SAM v1 §5.3 to any min_shift/depth.
        end -= 1
        bins: list[int] = []
        first = 0
        for level in range(self.depth + 1):
            shift = self.min_shift + 3 * (self.depth - level)
            lo, hi = first + (beg >> shift), first + (end >> shift)
            bins.extend(range(lo, hi + 1))
            first += 1 << (3 * level)
        return bins


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
        bins, r.pos = _parse_bins(r.data, r.pos, n_bin, csi=csi)
    except (struct.error, IndexError) as exc:
        raise InvalidInput("truncated index file") from exc
    linear: tuple[int, ...] = ()
    if not csi:
        (n_intv,) = r.take("<i")
        linear = r.take(f"<{n_intv}Q")
    return RefIndex(bins, linear)


_BIN = struct.Struct("<Ii")  # bin, n_chunk
_CSI_BIN = struct.Struct("<IQi")  # bin, loffset, n_chunk
_CHUNK = struct.Struct("<QQ")


def _parse_bins(
    data: bytes, pos: int, n_bin: int, *, csi: bool
) -> tuple[dict[int, tuple[Chunk, ...]], int]:
    """A reference's bins: one tight loop (a whole-genome BAI has ~10^5 bins; parsing it
    through a general reader took over a second). CSI's loffset is skipped: chunks suffice."""
    head = _CSI_BIN if csi else _BIN
    step, unpack_head, unpack_chunk = head.size, head.unpack_from, _CHUNK.unpack_from
    bins: dict[int, tuple[Chunk, ...]] = {}
    for _ in range(n_bin):
        fields = unpack_head(data, pos)
        bin_id, n_chunk = fields[0], fields[-1]
        pos += step
        if n_chunk == 1:
            bins[bin_id] = (Chunk(*unpack_chunk(data, pos)),)
        else:
            bins[bin_id] = tuple(Chunk(*unpack_chunk(data, pos + 16 * i)) for i in range(n_chunk))
        pos += 16 * n_chunk
    return bins, pos
