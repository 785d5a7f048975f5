"""Variants of a region for `TileDBVCFStore.variants`: the filters, and the carried ALT
alleles of datasets without the fednode aggregate (read from `data` as genotype batches)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from node.domain import ZERO_STATS, AlleleStats, Variant
from node.names import VariantType
from node.store.batch import GenotypeBatch
from node.store.stats import variant_type_of

__all__ = ["carried_variants", "wanted", "with_stats"]


def wanted(
    variant: Variant, types: frozenset[VariantType] | None, lo: int | None, hi: int | None
) -> bool:
    if types is not None and variant.variant_type not in types:
        return False
    if lo is not None and variant.length < lo:
        return False
    return hi is None or variant.length <= hi


def with_stats(variant: Variant, stat: AlleleStats) -> Variant:
    return Variant(
        variant.contig,
        variant.start,
        variant.end,
        variant.ref,
        variant.alt,
        variant.variant_type,
        stat,
        variant.ids,
        variant.source_contig,
    )


def carried_variants(batches: Iterable[GenotypeBatch]) -> list[Variant]:
    """ALT alleles some sample carries (statistics left at zero), first seen first."""
    found: dict[tuple[int, str, str], Variant] = {}
    for batch in batches:
        for row, site in enumerate(batch.sites):
            codes = batch.alleles[row][batch.present[row]]
            for index in np.unique(codes[codes > 0]).tolist():
                alt = site.alts[index - 1] if index <= len(site.alts) else ""
                kind = VariantType(variant_type_of(site.ref, alt))
                key = (site.start, site.ref, alt)
                if not alt or kind is VariantType.REF or key in found:
                    continue
                found[key] = Variant(
                    site.contig, site.start, site.end, site.ref, alt, kind, ZERO_STATS,
                    site.ids, site.source_contig,
                )  # fmt: skip
    return list(found.values())
