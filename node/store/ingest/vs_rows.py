"""`variant_stats` rows as TileDB-VCF writes them, version 2 or 3 (stats/variant_stats.cc).

TileDB-VCF's writer (`process_v2` / `process_v3`, the same rules) reads each sample's
records as htslib gives them from that sample's own file and keeps one open *locus*
(contig, pos, sample, end): a record at the same locus adds to its rows, any other record,
called or not, closes it. A locus has one row per allele key:

- `ac`: copies of the allele in the sample's calls, summed over the locus' records;
- `an`: the sample's ploidy (GT entries, missing ones included), `n_hom`: calls with every
  entry called and equal, summed; samples with no called allele add no row;
- keys: `ref` for allele 0, else `REF,ALT`; version 2 has a `ref` row for every sample
  with a called allele (all zero without a REF copy); version 3 normalises the key
  (`CAC,C` -> `CA,`: one shared trailing base trimmed) and keys allele 0 `nr` when the
  record is a `<NON_REF>` block (two alleles, ALT `<NON_REF>`) and the sample's first GT
  entry is 0;
- version 3 adds the `sample` and `end` dimensions and `max_length`: the writer's running
  maximum of record lengths (end - pos + 1) over the called records processed so far,
  taken at the locus' last record with that allele.

Rows are built one position at a time (all records of one input there), because TileDB-VCF
processes records by (contig, pos, sample): a sample's running maximum includes the longer
records at its position of samples with smaller names. Sample names and allele keys are
small tables; text columns are gathered from them once per flush, with no Python object
per row. Rows of one position come in sample-name order, so a flush whose positions
strictly increase is already in the array's global order.

Blocks of records of a few samples (`add_block`) make the rows of their common records
(alone at their position, biallelic) at once: the rows of such a record depend only on
its samples' allele lists and its (REF, ALT) key codes, both drawn from small registries.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from node.store.dataset import layout
from node.store.ingest.calls import Calls, allele_rows

if TYPE_CHECKING:
    from node.store.ingest.vcfio import ParsedRecord

__all__ = ["RowBatch", "VariantStatsRows", "normalise_stats_allele"]

SMALL = 8  # positions of one record of at most this many samples: plain Python
_COLUMNS = ("sample", "allele", "ac", "an", "n_hom", "max_length")
NON_REF = "<NON_REF>"


def normalise_stats_allele(ref: str, alt: str) -> str:
    """TileDB-VCF variant_stats v3 key (utils/normalize.cc): when REF and ALT end with the
    same character, one is trimmed from both ("CAC,C" -> "CA,")."""
    if ref and alt and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    return f"{ref},{alt}"


@dataclass(frozen=True, slots=True)
class _Group:
    """The samples of one input: their first id in the name table and name order."""

    offset: int
    order: np.ndarray  # input indexes in sample-name (byte) order
    order_list: list[int]


@dataclass(frozen=True, slots=True)
class _Record:
    end: int
    length: int
    codes: list[int]  # allele key code per allele index
    nr: int  # the "nr" code when the record is a <NON_REF> block (version 3), else -1
    gt: np.ndarray  # input order: allele index, -1 missing, -2 no allele
    calls: Calls | None  # of `gt`, when the caller has it
    rows: list[list[int]] | None = None  # `gt` rows without the -2s, for a few samples


class _Table:
    """Rows of ints in a numpy array that doubles when full: the block path's registries
    grow a few rows at a time and are read by numpy gathers every block."""

    def __init__(self, width: int) -> None:
        self.data = np.zeros((64, width), dtype=np.int64)
        self.size = 0

    def extend(self, rows: Sequence[tuple[int, ...]]) -> int:
        """Appends `rows`; returns the index of the first."""
        start = self.size
        self.size += len(rows)
        while self.size > len(self.data):
            self.data = np.concatenate((self.data, np.zeros_like(self.data)))
        if rows:
            self.data[start : self.size] = rows
        return start


class _Shapes:
    """The rows of a lone biallelic record, by its samples' allele lists (`index` key: the
    one sample's list as a tuple, or each sample's): `spans` (first row, count) of `rows`
    (input index, allele slot, ac, an, n_hom, 1 when max_length is set), signed. Slots: 0
    REF, 1 ALT, 2 REF or "nr" (allele 0 of a first GT entry 0). Id -1: lists the block
    path leaves to `add` (an allele past 1)."""

    def __init__(self, order: list[int], version: int, sign: int) -> None:
        self.order, self.version, self.sign = order, version, sign
        self.index: dict[tuple[object, ...], int] = {}
        self.spans = _Table(2)
        self.rows = _Table(6)

    def add(self, key: tuple[object, ...], rows: list[list[int]]) -> int:
        """`_one_record_small`'s rows, with allele slots for key codes."""
        out: list[tuple[int, ...]] = []
        sign = self.sign
        for i in self.order:
            row = rows[i]
            called = [a for a in row if a >= 0]
            if not called:
                continue
            if max(called) > 1:
                self.index[key] = -1
                return -1
            homozygous = len(called) == len(row) and len(set(called)) == 1
            if self.version < 3 and 0 not in called:  # version 2's empty "ref" row
                out.append((i, 0, 0, 0, 0, 0))
            for allele in sorted(set(called)):
                slot = 2 if allele == 0 and row[0] == 0 else allele
                n = called.count(allele)
                out.append((i, slot, n * sign, len(row) * sign, int(homozygous) * sign, 1))
        shape = self.index[key] = self.spans.extend([(self.rows.extend(out), len(out))])
        return shape


@dataclass(frozen=True, slots=True)
class _Block:
    """The rows of a block's lone records, made at once, emitted a run at a time."""

    lone: np.ndarray  # bool per record
    pair: np.ndarray  # per record: `_pair_codes` row, -1 not known yet
    count: list[int]  # rows per record (0: not lone, or no called allele)
    starts: np.ndarray  # first row of each record, and the total
    record: np.ndarray  # the record of each row
    rows: np.ndarray  # `_Shapes.rows` of each row
    running: np.ndarray  # the longest called lone record up to each record


_LIMIT = 1 << 16  # registry entries kept before starting afresh (new indel alleles)


class VariantStatsRows:
    """Pending variant_stats rows of one ingest (`sign` -1: of removed samples)."""

    def __init__(self, *, version: int = layout.VARIANT_STATS_VERSION, sign: int = 1) -> None:
        if version not in (2, 3):
            raise ValueError(f"variant_stats version {version}: TileDB-VCF writes 2 and 3")
        self.version, self.sign = version, sign
        self.max_length = 0  # the writer's running maximum record length
        self._names: list[bytes] = []
        self._groups: dict[tuple[str, ...], _Group] = {}
        self._alleles: dict[str, int] = {}
        # (REF, ALTs) -> allele key codes and the "nr" code (the same few pairs recur)
        self._codes: dict[tuple[str, tuple[str, ...]], tuple[list[int], int]] = {}
        self._position: tuple[_Group, str, int] | None = None
        self._records: list[_Record] = []
        # the block path's registries: row shapes by sample-name order, (REF, ALT) pairs
        self._shapes: dict[tuple[int, ...], _Shapes] = {}
        self._pairs: dict[tuple[str, tuple[str, ...]], int] = {}
        self._pair_codes = _Table(3)
        self._reset()

    def _reset(self) -> None:
        self._sites: list[tuple[str, int, int, int]] = []  # contig, pos, end, rows
        self._chunks: dict[str, list[np.ndarray]] = {c: [] for c in _COLUMNS}
        self._small: dict[str, list[int]] = {c: [] for c in _COLUMNS}
        self.rows = 0

    def __len__(self) -> int:
        return self.rows + len(self._records)

    def group(self, samples: Sequence[str]) -> _Group:
        key = tuple(samples)
        found = self._groups.get(key)
        if found is None:
            names = [s.encode() for s in key]
            order = sorted(range(len(names)), key=names.__getitem__)
            found = _Group(len(self._names), np.array(order, dtype=np.int64), order)
            self._groups[key] = found
            self._names.extend(names)
        return found

    def _code(self, key: str) -> int:
        return self._alleles.setdefault(key, len(self._alleles))

    def add_block(
        self,
        records: Sequence[ParsedRecord],
        rows: Sequence[list[list[int]]],
        samples: Sequence[str],
    ) -> None:
        """`add` of consecutive records of one input of a few samples; `rows[i]`: the
        allele lists of `records[i]` (no -2).

        A *lone* record (alone at its position, biallelic, alleles 0/1) makes its rows in
        one numpy pass over the block, from its allele lists' shape and its (REF, ALT)
        codes; other records, and the block's last (its position may go on in the next
        block), go through `add`, in record order between runs of lone records."""
        group = self.group(samples)
        if len(group.order_list) > SMALL or not records:
            for r, row in zip(records, rows, strict=True):
                self.add(r.contig, r.pos, r.end, r.ref, r.alts, r.gt, samples, None, row)
            return
        block = self._block(group, records, rows)
        start = 0
        for i in np.flatnonzero(~block.lone | (block.pair < 0)).tolist():
            r = records[i]
            if block.lone[i] and len(r.alts) == 1:  # a (REF, ALT) pair new to the block path
                block.pair[i] = self._pair(r.ref, r.alts)
                continue
            self._emit_lone(group, block, records, start, i)
            self.add(r.contig, r.pos, r.end, r.ref, r.alts, r.gt, samples, None, rows[i])
            start = i + 1
        self._emit_lone(group, block, records, start, len(records))

    def _block(
        self, group: _Group, records: Sequence[ParsedRecord], rows: Sequence[list[list[int]]]
    ) -> _Block:
        shapes = self._shapes.get(tuple(group.order_list))
        if shapes is None or len(shapes.index) > _LIMIT:
            shapes = self._shapes[tuple(group.order_list)] = _Shapes(
                group.order_list, self.version, self.sign
            )
        if len(self._pairs) > _LIMIT:
            self._pairs, self._pair_codes = {}, _Table(3)
        if len(group.order_list) == 1:
            keys: list[tuple[object, ...]] = [tuple(row[0]) for row in rows]
        else:
            keys = [tuple(map(tuple, row)) for row in rows]
        shape = list(map(shapes.index.get, keys))
        if None in shape:
            shape = [shapes.add(k, row) if t is None else t
                     for k, row, t in zip(keys, rows, shape, strict=True)]
        pairs = self._pairs
        pair = np.array([pairs.get((r.ref, r.alts), -1) for r in records], dtype=np.int64)
        pos = np.array([r.pos for r in records], dtype=np.int64)
        end = np.array([r.end for r in records], dtype=np.int64)
        tid = np.array(shape, dtype=np.int64)
        pending = self._position
        joins = bool(self._records) and pending is not None and pending[0] is group and (
            pending[1:] == (records[0].contig, records[0].pos)
        )
        moved = pos[1:] != pos[:-1]
        lone = tid >= 0
        lone[0] &= not joins
        lone[1:] &= moved
        lone[:-1] &= moved
        lone[-1] = False
        spans = shapes.spans.data[tid]
        count = np.where(lone, spans[:, 1], 0)
        starts = np.zeros(len(records) + 1, dtype=np.int64)
        np.cumsum(count, out=starts[1:])
        record = np.repeat(np.arange(len(records)), count)
        index = np.repeat(spans[:, 0] - starts[:-1], count) + np.arange(starts[-1])
        length = np.where(count > 0, end - pos + 1, 0)
        return _Block(
            lone, pair, count.tolist(), starts, record, shapes.rows.data[index],
            np.maximum.accumulate(length),
        )

    def _pair(self, ref: str, alts: tuple[str, ...]) -> int:
        """The block path's id of a biallelic (REF, ALT): its codes are row `id` of
        `_pair_codes` (REF, ALT, and REF's or "nr" for a first GT entry 0)."""
        found = self._codes.get((ref, alts))
        codes, nr = self._new_codes(ref, alts) if found is None else found
        pair = self._pairs[(ref, alts)] = self._pair_codes.extend(
            [(codes[0], codes[1], codes[0] if nr < 0 else nr)]
        )
        return pair

    def _emit_lone(
        self,
        group: _Group,
        block: _Block,
        records: Sequence[ParsedRecord],
        start: int,
        stop: int,
    ) -> None:
        """The rows of the lone records `start` to `stop` (the open position first)."""
        if start >= stop:
            return
        self._finish_position()
        self._position = None
        first, last = int(block.starts[start]), int(block.starts[stop])
        if last > first:
            self._flush_small()
            rows, record = block.rows[first:last], block.record[first:last]
            running = np.maximum(block.running[record], self.max_length) * rows[:, 5]
            chunks = self._chunks
            chunks["sample"].append((rows[:, 0] + group.offset).astype(np.int32))
            chunks["allele"].append(
                self._pair_codes.data[block.pair[record], rows[:, 1]].astype(np.int32)
            )
            chunks["ac"].append(rows[:, 2].astype(np.int32))
            chunks["an"].append(rows[:, 3].astype(np.int32))
            chunks["n_hom"].append(rows[:, 4].astype(np.int32))
            chunks["max_length"].append(running.astype(np.uint32))
            self._sites.extend(
                (r.contig, r.pos, r.end, n)
                for r, n in zip(records[start:stop], block.count[start:stop], strict=True)
                if n
            )
            self.rows += last - first
        self.max_length = max(self.max_length, int(block.running[stop - 1]))

    def add(
        self,
        contig: str,
        pos: int,
        end: int,
        ref: str,
        alts: Sequence[str],
        gt: np.ndarray,
        samples: Sequence[str],
        calls: Calls | None = None,
        rows: list[list[int]] | None = None,
    ) -> None:
        """One record of `samples` (`gt` rows: allele index, -1 missing, -2 no allele;
        `calls`: `Calls(gt)`, when the caller has it; `rows`: the rows without -2s)."""
        group = self.group(samples)
        position = (group, contig, pos)
        if self._position is None or self._position[0] is not group or (
            self._position[1:] != position[1:]
        ):
            self._finish_position()
            self._position = position
        alts = alts if isinstance(alts, tuple) else tuple(alts)
        found = self._codes.get((ref, alts))
        if found is None:
            found = self._new_codes(ref, alts)
        codes, nr = found
        self._records.append(_Record(end, end - pos + 1, codes, nr, gt, calls, rows))

    def _new_codes(self, ref: str, alts: tuple[str, ...]) -> tuple[list[int], int]:
        """The allele key codes of a (REF, ALTs) pair not in the cache (numbering new keys
        in the order records bring them) and its "nr" code, or -1."""
        if len(self._codes) > 100_000:
            self._codes.clear()
        if self.version >= 3:
            keys = [normalise_stats_allele(ref, a) for a in alts]
            nr = self._code("nr") if len(alts) == 1 and alts[0] == NON_REF else -1
        else:
            keys, nr = [f"{ref},{a}" for a in alts], -1
        found = self._codes[(ref, alts)] = ([self._code("ref"), *map(self._code, keys)], nr)
        return found

    def _finish_position(self) -> None:
        if self._position is None or not self._records:
            return
        group, contig, pos = self._position
        records, self._records = self._records, []
        if len(records) == 1 and len(group.order_list) <= SMALL:
            self._one_record_small(group, contig, pos, records[0])
        else:
            self._position_rows(group, contig, pos, records)

    def _one_record_small(self, group: _Group, contig: str, pos: int, rec: _Record) -> None:
        rows = rec.rows if rec.rows is not None else allele_rows(rec.gt)
        running = max(self.max_length, rec.length)
        small, count = self._small, 0
        for i in group.order_list:
            row = rows[i]
            called = [a for a in row if a >= 0]
            if not called:
                continue
            homozygous = len(called) == len(row) and len(set(called)) == 1
            if self.version < 3 and 0 not in called:  # version 2's empty "ref" row
                for name in _COLUMNS:
                    small[name].append(0)
                small["sample"][-1] = group.offset + i
                small["allele"][-1] = rec.codes[0]
                count += 1
            for allele in sorted(set(called)):
                nr = allele == 0 and rec.nr >= 0 and row[0] == 0
                small["sample"].append(group.offset + i)
                small["allele"].append(rec.nr if nr else rec.codes[allele])
                small["ac"].append(called.count(allele) * self.sign)
                small["an"].append(len(row) * self.sign)
                small["n_hom"].append(int(homozygous) * self.sign)
                small["max_length"].append(running)
                count += 1
        if count:
            self.max_length = running
            self._sites.append((contig, pos, rec.end, count))
            self.rows += count

    def _position_rows(
        self, group: _Group, contig: str, pos: int, records: list[_Record]
    ) -> None:
        """Rows of the records of one input at one position, as TileDB-VCF builds them."""
        order = group.order  # rows below are in sample-name order
        calls = [Calls(r.gt) if r.calls is None else r.calls for r in records]
        lengths = np.array([r.length for r in records], dtype=np.int64)
        called = np.stack([c.called[order] for c in calls], axis=1)  # samples x records
        seen = np.where(called, lengths, 0)
        own = np.maximum.accumulate(seen, axis=1)  # this sample's records so far
        before = np.maximum.accumulate(np.concatenate(([self.max_length], seen.max(axis=1))))
        running = np.maximum(before[:-1, None], own)  # + the samples with smaller names
        self.max_length = int(before[-1])
        start = 0
        for end, run in itertools.groupby(range(len(records)), key=lambda j: records[j].end):
            stop = start + len(list(run))
            parts = [
                _record_rows(records[j], calls[j], order, running[:, j], self.version)
                for j in range(start, stop)
            ]
            rows = [np.concatenate(column) for column in zip(*parts, strict=True)]
            if stop - start > 1:
                rows = _merge_locus(rows)
            self._emit(group, contig, pos, end, rows)
            start = stop

    def _emit(
        self, group: _Group, contig: str, pos: int, end: int, rows: list[np.ndarray]
    ) -> None:
        sample, allele, ac, an, hom, running = rows[:6]
        if sample.size == 0:
            return
        self._flush_small()
        chunks = self._chunks
        chunks["sample"].append((group.order[sample] + group.offset).astype(np.int32))
        chunks["allele"].append(allele.astype(np.int32))
        chunks["ac"].append((ac * self.sign).astype(np.int32))
        chunks["an"].append((an * self.sign).astype(np.int32))
        chunks["n_hom"].append((hom * self.sign).astype(np.int32))
        chunks["max_length"].append(running.astype(np.uint32))
        self._sites.append((contig, pos, end, int(sample.size)))
        self.rows += int(sample.size)

    def _flush_small(self) -> None:
        if self._small["sample"]:
            for name, values in self._small.items():
                dtype = np.uint32 if name == "max_length" else np.int32
                self._chunks[name].append(np.asarray(values, dtype=dtype))
            self._small = {c: [] for c in _COLUMNS}

    def take(self, *, final: bool = True) -> RowBatch:
        """The pending rows (cheap: the columns are built by `RowBatch.columns`). Unless
        `final`, the records of the current position stay (a locus is not split)."""
        if final:
            self._finish_position()
        self._flush_small()
        counts = {
            name: np.concatenate(chunks) if chunks else np.zeros(0, np.int32)
            for name, chunks in self._chunks.items()
        }
        alleles = sorted(self._alleles, key=lambda k: self._alleles[k])
        batch = RowBatch(self._sites, counts, list(self._names), alleles, self.version)
        self._reset()
        return batch


def _record_rows(
    rec: _Record, calls: Calls, order: np.ndarray, running: np.ndarray, version: int
) -> tuple[np.ndarray, ...]:
    """One record's (sample, key, ac, an, n_hom, max_length, touched) rows, samples by
    name (`order`); version 2 adds an untouched all-zero `ref` row for a call without REF."""
    copies = calls.copies(len(rec.codes))[order]
    if version < 3:
        copies[calls.called[order] & (copies[:, 0] == 0), 0] = -1  # the empty row, zeroed below
    rows, alleles = np.nonzero(copies)
    key = np.asarray(rec.codes, dtype=np.int64)[alleles]
    if rec.nr >= 0:
        first = calls.gt[order[rows], 0]
        key[(alleles == 0) & (first == 0)] = rec.nr
    ac = copies[rows, alleles]
    touched = ac > 0
    sample = order[rows]
    return (
        rows,
        key,
        np.where(touched, ac, 0),
        np.where(touched, calls.ploidy[sample], 0),
        np.where(touched, calls.homozygous[sample], False).astype(np.int64),
        np.where(touched, running[rows], 0),
        touched,
    )


def _merge_locus(rows: list[np.ndarray]) -> list[np.ndarray]:
    """One row per (sample, key) of a locus' records (in record order): `ac` and `n_hom`
    summed, `an` and `max_length` of the last record with that allele (TileDB-VCF
    overwrites them; version 2's empty `ref` rows set nothing)."""
    sample, key, ac, an, hom, running, touched = rows
    if sample.size == 0:
        return rows
    # stable: untouched rows first, then record order, within a (sample, key)
    order = np.lexsort((touched, key, sample))
    sample, key = sample[order], key[order]
    new = np.ones(sample.size, dtype=bool)
    new[1:] = (sample[1:] != sample[:-1]) | (key[1:] != key[:-1])
    first = np.flatnonzero(new)
    last = np.concatenate((first[1:] - 1, [sample.size - 1]))
    return [
        sample[first],
        key[first],
        np.add.reduceat(ac[order], first),
        an[order][last],
        np.add.reduceat(hom[order], first),
        running[order][last],
    ]


@dataclass(slots=True)
class RowBatch:
    """One flush of variant_stats rows; `columns()` may run on a writer thread."""

    sites: list[tuple[str, int, int, int]]
    counts: dict[str, np.ndarray]
    names: list[bytes]
    alleles: list[str]
    version: int = layout.VARIANT_STATS_VERSION

    def ordered(self) -> bool:
        """Whether the rows are in global order: sites strictly increasing by (contig, pos)."""
        keys = [(c.encode(), p) for c, p, _, _ in self.sites]
        return all(a < b for a, b in itertools.pairwise(keys))

    def columns(self) -> dict[str, object]:
        sites = self.sites
        per_site = np.fromiter((s[3] for s in sites), dtype=np.int64, count=len(sites))
        contigs = sorted({s[0] for s in sites})
        contig_code = {c: i for i, c in enumerate(contigs)}
        site_contig = np.fromiter((contig_code[s[0]] for s in sites), np.int64, len(sites))

        def repeat(index: int) -> np.ndarray:
            values = np.fromiter((s[index] for s in sites), dtype=np.uint32, count=len(sites))
            return np.repeat(values, per_site)

        c = self.counts
        out: dict[str, object] = {
            "contig": gather_text([x.encode() for x in contigs], np.repeat(site_contig, per_site)),
            "pos": repeat(1),
            "allele": gather_text([a.encode() for a in self.alleles], c["allele"]),
            "ac": c["ac"],
            "an": c["an"],
            "n_hom": c["n_hom"],
        }
        if self.version >= 3:
            out["sample"] = gather_text(self.names, c["sample"])
            out["end"] = repeat(2)
            out["max_length"] = c["max_length"].astype(np.uint32)
        return out


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
