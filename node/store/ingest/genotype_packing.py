"""`fednode_genotypes` cells of records read back from `data` (for `aggregate_build`).

An ingest packs each input record's genotypes into one cell, the input's samples named
once as a group (`genotype_rows`). TileDB-VCF's inputs are gone; what stands for an input
is a set of samples with the same records: cells of equal site fields at the same
positions, which `BatchReader` makes one record row. `GenotypeReader` reads a sample only
from its one group, every cell of a group holds all its samples, so a group must be
samples present in exactly the same rows.

`Groups` finds them in one pass: each sample's signature is the sum (mod 2^64) of a hash
of every row it is present in (rows numbered in scan order); equal sums are equal row
sets. The second pass packs one cell per (row, group), and checks the claim: a group
only partly present in a row (a hash collision, ~2^-64 per pair) stops the build.

Cells hold what the `data` path returns for the same records: site fields of the row's
cell (QUAL bits, INFO bytes, FILTER names as the sample's header names them), extracted
`info_X`/`fmt_X` values folded back into the INFO and FORMAT blobs, codes and phase as
`gt_codes` decodes them.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence

import numpy as np

from node.store.dataset import layout
from node.store.ingest.genotype_rows import GROUP_META, WIDE, cell_columns
from node.store.read.records import RecordCells

__all__ = ["GenotypeCells", "Groups"]

_MAX_GROUPS = 1 << 16  # the low bits of a group key (`genotype_rows`)
_NO_FIELDS = struct.pack("<I", 0)
_FLUSH_BYTES = 64 << 20  # buffered cells' bytes before a write (at most: `MemoryBudget`)


class Groups:
    """Samples with the same record rows, found over a scan of `data` (`add` per chunk)."""

    def __init__(self, samples: Sequence[str]) -> None:
        self.samples = tuple(samples)
        self._signature = np.zeros(len(samples), dtype=np.uint64)
        self._cells = np.zeros(len(samples), dtype=np.int64)
        self._rows = 0
        self._members: list[np.ndarray] | None = None
        self._keys: list[int] = []

    def add(self, chunk: RecordCells) -> None:
        rows = len(chunk.batch)
        ids = np.arange(self._rows, self._rows + rows, dtype=np.uint64)
        self._rows += rows
        np.add.at(self._signature, chunk.col, _mix(ids)[chunk.cell_row])
        self._cells += np.bincount(chunk.col, minlength=len(self.samples))

    def members(self) -> list[np.ndarray]:
        """Column indexes of each group, groups by their first sample."""
        if self._members is None:
            has = np.flatnonzero(self._cells > 0)
            _, inverse = np.unique(self._signature[has], return_inverse=True)
            found: dict[int, list[int]] = {}
            for col, group in zip(has.tolist(), inverse.reshape(-1).tolist(), strict=True):
                found.setdefault(group, []).append(col)
            self._members = sorted((np.asarray(v) for v in found.values()), key=lambda m: m[0])
        return self._members

    def __len__(self) -> int:
        return len(self.members())

    def worth(self, size: int) -> bool:
        """Whether packing saves: groups average `size` samples or more (by cells)."""
        total = int(self._cells.sum())
        packed = sum(int(self._cells[m[0]]) for m in self.members())
        return total > 0 and packed * size <= total and len(self) < _MAX_GROUPS

    def metadata(self, timestamp: int, *, gap: int) -> dict[str, str]:
        """The array metadata naming each group (keys as an ingest at `timestamp` makes)."""
        if len(self) >= _MAX_GROUPS:
            raise ValueError(f"{len(self)} sample groups; fednode_genotypes holds fewer")
        self._keys = [timestamp << 16 | i for i in range(len(self))]
        self._gap = gap
        return {
            f"{GROUP_META}{key}": json.dumps([self.samples[c] for c in members.tolist()])
            for key, members in zip(self._keys, self.members(), strict=True)
        }

    def cells(self, chunk: RecordCells, out: GenotypeCells) -> None:
        """The `fednode_genotypes` cells of `chunk` (pass 2, after `metadata`), into `out`."""
        present = chunk.batch.present
        slots: np.ndarray | None = None
        if chunk.batch.fields is not None:
            slots = np.full(present.shape, -1, dtype=np.int64)
            slots[chunk.cell_row, chunk.col] = np.arange(chunk.block.n)
        sites: dict[int, tuple[object, ...]] = {}
        for key, members in zip(self._keys, self.members(), strict=True):
            mine = present[:, members]
            rows = np.flatnonzero(mine.all(axis=1))
            if rows.size != int(mine.any(axis=1).sum()):
                raise RuntimeError("samples grouped as having the same records do not")
            for row in rows.tolist():
                site = sites.get(row)
                if site is None:
                    site = sites[row] = _site(chunk, row)
                fmt = b"" if slots is None else _formats(chunk, slots[row, members])
                out.add(site, key, *_calls(chunk, row, members), fmt, gap=self._gap)


class GenotypeCells:
    """Buffered `fednode_genotypes` cells; `columns()` hands them over for one write."""

    def __init__(self, *, flush_bytes: int = _FLUSH_BYTES) -> None:
        self._rows: list[tuple[object, ...]] = []
        self.bytes = 0
        self._flush_bytes = min(_FLUSH_BYTES, flush_bytes)

    def __len__(self) -> int:
        return len(self._rows)

    def full(self) -> bool:
        return self.bytes >= self._flush_bytes

    def add(
        self, site: tuple[object, ...], group: int, shape: int, gt: bytes, phased: bytes,
        fmt: bytes, *, gap: int,
    ) -> None:  # fmt: skip
        contig, real, end = site[0], int(site[1]), int(site[2])  # type: ignore[call-overload]
        for anchor in range(real, max(end, real + 1), gap):  # as `data`'s anchors
            self._rows.append((contig, anchor, *site[1:], group, shape, gt, phased, fmt))
            self.bytes += len(gt) + len(phased) + len(fmt) + 256

    def columns(self) -> dict[str, object]:
        rows, self._rows, self.bytes = self._rows, [], 0
        return cell_columns(rows)


def _site(chunk: RecordCells, row: int) -> tuple[object, ...]:
    """contig, real start, end, QUAL, alleles, ID, FILTER names, INFO of a row."""
    block, k = chunk.block, int(chunk.site_cells[row])
    site = chunk.batch.sites[row]
    info = block.var["info"].cell(k)
    extra = _extracted(chunk, k, "info_")
    if extra:
        info = layout.encode_blob([*layout.decode_blob(info), *extra])
    return (
        site.source_contig.encode(),
        int(block.fixed["real_start_pos"][k]),
        int(block.fixed["end_pos"][k]),
        block.fixed["qual"][k],
        block.var["alleles"].cell(k).rstrip(b"\0"),
        block.var["id"].cell(k).rstrip(b"\0"),
        ";".join(site.filters).encode(),
        info,
    )


def _calls(chunk: RecordCells, row: int, members: np.ndarray) -> tuple[int, bytes, bytes]:
    """`shape`, allele codes and phase bits of `members` in `row` (`genotype_rows`)."""
    codes = chunk.batch.alleles[row][members]
    wide = codes.size > 0 and int(codes.max()) > 127
    gt = codes.astype("<i2" if wide else np.int8).tobytes()
    phased = np.packbits(chunk.batch.phased[row][members]).tobytes()
    return codes.shape[1] | (WIDE if wide else 0), gt, phased


def _formats(chunk: RecordCells, cells: np.ndarray) -> bytes:
    """Packed FORMAT blobs (without GT) of one group's calls; empty when none has any."""
    fmt = chunk.block.var["fmt"]
    blobs = []
    for i in cells.tolist():
        fields = [f for f in layout.decode_blob(fmt.cell(i)) if f[0] != "GT"]
        blobs.append(layout.encode_blob([*fields, *_extracted(chunk, i, "fmt_")]))
    if all(b == _NO_FIELDS for b in blobs):
        return b""
    lengths = np.asarray([len(b) for b in blobs], dtype="<u4").tobytes()
    return lengths + b"".join(blobs)


def _extracted(chunk: RecordCells, i: int, prefix: str) -> list[layout.BlobField]:
    """Cell `i`'s extracted `info_X`/`fmt_X` values as blob fields (GT excepted)."""
    out = []
    for name in chunk.extracted:
        if name.startswith(prefix) and name != "fmt_GT":
            value = layout.decode_field(chunk.block.var[name].cell(i))
            if value is not None:
                out.append((name[len(prefix) :], *value))
    return out


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64 of each value (wrapping uint64 arithmetic)."""
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))
