"""`variant_stats` v3 rows built as integer arrays, turned into TileDB columns per flush.

TileDB-VCF writes one row per (contig, pos, sample, allele) with the sample's allele count,
called alleles and homozygosity (stats/variant_stats.cc keys its running counts by locus
and sample; the fixture's `variant_stats` arrays hold one row per sample and allele). So
do we. What makes it cheap is the representation: per record, a handful of numpy arrays
(sample ids, allele codes, counts) and one tuple of site fields; no Python object per row.
Sample names and allele keys are small tables; text columns are gathered from them once
per flush.

Rows of one record are emitted in sample-name order, so a flush whose records come in
strictly increasing (contig, pos) order is already in the array's global order and needs
no sort (the usual single-input case).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from node.store import layout
from node.store.calls import Calls

__all__ = ["RowBatch", "VariantStatsRows", "normalise_stats_allele"]

_COUNT_COLUMNS = ("sample", "allele", "ac", "an", "n_hom")


def normalise_stats_allele(ref: str, alt: str) -> str:
    """TileDB-VCF variant_stats v3 key: one shared trailing base trimmed ("CAC,C" -> "CA,")."""
    if ref and alt and not alt.startswith("<") and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    return f"{ref},{alt}"


@dataclass(frozen=True, slots=True)
class _Group:
    """The samples of one input: their first id in the name table and name order."""

    offset: int
    order: np.ndarray  # input indexes in sample-name (byte) order


class VariantStatsRows:
    """Pending variant_stats rows of one ingest (`sign` +1; removals write none)."""

    def __init__(self) -> None:
        self._names: list[bytes] = []
        self._groups: dict[tuple[str, ...], _Group] = {}
        self._alleles: dict[str, int] = {}
        self._reset()

    def _reset(self) -> None:
        self._sites: list[tuple[str, int, int, int, int]] = []  # contig, pos, end, max_len, n
        self._chunks: dict[str, list[np.ndarray]] = {c: [] for c in _COUNT_COLUMNS}
        self._small: dict[str, list[int]] = {c: [] for c in _COUNT_COLUMNS}
        self.rows = 0

    def __len__(self) -> int:
        return self.rows

    def group(self, samples: Sequence[str]) -> _Group:
        key = tuple(samples)
        found = self._groups.get(key)
        if found is None:
            names = [s.encode() for s in key]
            order = np.array(sorted(range(len(names)), key=names.__getitem__), dtype=np.int64)
            found = self._groups[key] = _Group(len(self._names), order)
            self._names.extend(names)
        return found

    def _allele_codes(self, ref: str, alts: Sequence[str]) -> list[int]:
        """Codes of "ref", each ALT's normalised key, then "nr" (last)."""
        keys = ["ref", *(normalise_stats_allele(ref, a) for a in alts), "nr"]
        return [self._alleles.setdefault(k, len(self._alleles)) for k in keys]

    def add(
        self,
        site: tuple[str, int, int, int],
        ref: str,
        alts: Sequence[str],
        calls: Calls,
        samples: Sequence[str],
        ref_block: bool,
    ) -> None:
        """Rows of one record (`site` = contig, pos, end, running max length)."""
        group = self.group(samples)
        order = group.order
        copies = calls.copies(1 + len(alts))[order]
        rows, alleles = np.nonzero(copies)  # sample-name order, then allele index
        if rows.size == 0:
            return
        codes = np.asarray(self._allele_codes(ref, alts), dtype=np.int32)
        allele = codes[alleles]
        hom = calls.homozygous[order][rows]
        if ref_block:
            allele[(alleles == 0) & hom] = codes[-1]
        self._flush_small()
        chunks = self._chunks
        chunks["sample"].append((order[rows] + group.offset).astype(np.int32))
        chunks["allele"].append(allele)
        chunks["ac"].append(copies[rows, alleles].astype(np.int32))
        chunks["an"].append(calls.n_called[order][rows].astype(np.int32))
        chunks["n_hom"].append(hom.astype(np.int32))
        self._sites.append((*site, int(rows.size)))
        self.rows += int(rows.size)

    def add_small(
        self,
        site: tuple[str, int, int, int],
        ref: str,
        alts: Sequence[str],
        rows: list[list[int]],
        samples: Sequence[str],
        ref_block: bool,
    ) -> None:
        """`add` for a few samples, in plain Python (`rows`: each sample's alleles, no -2)."""
        group = self.group(samples)
        codes = self._allele_codes(ref, alts)
        small, count = self._small, 0
        for i in group.order.tolist():
            called = [a for a in rows[i] if a >= 0]
            homozygous = len(called) == len(rows[i]) and len(set(called)) == 1
            for allele in sorted(set(called)):
                code = codes[-1] if allele == 0 and ref_block and homozygous else codes[allele]
                small["sample"].append(group.offset + i)
                small["allele"].append(code)
                small["ac"].append(called.count(allele))
                small["an"].append(len(called))
                small["n_hom"].append(int(homozygous))
                count += 1
        if count:
            self._sites.append((*site, count))
            self.rows += count

    def _flush_small(self) -> None:
        if self._small["sample"]:
            for name, values in self._small.items():
                self._chunks[name].append(np.asarray(values, dtype=np.int32))
            self._small = {c: [] for c in _COUNT_COLUMNS}

    def take(self) -> RowBatch:
        """The pending rows (cheap: the columns are built by `RowBatch.columns`)."""
        self._flush_small()
        counts = {
            name: np.concatenate(chunks) if chunks else np.zeros(0, np.int32)
            for name, chunks in self._chunks.items()
        }
        alleles = sorted(self._alleles, key=lambda k: self._alleles[k])
        batch = RowBatch(self._sites, counts, list(self._names), alleles)
        self._reset()
        return batch


@dataclass(slots=True)
class RowBatch:
    """One flush of variant_stats rows; `columns()` may run on a writer thread."""

    sites: list[tuple[str, int, int, int, int]]
    counts: dict[str, np.ndarray]
    names: list[bytes]
    alleles: list[str]

    def ordered(self) -> bool:
        """Whether the rows are in global order: sites strictly increasing by (contig, pos)."""
        keys = [(c.encode(), p) for c, p, _, _, _ in self.sites]
        return all(a < b for a, b in itertools.pairwise(keys))

    def columns(self) -> dict[str, object]:
        sites = self.sites
        per_site = np.fromiter((s[4] for s in sites), dtype=np.int64, count=len(sites))
        contigs = sorted({s[0] for s in sites})
        contig_code = {c: i for i, c in enumerate(contigs)}
        site_contig = np.fromiter((contig_code[s[0]] for s in sites), np.int64, len(sites))

        def repeat(index: int, dtype: type[np.generic]) -> np.ndarray:
            values = np.fromiter((s[index] for s in sites), dtype=dtype, count=len(sites))
            return np.repeat(values, per_site)

        c = self.counts
        return {
            "contig": gather_text([x.encode() for x in contigs], np.repeat(site_contig, per_site)),
            "pos": repeat(1, np.uint32),
            "sample": gather_text(self.names, c["sample"]),
            "end": repeat(2, np.uint32),
            "allele": gather_text([a.encode() for a in self.alleles], c["allele"]),
            "ac": c["ac"],
            "an": c["an"],
            "n_hom": c["n_hom"],
            "max_length": repeat(3, np.uint32),
        }


def gather_text(table: Sequence[bytes], codes: np.ndarray) -> layout.Var:
    """A text column whose cell i is `table[codes[i]]`, without a Python object per cell."""
    out = layout.Var([])
    lengths = np.fromiter(map(len, table), dtype=np.int64, count=len(table))
    cell_lengths = lengths[codes] if len(table) else np.zeros(0, np.int64)
    out.offsets = np.zeros(codes.size, dtype=np.uint64)
    if codes.size > 1:
        np.cumsum(cell_lengths[:-1], out=out.offsets[1:])
    if codes.size == 0 or not cell_lengths.any():
        return out
    data = np.frombuffer(b"".join(table), dtype=np.uint8)
    if (lengths == lengths[0]).all():
        width = int(lengths[0])
        out.data = data.reshape(-1, width)[codes].reshape(-1)
        return out
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])[codes]
    total = int(cell_lengths.sum())
    first = np.cumsum(cell_lengths) - cell_lengths
    index = np.arange(total, dtype=np.int64) + np.repeat(starts - first, cell_lengths)
    out.data = data[index]
    return out
