"""`allele_count` v1 rows: per record, one row per (ALT text, genotype class) of carriers.

A class is the multiset of a carrier's alleles with its ALTs renumbered 1.. ("0,1", "1,1",
"1,2", ".,1", "1"); the row's `alt` names those ALTs. Readers sum duplicate rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

__all__ = ["genotype_classes", "genotype_classes_small"]

Classes = dict[tuple[str, str], int]  # (ALT text, class) -> carriers


def genotype_classes(gt: np.ndarray, alleles: Sequence[str]) -> Classes:
    """Classes of the carriers among `gt` rows (allele index, -1 missing, -2 no allele).

    Each carrier's sorted alleles become one integer, so distinct genotypes are found with
    a 1-D `np.unique`; classes come in order of first appearance.
    """
    classes: Classes = defaultdict(int)
    carriers = np.sort(gt[(gt > 0).any(axis=1)], axis=1).astype(np.int64)
    if carriers.size == 0:
        return classes
    base = len(alleles) + 2
    weights = base ** np.arange(carriers.shape[1] - 1, -1, -1, dtype=np.int64)
    codes = (carriers + 2) @ weights
    _, first, counts = np.unique(codes, return_index=True, return_counts=True)
    for i in np.argsort(first, kind="stable").tolist():
        present = [a for a in carriers[first[i]].tolist() if a != -2]
        classes[genotype_class(present, alleles)] += int(counts[i])
    return classes


def genotype_classes_small(rows: list[list[int]], alleles: Sequence[str]) -> Classes:
    """`genotype_classes` of a few samples' allele lists (no -2 entries)."""
    classes: Classes = defaultdict(int)
    for row in rows:
        if any(a > 0 for a in row):
            classes[genotype_class(row, alleles)] += 1
    return classes


def genotype_class(present: Sequence[int], alleles: Sequence[str]) -> tuple[str, str]:
    """allele_count `gt` class ("0,1", "1,1", "1,2", ".,1", "1") and its ALT text."""
    alts = sorted({a for a in present if a > 0})
    renumber = {a: i + 1 for i, a in enumerate(alts)}
    parts = sorted(present, key=lambda a: (a >= 0, a))
    text = ",".join("." if a < 0 else str(renumber.get(a, 0)) for a in parts)
    return ",".join(alleles[a] for a in alts), text
