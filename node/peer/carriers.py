"""Individuals carrying every one of several alleles, counted on one node.

One allele: the store's precomputed carrier count. Several: the carriers of each are
read from the genotypes of the records at the allele's position and intersected; only
the size of the intersection leaves this module (no sample names leave the node).
"""

from __future__ import annotations

from collections.abc import Sequence

from node.domain import AlleleKey, Region
from node.store.base import VariantStore

__all__ = ["carriers_of_all"]


def carriers_of_all(store: VariantStore, keys: Sequence[AlleleKey]) -> int:
    if len(keys) == 1:
        stats = store.allele_stats(keys)[0]
        return stats.n_carriers if stats is not None else 0
    common: set[str] | None = None
    for key in keys:
        carriers = _carriers(store, key)
        common = carriers if common is None else common & carriers
        if not common:
            return 0
    return len(common or ())


def _carriers(store: VariantStore, key: AlleleKey) -> set[str]:
    region = Region(key.contig, key.start, key.start + len(key.ref))
    found: set[str] = set()
    for batch in store.records(region):
        for record in batch:
            if record.start != key.start or record.ref != key.ref or key.alt not in record.alts:
                continue
            index = record.alts.index(key.alt) + 1
            found.update(c.sample for c in record.calls if index in c.alleles)
    return found
