"""Per-sample summaries of one record's genotypes, computed once and shared.

`gt` is (samples, ploidy); numpy reduces a short trailing axis slowly (a (2504, 2) sum
over axis 1 costs ~40 us), so the summaries reduce the transposed (ploidy, samples) copy
over its first axis instead, which is elementwise work on whole rows.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Calls", "allele_rows"]


def allele_rows(gt: np.ndarray) -> list[list[int]]:
    """Each sample's alleles as a plain list, without htslib's -2 padding (the form the
    few-sample paths read; `ParsedRecord.rows` holds it when the parser made it)."""
    return [[a for a in row if a != -2] for row in gt.tolist()]


class Calls:
    """Called alleles, ploidy, homozygosity and allele copies of each sample of a record."""

    __slots__ = (
        "_copies",
        "called",
        "gt",
        "homozygous",
        "max",
        "min",
        "n_called",
        "non_ref",
        "ploidy",
        "transposed",
    )

    def __init__(self, gt: np.ndarray) -> None:
        self.gt = gt  # allele index, -1 missing, -2 past the sample's ploidy
        t = self.transposed = np.ascontiguousarray(gt.T)
        called = t >= 0
        self.n_called = called.sum(axis=0)
        self.called = self.n_called > 0
        self.ploidy = (t != -2).sum(axis=0)
        self.max = t.max(axis=0)
        self.min = np.where(called, t, 99).min(axis=0)
        self.non_ref = self.max > 0
        self.homozygous = (self.n_called == self.ploidy) & (self.max == self.min)
        self._copies: np.ndarray | None = None

    def copies(self, n_alleles: int) -> np.ndarray:
        """(samples, alleles): copies of each allele each sample carries."""
        if self._copies is None or self._copies.shape[1] != n_alleles:
            t = self.transposed
            n = t.shape[1]
            index = np.arange(n, dtype=np.int64)[None, :] * n_alleles + t
            flat = index[t >= 0]
            counts = np.bincount(flat, minlength=n * n_alleles)
            self._copies = counts.reshape(n, n_alleles)
        return self._copies
