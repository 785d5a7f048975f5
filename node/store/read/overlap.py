"""Which stored records a region returns: the overlap rule, written once.

Inside the node a region is 0-based half-open (`node.domain.Region`). The store keeps
TileDB-VCF's 0-based *inclusive* record ends (`end_pos` in `data`, `end` in the fednode
arrays; `layout`). A record covering bases [start, end] overlaps the region [s, e) when
start < e and end + 1 > s, written below as `end >= s`. That is bcftools' `-r` rule
(`--regions-overlap record`, its default for regions): a record whose last base is the
region's first, or whose first base is the region's last, is in; a record ending just
before the region, or starting at its (excluded) end, is not. The property tests
(`tests/store/test_region_edges.py`) put region edges on record starts and ends ±1.

TileDB-VCF also writes anchor copies: a record longer than the anchor gap has a cell at
its real start and a copy every `anchor_gap` bases after it, so a read of [s - gap, e]
finds every record reaching into the region. `anchored` keeps each record once: its real
cell when that is inside the read, else the anchor copy found before the region.

>>> import numpy as np
>>> region = Region("1", 10, 20)  # VCF POS 11..20
>>> start, end = np.array([5, 9, 10, 19, 20, 21]), np.array([9, 10, 12, 30, 20, 25])
>>> overlaps(start, end, region).tolist()
[False, True, True, True, False, False]
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

from node.domain import Region

__all__ = ["anchored", "overlaps"]

_T = TypeVar("_T", int, np.ndarray)


def overlaps(start: _T, end: _T, region: Region) -> _T:
    """Whether records with 0-based `start` and *inclusive* `end` overlap `region`
    (scalars or numpy arrays alike)."""
    return (start < region.end) & (end >= region.start)


def anchored(
    cell_start: np.ndarray, real_start: np.ndarray, end: np.ndarray, region: Region
) -> np.ndarray:
    """Cells of a read of [region.start - gap, region.end) to keep: real cells and anchor
    copies before the region, of records overlapping it."""
    own_or_before = (cell_start == real_start) | (cell_start < region.start)
    return np.asarray(own_or_before & overlaps(real_start, end, region))
