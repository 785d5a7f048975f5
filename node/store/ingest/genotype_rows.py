"""`GenotypeRows`: one ingest's `fednode_genotypes` cells, buffered and turned into columns.

One cell per input record (and per anchor copy of a long record, at the positions `data`
uses), holding the record's site fields once and the genotypes of all the input's samples
packed: allele codes (samples x ploidy, int8, int16 when an index exceeds 127), phase bits
and, when any sample has FORMAT fields besides GT, their blobs. The codes are what the
`data` path decodes from `fmt_GT` (`gt_codes.cell_genotypes`), computed from the same
parsed genotypes, so both paths give the same matrix.

An input's samples are named once, in the array metadata `samples_<group>` (input order),
written at the ingest's timestamp like every fragment, so a killed ingest leaves neither.
`group` is `timestamp << 16 | input index`: later ingests have larger groups, and a
sample's live group is the largest that lists it (how `--replace` hides older genotypes).
"""

from __future__ import annotations

import itertools
import json
import struct
from collections.abc import Sequence
from operator import itemgetter
from typing import cast

import numpy as np

from node.errors import InvalidInput
from node.store.dataset import layout
from node.store.dataset.write_buffers import VarChunk
from node.store.ingest.vcfio import ParsedRecord
from node.store.read.batch import MISSING, NO_ALLELE

__all__ = ["GROUP_META", "GenotypeRows", "pack_calls"]

GROUP_META = "samples_"
WIDE = 128  # `shape` flag: int16 codes
_MAX_INPUTS = 1 << 16  # inputs per ingest: the low bits of a group
_NO_FIELDS = struct.pack("<I", 0)
_LENGTH = struct.Struct("<I")  # one sample's FORMAT blob length
# contig, pos (anchor), real start, end, qual, alleles, id, filters, info, group, shape,
# gt, phased, fmt
_Row = tuple[bytes, int, int, int, float, bytes, bytes, bytes, bytes, int, int, bytes, bytes, bytes]


def pack_calls(rec: ParsedRecord) -> tuple[int, bytes, bytes, bytes]:
    """`shape`, allele codes, phase bits and FORMAT blobs of every sample of `rec`.

    As htslib encodes GT (`vcfio._gt_blobs`) and `gt_codes` decodes it: a call's first
    `width` slots (its alleles up to the last present one) are its alleles, `.` = MISSING,
    the rest NO_ALLELE; phased only with two or more slots.
    """
    if rec.rows is not None:
        return _pack_small(rec)
    gt = rec.gt
    if gt.size and int(gt.min()) >= MISSING:  # every call of full ploidy: codes as parsed
        alleles = gt
        phase = rec.phased if gt.shape[1] > 1 else np.zeros(len(gt), dtype=bool)
    else:
        width = (gt != NO_ALLELE).sum(axis=1)
        slots = np.arange(gt.shape[1])[None, :] < width[:, None]
        alleles = np.where(slots, np.where(gt >= 0, gt, MISSING), NO_ALLELE)
        phase = np.asarray(rec.phased, dtype=bool) & (width > 1)
    wide = alleles.size > 0 and int(alleles.max()) > 127
    codes = alleles.astype("<i2" if wide else np.int8).tobytes()
    phased = np.packbits(phase).tobytes()
    shape = gt.shape[1] | (WIDE if wide else 0)
    return shape, codes, phased, _format_blobs(rec.fmt)


def _pack_small(rec: ParsedRecord) -> tuple[int, bytes, bytes, bytes]:
    """`pack_calls` of a record of a few samples (`rec.rows`), in plain Python: the same
    bytes (tests/store/test_small_paths.py)."""
    rows = rec.rows or []
    ploidy = rec.gt.shape[1]
    codes: list[int] = []
    bits = 0
    for i, (row, phased) in enumerate(zip(rows, rec.phased.tolist(), strict=True)):
        codes.extend(row)
        codes.extend([NO_ALLELE] * (ploidy - len(row)))
        if phased and len(row) > 1:
            bits |= 0x80 >> (i % 8) << (8 * (i // 8))
    wide = bool(codes) and max(codes) > 127
    packed = struct.pack(f"<{len(codes)}{'h' if wide else 'b'}", *codes)
    phase = bits.to_bytes((len(rows) + 7) // 8, "little")
    n = len(rows)
    fmt = rec.fmt
    blobs = b"" if fmt.data == _NO_FIELDS * n else (
        struct.pack(f"<{n}I", *fmt.lengths.tolist()) + fmt.data
    )
    return ploidy | (WIDE if wide else 0), packed, phase, blobs


def _call(rec: ParsedRecord) -> tuple[int, bytes, bytes, int]:
    """`shape`, codes and phase bits of a one-sample record, and their part of its cell's size
    (with the 256 `add` counts per cell)."""
    shape, codes, phased, _ = _pack_small(rec)
    return shape, codes, phased, len(codes) + len(phased) + 256


def _site(rec: ParsedRecord) -> tuple[bytes, bytes, int]:
    """A record's alleles and FILTER names as stored, and their size."""
    alleles = ",".join((rec.ref, *rec.alts)).encode()
    filters = ";".join(rec.filters).encode()
    return alleles, filters, len(alleles) + len(filters)


def _format_blobs(fmt: VarChunk) -> bytes:
    """Empty when no sample has fields; else uint32 lengths (one per sample), then the blobs."""
    n = len(fmt)
    if fmt.data == _NO_FIELDS * n:
        return b""
    return np.asarray(fmt.lengths, dtype="<u4").tobytes() + fmt.data


class GenotypeRows:
    """Buffered cells of one ingest; `take` hands them over as write columns."""

    def __init__(self, timestamp: int) -> None:
        self.timestamp = timestamp
        self.groups: dict[int, tuple[str, ...]] = {}
        self.bytes = 0
        self._rows: list[_Row] = []

    def group(self, samples: Sequence[str], *, index: int | None = None) -> int:
        """The group of the next input's records (its samples in input order); `index`:
        the input's place in the ingest when not the next (a task of a partitioned one)."""
        index = len(self.groups) if index is None else index
        if index >= _MAX_INPUTS:
            raise InvalidInput(f"more than {_MAX_INPUTS} input files in one ingest")
        key = self.timestamp << 16 | index
        self.groups[key] = tuple(samples)
        return key

    def add_block(self, records: Sequence[ParsedRecord], group: int) -> None:
        """`add` of consecutive records of one input: the same cells in the same order.

        A one-sample record of one cell (the usual case) skips `pack_calls` and most of the
        encoding: its calls, FORMAT blob lengths and site fields (alleles, FILTER) repeat
        from record to record, so each distinct one is packed once per block. Any other
        record (several samples, a long record with anchor copies) goes through `add`.
        """
        rows = self._rows
        calls: dict[tuple[object, ...], tuple[int, bytes, bytes, int]] = {}
        sites: dict[tuple[object, ...], tuple[bytes, bytes, int]] = {}
        heads: dict[int, bytes] = {}
        name, contig = "", b""
        added, gap, no_fields = 0, layout.ANCHOR_GAP, _NO_FIELDS
        for rec in records:
            samples = rec.rows
            if samples is None or len(samples) != 1 or rec.end - rec.pos > gap:
                self.add(rec, group)
                continue
            key = (rec.gt.size, rec.phased[0], *samples[0])  # one sample: size = ploidy
            shape, codes, phased, size = calls.get(key) or calls.setdefault(key, _call(rec))
            key = (rec.ref, rec.alts, rec.filters)
            alleles, filters, length = sites.get(key) or sites.setdefault(key, _site(rec))
            fmt = rec.fmt.data  # one sample's blob: its length is the data's
            if fmt != no_fields:
                n = len(fmt)
                fmt = (heads.get(n) or heads.setdefault(n, _LENGTH.pack(n))) + fmt
            else:
                fmt = b""
            if rec.contig != name:
                name, contig = rec.contig, rec.contig.encode()
            ids, info = rec.ids.encode(), rec.info
            rows.append((contig, rec.pos, rec.pos, rec.end, rec.qual, alleles, ids, filters,
                         info, group, shape, codes, phased, fmt))
            added += size + length + len(ids) + len(info) + len(fmt)
        self.bytes += added

    def add(self, rec: ParsedRecord, group: int) -> None:
        shape, codes, phased, fmt = pack_calls(rec)
        site = (
            (",".join((rec.ref, *rec.alts))).encode(),
            rec.ids.encode(),
            ";".join(rec.filters).encode(),
            rec.info,
        )
        contig = rec.contig.encode()
        size = len(codes) + len(phased) + len(fmt) + sum(map(len, site)) + 256
        for anchor in range(rec.pos, max(rec.end, rec.pos + 1), layout.ANCHOR_GAP):
            row = (contig, anchor, rec.pos, rec.end, rec.qual, *site, group, shape)
            self._rows.append((*row, codes, phased, fmt))
            self.bytes += size

    def take(self) -> tuple[dict[str, object], bool] | None:
        """The buffered cells as columns, and whether they are in global order."""
        rows, self._rows, self.bytes = self._rows, [], 0
        if not rows:
            return None
        columns = cell_columns(rows)
        return columns, _ordered(rows, cast(np.ndarray, columns["pos"]))

    def metadata(self) -> dict[str, str]:
        return {f"{GROUP_META}{k}": json.dumps(list(v)) for k, v in self.groups.items()}


def _ordered(rows: Sequence[_Row], anchors: np.ndarray) -> bool:
    """Whether the cells are in global order: (contig, anchor) never decreases. One contig
    (the usual buffer) is a check of the anchors alone."""
    contigs = list(map(itemgetter(0), rows))
    if contigs.count(contigs[0]) == len(contigs):
        return bool((anchors[1:] >= anchors[:-1]).all())
    return all(a[:2] <= b[:2] for a, b in itertools.pairwise(rows))


def cell_columns(rows: Sequence[tuple[object, ...]]) -> dict[str, object]:
    """`fednode_genotypes` write columns of cells given as tuples (contig, anchor, real
    start, end, qual, alleles, id, filters, info, group, shape, gt, phased, fmt).

    Read column by column (`itemgetter`), not transposed with `zip(*rows)`: that builds
    one iterator per row and costs several times more per cell.
    """
    n = len(rows)

    def fixed(i: int, dtype: type[np.generic]) -> np.ndarray:
        return np.fromiter(map(itemgetter(i), rows), dtype=dtype, count=n)

    def var(i: int) -> layout.Var:
        return _var(list(map(itemgetter(i), rows)))

    columns: dict[str, object] = {"contig": var(0), "pos": fixed(1, np.uint32)}
    columns.update(real_start=fixed(2, np.uint32), end=fixed(3, np.uint32))
    columns["qual"] = fixed(4, np.float32)
    for i, name in enumerate(("alleles", "id", "filters", "info"), start=5):
        columns[name] = var(i)
    columns.update(group=fixed(9, np.uint64), shape=fixed(10, np.uint8))
    for i, name in enumerate(("gt", "phased", "fmt"), start=11):
        columns[name] = var(i)
    return columns


def _var(values: list[bytes]) -> layout.Var:
    """`Var(values)`, without a length per cell when every cell holds the same bytes (the
    contig, an ID of `.`, FILTER `PASS`: most cells of one input)."""
    first = values[0] if values else None
    if first is None or values[-1] != first or values.count(first) != len(values):
        return layout.Var(values)
    out = layout.Var([])
    out.offsets = np.arange(len(values), dtype=np.uint64) * np.uint64(len(first))
    out.data = np.frombuffer(first * len(values), dtype=np.uint8)
    return out
