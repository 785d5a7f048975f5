"""`DataCells`: the `data` cells one ingest holds until they are written, as columns.

Cells arrive a block of records at a time (`add`) and are held as columns: per chunk (a
record, or one anchor copy of a long record: the site fields its cells share) numpy
arrays and one list per text field, per cell (sample name, `fmt`, `fmt_GT`) one joined
byte string with its lengths. No Python object is made per cell, and none per chunk
beyond the texts. `take` hands over the chunks before a position, in anchor order, as
`data` write columns (`columns`) and keeps the rest for the next batch.

Each record's cells are laid out in sample-name order, so chunks in strictly increasing
anchor order are already in the `data` array's global order (contig, start_pos, sample):
the usual batch is written without a sort. All held cells are on one contig (the writer
takes them all before the next contig's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from node.store.dataset import layout
from node.store.dataset.write_buffers import VarChunk, var_of_chunks
from node.store.ingest.vs_rows import gather_text

if TYPE_CHECKING:
    from node.store.ingest.vcfio import ParsedRecord

__all__ = ["DataCells", "Table"]

CHUNK_OVERHEAD = 1024  # bytes counted per chunk besides its cells (Python objects)
_TEXTS = 1 << 16  # encoded alleles/IDs kept


@dataclass(slots=True)
class Table:
    """Chunks of cells of one contig: per chunk (`anchor` ... `info`), per cell (`sample`,
    `fmt`, `fmt_gt`, chunk after chunk, `cells[i]` of chunk i)."""

    contig: bytes
    anchor: np.ndarray  # int64: start_pos (the record's, or its anchor copy's)
    real_start: np.ndarray  # int64
    end: np.ndarray  # int64
    qual: np.ndarray  # float32 (NaN: missing)
    size: np.ndarray  # int64: bytes counted against the writer's flush threshold
    cells: np.ndarray  # int64
    alleles: list[bytes]
    ids: list[bytes]
    filters: list[bytes]  # filter_ids as stored: int32 count, then the ids
    info: list[bytes]
    sample: VarChunk
    fmt: VarChunk
    fmt_gt: VarChunk

    def __len__(self) -> int:
        return len(self.anchor)

    def take(self, chunks: np.ndarray) -> Table:
        """The chunks at `chunks` (indexes), in that order, with their cells."""
        if len(chunks) and bool((np.diff(chunks) == 1).all()):
            return self.slice(int(chunks[0]), int(chunks[-1]) + 1)
        picked = chunks.tolist()
        first = np.cumsum(self.cells) - self.cells
        cells = _expand(first[chunks], self.cells[chunks])
        return Table(
            self.contig,
            self.anchor[chunks],
            self.real_start[chunks],
            self.end[chunks],
            self.qual[chunks],
            self.size[chunks],
            self.cells[chunks],
            [self.alleles[i] for i in picked],
            [self.ids[i] for i in picked],
            [self.filters[i] for i in picked],
            [self.info[i] for i in picked],
            _take_cells(self.sample, cells),
            _take_cells(self.fmt, cells),
            _take_cells(self.fmt_gt, cells),
        )

    def slice(self, start: int, stop: int) -> Table:
        """Chunks `start` to `stop` (no gather: byte ranges of the cell columns)."""
        bounds = np.concatenate([[0], np.cumsum(self.cells)])
        a, b = int(bounds[start]), int(bounds[stop])
        return Table(
            self.contig,
            self.anchor[start:stop],
            self.real_start[start:stop],
            self.end[start:stop],
            self.qual[start:stop],
            self.size[start:stop],
            self.cells[start:stop],
            self.alleles[start:stop],
            self.ids[start:stop],
            self.filters[start:stop],
            self.info[start:stop],
            *(_slice_cells(c, a, b) for c in (self.sample, self.fmt, self.fmt_gt)),
        )

    @classmethod
    def concat(cls, tables: Sequence[Table]) -> Table:
        if len(tables) == 1:
            return tables[0]

        def arrays(name: str) -> np.ndarray:
            return np.concatenate([getattr(t, name) for t in tables])

        def texts(name: str) -> list[bytes]:
            return [v for t in tables for v in getattr(t, name)]

        def cells(name: str) -> VarChunk:
            parts = [getattr(t, name) for t in tables]
            return VarChunk(
                b"".join(p.data for p in parts), np.concatenate([p.lengths for p in parts])
            )

        return cls(
            tables[0].contig,
            arrays("anchor"),
            arrays("real_start"),
            arrays("end"),
            arrays("qual"),
            arrays("size"),
            arrays("cells"),
            texts("alleles"),
            texts("ids"),
            texts("filters"),
            texts("info"),
            cells("sample"),
            cells("fmt"),
            cells("fmt_gt"),
        )

    def columns(self) -> dict[str, object]:
        """The `data` write columns of every cell, chunk after chunk."""
        count = self.cells
        chunk_of_cell = np.repeat(np.arange(len(count)), count)
        n = int(count.sum())

        def repeat(values: np.ndarray, dtype: type[np.generic]) -> np.ndarray:
            return np.repeat(values.astype(dtype), count)

        filter_ids = gather_text(self.filters, chunk_of_cell)
        filter_ids.data = filter_ids.data.view("<i4")
        return {
            "contig": gather_text([self.contig], np.zeros(n, dtype=np.int64)),
            "start_pos": repeat(self.anchor, np.uint32),
            "sample": var_of_chunks([self.sample]),
            "real_start_pos": repeat(self.real_start, np.uint32),
            "end_pos": repeat(self.end, np.uint32),
            "qual": layout.htslib_missing(repeat(self.qual, np.float32)),
            "alleles": gather_text(self.alleles, chunk_of_cell),
            "id": gather_text(self.ids, chunk_of_cell),
            "filter_ids": filter_ids,
            "info": gather_text(self.info, chunk_of_cell),
            "fmt": var_of_chunks([self.fmt]),
            "fmt_GT": var_of_chunks([self.fmt_gt]),
        }


class DataCells:
    """The held cells of one writer (see the module docstring)."""

    def __init__(self) -> None:
        self._tables: list[Table] = []
        self.bytes = 0  # counted against the flush threshold, held cells included
        self.held = 0  # of the cells the last `take` kept back
        self._texts: dict[object, bytes] = {}  # (REF, ALTs) and IDs repeat: encoded once

    def add(
        self,
        records: Sequence[ParsedRecord],
        contig: bytes,
        samples: VarChunk,
        order: np.ndarray | None,
        filters: list[bytes],
    ) -> None:
        """Cells of every sample of `records` (one input, one contig); `samples`: the
        input's names in byte order, `order`: that order (None: the input's);
        `filters`: each record's filter_ids."""
        k, n = len(records), len(samples)
        if not k:
            return
        pos = np.fromiter((r.pos for r in records), np.int64, k)
        end = np.fromiter((r.end for r in records), np.int64, k)
        qual = np.fromiter((r.qual for r in records), np.float32, k)
        texts = self._texts
        if len(texts) >= _TEXTS:
            texts.clear()
        alleles = [texts.get((r.ref, r.alts)) or self._alleles(r) for r in records]
        ids = [texts.get(r.ids) or self._ids(r.ids) for r in records]
        info = [r.info for r in records]
        if order is None:
            fmt = [r.fmt for r in records]
            gt = [r.fmt_gt for r in records]
        else:
            fmt = [r.fmt.take(order) for r in records]
            gt = [r.fmt_gt.take(order) for r in records]
        fmt_cells, fmt_bytes = _join(fmt, n)
        gt_cells, gt_bytes = _join(gt, n)
        site = (
            len(contig)
            + 16
            + _lengths(alleles)
            + _lengths(ids)
            + _lengths(filters)
            + _lengths(info)
        )
        size = fmt_bytes + gt_bytes + n * site + CHUNK_OVERHEAD
        table = Table(
            contig,
            pos,
            pos,
            end,
            qual,
            size,
            np.full(k, n, dtype=np.int64),
            alleles,
            ids,
            filters,
            info,
            VarChunk(samples.data * k, np.tile(samples.lengths, k)),
            fmt_cells,
            gt_cells,
        )
        copies = layout.anchor_copies(pos, end)
        if copies is not None:
            table = table.take(copies[0])
            table.anchor = copies[1]
        self._tables.append(table)
        self.bytes += int(table.size.sum())

    def _alleles(self, rec: ParsedRecord) -> bytes:
        text = self._texts[(rec.ref, rec.alts)] = (",".join((rec.ref, *rec.alts)) + "\0").encode()
        return text

    def _ids(self, ids: str) -> bytes:
        text = self._texts[ids] = (ids + "\0").encode()
        return text

    def take(self, *, hold_from: int | None) -> tuple[Table, bool] | None:
        """The held chunks in anchor order (input order among equal anchors), but those
        at or after `hold_from` (None: all), and whether they are in global order
        (anchors strictly increasing); None when no chunk is held. Those at or after
        `hold_from` stay held."""
        if not self._tables:
            return None
        table = Table.concat(self._tables)
        anchor = table.anchor
        if len(anchor) > 1 and not bool((anchor[1:] >= anchor[:-1]).all()):
            table = table.take(np.argsort(anchor, kind="stable"))
            anchor = table.anchor
        cut = len(anchor) if hold_from is None else int(np.searchsorted(anchor, hold_from))
        kept = table.slice(cut, len(anchor))
        self._tables = [kept] if len(kept) else []
        self.bytes = self.held = int(kept.size.sum())
        now = table.slice(0, cut)
        return now, bool((now.anchor[1:] > now.anchor[:-1]).all())


def _lengths(values: list[bytes]) -> np.ndarray:
    return np.fromiter(map(len, values), np.int64, len(values))


def _join(chunks: list[VarChunk], n: int) -> tuple[VarChunk, np.ndarray]:
    """The cells of per-record chunks of `n` cells as one, and each record's bytes."""
    data = [c.data for c in chunks]
    per_chunk = _lengths(data)
    if n == 1:
        lengths = per_chunk.astype(np.uint64)
    else:
        lengths = np.concatenate([c.lengths for c in chunks]).astype(np.uint64, copy=False)
    return VarChunk(b"".join(data), lengths), per_chunk


def _expand(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The indexes starts[i] .. starts[i] + counts[i] - 1 of every i, in turn."""
    total = int(counts.sum())
    offset = np.cumsum(counts) - counts
    out: np.ndarray = np.arange(total, dtype=np.int64) + np.repeat(starts - offset, counts)
    return out


def _take_cells(column: VarChunk, cells: np.ndarray) -> VarChunk:
    lengths = column.lengths.astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    data = np.frombuffer(column.data, dtype=np.uint8)
    picked = _expand(starts[cells], lengths[cells])
    return VarChunk(data[picked].tobytes(), column.lengths[cells])


def _slice_cells(column: VarChunk, start: int, stop: int) -> VarChunk:
    lengths = column.lengths[start:stop]
    skip = int(column.lengths[:start].sum())
    return VarChunk(column.data[skip : skip + int(lengths.sum())], lengths)
