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
    blobs = (
        b""
        if fmt.data == _NO_FIELDS * n
        else (struct.pack(f"<{n}I", *fmt.lengths.tolist()) + fmt.data)
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
    """Buffered cells of one ingest; `take` hands them over as write columns.

    Cells are held in parts, in the order they came: the columns of a block of one-sample
    records (`add_block`), or row tuples (`add`: any other record).
    """

    def __init__(self, timestamp: int) -> None:
        self.timestamp = timestamp
        self.groups: dict[int, tuple[str, ...]] = {}
        self.bytes = 0
        self._parts: list[_Columns | list[_Row]] = []

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

        A block of one-sample records (the usual case) is held as columns, without
        `pack_calls` or a tuple per record: its calls, FORMAT blob lengths and site fields
        (alleles, FILTER) repeat from record to record, so each distinct one is packed once
        per block. A block of any other records goes through `add`.
        """
        if not records:
            return
        if any(r.rows is None or len(r.rows) != 1 for r in records):
            for rec in records:
                self.add(rec, group)
            return
        k = len(records)
        calls: dict[tuple[object, ...], tuple[int, bytes, bytes, int]] = {}
        sites: dict[tuple[object, ...], tuple[bytes, bytes, int]] = {}
        contigs: dict[str, bytes] = {}
        packed = [
            calls.get(key) or calls.setdefault(key, _call(rec))
            for rec, key in zip(
                records,
                # one sample: gt.size is its ploidy
                [(r.gt.size, r.phased[0], *r.rows[0]) for r in records],  # type: ignore[index]
                strict=True,
            )
        ]
        site = [
            sites.get(key) or sites.setdefault(key, _site(rec))
            for rec, key in zip(records, [(r.ref, r.alts, r.filters) for r in records], strict=True)
        ]
        fmt = [_sample_blob(r.fmt.data) for r in records]  # one sample's blob: its length
        ids = [r.ids.encode() for r in records]
        info = [r.info for r in records]
        pos = np.fromiter((r.pos for r in records), np.int64, k)
        end = np.fromiter((r.end for r in records), np.int64, k)
        columns: _Columns = {
            "contig": [
                contigs.get(r.contig) or contigs.setdefault(r.contig, r.contig.encode())
                for r in records
            ],
            "pos": pos,
            "real_start": pos,
            "end": end,
            "qual": np.fromiter((r.qual for r in records), np.float32, k),
            "alleles": [s[0] for s in site],
            "id": ids,
            "filters": [s[1] for s in site],
            "info": info,
            "group": np.full(k, group, dtype=np.uint64),
            "shape": np.fromiter((p[0] for p in packed), np.uint8, k),
            "gt": [p[1] for p in packed],
            "phased": [p[2] for p in packed],
            "fmt": fmt,
        }
        size = (
            np.fromiter((p[3] for p in packed), np.int64, k)
            + np.fromiter((s[2] for s in site), np.int64, k)
            + np.fromiter(map(len, ids), np.int64, k)
            + np.fromiter(map(len, info), np.int64, k)
            + np.fromiter(map(len, fmt), np.int64, k)
        )
        copies = layout.anchor_copies(pos, end)  # at the positions `data` uses
        if copies is not None:
            chosen, anchors = copies
            picked = chosen.tolist()
            columns = {
                name: value[chosen] if isinstance(value, np.ndarray) else [value[i] for i in picked]
                for name, value in columns.items()
            }
            columns["pos"] = anchors
            size = size[chosen]
        self._parts.append(columns)
        self.bytes += int(size.sum())

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
        last = self._parts[-1] if self._parts else None
        if not isinstance(last, list):
            last = []
            self._parts.append(last)
        for anchor in range(rec.pos, max(rec.end, rec.pos + 1), layout.ANCHOR_GAP):
            row = (contig, anchor, rec.pos, rec.end, rec.qual, *site, group, shape)
            last.append((*row, codes, phased, fmt))
            self.bytes += size

    def take(self) -> tuple[dict[str, object], bool] | None:
        """The buffered cells as columns, and whether they are in global order."""
        parts, self._parts, self.bytes = self._parts, [], 0
        held = [p if isinstance(p, dict) else _row_columns(p) for p in parts]
        held = [p for p in held if len(p["contig"])]
        if not held:
            return None
        columns = _columns(held)
        return columns, _ordered(
            [c for p in held for c in p["contig"]],
            cast(np.ndarray, columns["pos"]),
        )

    def metadata(self) -> dict[str, str]:
        return {f"{GROUP_META}{k}": json.dumps(list(v)) for k, v in self.groups.items()}


# a part's columns: numbers as arrays (any int/float dtype), texts as lists of bytes
_Columns = dict[str, "np.ndarray | list[bytes]"]
_FIXED = {
    "pos": np.uint32,
    "real_start": np.uint32,
    "end": np.uint32,
    "qual": np.float32,
    "group": np.uint64,
    "shape": np.uint8,
}
_NAMES = (
    "contig",
    "pos",
    "real_start",
    "end",
    "qual",
    "alleles",
    "id",
    "filters",
    "info",
    "group",
    "shape",
    "gt",
    "phased",
    "fmt",
)


def _sample_blob(data: bytes) -> bytes:
    """One sample's FORMAT blobs as `_format_blobs` stores them."""
    if data == _NO_FIELDS:
        return b""
    return _LENGTH.pack(len(data)) + data


def _ordered(contigs: list[bytes], anchors: np.ndarray) -> bool:
    """Whether the cells are in global order: (contig, anchor) never decreases. One contig
    (the usual buffer) is a check of the anchors alone."""
    if contigs.count(contigs[0]) == len(contigs):
        return bool((anchors[1:] >= anchors[:-1]).all())
    keys = list(zip(contigs, anchors.tolist(), strict=True))
    return all(a <= b for a, b in itertools.pairwise(keys))


def cell_columns(rows: Sequence[tuple[object, ...]]) -> dict[str, object]:
    """`fednode_genotypes` write columns of cells given as tuples (contig, anchor, real
    start, end, qual, alleles, id, filters, info, group, shape, gt, phased, fmt)."""
    return _columns([_row_columns(rows)])


def _row_columns(rows: Sequence[tuple[object, ...]]) -> _Columns:
    """Cells given as tuples as a part's columns: read column by column (`itemgetter`),
    not transposed with `zip(*rows)`, which builds one iterator per row and costs several
    times more per cell."""
    n = len(rows)
    out: _Columns = {}
    for i, name in enumerate(_NAMES):
        dtype = _FIXED.get(name)
        values = map(itemgetter(i), rows)
        out[name] = list(values) if dtype is None else np.fromiter(values, dtype, n)
    return out


def _columns(parts: Sequence[_Columns]) -> dict[str, object]:
    """The write columns of the parts' cells, part after part."""
    columns: dict[str, object] = {}
    for name in _NAMES:
        dtype = _FIXED.get(name)
        values = [p[name] for p in parts]
        if dtype is not None:
            columns[name] = np.concatenate(values).astype(dtype)
        else:
            columns[name] = _var([v for part in values for v in part])
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
