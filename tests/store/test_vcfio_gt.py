"""GT blobs for a few samples (packed in Python) equal the numpy packing's bytes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from node.store.ingest import vcfio


@st.composite
def _calls(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(1, vcfio._SMALL_GT))
    ploidy = draw(st.integers(1, 3))
    rows = []
    for _ in range(n):
        width = draw(st.integers(1, ploidy))  # lower ploidy padded with -2 (vector end)
        alleles = draw(st.lists(st.integers(-1, 130), min_size=width, max_size=width))
        rows.append(alleles + [-2] * (ploidy - width))
    phased = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return np.asarray(rows, dtype=np.int16), np.asarray(phased, dtype=bool)


def _numpy_path(gt: np.ndarray, phased: np.ndarray) -> tuple[bytes, list[int]]:
    # Force the vectorised packing by padding past the small-sample bound, then cut.
    pad = vcfio._SMALL_GT + 1
    big = vcfio._gt_blobs(np.concatenate([gt, np.zeros((pad, gt.shape[1]), gt.dtype)]),
                          np.concatenate([phased, np.zeros(pad, bool)]))
    sizes = big.lengths.tolist()[: len(gt)]
    return big.data[: sum(sizes)], sizes


@settings(max_examples=500, deadline=None)
@given(_calls())
def test_small_gt_blobs_equal_the_numpy_packing(calls: tuple[np.ndarray, np.ndarray]) -> None:
    gt, phased = calls
    small = vcfio._gt_blobs(gt, phased)
    assert (small.data, small.lengths.tolist()) == _numpy_path(gt, phased)
    assert small.lengths.dtype == np.uint64
