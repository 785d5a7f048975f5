"""VCF GT text of a whole `GenotypeBatch` at once: one table lookup per cell.

Each cell's alleles and phase become one small integer (`batch.genotype_keys`), which
indexes a table of every possible GT string for that ploidy. Batches the keys cannot
cover (ploidy above 3, an allele index above 13) get None, and the caller writes their
calls one by one.

>>> import numpy as np
>>> from node.store.read.batch import GenotypeBatch, Site
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

from node.store.read.batch import GenotypeBatch, genotype_keys, key_count, key_genotype

__all__ = ["genotype_text"]


def genotype_text(batch: GenotypeBatch) -> np.ndarray | None:
    """(rows, samples) object array of GT strings; "./." where a sample has no call."""
    keys = genotype_keys(batch.alleles, batch.phased)
    if keys is None:
        return None
    ploidy = batch.alleles.shape[2]
    keys[~batch.present] = key_count(ploidy)  # the table's last entry
    return np.asarray(_table(ploidy)[keys])


@lru_cache(maxsize=3)
def _table(ploidy: int) -> np.ndarray:
    texts = [_text(*key_genotype(key, ploidy)) for key in range(key_count(ploidy))]
    return np.asarray([*texts, "./."], dtype=object)


def _text(alleles: tuple[int | None, ...], phased: bool) -> str:
    parts = ["." if a is None else str(a) for a in alleles]
    return ("|" if phased else "/").join(parts) or "."
