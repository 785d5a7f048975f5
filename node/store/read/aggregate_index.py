"""In-memory index of one contig's committed aggregate, for allele-statistics lookups.

`fednode_allele_stats` holds signed delta rows (one or a few per allele and ingest) and
`fednode_coverage` holds reference blocks; a lookup needs their sums at one position.
Reading them from TileDB per request cost milliseconds (a query plan, a tile decode);
the store reads at a fixed committed timestamp, so the sums can be computed once per
contig and kept for the store instance's lifetime (a re-`open` sees new ingests).

Memory is ~40 bytes per distinct allele (int64 position, two int32 allele ids, six int32
counts) plus the interned allele strings: ~1M alleles take ~50 MB.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import tiledb

from node.domain import ZERO_STATS, AlleleStats, Region, Variant
from node.names import VariantType
from node.store.dataset import layout
from node.store.ingest.stats import variant_type_of
from node.store.read.overlap import overlaps

__all__ = ["ContigIndex", "build_contig_index", "index_of_rows"]

_POS_MAX = 2**32 - 2
_CARRIERS = layout.FEDNODE_COUNTS.index("n_carriers")
_PLACEHOLDERS = frozenset({"<NON_REF>", "<*>", "*"})  # as memory.is_placeholder_allele
Point = tuple[int, str, str]  # pos, ref, alt


@dataclass(frozen=True, slots=True)
class _Coverage:
    """Reference blocks as prefix sums: covering(p) = started by p minus ended before p."""

    starts: np.ndarray  # sorted real starts
    start_sums: np.ndarray  # (n + 1, 2) cumulative (an, n_called) in `starts` order
    ends: np.ndarray  # sorted ends (inclusive)
    end_sums: np.ndarray  # (n + 1, 2) cumulative (an, n_called) in `ends` order

    def at(self, pos: int) -> tuple[int, int]:
        # The arrays' own searchsorted: np.searchsorted adds a dispatch layer per call.
        opened = int(self.starts.searchsorted(pos, side="right"))
        closed = int(self.ends.searchsorted(pos, side="left"))
        an, called = (self.start_sums[opened] - self.end_sums[closed]).tolist()
        return an, called


@dataclass(frozen=True, slots=True)
class ContigIndex:
    """Summed aggregate of one contig: alleles and site rows sorted by position."""

    ids: dict[str, int]  # interned REF/ALT strings
    pos: np.ndarray  # int64, sorted
    ref: np.ndarray  # int32 allele ids
    alt: np.ndarray  # int32 allele ids
    counts: np.ndarray  # int32 (n, 6) in layout.FEDNODE_COUNTS order
    site_pos: np.ndarray  # int64, sorted, unique
    site_counts: np.ndarray  # int32 (m, 2): called alleles, called samples
    coverage: _Coverage | None
    end: np.ndarray  # int64 inclusive end of each allele (the longest of its records)
    record_ids: tuple[tuple[str, ...], ...]  # VCF IDs of each allele
    source_contig: str  # the contig's name in the input
    reach: int  # the longest allele span: how far before a region an allele may start
    names: tuple[str, ...]  # the interned strings by id (the inverse of `ids`)

    def variants_in(self, contig: str, region: Region) -> list[Variant]:
        """ALT alleles overlapping `region`, statistics not filled in (`lookup` does that)."""
        lo = int(self.pos.searchsorted(max(0, region.start - self.reach), side="left"))
        hi = int(self.pos.searchsorted(region.end, side="left"))
        near = overlaps(self.pos[lo:hi], self.end[lo:hi], region)
        names = self.names
        out = []
        for i in (lo + np.flatnonzero(near)).tolist():
            if self.counts[i, _CARRIERS] <= 0:
                continue  # carried by nobody any more (a replaced sample's allele)
            ref, alt = names[self.ref[i]], names[self.alt[i]]
            kind = VariantType(variant_type_of(ref, alt))
            out.append(Variant(contig, int(self.pos[i]), int(self.end[i]) + 1, ref, alt, kind,
                               ZERO_STATS, self.record_ids[i], self.source_contig))
        return out

    def lookup(self, points: Sequence[Point]) -> list[AlleleStats | None]:
        """Each allele's statistics; an allele no called genotype carries at a site with
        calls (records or reference blocks) has AC 0 and the site's AN; None where no
        sample is called (AN unknown, not 0)."""
        return [self._one(*point) for point in points]

    def _one(self, pos: int, ref: str, alt: str) -> AlleleStats | None:
        if alt in _PLACEHOLDERS:
            return None  # "any other allele" is never an allele of its own
        an, called = self._called_at(pos)
        if called <= 0:
            return None
        ref_id, alt_id = self.ids.get(ref), self.ids.get(alt)
        # One binary search, then the few alleles at `pos` (one per REF/ALT pair).
        positions, n = self.pos, self.pos.size
        i = int(positions.searchsorted(pos, side="left")) if ref_id and alt_id else n
        while i < n and positions[i] == pos:
            if self.ref[i] == ref_id and self.alt[i] == alt_id:
                ac, _, n_hom, n_het, carriers, _ = self.counts[i].tolist()
                if carriers > 0:
                    return AlleleStats(ac, an, n_hom, n_het, carriers, called)
                break
            i += 1
        return AlleleStats(0, an, 0, 0, 0, called)

    def _called_at(self, pos: int) -> tuple[int, int]:
        """(called alleles, called samples) at `pos`: its records' site row plus the
        reference blocks covering it."""
        an = called = 0
        i = int(self.site_pos.searchsorted(pos, side="left"))
        if i < self.site_pos.size and self.site_pos[i] == pos:
            an, called = self.site_counts[i].tolist()
        if self.coverage is not None:
            block_an, block_called = self.coverage.at(pos)
            an, called = an + block_an, called + block_called
        return an, called


def build_contig_index(
    stats: tiledb.Array, coverage: tiledb.Array | None, contig: str
) -> ContigIndex:
    """Read and sum every aggregate row of `contig` (arrays opened at the committed time)."""
    attrs = ["ref", "alt", "end", "id", "source_contig", *layout.FEDNODE_COUNTS]
    rows = stats.query(attrs=attrs, dims=["pos"]).multi_index[[contig], slice(0, _POS_MAX)]
    blocks = None if coverage is None else _coverage_rows(coverage, contig)
    return index_of_rows(rows, blocks, contig)


def index_of_rows(
    rows: Mapping[str, np.ndarray], coverage: Mapping[str, np.ndarray] | None, contig: str
) -> ContigIndex:
    """The index of one contig's `fednode_allele_stats` rows (columns as the array has them:
    pos, ref, alt, end, id, source_contig and the counts) and `fednode_coverage` rows (start,
    real_start, end, an, n_called), summed; also for rows made in memory (`stats_lookup`)."""
    rows = {k: np.asarray(v) for k, v in rows.items()}
    ids: dict[str, int] = {"": 0}
    ref, alt = _intern(rows["ref"], ids), _intern(rows["alt"], ids)
    pos = rows["pos"].astype(np.int64)
    counts = np.stack([rows[name] for name in layout.FEDNODE_COUNTS], axis=1).astype(np.int64)
    order, starts = _groups(pos, ref, alt)
    pos, ref, alt = pos[order][starts], ref[order][starts], alt[order][starts]
    counts = np.add.reduceat(counts[order], starts, axis=0) if starts.size else counts
    end = rows["end"].astype(np.int64)[order]
    end = np.maximum.reduceat(end, starts) if starts.size else end
    record_ids = _group_ids(rows["id"][order], starts)
    site = (ref == 0) & (alt == 0)
    allele = ~site
    sources = rows["source_contig"]
    spans = end[allele] - pos[allele]
    names = [""] * len(ids)
    for name, i in ids.items():
        names[i] = name
    return ContigIndex(
        ids=ids,
        names=tuple(names),
        pos=pos[allele],
        ref=ref[allele],
        alt=alt[allele],
        counts=counts[allele].astype(np.int32),
        site_pos=pos[site],
        site_counts=counts[site][:, [1, 5]].astype(np.int32),
        coverage=None if coverage is None else _coverage(coverage),
        end=end[allele],
        record_ids=tuple(ids_ for ids_, keep in zip(record_ids, allele, strict=True) if keep),
        source_contig=_text(sources[0]) if sources.size else contig,
        reach=int(spans.max()) if spans.size else 0,
    )


def _groups(pos: np.ndarray, ref: np.ndarray, alt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The order sorting rows by (pos, ref, alt), and where each group starts in it."""
    order = np.lexsort((alt, ref, pos))
    if pos.size == 0:
        return order, np.zeros(0, dtype=np.int64)
    p, r, a = pos[order], ref[order], alt[order]
    new = np.ones(p.size, dtype=bool)
    new[1:] = (p[1:] != p[:-1]) | (r[1:] != r[:-1]) | (a[1:] != a[:-1])
    return order, np.flatnonzero(new)


def _group_ids(values: np.ndarray, starts: np.ndarray) -> list[tuple[str, ...]]:
    """The VCF IDs of each group (the union over its rows, without `.`)."""
    bounds = [*starts.tolist(), len(values)]
    out = []
    for lo, hi in itertools.pairwise(bounds):
        found: set[str] = set()
        for value in values[lo:hi]:
            found.update(_text(value).split(";"))
        out.append(tuple(sorted(found - {".", ""})))
    return out


def _intern(values: np.ndarray, ids: dict[str, int]) -> np.ndarray:
    """Allele ids of `values`; each distinct string is decoded once."""
    if values.size == 0:
        return np.zeros(0, dtype=np.int32)
    uniques, inverse = np.unique(values, return_inverse=True)
    table = np.fromiter(
        (ids.setdefault(_text(u), len(ids)) for u in uniques), dtype=np.int32, count=len(uniques)
    )
    return table[inverse.reshape(-1)]


def _coverage_rows(array: tiledb.Array, contig: str) -> Mapping[str, np.ndarray]:
    query = array.query(attrs=["real_start", "end", "an", "n_called"], dims=["start"])
    rows: Mapping[str, np.ndarray] = query.multi_index[[contig], slice(0, _POS_MAX)]
    return rows


def _coverage(rows: Mapping[str, np.ndarray]) -> _Coverage:
    rows = {k: np.asarray(v) for k, v in rows.items()}
    # Anchor copies repeat a block inside long blocks; each block counts once, at its start.
    own = rows["start"] == rows["real_start"]
    start, end = rows["real_start"][own].astype(np.int64), rows["end"][own].astype(np.int64)
    values = np.stack([rows["an"][own], rows["n_called"][own]], axis=1).astype(np.int64)
    by_start, by_end = np.argsort(start, kind="stable"), np.argsort(end, kind="stable")
    return _Coverage(
        start[by_start], _prefix(values[by_start]), end[by_end], _prefix(values[by_end])
    )


def _prefix(values: np.ndarray) -> np.ndarray:
    out = np.zeros((values.shape[0] + 1, 2), dtype=np.int64)
    np.cumsum(values, axis=0, out=out[1:])
    return out


def _text(value: object) -> str:
    text = value.decode() if isinstance(value, bytes) else str(value)
    return text.rstrip("\0")
