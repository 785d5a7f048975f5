"""`GenotypeBatch`: records of one region as columns (a genotype matrix), Records on demand.

A batch is what a bulk reader wants: one row per record (its site fields), one column per
sample, and per cell the allele indexes, the phasing and whether the sample has a call in
that record at all. `Record`/`Call` objects are built only when asked for (`records()`), so
a consumer that works on the matrix (VCF export, counting) never pays for them.

Allele codes: an allele index (0 = REF), `MISSING` (-1) for `.`, `NO_ALLELE` (-2) past the
call's own ploidy (a haploid call in a diploid matrix) and in every cell without a call.

>>> import numpy as np
>>> site = Site("1", 99, 100, "A", ("G",), (), None, ("PASS",), {})
>>> alleles = np.array([[[0, 1], [-1, -1], [1, -2]]], dtype=np.int8)
>>> batch = GenotypeBatch(("S1", "S2", "S3"), (site,), alleles,
...                       np.array([[True, False, False]]), np.array([[True, True, True]]))
>>> [(c.sample, c.alleles, c.phased) for c in batch.records()[0].calls]
[('S1', (0, 1), True), ('S2', (None, None), False), ('S3', (1,), False)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np

from node.domain import Call, Record, Region

__all__ = [
    "MISSING",
    "NO_ALLELE",
    "ColumnarStore",
    "GenotypeBatch",
    "Site",
    "batches_of",
    "genotype_batches",
]

MISSING = -1
NO_ALLELE = -2

_BITS = 4  # per allele slot of a genotype key
_MAX_PLOIDY = 3
_MAX_ALLELE = (1 << _BITS) - 3
FieldSource = Callable[[int, int], Mapping[str, object]]  # (row, column) -> FORMAT fields


@dataclass(frozen=True, slots=True)
class Site:
    """The site fields of one record (a `Record` without its calls)."""

    contig: str
    start: int
    end: int
    ref: str
    alts: tuple[str, ...]
    ids: tuple[str, ...]
    qual: float | None
    filters: tuple[str, ...]
    info: Mapping[str, object]
    source_contig: str = ""

    def record(self, calls: tuple[Call, ...]) -> Record:
        return Record(
            self.contig, self.start, self.end, self.ref, self.alts, self.ids, self.qual,
            self.filters, self.info, calls, self.source_contig,
        )  # fmt: skip


@dataclass(frozen=True, eq=False)
class GenotypeBatch:
    """Rows are records (`sites`), columns are `samples`.

    alleles: int8 (int16 when an allele index exceeds 127), shape (rows, samples, ploidy);
    phased, present: bool, shape (rows, samples). `fields` gives a cell's FORMAT fields
    other than GT; None when no cell of the batch has any.
    """

    samples: tuple[str, ...]
    sites: tuple[Site, ...]
    alleles: np.ndarray
    phased: np.ndarray
    present: np.ndarray
    fields: FieldSource | None = None

    def __len__(self) -> int:
        return len(self.sites)

    def select(self, rows: Sequence[int]) -> GenotypeBatch:
        """The batch of `rows` only (in that order)."""
        index = np.asarray(rows, dtype=np.int64)
        source = self.fields
        fields = None if source is None else (lambda i, j: source(int(index[i]), j))
        return GenotypeBatch(
            self.samples,
            tuple(self.sites[i] for i in rows),
            self.alleles[index],
            self.phased[index],
            self.present[index],
            fields,
        )

    def records(self) -> list[Record]:
        """The rows as `Record`s; calls of present samples, in sample-name order."""
        order = np.asarray(sorted(range(len(self.samples)), key=self.samples.__getitem__))
        names = np.asarray(self.samples, dtype=object)[order] if self.samples else order
        keys = genotype_keys(self.alleles, self.phased)
        table = None if keys is None else _call_table(self.alleles.shape[2])
        out = []
        for row, site in enumerate(self.sites):
            mask = self.present[row][order] if order.size else order.astype(bool)
            cols = order[mask].tolist()
            if keys is not None and table is not None:
                decoded = table[keys[row, cols]].tolist()
            else:
                decoded = [self._decode(row, c) for c in cols]
            fields = self.fields
            calls = tuple(
                Call(name, gt[0], gt[1], {} if fields is None else fields(row, col))
                for name, gt, col in zip(names[mask].tolist(), decoded, cols, strict=True)
            )
            out.append(site.record(calls))
        return out

    def _decode(self, row: int, col: int) -> tuple[tuple[int | None, ...], bool]:
        return _alleles(self.alleles[row, col]), bool(self.phased[row, col])


def genotype_keys(alleles: np.ndarray, phased: np.ndarray) -> np.ndarray | None:
    """One small int per cell: 4 bits per allele slot (0 none, 1 missing, 2 + index), then
    the phase bit. None when a key cannot hold the batch (ploidy > 3, an index > 13)."""
    ploidy = alleles.shape[2]
    if ploidy > _MAX_PLOIDY or (alleles.size and int(alleles.max()) > _MAX_ALLELE):
        return None
    slots = alleles.astype(np.int64) - NO_ALLELE
    key = np.zeros(alleles.shape[:2], dtype=np.int64)
    for k in range(ploidy):
        key |= slots[:, :, k] << (_BITS * k)
    key |= phased.astype(np.int64) << (_BITS * ploidy)
    return key


def key_count(ploidy: int) -> int:
    """Keys `genotype_keys` can give for `ploidy` (they are all below this)."""
    return 2 << (_BITS * ploidy)


def key_genotype(key: int, ploidy: int) -> tuple[tuple[int | None, ...], bool]:
    """The alleles and phase a key stands for."""
    mask = (1 << _BITS) - 1
    slots = [(key >> (_BITS * k)) & mask for k in range(ploidy)]
    alleles = tuple(None if s == 1 else s - 2 for s in slots if s != 0)
    return alleles, bool(key >> (_BITS * ploidy))


@lru_cache(maxsize=_MAX_PLOIDY)
def _call_table(ploidy: int) -> np.ndarray:
    table = np.empty(key_count(ploidy), dtype=object)
    for key in range(key_count(ploidy)):
        table[key] = key_genotype(key, ploidy)
    return table


def _alleles(codes: np.ndarray) -> tuple[int | None, ...]:
    return tuple(None if a == MISSING else int(a) for a in codes.tolist() if a != NO_ALLELE)


def batches_of(records: Iterable[Record], samples: Sequence[str]) -> GenotypeBatch:
    """The batch holding `records` (for stores without a columnar read, e.g. MemoryStore)."""
    rows = list(records)
    col = {s: i for i, s in enumerate(samples)}
    ploidy = max((len(c.alleles) for r in rows for c in r.calls), default=1) or 1
    high = max((a for r in rows for c in r.calls for a in c.alleles if a), default=0)
    dtype = np.int16 if high > 127 else np.int8
    alleles = np.full((len(rows), len(samples), ploidy), NO_ALLELE, dtype=dtype)
    phased = np.zeros((len(rows), len(samples)), dtype=bool)
    present = np.zeros((len(rows), len(samples)), dtype=bool)
    fields: dict[tuple[int, int], Mapping[str, object]] = {}
    for i, rec in enumerate(rows):
        for call in rec.calls:
            j = col[call.sample]
            codes = [MISSING if a is None else a for a in call.alleles]
            alleles[i, j, : len(codes)] = codes
            phased[i, j], present[i, j] = call.phased, True
            if call.fields:
                fields[(i, j)] = call.fields
    sites = tuple(
        Site(r.contig, r.start, r.end, r.ref, r.alts, r.ids, r.qual, r.filters, r.info,
             r.source_contig)
        for r in rows
    )  # fmt: skip
    source = (lambda i, j: fields.get((i, j), {})) if fields else None
    return GenotypeBatch(tuple(samples), sites, alleles, phased, present, source)


@runtime_checkable
class ColumnarStore(Protocol):
    """A store that reads records as `GenotypeBatch`es without building `Record`s."""

    @property
    def samples(self) -> tuple[str, ...]: ...

    def genotype_batches(
        self, region: Region, *, samples: Sequence[str] | None = None
    ) -> Iterator[GenotypeBatch]: ...


class _RecordStore(Protocol):
    @property
    def samples(self) -> tuple[str, ...]: ...

    def records(
        self, region: Region, *, samples: Sequence[str] | None = None, batch_size: int = 1024
    ) -> Iterator[list[Record]]: ...


def genotype_batches(
    store: _RecordStore, region: Region, *, samples: Sequence[str] | None = None
) -> Iterator[GenotypeBatch]:
    """`store`'s records of `region` as batches: its columnar read when it has one."""
    if isinstance(store, ColumnarStore):
        yield from store.genotype_batches(region, samples=samples)
        return
    columns = tuple(store.samples if samples is None else samples)
    for records in store.records(region, samples=samples):
        yield batches_of(records, columns)
