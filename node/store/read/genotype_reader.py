"""Region reads of `fednode_genotypes` into `GenotypeBatch`es (see `genotype_rows`).

A cell is one input record with the packed genotypes of its input's samples, so a region
of 2,504 samples is one cell per record rather than 2,504; the matrix is assembled from
the packed codes by whole-row copies. What comes out equals the `data` path (`records`):

- the region rule is `overlap.anchored` on (pos, real_start, end);
- cells of several ingests with equal site fields at one position form one record, a
  duplicated input line (two equal cells of one input) a second copy of it;
- records go by start, then by their smallest sample name among the columns asked for
  (the order in which `data`, sorted by (start_pos, sample), first shows them), then by
  cell order;
- a sample's genotypes come only from its live group (the last ingest that wrote it), so
  a `--replace`d sample's older cells show nothing of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from threading import Lock

import numpy as np
import tiledb

from node.domain import Region, normalize_contig
from node.store.dataset import layout
from node.store.ingest.genotype_rows import GROUP_META, WIDE
from node.store.read.batch import NO_ALLELE, FieldSource, GenotypeBatch, Site
from node.store.read.columns import Block, Var, submitted_blocks
from node.store.read.overlap import anchored

__all__ = ["BULK_READ", "BULK_SPAN", "SMALL_READ", "GenotypeReader"]

_ATTRS = (
    "real_start", "end", "qual", "alleles", "id", "filters", "info", "group", "shape", "gt",
    "phased", "fmt",
)  # fmt: skip
_BATCH_BYTES = 32 << 20  # packed codes decoded per batch (a batch's matrix is about this)
# tiledb-py allocates its result buffers per attribute and query (10 MB each by default),
# and each refill is a new submit (3 for 1 Mb of 2,504 samples, 0.13 s against 0.055 s for
# one). Large regions are read with 64 MB buffers; small ones (one-site reads: Beacon
# records, carriers of a variant, thousands per entry query) with 1 MB ones, as allocating
# and freeing 12 x 64 MB per one-site read made them seconds-slow in aggregate. The store
# opens the array once with each.
BULK_READ = {"py.init_buffer_bytes": str(64 << 20)}
SMALL_READ = {"py.init_buffer_bytes": str(1 << 20)}
BULK_SPAN = 100_000  # bp from which a region is read with BULK_READ
_Key = tuple[int, int, bytes, bytes, object, bytes, bytes]


@dataclass(frozen=True, slots=True)
class _Group:
    """One input's samples as the read asks for them."""

    size: int  # samples in the input
    sel: np.ndarray  # their indexes in the input that are live and asked for
    out: np.ndarray  # the output column of each
    first: bytes  # the smallest of their names


class GenotypeReader:
    """Records of a region of `fednode_genotypes` as `GenotypeBatch`es."""

    def __init__(self, array: tiledb.Array, *, small: tiledb.Array | None = None) -> None:
        """`array` opened with BULK_READ; `small` the same array with SMALL_READ."""
        self._array = array
        self._small = small if small is not None else array
        self._gap = int(array.meta.get("anchor_gap", layout.ANCHOR_GAP))
        self._groups: dict[int, tuple[str, ...]] = {}
        for key in array.meta:
            if key.startswith(GROUP_META):
                names = json.loads(layout.meta_str(array.meta, key))
                self._groups[int(key[len(GROUP_META) :])] = tuple(names)
        self._live: dict[str, int] = {}  # sample -> the last group that wrote it
        for key in sorted(self._groups):
            self._live.update(dict.fromkeys(self._groups[key], key))

    def batches(
        self, sources: Sequence[str], region: Region, columns: Sequence[str], *, lock: Lock | None
    ) -> Iterator[GenotypeBatch]:
        plan = self._plan(tuple(columns))
        s, e = region.start, region.end - 1
        for source in sources:
            yield from self._source_batches(source, s, e, tuple(columns), plan, lock)

    def _plan(self, columns: tuple[str, ...]) -> dict[int, _Group]:
        index: dict[str, int] = {}
        for i, name in enumerate(columns):
            index.setdefault(name, i)
        plan = {}
        for key, names in self._groups.items():
            picked = [
                (j, index[n]) for j, n in enumerate(names) if n in index and self._live[n] == key
            ]
            if picked:
                sel, out = (np.asarray(v, dtype=np.int64) for v in zip(*picked, strict=True))
                first = min(names[j].encode() for j, _ in picked)
                plan[key] = _Group(len(names), sel, out, first)
        return plan

    def _source_batches(
        self,
        source: str,
        s: int,
        e: int,
        columns: tuple[str, ...],
        plan: dict[int, _Group],
        lock: Lock | None,
    ) -> Iterator[GenotypeBatch]:
        """Batches cut between positions, never inside the anchor window (all of it first:
        its records go by real start, not by the anchor position they were found at)."""
        pending: list[Block] = []
        size = 0
        for chunk in self._chunks(source, max(0, s - self._gap), e, lock):
            pending.append(chunk)
            size += chunk.var["gt"].data.size
            last = int(chunk.start[-1]) if chunk.n else -1
            if size < _BATCH_BYTES or last < s:
                continue
            block = Block.concat(pending)
            cut = int(np.searchsorted(block.start, last))
            if cut == 0:
                continue
            yield from self._decode(source, block.slice(0, cut), s, e, columns, plan)
            pending = [block.slice(cut, block.n)]
            size = pending[0].var["gt"].data.size
        if pending:
            yield from self._decode(source, Block.concat(pending), s, e, columns, plan)

    def _chunks(self, source: str, lo: int, hi: int, lock: Lock | None) -> Iterator[Block]:
        array = self._array if hi - lo >= BULK_SPAN else self._small
        query = array.query(attrs=_ATTRS, dims=["pos"], order="G", return_incomplete=True)
        yield from submitted_blocks(query.multi_index[[source], slice(lo, hi)], lock, start="pos")

    def _decode(
        self,
        source: str,
        block: Block,
        s: int,
        e: int,
        columns: tuple[str, ...],
        plan: dict[int, _Group],
    ) -> Iterator[GenotypeBatch]:
        if block.n == 0:
            return
        region = Region(source, s, e + 1)
        keep = anchored(block.start, block.fixed["real_start"], block.fixed["end"], region)
        keep &= np.isin(block.fixed["group"], list(plan))
        cells = np.flatnonzero(keep)
        if cells.size == 0:
            return
        keys = _site_keys(block, cells)
        rows = _Rows.of(block, cells, keys, plan)
        contig = normalize_contig(source)
        infos: dict[bytes, dict[str, object]] = {}  # INFO blobs repeat: decoded once
        sites = tuple(_site(contig, source, keys[k], infos) for k in rows.site_cells.tolist())
        yield _assemble(block, cells, rows, sites, columns, plan)


@dataclass(frozen=True, slots=True)
class _Rows:
    """The output row of each kept cell, and for each row the cell its site fields come from."""

    row: np.ndarray  # per kept cell
    site_cells: np.ndarray  # per output row: the kept cell its site fields come from

    @classmethod
    def of(
        cls, block: Block, cells: np.ndarray, site_keys: list[_Key], plan: dict[int, _Group]
    ) -> _Rows:
        keys: dict[_Key, int] = {}
        rank: list[tuple[int, bytes, int]] = []  # per record: start, first name, cell
        record = np.empty(cells.size, dtype=np.int64)
        occurrence = np.empty(cells.size, dtype=np.int64)
        seen: dict[tuple[int, int], int] = {}
        groups = block.fixed["group"][cells].tolist()
        for k, key in enumerate(site_keys):
            r = keys.setdefault(key, len(keys))
            seen_at = (key[0], plan[groups[k]].first, k)
            if r == len(rank):
                rank.append(seen_at)
            elif seen_at < rank[r]:
                rank[r] = seen_at
            record[k] = r
            occurrence[k] = seen.get((r, groups[k]), 0)
            seen[(r, groups[k])] = occurrence[k] + 1
        copies = np.zeros(len(rank), dtype=np.int64)
        np.maximum.at(copies, record, occurrence + 1)
        order = sorted(range(len(rank)), key=rank.__getitem__)
        base = np.empty(len(rank), dtype=np.int64)
        base[order] = np.concatenate([[0], np.cumsum(copies[order])[:-1]])
        first_cell = np.asarray([rank[r][2] for r in order], dtype=np.int64)
        return cls(base[record] + occurrence, np.repeat(first_cell, copies[order]))


def _site_keys(block: Block, cells: np.ndarray) -> list[_Key]:
    """The site fields of each of `cells`; equal records have equal keys (NaN QUAL too)."""
    quals = ["nan" if q != q else q for q in block.fixed["qual"][cells].tolist()]
    return list(
        zip(
            block.fixed["real_start"][cells].tolist(),
            block.fixed["end"][cells].tolist(),
            *(_cells(block.var[name], cells) for name in ("alleles", "id")),
            quals,
            *(_cells(block.var[name], cells) for name in ("filters", "info")),
            strict=True,
        )
    )


def _cells(var: Var, cells: np.ndarray) -> list[bytes]:
    raw = var.data.tobytes()
    starts = var.starts[cells].tolist()
    ends = (var.starts[cells] + var.lengths[cells]).tolist()
    return [raw[a:b] for a, b in zip(starts, ends, strict=True)]


def _site(contig: str, source: str, key: _Key, infos: dict[bytes, dict[str, object]]) -> Site:
    start, end, alleles, ids, qual, filters, info = key
    fields = infos.get(info)
    if fields is None:
        blob = layout.decode_blob(info)
        fields = infos[info] = {k: layout.field_value(t, raw) for k, t, _c, raw in blob}
    names = alleles.decode(errors="replace").split(",")
    text = ids.decode(errors="replace")
    return Site(
        contig=contig,
        start=start,
        end=end + 1,
        ref=names[0],
        alts=tuple(names[1:]),
        ids=() if text in ("", ".") else tuple(text.split(";")),
        qual=qual if isinstance(qual, float) else None,
        filters=tuple(filters.decode(errors="replace").split(";")) if filters else (),
        info=fields,
        source_contig=source,
    )


def _assemble(
    block: Block,
    cells: np.ndarray,
    rows: _Rows,
    sites: tuple[Site, ...],
    columns: tuple[str, ...],
    plan: dict[int, _Group],
) -> GenotypeBatch:
    shapes = block.fixed["shape"][cells]
    ploidy = max(1, int((shapes & ~np.uint8(WIDE)).max()))
    wide = bool((shapes & WIDE).any())
    shape = (len(sites), len(columns))
    buckets: dict[tuple[int, int], list[int]] = {}
    groups = block.fixed["group"][cells].tolist()
    for k, (g, sh) in enumerate(zip(groups, shapes.tolist(), strict=True)):
        buckets.setdefault((g, sh), []).append(k)
    fields = _field_source(block, cells, rows, shape, plan)
    if len(buckets) == 1 and _identity(rows.row, shape[0]):
        (g, sh), _ = next(iter(buckets.items()))
        if _identity(plan[g].out, shape[1]) and _identity(plan[g].sel, plan[g].size):
            # one input, every sample, one cell per row in order: the matrix as stored
            codes, phase = _unpacked(block, cells, plan[g], sh)
            present = np.ones(shape, dtype=bool)
            return GenotypeBatch(columns, sites, codes, phase, present, fields)
    alleles = np.full((*shape, ploidy), NO_ALLELE, dtype=np.int16 if wide else np.int8)
    phased = np.zeros(shape, dtype=bool)
    present = np.zeros(shape, dtype=bool)
    for (g, sh), members in buckets.items():
        where = np.asarray(members, dtype=np.int64)
        target, group = rows.row[where], plan[g]
        codes, phase = _unpacked(block, cells[where], group, sh)
        p = codes.shape[2]
        if not _identity(group.sel, group.size):
            codes, phase = codes[:, group.sel], phase[:, group.sel]
        if _identity(group.out, shape[1]):
            alleles[target, :, :p] = codes
            phased[target], present[target] = phase, True
        else:
            alleles[target[:, None], group.out[None, :], :p] = codes
            phased[target[:, None], group.out[None, :]] = phase
            present[target[:, None], group.out[None, :]] = True
    if wide and int(alleles.max()) <= 127:  # as `data` reads it: int16 only when needed
        alleles = alleles.astype(np.int8)
    return GenotypeBatch(columns, sites, alleles, phased, present, fields)


def _unpacked(block: Block, cells: np.ndarray, group: _Group, shape: int) -> tuple[np.ndarray, ...]:
    """Allele codes (cells, samples, ploidy) and phase (cells, samples) of the input's samples."""
    p, size = shape & ~WIDE, 2 if shape & WIDE else 1
    codes = _cell_bytes(block.var["gt"], cells, group.size * p * size)
    codes = codes.view("<i2" if size == 2 else np.int8).reshape(len(cells), group.size, p)
    bits = _cell_bytes(block.var["phased"], cells, -(-group.size // 8))
    phase = np.unpackbits(bits, axis=1, count=group.size).view(bool)
    return codes, phase


def _identity(index: np.ndarray, size: int) -> bool:
    return index.size == size and bool((index == np.arange(size)).all())


def _cell_bytes(var: Var, cells: np.ndarray, width: int) -> np.ndarray:
    """(len(cells), width) uint8: the bytes of each of `cells`, all `width` long."""
    if var.uniform() and int(var.lengths[0]) == width:
        matrix = var.matrix()
        return matrix if cells.size == var.n and _identity(cells, var.n) else matrix[cells]
    out = np.empty((cells.size, width), dtype=np.uint8)
    for k, start in enumerate(var.starts[cells].tolist()):
        out[k] = var.data[start : start + width]
    return out


def _field_source(
    block: Block,
    cells: np.ndarray,
    rows: _Rows,
    shape: tuple[int, int],
    plan: dict[int, _Group],
) -> FieldSource | None:
    """FORMAT fields other than GT, decoded per call when asked for (None: no cell has any)."""
    fmt = block.var["fmt"]
    with_fields = np.flatnonzero(fmt.lengths[cells] > 0)
    if with_fields.size == 0:
        return None
    cell = np.full(shape, -1, dtype=np.int64)
    column = np.full(shape, -1, dtype=np.int64)
    groups = block.fixed["group"]
    for k in with_fields.tolist():
        group = plan[int(groups[cells[k]])]
        cell[rows.row[k], group.out] = cells[k]
        column[rows.row[k], group.out] = group.sel

    def fields(row: int, col: int) -> dict[str, object]:
        i = int(cell[row, col])
        if i < 0:
            return {}
        blob = fmt.cell(i)
        size = plan[int(groups[i])].size
        lengths = np.frombuffer(blob, dtype="<u4", count=size)
        j = int(column[row, col])
        start = 4 * size + int(lengths[:j].sum())
        one = blob[start : start + int(lengths[j])]
        return {
            key: layout.field_value(htype, raw)
            for key, htype, _c, raw in layout.decode_blob(one)
            if key != "GT"
        }

    return fields
