"""The storage interface every variant store implements.

Two implementations: `tiledbvcf.TileDBVCFStore` (the TileDB-VCF dataset layout on
tiledb, the real store) and `memory.MemoryStore` (a plain-Python reference, the oracle
of the property tests). Calls are blocking; async callers run them in a thread.

Bulk readers of records (htsget export) use `node.store.read.batch.genotype_batches(store, ...)`:
genotype matrices from a store's columnar read when it has one (`batch.ColumnarStore`,
the TileDB store), else built from `records()`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from node.domain import AlleleKey, AlleleStats, Record, Region, Variant
from node.names import VariantType

__all__ = ["IngestSummary", "VariantStore"]


@dataclass(frozen=True, slots=True)
class IngestSummary:
    files: int
    samples_added: tuple[str, ...]
    samples_replaced: tuple[str, ...]
    records: int
    assembly: str


@runtime_checkable
class VariantStore(Protocol):
    """One dataset's variants, genotypes and per-allele statistics."""

    @property
    def samples(self) -> tuple[str, ...]:
        """Sample names, in ingest order."""
        ...

    @property
    def assembly(self) -> str:
        """Reference assembly id, e.g. "GRCh38"."""
        ...

    def contigs(self) -> tuple[str, ...]:
        """Canonical contig names holding at least one record."""
        ...

    def allele_stats(self, keys: Sequence[AlleleKey]) -> list[AlleleStats | None]:
        """Statistics of each allele over the samples called at its position.

        An allele no called genotype carries, at a position where some sample is called
        (a record, or a gVCF reference block covering it), has AC 0 and the position's
        allele number (`bcftools +fill-tags` AN): a "no" that still counts the alleles
        called there. None where no sample is called: the allele number is unknown, not
        0. Cost does not grow with the number of samples.
        """
        ...

    def variants(
        self,
        region: Region,
        *,
        variant_types: frozenset[VariantType] | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
    ) -> Iterator[Variant]:
        """ALT alleles overlapping `region`, one per allele, sorted by (start, ref, alt).

        Reference blocks (gVCF `<NON_REF>`/`<*>`-only ALTs) are never returned as variants.
        """
        ...

    def records(
        self,
        region: Region,
        *,
        samples: Sequence[str] | None = None,
        batch_size: int = 1024,
    ) -> Iterator[list[Record]]:
        """Records overlapping `region` with genotypes of `samples` (all when None), in batches."""
        ...

    def ingest(
        self,
        paths: Sequence[Path],
        *,
        assembly: str | None = None,
        replace: bool = False,
        threads: int = 1,
        progress: bool = False,
    ) -> IngestSummary:
        """Add VCF/BCF files atomically: all of them, or nothing changes."""
        ...

    def close(self) -> None: ...
