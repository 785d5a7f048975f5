"""Statistics of datasets TileDB-VCF wrote (no fednode aggregate): variant_stats rows summed.

The v3 rows are per (sample, allele); see `vs_rows` for how they are written.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import tiledb

from node.domain import AlleleStats
from node.store.vs_rows import normalise_stats_allele

__all__ = ["Point", "point_ranges", "text_of", "variant_stats_lookup"]

Point = tuple[int, str, str]  # pos, ref, alt


def point_ranges(positions: Sequence[int], *, before: int = 0) -> list[slice]:
    """Sorted positions as merged inclusive ranges [p - before, p] for a multi-range query."""
    out: list[list[int]] = []
    for p in sorted(set(positions)):
        lo = max(0, p - before)
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = p
        else:
            out.append([lo, p])
    return [slice(lo, hi) for lo, hi in out]


def variant_stats_lookup(
    array: tiledb.Array, names: Sequence[str], points: Sequence[Point], *, max_length: int
) -> list[AlleleStats | None]:
    """Fallback for datasets TileDB-VCF wrote (no fednode aggregate): sum variant_stats rows.

    Scales with the samples at the position; `fednode` could build the aggregate later.
    """
    if not points or not names:
        return [None] * len(points)
    ranges = point_ranges([p for p, _, _ in points], before=max_length)
    rows = array.query(
        attrs=["allele", "ac", "an", "n_hom"], dims=["pos", "sample", "end"]
    ).multi_index[list(names), ranges]
    pos, end = rows["pos"].astype(np.int64), rows["end"].astype(np.int64)
    alleles = [text_of(a) for a in rows["allele"]]
    samples, ac, an, hom = rows["sample"], rows["ac"], rows["an"], rows["n_hom"]
    at: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(pos.tolist()):
        at[p].append(i)
    blocks = [i for i, a in enumerate(alleles) if a == "nr"]
    out: list[AlleleStats | None] = []
    for p, ref, alt in points:
        keys = {normalise_stats_allele(ref, alt), f"{ref},{alt}"}
        here = at.get(p, [])
        wanted = [i for i in here if alleles[i] in keys]
        if not wanted:
            out.append(None)
            continue
        site = here + [i for i in blocks if pos[i] < p <= end[i]]
        n_hom = sum(1 for i in wanted if hom[i] > 0 and an[i] >= 2)
        n_het = sum(1 for i in wanted if 0 < ac[i] < an[i])
        called = len({samples[i] for i in site})
        total = int(sum(int(ac[i]) for i in site))
        out.append(
            AlleleStats(
                int(sum(int(ac[i]) for i in wanted)), total, n_hom, n_het, len(wanted), called
            )
        )
    return out


def text_of(value: object) -> str:
    text = value.decode() if isinstance(value, bytes) else str(value)
    return text.rstrip("\0")
