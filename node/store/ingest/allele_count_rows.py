"""`allele_count` v1 rows as TileDB-VCF writes them (stats/allele_count.cc, `process`).

Each sample's call at a record adds one to the row (contig, pos, REF, ALT, FILTER, gt) of
its genotype class; TileDB-VCF reads GT as htslib gives it for that sample alone (the
sample's own ploidy, as in the files `bcftools +split` makes of a multi-sample input):

- ploidy 1, allele `a` > 0: gt `1`, ALT = allele `a`;
- ploidy 2, not `0/0` and not `./.`: one allele missing (`./1`, `.|0`, `0/.`): gt `.,1`,
  ALT = the called allele, REF included; `0/a`: `0,1`; `a/a`: `1,1`; `a/b`: `1,2` with
  ALT = the two ALT texts in byte order, joined by `,`;
- any other ploidy: no row.

FILTER is the record's filters joined by `;` (`.` when none). TileDB-VCF sums the calls of
the samples it ingests together at one position into one row per key; rows here are summed
per (contig, pos, key) over one flush, so an ingest of at most 10 samples (TileDB-VCF's
default batch) in one flush writes TileDB-VCF's rows exactly. Readers sum duplicate rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from node.store.ingest.vcfio import ParsedRecord

__all__ = ["AlleleCountRows", "genotype_classes", "genotype_classes_small"]

Key = tuple[str, int, str, str, str, str]  # contig, pos, REF, ALT, FILTER, gt
Classes = dict[tuple[str, str], int]  # (ALT text, gt class) -> samples
_HAPLOID, _MISSING_ONE, _HET, _HOM, _TWO_ALTS = range(5)
_GT_TEXT = {_HAPLOID: "1", _MISSING_ONE: ".,1", _HET: "0,1", _HOM: "1,1", _TWO_ALTS: "1,2"}


class AlleleCountRows:
    """Pending `allele_count` rows of one ingest (or, with `sign` -1, one removal)."""

    def __init__(self, *, sign: int = 1) -> None:
        self.sign = sign
        self._counts: dict[Key, int] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def add_block(self, records: Sequence[ParsedRecord], classes: Sequence[Classes]) -> None:
        """`add` of consecutive records of one input, `classes[i]` those of `records[i]`."""
        counts, sign = self._counts, self.sign
        for r, found in zip(records, classes, strict=True):
            if not found:
                continue
            filter_text = ";".join(r.filters) if r.filters else "."
            contig, pos, ref = r.contig, r.pos, r.ref
            for (alt, gt), n in found.items():
                key = (contig, pos, ref, alt, filter_text, gt)
                counts[key] = counts.get(key, 0) + n * sign

    def add(
        self,
        contig: str,
        pos: int,
        ref: str,
        alts: Sequence[str],
        filters: Sequence[str],
        classes: Classes,
    ) -> None:
        """Rows of one record, from `genotype_classes(_small)` of its samples."""
        if not classes:
            return
        filter_text = ";".join(filters) if filters else "."
        counts = self._counts
        for (alt, gt), n in classes.items():
            key = (contig, pos, ref, alt, filter_text, gt)
            counts[key] = counts.get(key, 0) + n * self.sign

    def take(self) -> dict[str, list[object]]:
        """The pending rows as columns (in no particular order), and a fresh start."""
        keys, counts = list(self._counts), list(self._counts.values())
        self._counts = {}
        names = ("contig", "pos", "ref", "alt", "filter", "gt")
        out: dict[str, list[object]] = {n: [k[i] for k in keys] for i, n in enumerate(names)}
        out["count"] = list(counts)
        return out


def genotype_classes(gt: np.ndarray, alleles: Sequence[str]) -> Classes:
    """Classes of the samples' calls (`gt` rows: allele index, -1 missing, -2 no allele).

    Each call becomes one integer (class, first allele, second allele), so distinct
    genotypes are found with a 1-D `np.unique`.
    """
    ploidy = (gt != -2).sum(axis=1)
    g0 = gt[:, 0].astype(np.int64)
    g1 = gt[:, 1].astype(np.int64) if gt.shape[1] > 1 else np.full_like(g0, -2)
    haploid = (ploidy == 1) & (g0 > 0)
    diploid = (ploidy == 2) & ~((g0 == 0) & (g1 == 0)) & ~((g0 < 0) & (g1 < 0))
    if not (haploid.any() or diploid.any()):
        return {}
    missing = (g0 < 0) | (g1 < 0)
    low, high = np.minimum(g0, g1), np.maximum(g0, g1)
    kind = np.select(
        [haploid, missing, low == 0, low == high],
        [_HAPLOID, _MISSING_ONE, _HET, _HOM],
        _TWO_ALTS,
    )
    first = np.select([haploid, missing], [g0, high], np.where(low == 0, high, low))
    second = np.where(kind == _TWO_ALTS, high, 0)
    keep = haploid | diploid
    base = len(alleles) + 1
    codes = (kind * base + first) * base + second
    unique, counts = np.unique(codes[keep], return_counts=True)
    out: Classes = {}
    for code, n in zip(unique.tolist(), counts.tolist(), strict=True):
        rest, b = divmod(code, base)
        k, a = divmod(rest, base)
        out[_class_key(k, a, b, alleles)] = n
    return out


def genotype_classes_small(rows: list[list[int]], alleles: Sequence[str]) -> Classes:
    """`genotype_classes` of a few samples' allele lists (no -2 entries)."""
    out: Classes = {}
    for row in rows:
        key = _row_key(row, alleles)
        if key is not None:
            out[key] = out.get(key, 0) + 1
    return out


def _row_key(row: list[int], alleles: Sequence[str]) -> tuple[str, str] | None:
    if len(row) == 1:
        return (alleles[row[0]], "1") if row[0] > 0 else None
    if len(row) != 2:
        return None
    a, b = row
    if (a == 0 and b == 0) or (a < 0 and b < 0):
        return None
    if a < 0 or b < 0:
        return _class_key(_MISSING_ONE, max(a, b), 0, alleles)
    if a == 0 or b == 0:
        return _class_key(_HET, max(a, b), 0, alleles)
    if a == b:
        return _class_key(_HOM, a, 0, alleles)
    return _class_key(_TWO_ALTS, min(a, b), max(a, b), alleles)


def _class_key(kind: int, a: int, b: int, alleles: Sequence[str]) -> tuple[str, str]:
    """(ALT text, gt) of one class; two ALTs in byte order, as TileDB-VCF compares them."""
    if kind == _TWO_ALTS:
        pair = sorted((alleles[a], alleles[b]), key=str.encode)
        return ",".join(pair), _GT_TEXT[kind]
    return alleles[a], _GT_TEXT[kind]
