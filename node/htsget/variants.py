"""htsget variant regions → store regions (dataset-backed `/variants/{datasetId}`)."""

from __future__ import annotations

from collections.abc import Sequence

from node.domain import Region, normalize_contig
from node.errors import NotFound
from node.reads.layout import Query
from node.store.base import VariantStore
from node.store.read.export import merge_regions

__all__ = ["store_regions"]

_WHOLE = 1 << 31


def store_regions(store: VariantStore, queries: Sequence[Query]) -> list[Region]:
    """Canonical, merged regions in store order; an unknown contig is NotFound."""
    contigs = store.contigs()
    if not queries:
        return [Region(c, 0, _WHOLE) for c in contigs]
    regions = []
    for q in queries:
        contig = normalize_contig(q.reference or "")
        if contig not in contigs:
            raise NotFound(f"reference {q.reference!r} is not in this dataset")
        regions.append(Region(contig, q.start, q.end if q.end is not None else _WHOLE))
    return merge_regions(regions, contigs)
