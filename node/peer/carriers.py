"""Individuals carrying every one of several alleles, counted on one node.

The carriers of each allele are read from the genotypes of the records at its position
and intersected; the set goes to the privacy gate, and only its guarded size leaves the
node (no sample names do).
"""

from __future__ import annotations

from collections.abc import Sequence

from node.domain import AlleleKey, Region
from node.store.base import VariantStore

__all__ = ["carriers_of_all"]


def carriers_of_all(store: VariantStore, keys: Sequence[AlleleKey]) -> frozenset[str]:
    """The samples carrying every one of `keys` (the set: the privacy gate keys its noise
    and overlap checks on who they are; only its guarded size leaves the node)."""
    common: set[str] | None = None
    for key in keys:
        carriers = _carriers(store, key)
        common = carriers if common is None else common & carriers
        if not common:
            return frozenset()
    return frozenset(common or ())


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
