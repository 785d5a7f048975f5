"""VCF GT text of a whole `GenotypeBatch` at once: one table lookup per cell.

Each cell's alleles and phase become one small integer (4 bits per allele slot plus the
phase bit), which indexes a table of every possible GT string for that ploidy. Batches
the table cannot cover (ploidy above 3, an allele index above 13) get None, and the
caller writes their calls one by one.

>>> import numpy as np
>>> from node.store.batch import GenotypeBatch, Site
>>> site = Site("1", 0, 1, "A", ("C", "G"), (), None, (), {})
>>> alleles = np.array([[[0, 2], [-1, -1], [1, -2], [-2, -2]]], dtype=np.int8)
>>> phased = np.array([[True, False, False, False]])
>>> present = np.array([[True, True, True, False]])
>>> genotype_text(GenotypeBatch(("a", "b", "c", "d"), (site,), alleles, phased, present))
array([['0|2', './.', '1', './.']], dtype=object)
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from node.store.batch import NO_ALLELE, GenotypeBatch

__all__ = ["genotype_text"]

_MAX_PLOIDY = 3
_BITS = 4  # per allele slot: 0 = no allele, 1 = missing, 2 + index for indexes 0..13
_MAX_ALLELE = (1 << _BITS) - 3


def genotype_text(batch: GenotypeBatch) -> np.ndarray | None:
    """(rows, samples) object array of GT strings; "./." where a sample has no call."""
    alleles = batch.alleles
    ploidy = alleles.shape[2]
    if ploidy > _MAX_PLOIDY or (alleles.size and int(alleles.max()) > _MAX_ALLELE):
        return None
    slots = alleles.astype(np.int64) - NO_ALLELE
    key = np.zeros(alleles.shape[:2], dtype=np.int64)
    for k in range(ploidy):
        key |= slots[:, :, k] << (_BITS * k)
    key |= batch.phased.astype(np.int64) << (_BITS * ploidy)
    absent = 2 << (_BITS * ploidy)
    key[~batch.present] = absent
    return np.asarray(_table(ploidy)[key])


@lru_cache(maxsize=_MAX_PLOIDY)
def _table(ploidy: int) -> np.ndarray:
    size = 2 << (_BITS * ploidy)
    texts = [_text(key, ploidy) for key in range(size)]
    return np.asarray([*texts, "./."], dtype=object)


def _text(key: int, ploidy: int) -> str:
    mask = (1 << _BITS) - 1
    slots = [(key >> (_BITS * k)) & mask for k in range(ploidy)]
    phased = bool(key >> (_BITS * ploidy))
    parts = ["." if s == 1 else str(s - 2) for s in slots if s != 0]
    return ("|" if phased else "/").join(parts) or "."
