"""Region reads of the `data` array into `GenotypeBatch`es: raw TileDB buffers, numpy decode.

TileDB-VCF stores one cell per sample and record. A region of a 2,504-sample cohort is
millions of cells, so nothing here runs per cell in Python:

- the query asks for global order (`order="G"`): with `start_pos` tiled as one tile per
  contig and string dimensions, that is (start_pos, sample) order, the order the anchor
  rule needs, without the row-major reader's sort (10x slower on a 9-fragment store);
- results are TileDB's own buffers (data + offsets), never one Python object per cell;
- `fmt_GT` is decoded for all cells at once into the genotype matrix;
- cells are grouped into records by comparing each cell's site fields (REAL_START, END,
  QUAL, ALLELES, ID, FILTER, INFO) with the previous cell's, bytewise and vectorised; only
  the runs of equal cells (about one per record) are looked at in Python.

Grouping rule, as `RecordReader` (vcfio) defines it: cells at one position with identical
site fields form one record; a sample with two identical cells at one position (a
duplicated input line) gets a second record rather than two calls in one.

Long spans (`SCAN_SPAN` and up: whole contigs for `aggregate_build`) come from
`data_scan` (unordered reads by windows, sorted in numpy) instead of a global-order read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from threading import Lock

import numpy as np
import tiledb

from node.domain import Region, normalize_contig
from node.store.dataset import layout
from node.store.read.batch import NO_ALLELE, FieldSource, GenotypeBatch, Site
from node.store.read.columns import Block, Var, name_columns, submitted_blocks
from node.store.read.data_scan import scan_blocks
from node.store.read.gt_codes import cell_genotypes
from node.store.read.overlap import anchored

__all__ = ["SCAN_SPAN", "BatchReader", "RecordCells"]

_SITE_ATTRS = ("real_start_pos", "end_pos", "qual", "alleles", "id", "filter_ids", "info", "fmt")
_SiteKey = tuple[int, int, bytes, bytes, object, tuple[str, ...], bytes]
SCAN_SPAN = 1_000_000  # bp from which a region is read by `data_scan` (unordered windows)


@dataclass(frozen=True, slots=True)
class RecordCells:
    """One decoded chunk: the batch, and where its rows' and calls' bytes sit in `block`."""

    batch: GenotypeBatch
    block: Block  # the chunk's cells of known samples, in (start_pos, sample) order
    cell_row: np.ndarray  # per cell: its row in `batch`
    col: np.ndarray  # per cell: its column in `batch`
    site_cells: np.ndarray  # per row: a cell holding the row's site fields
    extracted: tuple[str, ...]  # the `data` array's extracted `fmt_X`/`info_X` attributes


class BatchReader:
    """Records of a region of `data` as `GenotypeBatch`es (TileDB-VCF's anchor rule)."""

    def __init__(self, data: tiledb.Array, tables: Mapping[str, Sequence[str]]) -> None:
        self._data = data
        self._tables = tables
        names = [data.schema.attr(i).name for i in range(data.schema.nattr)]
        self._extracted = tuple(n for n in names if n.startswith(("fmt_", "info_")))
        self._gap = int(data.meta.get("anchor_gap", layout.ANCHOR_GAP))
        self._filters: dict[tuple[bytes, int], tuple[str, ...]] = {}

    def batches(
        self,
        sources: Sequence[str],
        region: Region,
        columns: Sequence[str],
        *,
        subset: bool,
        lock: Lock | None,
    ) -> Iterator[GenotypeBatch]:
        """Batches of `region` with one column per sample of `columns`.

        `subset`: read only the cells of `columns` (else every sample's, e.g. all samples).
        """
        for cells in self.record_cells(sources, region, columns, subset=subset, lock=lock):
            yield cells.batch

    def record_cells(
        self,
        sources: Sequence[str],
        region: Region,
        columns: Sequence[str],
        *,
        subset: bool,
        lock: Lock | None,
        scan: bool | None = None,
    ) -> Iterator[RecordCells]:
        """`batches` with the cells behind them (for writers that copy their bytes).

        `scan`: read unordered window by window (default: for spans of `SCAN_SPAN` bp up).
        """
        s, e = region.start, region.end - 1
        wanted = tuple(columns) if subset else None
        by_window = e - s + 1 >= SCAN_SPAN if scan is None else scan
        for source in sources:
            lo = max(0, s - self._gap)
            if by_window:
                attrs = (*_SITE_ATTRS, *self._extracted)
                blocks = scan_blocks(self._data, source, lo, e, columns, wanted, attrs, lock)
            else:
                blocks = self._blocks(source, lo, e, wanted, lock)
            yield from self._source_batches(source, blocks, region, tuple(columns))

    def _source_batches(
        self, source: str, blocks: Iterator[Block], region: Region, columns: tuple[str, ...]
    ) -> Iterator[RecordCells]:
        before: list[Block] = []  # anchor-window cells (start_pos < s), which come first
        carry: Block | None = None  # the last position seen, which may go on in the next chunk
        for cells in blocks:
            real, end = cells.fixed["real_start_pos"], cells.fixed["end_pos"]
            chunk = cells.take(anchored(cells.start, real, end, region))
            early = int(np.searchsorted(chunk.start, region.start))
            if early:
                before.append(chunk.slice(0, early))
            block = chunk.slice(early, chunk.n)
            if block.n == 0:
                continue
            if before:
                yield from self._decode(source, Block.concat(before), columns, anchors=True)
                before = []
            if carry is not None:
                same = int(np.searchsorted(block.start, carry.start[0], side="right"))
                if same == block.n:
                    carry = Block.concat([carry, block])
                    continue
                yield from self._decode(
                    source, Block.concat([carry, block.slice(0, same)]), columns, anchors=False
                )
                block = block.slice(same, block.n)
            last = int(np.searchsorted(block.start, block.start[-1]))
            carry = block.slice(last, block.n)
            if last:
                yield from self._decode(source, block.slice(0, last), columns, anchors=False)
        if before:
            yield from self._decode(source, Block.concat(before), columns, anchors=True)
        if carry is not None:
            yield from self._decode(source, carry, columns, anchors=False)

    def _blocks(
        self, source: str, lo: int, hi: int, samples: Sequence[str] | None, lock: Lock | None
    ) -> Iterator[Block]:
        """Chunks of cells in (start_pos, sample) order."""
        if samples is None or len(samples) == 1:
            ranges: object = slice(None) if samples is None else [slice(samples[0], samples[0])]
            yield from self._chunks(source, lo, hi, ranges, "G", lock)
            return
        # TileDB reads several ranges only unordered: gather the (few) cells, then sort.
        names = sorted(samples)
        parts = list(self._chunks(source, lo, hi, [slice(x, x) for x in names], "U", lock))
        if parts:
            block = Block.concat(parts)
            rank, _ = name_columns(block.var["sample"], names)
            yield block.take(np.lexsort((rank, block.start)))

    def _chunks(
        self, source: str, lo: int, hi: int, ranges: object, order: str, lock: Lock | None
    ) -> Iterator[Block]:
        attrs = [*_SITE_ATTRS, *self._extracted]
        query = self._data.query(
            attrs=attrs, dims=["start_pos", "sample"], order=order, return_incomplete=True
        )
        yield from submitted_blocks(query.multi_index[[source], slice(lo, hi), ranges], lock)

    def _decode(
        self, source: str, block: Block, columns: tuple[str, ...], *, anchors: bool
    ) -> Iterator[RecordCells]:
        col, known = name_columns(block.var["sample"], columns)
        if not known.all():
            block, col = block.take(known), col[known]
        if block.n == 0:
            return
        tables = self._column_tables(columns)
        runs = _runs(block, tables[col], same_position=not anchors)
        row_of_run, sites, firsts = self._group(
            source, block, runs, tables[col], anchors=anchors
        )
        lengths = np.diff(np.append(runs, block.n))
        cell_row = np.repeat(row_of_run, lengths)
        cell_row, copied = _split_duplicates(cell_row, col, len(sites), len(columns))
        sites = [sites[k] for k in copied.tolist()]
        batch = _matrix(block, columns, sites, cell_row, col, self._extracted)
        yield RecordCells(batch, block, cell_row, col, firsts[copied], self._extracted)

    def _column_tables(self, columns: tuple[str, ...]) -> np.ndarray:
        ids: dict[int, int] = {}
        return np.array(
            [ids.setdefault(id(self._tables.get(c)), len(ids)) for c in columns], dtype=np.int64
        )

    def _group(
        self, source: str, block: Block, runs: np.ndarray, table_ids: np.ndarray, *, anchors: bool
    ) -> tuple[np.ndarray, list[Site], np.ndarray]:
        """Each run's row, the rows' sites (per position, in first-seen order), and each
        row's first cell."""
        rows: dict[tuple[int, _SiteKey], int] = {}
        row_of_run = np.empty(len(runs), dtype=np.int64)
        sites: list[Site] = []
        firsts: list[int] = []
        start = block.start
        for r, i in enumerate(runs.tolist()):
            key = (0 if anchors else int(start[i]), self._site_key(block, i))
            row = rows.get(key)
            if row is None:
                row = rows[key] = len(sites)
                sites.append(self._site(source, block, i, key[1]))
                firsts.append(i)
            row_of_run[r] = row
        first = np.asarray(firsts, dtype=np.int64)
        if anchors:  # anchor copies come in anchor order; records go by real start
            order = sorted(range(len(sites)), key=lambda k: sites[k].start)
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order))
            return rank[row_of_run], [sites[k] for k in order], first[order]
        return row_of_run, sites, first

    def _site_key(self, block: Block, i: int) -> _SiteKey:
        qual = float(block.fixed["qual"][i])
        return (
            int(block.fixed["real_start_pos"][i]),
            int(block.fixed["end_pos"][i]),
            block.var["alleles"].cell(i),
            block.var["id"].cell(i),
            "nan" if qual != qual else qual,
            self._decode_filters(block, i),
            block.var["info"].cell(i),
        )

    def _decode_filters(self, block: Block, i: int) -> tuple[str, ...]:
        sample = block.var["sample"].cell(i).decode()
        table = self._tables.get(sample, ["PASS"])
        raw = block.var["filter_ids"].cell(i)
        key = (raw, id(table))
        found = self._filters.get(key)
        if found is None:
            ids = np.frombuffer(raw, dtype="<i4").tolist()
            found = self._filters[key] = layout.decode_filters(ids, table)
        return found

    def _site(self, source: str, block: Block, i: int, key: _SiteKey) -> Site:
        alleles = _text(block.var["alleles"].cell(i)).split(",")
        ids = _text(block.var["id"].cell(i))
        info = {
            k: layout.field_value(t, raw)
            for k, t, _c, raw in layout.decode_blob(block.var["info"].cell(i))
        }
        for name in self._extracted:
            if name.startswith("info_"):
                value = layout.decode_field(block.var[name].cell(i))
                if value is not None:
                    info[name[5:]] = layout.field_value(value[0], value[2])
        qual = float(block.fixed["qual"][i])
        return Site(
            contig=normalize_contig(source),
            start=key[0],
            end=key[1] + 1,
            ref=alleles[0],
            alts=tuple(alleles[1:]),
            ids=() if ids in ("", ".") else tuple(ids.split(";")),
            qual=None if qual != qual else qual,
            filters=key[5],
            info=info,
            source_contig=source,
        )


def _runs(block: Block, table_ids: np.ndarray, *, same_position: bool) -> np.ndarray:
    """First cell of each run of cells whose site fields equal the previous cell's."""
    same = np.ones(block.n, dtype=bool)
    same[0] = False
    if same_position:
        same[1:] &= block.start[1:] == block.start[:-1]
    for name in ("real_start_pos", "end_pos"):
        values = block.fixed[name]
        same[1:] &= values[1:] == values[:-1]
    bits = block.fixed["qual"].view(np.uint32)
    same[1:] &= bits[1:] == bits[:-1]
    for name in ("alleles", "id", "info"):
        same &= block.var[name].equal_previous()
    filters = block.var["filter_ids"]
    # FILTER ids index each sample's own header table; only PASS/none mean the same everywhere.
    same_table = np.ones(block.n, dtype=bool)
    same_table[1:] = table_ids[1:] == table_ids[:-1]
    same &= filters.equal_previous() & (same_table | _plain_filters(filters))
    return np.flatnonzero(~same)


def _plain_filters(filters: Var) -> np.ndarray:
    """Cells whose filter_ids are `[0]` (none) or `[1, 0]` (PASS): table-independent."""
    first = filters.words(0)
    second = filters.words(4)
    none = (filters.lengths == 4) & (first == 0)
    passed = (filters.lengths == 8) & (first == 1) & (second == 0)
    return np.asarray(none | passed)


def _split_duplicates(
    cell_row: np.ndarray, col: np.ndarray, n_rows: int, n_cols: int
) -> tuple[np.ndarray, np.ndarray]:
    """A second cell of one sample in one record goes to a copy of that record's row.

    Returns each cell's row and, per row, the record row it is (a copy of)."""
    flat = cell_row * n_cols + col
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    repeat = np.zeros(len(flat), dtype=bool)
    repeat[1:] = ordered[1:] == ordered[:-1]
    if not repeat.any():
        return cell_row, np.arange(n_rows, dtype=np.int64)
    occurrence = np.zeros(len(flat), dtype=np.int64)
    streak = np.flatnonzero(~repeat)
    occurrence[order] = np.arange(len(flat)) - np.repeat(
        streak, np.diff(np.append(streak, len(flat)))
    )
    copies = np.zeros(n_rows, dtype=np.int64)
    np.maximum.at(copies, cell_row, occurrence)
    base = np.concatenate([[0], np.cumsum(copies + 1)[:-1]])
    return base[cell_row] + occurrence, np.repeat(np.arange(n_rows, dtype=np.int64), copies + 1)


def _matrix(
    block: Block,
    columns: tuple[str, ...],
    sites: list[Site],
    cell_row: np.ndarray,
    col: np.ndarray,
    extracted: Sequence[str],
) -> GenotypeBatch:
    alleles, phased = cell_genotypes(block)
    dtype = np.int16 if alleles.size and int(alleles.max()) > 127 else np.int8
    shape = (len(sites), len(columns))
    ploidy = max(1, alleles.shape[1])
    flat = cell_row * shape[1] + col
    full = flat.size == shape[0] * shape[1] and alleles.shape[1] == ploidy
    if full and (flat == np.arange(flat.size)).all():
        # every sample in every record, cells in column order: the matrix as read
        matrix = alleles.astype(dtype).reshape(*shape, ploidy)
        phase, present = phased.reshape(shape), np.ones(shape, dtype=bool)
    else:
        cells = np.full((shape[0] * shape[1], ploidy), NO_ALLELE, dtype=dtype)
        cells[flat, : alleles.shape[1]] = alleles
        matrix = cells.reshape(*shape, ploidy)
        phase, present = _scatter(flat, phased, shape), _scatter(flat, True, shape)
    fields = _field_source(block, cell_row, col, shape, extracted)
    return GenotypeBatch(columns, tuple(sites), matrix, phase, present, fields)


def _scatter(flat: np.ndarray, values: object, shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape[0] * shape[1], dtype=bool)
    out[flat] = values
    return out.reshape(shape)


def _field_source(
    block: Block,
    cell_row: np.ndarray,
    col: np.ndarray,
    shape: tuple[int, int],
    extracted: Sequence[str],
) -> FieldSource | None:
    others = [n for n in extracted if n.startswith("fmt_") and n != "fmt_GT"]
    fmt = block.var["fmt"]
    has_blob = (fmt.lengths >= 4) & (fmt.words(0) > 0)
    if not has_blob.any() and not any((block.var[n].lengths >= 8).any() for n in others):
        return None
    cell = np.full(shape, -1, dtype=np.int64)
    cell[cell_row, col] = np.arange(block.n)

    def fields(row: int, column: int) -> Mapping[str, object]:
        i = int(cell[row, column])
        if i < 0:
            return {}
        out = {
            key: layout.field_value(htype, raw)
            for key, htype, _c, raw in layout.decode_blob(fmt.cell(i))
            if key != "GT"
        }
        for name in others:
            value = layout.decode_field(block.var[name].cell(i))
            if value is not None:
                out[name[4:]] = layout.field_value(value[0], value[2])
        return out

    return fields


def _text(raw: bytes) -> str:
    return raw.decode(errors="replace").rstrip("\0")
