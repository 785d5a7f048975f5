"""Reading `data` cells back: VCF-like records for region queries, and a sample's calls.

Split from `vcfio` (the input side); `vcfio` re-exports `RecordReader` and `StoredCall`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from threading import Lock

import numpy as np
import tiledb

from node.domain import Call, Record, Region, normalize_contig
from node.store.dataset import layout
from node.store.read.overlap import anchored

__all__ = ["RecordReader", "StoredCall"]

_REF_ALTS = {"<NON_REF>", "<*>"}


@dataclass(slots=True)
class StoredCall:
    """One `data` cell at its real start (anchor copies dropped), for statistics."""

    contig: str
    pos: int
    end: int
    ref: str
    alts: tuple[str, ...]
    filters: tuple[str, ...]
    ids: str
    sample: str
    gt: np.ndarray  # (1, ploidy) allele indexes, -1 missing

    @property
    def is_ref_block(self) -> bool:
        return all(alt in _REF_ALTS for alt in self.alts)


# real start, end, alleles, id, QUAL ("nan" when missing), FILTER names, INFO blob
_SiteKey = tuple[int, int, bytes, bytes, object, tuple[str, ...], bytes]
_CELL_ATTRS = ("real_start_pos", "end_pos", "qual", "alleles", "id", "filter_ids", "info", "fmt")


class RecordReader:
    """Region queries on `data` with TileDB-VCF's anchor rule (LAYOUT.md, `tiledbvcf export`).

    Cells are read in bounded chunks (incomplete queries) and grouped into records: cells
    at one position with identical site fields (a multi-sample input record) form one
    `Record`; single-sample inputs that differ in QUAL/INFO stay separate records.
    """

    def __init__(self, data: tiledb.Array, tables: Mapping[str, Sequence[str]]) -> None:
        self._data = data
        self._tables = tables
        names = [data.schema.attr(i).name for i in range(data.schema.nattr)]
        self._extracted = [n for n in names if n.startswith(("fmt_", "info_"))]
        self._gap = int(data.meta.get("anchor_gap", layout.ANCHOR_GAP))
        # A cohort has few distinct genotypes and FILTER lists: decode each once.
        self._genotypes: dict[bytes, tuple[tuple[int | None, ...], bool] | None] = {}
        self._filters: dict[tuple[bytes, int], tuple[str, ...]] = {}

    def _chunks(
        self, source: str, lo: int, hi: int, samples: Sequence[str] | None, lock: Lock | None
    ) -> Iterator[dict[str, np.ndarray]]:
        sample_ranges = slice(None) if samples is None else [slice(s, s) for s in sorted(samples)]
        query = self._data.query(
            attrs=[*_CELL_ATTRS, *self._extracted],
            dims=["start_pos", "sample"],
            order="C",
            return_incomplete=True,
        )
        indexer = query.multi_index[[source], slice(lo, hi), sample_ranges]
        iterator = iter(indexer) if not isinstance(indexer, dict) else iter([indexer])
        while True:
            if lock is not None:
                with lock:
                    chunk = next(iterator, None)
            else:
                chunk = next(iterator, None)
            if chunk is None:
                return
            yield chunk

    def records(
        self,
        sources: Sequence[str],
        region: Region,
        samples: Sequence[str] | None,
        *,
        lock: Lock | None,
    ) -> Iterator[Record]:
        s, e = region.start, region.end - 1
        for source in sources:
            # Cells come in row-major (start_pos, sample) order; anchor copies (start_pos < s)
            # all come first and are re-sorted by real start. Then one position at a time.
            before: list[tuple[dict[str, np.ndarray], int]] = []
            bucket: list[tuple[dict[str, np.ndarray], int]] = []
            current = -1
            for chunk in self._chunks(source, max(0, s - self._gap), e, samples, lock):
                start, real, end = chunk["start_pos"], chunk["real_start_pos"], chunk["end_pos"]
                keep = anchored(start, real, end, region)
                for i in np.flatnonzero(keep):
                    if int(start[i]) < s:
                        before.append((chunk, int(i)))
                        continue
                    if before:
                        yield from sorted(self._group(source, before), key=lambda r: r.start)
                        before = []
                    if int(start[i]) != current and bucket:
                        yield from self._group(source, bucket)
                        bucket = []
                    current = int(start[i])
                    bucket.append((chunk, int(i)))
            yield from sorted(self._group(source, before), key=lambda r: r.start)
            yield from self._group(source, bucket)

    def _group(self, source: str, cells: list[tuple[dict[str, np.ndarray], int]]) -> list[Record]:
        groups: dict[_SiteKey, list[Call]] = {}
        sites: dict[_SiteKey, tuple[dict[str, np.ndarray], int]] = {}
        for chunk, i in cells:
            sample = chunk["sample"][i].decode()
            table = self._tables.get(sample, ["PASS"])
            filters = self._decode_filters(chunk["filter_ids"][i], table)
            qual = float(chunk["qual"][i])
            key = (
                int(chunk["real_start_pos"][i]),
                int(chunk["end_pos"][i]),
                bytes(chunk["alleles"][i]),
                bytes(chunk["id"][i]),
                "nan" if qual != qual else qual,
                filters,
                bytes(chunk["info"][i]),
            )
            groups.setdefault(key, []).append(self._call(chunk, i, sample))
            sites.setdefault(key, (chunk, i))
        return [self._record(source, key, sites[key], calls) for key, calls in groups.items()]

    def _call(self, chunk: dict[str, np.ndarray], i: int, sample: str) -> Call:
        fields: dict[str, object] = {}
        alleles: tuple[int | None, ...] = ()
        phased = False
        for key, htype, _count, raw in layout.decode_blob(bytes(chunk["fmt"][i])):
            if key == "GT":
                alleles, phased = layout.decode_gt(raw)
            else:
                fields[key] = layout.field_value(htype, raw)
        for name in self._extracted:
            if name == "fmt_GT":
                gt = self._decode_gt(bytes(chunk[name][i]))
                if gt is not None:
                    alleles, phased = gt
                continue
            value = layout.decode_field(bytes(chunk[name][i]))
            if value is None:
                continue
            if name.startswith("fmt_"):
                fields[name[4:]] = layout.field_value(value[0], value[2])
        return Call(sample, alleles, phased, fields)

    def _decode_gt(self, blob: bytes) -> tuple[tuple[int | None, ...], bool] | None:
        if blob not in self._genotypes:
            value = layout.decode_field(blob)
            self._genotypes[blob] = None if value is None else layout.decode_gt(value[2])
        return self._genotypes[blob]

    def _decode_filters(self, ids: np.ndarray, table: Sequence[str]) -> tuple[str, ...]:
        key = (ids.tobytes(), id(table))
        filters = self._filters.get(key)
        if filters is None:
            filters = self._filters[key] = layout.decode_filters(ids.tolist(), table)
        return filters

    def _record(
        self,
        source: str,
        key: _SiteKey,
        site: tuple[dict[str, np.ndarray], int],
        calls: list[Call],
    ) -> Record:
        chunk, i = site
        alleles = _text(chunk["alleles"][i]).split(",")
        ids = _text(chunk["id"][i])
        info = {
            k: layout.field_value(t, raw)
            for k, t, _c, raw in layout.decode_blob(bytes(chunk["info"][i]))
        }
        for name in self._extracted:
            value = layout.decode_field(bytes(chunk[name][i])) if name.startswith("info_") else None
            if value is not None:
                info[name[5:]] = layout.field_value(value[0], value[2])
        qual = float(chunk["qual"][i])
        return Record(
            contig=normalize_contig(source),
            start=int(key[0]),
            end=int(key[1]) + 1,
            ref=alleles[0],
            alts=tuple(alleles[1:]),
            ids=() if ids in ("", ".") else tuple(ids.split(";")),
            qual=None if qual != qual else qual,
            filters=key[5],
            info=info,
            calls=tuple(calls),
            source_contig=source,
        )

    def sample_cells(self, source: str, sample: str, *, lock: Lock | None) -> Iterator[StoredCall]:
        table = self._tables.get(sample, ["PASS"])
        for chunk in self._chunks(source, 0, 2**32 - 2, [sample], lock):
            for i in np.flatnonzero(chunk["start_pos"] == chunk["real_start_pos"]):
                alleles = _text(chunk["alleles"][i]).split(",")
                call = self._call(chunk, int(i), sample)
                gt = np.array(
                    [[-1 if a is None else a for a in call.alleles] or [-1]], dtype=np.int16
                )
                yield StoredCall(
                    source,
                    int(chunk["real_start_pos"][i]),
                    int(chunk["end_pos"][i]),
                    alleles[0],
                    tuple(alleles[1:]),
                    layout.decode_filters(chunk["filter_ids"][i].tolist(), table),
                    _text(chunk["id"][i]),
                    sample,
                    gt,
                )


def _text(value: object) -> str:
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return text.rstrip("\0")
