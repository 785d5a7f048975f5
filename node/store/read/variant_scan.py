"""Variants and allele statistics of datasets without the fednode aggregate (TileDB-VCF
wrote them), read from `data` as genotype batches; and the filters of
`TileDBVCFStore.variants`.

The statistics are fednode's, not TileDB-VCF's (`stats_lookup` says why its
`variant_stats` cannot give them): `AggregateRows` feeds decoded records to
`stats.StatsCollector` as an ingest feeds it, and `aggregate_index` sums what it makes as
it sums the persisted aggregate, which `aggregate_build` writes from the same rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from threading import Lock

import numpy as np

from node.domain import ZERO_STATS, AlleleStats, Region, Variant
from node.names import VariantType
from node.store.ingest.stats import StatsCollector, variant_type_of
from node.store.read.aggregate_index import ContigIndex, index_of_rows
from node.store.read.batch import GenotypeBatch
from node.store.read.records import BatchReader
from node.store.read.stats_lookup import Point

__all__ = ["AggregateRows", "carried_variants", "data_stats_lookup", "wanted", "with_stats"]

_REF_ALTS = {"<NON_REF>", "<*>"}  # as `vcfio.ParsedRecord.is_ref_block`
_CLUSTER_GAP = 10_000  # points closer than this are read as one region
_STATS_COLUMNS = ("contig", "pos", "ref", "alt", "end", "id", "source_contig")
_COUNTS = ("ac", "an", "n_hom_alt", "n_het", "n_carriers", "n_called")
_COVERAGE_COLUMNS = ("contig", "start", "real_start", "end", "an", "n_called")


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


class AggregateRows:
    """fednode aggregate rows (`fednode_allele_stats`, `fednode_coverage`) of decoded records.

    A record's calls go to the collector with the samples that have a record at its
    position (absent samples would be rows of -2: no call), so that a sample with two
    records at one position is counted once in AN, as the ingest of a multi-sample file
    counts it. Batches never split a position (`BatchReader`), so each batch gets a fresh
    collector and memory stays bounded by the batch.
    """

    def __init__(self) -> None:
        self.stats: dict[str, list[np.ndarray]] = defaultdict(list)
        self.coverage: dict[str, list[np.ndarray]] = defaultdict(list)
        self._rows = 0
        self._names: dict[bytes, tuple[str, ...]] = {}

    def pending(self) -> int:
        """Rows gathered and not yet taken."""
        return self._rows

    def add(self, batch: GenotypeBatch) -> None:
        collector = StatsCollector()
        sites, n = batch.sites, len(batch.sites)
        first = 0
        while first < n:
            last = first + 1
            while last < n and sites[last].start == sites[first].start:
                last += 1
            cols = np.flatnonzero(batch.present[first:last].any(axis=0))
            names = self._samples(batch, cols)
            for row in range(first, last):
                site = sites[row]
                collector.add(
                    contig=site.source_contig,
                    pos=site.start,
                    end=site.end - 1,
                    ref=site.ref,
                    alts=site.alts,
                    filters=site.filters,
                    gt=batch.alleles[row][cols].astype(np.int16),
                    samples=names,
                    ref_block=all(alt in _REF_ALTS for alt in site.alts),
                    ids=";".join(site.ids) or ".",
                )
            first = last
        self._take(collector)

    def _samples(self, batch: GenotypeBatch, cols: np.ndarray) -> tuple[str, ...]:
        """One tuple object per sample set (the collector keys its state by it)."""
        key = cols.tobytes()
        names = self._names.get(key)
        if names is None:
            names = self._names[key] = tuple(batch.samples[c] for c in cols.tolist())
        return names

    def _take(self, collector: StatsCollector) -> None:
        held = collector.aggregate_rows()
        if held:
            self._rows += held
            for name, values in collector.fednode_rows().items():
                self.stats[name].append(np.asarray(values))
        if len(collector.coverage):
            self._rows += len(collector.coverage)
            for name, values in collector.coverage.take().items():
                self.coverage[name].append(np.asarray(values))

    def take(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The rows gathered so far (allele/site rows, coverage rows), as columns."""
        stats = _columns(self.stats, (*_STATS_COLUMNS, *_COUNTS))
        coverage = _columns(self.coverage, _COVERAGE_COLUMNS)
        self.stats, self.coverage = defaultdict(list), defaultdict(list)
        self._rows = 0
        return stats, coverage

    def index(self, contig: str) -> ContigIndex:
        """The rows gathered so far, of canonical `contig`, summed as a lookup index."""
        stats, coverage = self.take()
        mine = stats["contig"] == contig
        blocks = coverage["contig"] == contig
        return index_of_rows(
            {k: v[mine] for k, v in stats.items()},
            {k: v[blocks] for k, v in coverage.items()} if blocks.any() else None,
            contig,
        )


def _columns(parts: Mapping[str, list[np.ndarray]], names: Iterable[str]) -> dict[str, np.ndarray]:
    return {
        name: np.concatenate(parts[name]) if parts.get(name) else np.zeros(0, dtype=object)
        for name in names
    }


def data_stats_lookup(
    reader: BatchReader,
    sources: Sequence[str],
    contig: str,
    points: Sequence[Point],
    samples: Sequence[str],
    *,
    lock: Lock | None,
) -> list[AlleleStats | None]:
    """Statistics of `points` (on canonical `contig`) from the `data` cells around them.

    Cost: the cells of every sample within the anchor gap before each point (TileDB-VCF's
    anchors bound how far back a record overlapping it can start).
    """
    out: list[AlleleStats | None] = [None] * len(points)
    if not points or not sources:
        return out
    order = sorted(range(len(points)), key=lambda i: points[i][0])
    cluster: list[int] = []
    for i in [*order, -1]:
        if cluster and (i < 0 or points[i][0] - points[cluster[-1]][0] > _CLUSTER_GAP):
            rows = AggregateRows()
            region = Region(contig, points[cluster[0]][0], points[cluster[-1]][0] + 1)
            for batch in reader.batches(sources, region, samples, subset=False, lock=lock):
                rows.add(batch)
            found = rows.index(contig).lookup([points[k] for k in cluster])
            for k, stat in zip(cluster, found, strict=True):
                out[k] = stat
            cluster = []
        if i >= 0:
            cluster.append(i)
    return out
