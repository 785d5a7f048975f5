"""GT of `data` cells: htslib's codes (`fmt_GT`, or GT inside the `fmt` blob) to alleles.

htslib encodes an allele as `(index + 1) << 1`, 0 for `.`, the low bit on every allele
after the first when phased, and pads shorter calls with the int32 vector-end value.
"""

from __future__ import annotations

import numpy as np

from node.store.dataset import layout
from node.store.read.batch import MISSING, NO_ALLELE
from node.store.read.columns import Block, Var

__all__ = ["cell_genotypes"]


def cell_genotypes(block: Block) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: allele indexes (n, ploidy; MISSING, NO_ALLELE past its ploidy), phased."""
    codes = _gt_codes(block)
    shifted = codes >> 1
    alleles = np.where(shifted > 0, shifted - 1, MISSING)
    alleles[codes == layout.INT32_VECTOR_END] = NO_ALLELE
    phase_bits = (codes[:, 1:] & 1).astype(bool) & (codes[:, 1:] != layout.INT32_VECTOR_END)
    return alleles, phase_bits.any(axis=1)


def _gt_codes(block: Block) -> np.ndarray:
    """htslib GT codes per cell (n, ploidy), vector end past a call's ploidy."""
    gt = block.var.get("fmt_GT")
    if gt is None:
        gt = Var(np.zeros(block.n, dtype=np.uint8), np.arange(block.n, dtype=np.uint64))
    has = gt.lengths >= 8
    count = np.where(has, gt.words(4), 0)
    if gt.uniform() and has.all():
        codes = gt.matrix().view("<i4")[:, 2:].astype(np.int32)
    else:
        codes = np.full(
            (block.n, max(1, int(count.max(initial=0)))), layout.INT32_VECTOR_END, np.int32
        )
        for k in range(codes.shape[1]):
            inside = count > k
            codes[inside, k] = gt.words(8 + 4 * k)[inside]
    if not has.all():
        codes = _gt_from_blobs(block, np.flatnonzero(~has), codes)
    return codes


def _gt_from_blobs(block: Block, cells: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """GT of cells without `fmt_GT` (datasets that keep GT in the `fmt` blob)."""
    fmt = block.var["fmt"]
    found = {}
    for i in cells.tolist():
        for key, _t, _c, raw in layout.decode_blob(fmt.cell(i)):
            if key == "GT":
                found[i] = np.frombuffer(raw, dtype="<i4")
    width = max([codes.shape[1], *(len(v) for v in found.values())])
    if width > codes.shape[1]:
        pad = np.full((len(codes), width - codes.shape[1]), layout.INT32_VECTOR_END, np.int32)
        codes = np.concatenate([codes, pad], axis=1)
    for i, values in found.items():
        codes[i, : len(values)] = values
    return codes
