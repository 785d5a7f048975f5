"""Reading VCF/BCF input for ingest: cyvcf2 records turned into TileDB-VCF cell values.

Every failure becomes `IngestError` naming the file and, for text VCF, the line (header
lines + records read + 1: htslib reads one record per line). BCF has no lines; the error
names the record number instead.
"""

from __future__ import annotations

import functools
import gzip
import logging
import re
import struct
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cyvcf2
import numpy as np

from node.errors import IngestError
from node.store.dataset import layout
from node.store.read.cell_reader import RecordReader, StoredCall

if TYPE_CHECKING:
    from node.store.ingest.bcf_blocks import BlockReader

__all__ = [
    "ParsedRecord",
    "RecordReader",
    "Region",
    "RegionError",
    "StoredCall",
    "VcfInput",
    "detect_assembly",
    "locate_error",
]

Region = tuple[str, int, int]  # contig, 0-based start, end (exclusive): records by POS

_TYPES = {"Flag": layout.HT_FLAG, "Integer": layout.HT_INT, "Float": layout.HT_REAL}
_MISSING_REAL = struct.pack("<I", 0x7F800001)
_I32, _F32 = struct.Struct("<i"), struct.Struct("<f")
_ASSEMBLY_PATTERNS = (
    (re.compile(r"GRCh38|hg38|GCA_000001405\.15|GCF_000001405\.(2[6-9]|[3-9]\d)", re.I), "GRCh38"),
    (
        re.compile(
            r"GRCh37|hg19|\bb37\b|hs37d5|assembly19|human_g1k_v37|GCF_000001405\.(1\d|2[0-5])", re.I
        ),
        "GRCh37",
    ),
)
_REF_ALTS = {"<NON_REF>", "<*>"}
# Records of at most this many samples are parsed in plain Python: numpy's fixed cost per
# call is most of a one-sample record's parsing (tests/store/test_small_paths.py checks
# both paths give the same record).
SMALL_RECORD = 8
# Records of at most SMALL_RECORD samples of a whole file are read through the block
# reader (`bcf_blocks`) unless the caller says otherwise (`[ingest] block_reader`, the
# memory budget) or this is false (tests).
BLOCKS = True
_TEXTS = 4096  # distinct allele and ID texts kept per input
_THREADED_BYTES = 4 << 20  # files from this size are decompressed by htslib's threads
_log = logging.getLogger(__name__)
_NO_FORMAT = struct.pack("<I", 0)
# a FORMAT column's blob count, and per key but GT: key, key NUL, htslib type, empty part
_FmtFields = tuple[bytes, list[tuple[str, bytes, int, bytes]]]
# genotypes, phase, FORMAT blobs, GT blobs, allele lists (few samples) of one record
_Calls = tuple[np.ndarray, np.ndarray, layout.VarChunk, layout.VarChunk, "list[list[int]] | None"]


def detect_assembly(header: str) -> str | None:
    """The assembly a VCF header declares (##reference, ##assembly, contig assembly=)."""
    for line in header.splitlines():
        if not line.startswith(("##reference", "##assembly", "##contig")):
            continue
        if line.startswith("##contig") and "assembly=" not in line:
            continue
        for pattern, name in _ASSEMBLY_PATTERNS:
            if pattern.search(line):
                return name
    return None


@dataclass(slots=True)
class ParsedRecord:
    """One input record, ready to become one `data` cell per sample with a call."""

    line: int
    contig: str
    pos: int  # 0-based
    end: int  # 0-based inclusive (TileDB-VCF end_pos)
    ref: str
    alts: tuple[str, ...]
    ids: str
    qual: float  # NaN when `.` (stored as htslib's missing value, see layout.write_columns)
    filters: tuple[str, ...]
    info: bytes
    gt: np.ndarray  # int16 (samples, ploidy): allele index, -1 missing, -2 past ploidy
    phased: np.ndarray  # bool (samples,)
    fmt: layout.VarChunk  # per sample, the fmt blob without GT
    fmt_gt: layout.VarChunk  # per sample, the extracted fmt_GT value
    # Records of at most SMALL_RECORD samples: each sample's alleles without the -2
    # padding, as plain lists (the statistics' plain-Python paths read these).
    rows: list[list[int]] | None = None

    @property
    def is_ref_block(self) -> bool:
        """gVCF reference block: every ALT is `<NON_REF>`/`<*>` (or there is none)."""
        return _REF_ALTS.issuperset(self.alts)

    def called(self) -> np.ndarray:
        return np.asarray((self.gt >= 0).any(axis=1))


class VcfInput:
    """One VCF/BCF file (bgzipped or plain, indexed or not)."""

    def __init__(self, path: Path, *, threads: int = 1, blocks: bool = True) -> None:
        """Reads the header and closes the file: an ingest of thousands of per-sample
        files holds one open at a time (each open reader costs htslib buffers and a
        descriptor), reopening it to read its records. `blocks`: the whole file may be
        read by the block reader (`bcf_blocks`) when its records have few samples (the
        caller says no when its memory budget has no room for it)."""
        self.path = path
        self.name = str(path)
        if not path.is_file():
            raise IngestError("no such file", path=self.name)
        # htslib's decompression threads for the records of large files only: each open
        # with threads starts and stops a pool (~0.6 ms), more than a small file's
        # records take to decompress (per-sample files are ~40 KB)
        large = path.stat().st_size >= _THREADED_BYTES
        self._threads = max(1, threads) if large else 1
        vcf = self._open(header=True)
        try:
            self.samples: tuple[str, ...] = tuple(vcf.samples)
            # Not the header text: 100,000 per-sample inputs of 16 KB headers would hold
            # 1.6 GB (`header` reads it again); what the ingest needs before it is kept.
            self.assembly = detect_assembly(vcf.raw_header)
            self._info_types = _types(vcf, "INFO")
            self._format_types = _types(vcf, "FORMAT")
        finally:
            vcf.close()
        self.blocks = blocks and BLOCKS and len(self.samples) <= SMALL_RECORD
        self.is_bcf = _is_bcf(path)
        self._header_lines = 0 if self.is_bcf else _count_header_lines(path)
        # FORMAT column -> `_fields_of` it (few-sample records)
        self._fmt_fields: dict[tuple[str, ...], _FmtFields] = {}
        # INFO key -> key\0, htslib type, and both followed by a count of 1
        self._info_keys: dict[str, tuple[bytes, int, bytes]] = {}
        # The calls of a few samples repeat (a one-sample VCF has a handful of distinct
        # GTs): each distinct one's arrays, blobs and allele lists are built once, read-only.
        self._calls_seen: dict[tuple[object, ...], _SmallGT] = {}
        self.block_records = 0  # records the last `records` read through the block reader

    def _open(self, *, header: bool = False) -> cyvcf2.VCF:
        """`header`: only the header is read (no decompression threads)."""
        try:
            return cyvcf2.VCF(self.name, threads=1 if header else self._threads)
        except Exception as exc:  # cyvcf2 raises bare OSError/Exception
            raise IngestError(f"cannot read VCF/BCF: {exc}", path=self.name) from exc

    @property
    def header(self) -> str:
        """The header's text (htslib's), read from the file."""
        vcf = self._open(header=True)
        try:
            return str(vcf.raw_header)
        finally:
            vcf.close()

    def sample_header(self, extra_lines: list[str], header: str | None = None) -> str:
        """The header as TileDB-VCF stores it: htslib's text, #CHROM line without samples
        (`header`: the text when the caller has read it)."""
        lines = (self.header if header is None else header).rstrip("\n").split("\n")
        chrom = lines[-1].split("\t")[:8]
        return "\n".join([*lines[:-1], *extra_lines, "\t".join(chrom)]) + "\n"

    def where(self, index: int) -> int:
        return self._header_lines + index + 1 if not self.is_bcf else index + 1

    def records(self, region: Region | None = None) -> Iterator[ParsedRecord]:
        """Every record, or (through the index) those whose POS lies in `region`.

        In a region the records' ordinal numbers are not the file's, so an error there
        names the region instead of a line (`RegionError`); the caller finds the line by
        reading the file from its start (`locate_error`)."""
        if region is not None:
            yield from self._region_records(region)
            return
        index = 0
        if self.blocks:
            stopped = yield from self._block_records()
            if stopped is None:
                return
            index = stopped  # read on from there through cyvcf2
        vcf = self._open()
        try:
            iterator = iter(vcf)
            for _ in range(index):
                next(iterator)  # read by the block reader
            while True:
                try:
                    variant = next(iterator)
                except StopIteration:
                    return
                except Exception as exc:
                    raise self._error(index, f"malformed record ({exc})") from exc
                try:
                    yield self._parse(variant, index)
                except IngestError:
                    raise
                except Exception as exc:
                    raise self._error(index, f"cannot decode record: {exc}") from exc
                index += 1
        finally:
            vcf.close()

    def _block_records(self) -> Generator[ParsedRecord, None, int | None]:
        """`records` through the block reader (`bcf_blocks`); returns None at the end of
        the file, else the number of records read when the rest must be read through
        cyvcf2 (a record the decoder does not reproduce exactly, an htslib error, or
        numba unavailable: 0)."""
        try:
            from node.store.ingest.bcf_blocks import BlockReader

            reader = BlockReader(
                self.name,
                threads=self._threads,
                samples=len(self.samples),
                info_types=self._info_types,
                format_types=self._format_types,
            )
        except OSError:
            return 0  # htslib cannot open it: cyvcf2 says why
        except Exception as exc:  # numba missing or unable to compile: cyvcf2 reads it
            _log.warning("block reader unavailable (%s): %s read through cyvcf2", exc, self.name)
            return 0
        n = len(self.samples)
        index, first_line = 0, self.where(0)
        alleles: dict[bytes, tuple[str, tuple[str, ...]]] = {}  # as bytes -> REF, ALTs
        id_texts: dict[bytes, str] = {}
        filters: dict[tuple[int, ...], tuple[str, ...]] = {}
        with reader:
            contigs = reader.contigs
            for block in reader:
                txt, flt, info, fmt = block.txt, block.flt, block.info, block.fmt
                gtv, fmt_len = block.gtv, block.fmt_len
                for i, (
                    pos,
                    rlen,
                    rid,
                    a0,
                    a1,
                    d0,
                    d1,
                    f0,
                    f1,
                    i0,
                    i1,
                    m0,
                    m1,
                    g0,
                    ploidy,
                    qual,
                ) in enumerate(zip(*block.columns, block.qual, strict=True)):
                    end = pos + rlen - 1
                    if pos < 0 or end < pos:
                        raise self._error(index, f"invalid POS/END {pos + 1}/{pos + rlen}")
                    if not 0 <= rid < len(contigs) or contigs[rid] is None:
                        reader.refresh()  # a contig the VCF's header lacks
                        contigs = reader.contigs
                        if not 0 <= rid < len(contigs) or contigs[rid] is None:
                            self.block_records = index
                            return index
                    key = txt[a0:a1]
                    found = alleles.get(key)
                    if found is None:
                        if len(alleles) >= _TEXTS:
                            alleles.clear()
                        parts = key.decode().split(",")
                        found = alleles[key] = (parts[0], tuple(parts[1:]))
                    ref, alts = found
                    key = txt[d0:d1]
                    ids = id_texts.get(key)
                    if ids is None:
                        if len(id_texts) >= _TEXTS:
                            id_texts.clear()
                        ids = id_texts[key] = key.decode()
                    fkey = tuple(flt[f0:f1])
                    names = filters.get(fkey)
                    if names is None:
                        names = self._filter_names(fkey, reader)
                        if names is None:
                            self.block_records = index
                            return index
                        filters[fkey] = names
                    if ploidy:
                        width = ploidy + 1
                        raw: list[list[int]]
                        if n == 1:
                            row = gtv[g0 : g0 + width]
                            gkey: tuple[object, ...] = tuple(row)
                            raw = [row]
                        else:
                            raw = [gtv[g0 + s * width : g0 + (s + 1) * width] for s in range(n)]
                            gkey = tuple(map(tuple, raw))
                        gt, phased, fmt_gt, rows = self._seen_calls(gkey, raw, 1 + len(alts), index)
                    else:
                        gt, phased, fmt_gt, rows = _no_calls(n)
                    blob = fmt[m0:m1]
                    if n == 1:
                        chunk = _no_format(1) if blob == _NO_FORMAT else layout.VarChunk.of([blob])
                    else:
                        chunk = layout.VarChunk(blob, fmt_len[i].copy())
                    # In field order: positional arguments cost a fifth of keywords here
                    # (test_bcf_blocks.py compares every field with the cyvcf2 parser's).
                    yield ParsedRecord(
                        first_line + index,  # line
                        contigs[rid] or "",  # contig
                        pos,
                        end,
                        ref,
                        alts,
                        ids,
                        qual,
                        names,  # filters
                        info[i0:i1],
                        gt,
                        phased,
                        chunk,  # fmt
                        fmt_gt,
                        rows,
                    )
                    index += 1
            self.block_records = index
            return None if reader.stopped is None else index

    @staticmethod
    def _filter_names(ids: tuple[int, ...], reader: BlockReader) -> tuple[str, ...] | None:
        """FILTER names of header ids (None: an id the header does not name)."""
        for _ in range(2):
            keys = reader.keys
            if all(0 <= i < len(keys) and keys[i] is not None for i in ids):
                return tuple(keys[i] for i in ids)  # type: ignore[misc]
            reader.refresh()
        return None

    def index_file(self) -> Path | None:
        """The .tbi or .csi index beside the file (region queries need one)."""
        for ext in (".tbi", ".csi"):
            found = Path(f"{self.name}{ext}")
            if found.is_file():
                return found
        return None

    def contig_names(self) -> list[str]:
        """The header's contigs in order (a BCF's CSI numbers its references so)."""
        vcf = self._open(header=True)
        try:
            return list(vcf.seqnames)
        finally:
            vcf.close()

    def _region_records(self, region: Region) -> Iterator[ParsedRecord]:
        contig, start, end = region
        vcf = self._open()
        try:
            yield from self._region_iter(vcf, contig, start, end)
        finally:
            vcf.close()

    def _region_iter(
        self, vcf: cyvcf2.VCF, contig: str, start: int, end: int
    ) -> Iterator[ParsedRecord]:
        try:
            iterator = iter(vcf(f"{contig}:{start + 1}-{end}"))
        except Exception as exc:
            raise RegionError(f"cannot query {contig}:{start + 1}-{end}: {exc}", self.name) from exc
        index = 0
        while True:
            try:
                variant = next(iterator)
            except StopIteration:
                return
            except Exception as exc:
                raise RegionError(f"malformed record ({exc})", self.name) from exc
            if not start <= variant.start < end:
                continue  # starts before the region (overlapping it): another task's
            try:
                record = self._parse(variant, index)
            except IngestError as exc:
                raise RegionError(exc.message.rsplit(": ", 1)[-1], self.name) from exc
            except Exception as exc:
                raise RegionError(f"cannot decode record: {exc}", self.name) from exc
            record.line = 0
            yield record
            index += 1

    def _error(self, index: int, message: str) -> IngestError:
        if self.is_bcf:
            return IngestError(f"record {index + 1}: {message}", path=self.name)
        return IngestError(message, path=self.name, line=self.where(index))

    def _parse(self, v: cyvcf2.Variant, index: int) -> ParsedRecord:
        ref, alts = v.REF, tuple(v.ALT)
        if not ref:
            raise self._error(index, "empty REF")
        pos = int(v.POS) - 1
        end = int(v.end) - 1
        if pos < 0 or end < pos:
            raise self._error(index, f"invalid POS/END {v.POS}/{v.end}")
        calls = self._calls_small if len(self.samples) <= SMALL_RECORD else self._calls
        gt, phased, fmt, fmt_gt, rows = calls(v, 1 + len(alts), index)
        qual = v.QUAL
        return ParsedRecord(  # in field order (positional: a fifth of keywords' cost)
            self.where(index),  # line
            v.CHROM,  # contig
            pos,
            end,
            ref,
            alts,
            v.ID or ".",  # ids
            float("nan") if qual is None else float(qual),  # qual
            _filters(v),  # filters
            self._info_blob(v),  # info
            gt,
            phased,
            fmt,
            fmt_gt,
            rows,
        )

    def _calls(self, v: cyvcf2.Variant, n_alleles: int, index: int) -> _Calls:
        """Genotypes, FORMAT blobs and GT blobs of every sample (numpy, many samples)."""
        gt, phased = self._genotypes(v, n_alleles, index)
        return gt, phased, self._fmt_blobs(v), _gt_blobs(gt, phased), None

    def _calls_small(self, v: cyvcf2.Variant, n_alleles: int, index: int) -> _Calls:
        """`_calls` for a few samples, the same values built without numpy per field, and
        each sample's alleles as lists (`ParsedRecord.rows`)."""
        n = len(self.samples)
        fmt_keys = v.FORMAT
        if n and "GT" in fmt_keys:
            raw = v.genotype.array().tolist()
            if len(raw[0]) == 2:  # haploid: no phase (cyvcf2 reads it past the call)
                for row in raw:
                    row[1] = 0
            key = tuple(raw[0]) if n == 1 else tuple(map(tuple, raw))
            gt, phased, fmt_gt, rows = self._seen_calls(key, raw, n_alleles, index)
        else:
            gt, phased, fmt_gt, rows = _no_calls(n)
        return gt, phased, self._fmt_blobs_small(v, fmt_keys, n), fmt_gt, rows

    def _seen_calls(
        self, key: tuple[object, ...], raw: list[list[int]], n_alleles: int, index: int
    ) -> tuple[np.ndarray, np.ndarray, layout.VarChunk, list[list[int]]]:
        """The calls of a few samples (`raw`: cyvcf2's `genotype.array().tolist()` rows,
        `key` their tuple), built once per distinct calls (`_calls_seen`)."""
        found = self._calls_seen.get(key)
        if found is None:
            found = _small_gt(raw)
            if len(self._calls_seen) >= _CALLS_SEEN:
                self._calls_seen.clear()
            self._calls_seen[key] = found
        top, gt, phased, fmt_gt, rows = found
        if top >= n_alleles:
            raise self._error(index, f"genotype allele index {top} >= {n_alleles} alleles")
        return gt, phased, fmt_gt, rows

    def _fmt_blobs_small(self, v: cyvcf2.Variant, fmt_keys: list[str], n: int) -> layout.VarChunk:
        """`_fmt_blobs` for a few samples, the same bytes."""
        found = self._fmt_fields.get(tuple(fmt_keys))
        if found is None:
            found = self._fmt_fields[tuple(fmt_keys)] = self._fields_of(fmt_keys)
        head, fields = found
        if not fields:
            return _no_format(n)
        if n == 1:  # one sample's blob: no per-sample lists
            blob = [head]
            for key, prefix, htype, empty in fields:
                arr = v.format(key)
                if arr is None:
                    blob.append(empty)
                elif htype == layout.HT_INT and arr.dtype.char == "i":
                    ints = arr.ravel().tolist()
                    if layout.INT32_VECTOR_END in ints:
                        ints = [x for x in ints if x != layout.INT32_VECTOR_END]
                    blob.append(prefix + _ints(len(ints) + 2).pack(htype, len(ints), *ints))
                else:
                    blob.append(_format_parts(arr, prefix, htype, 1)[0])
            return layout.VarChunk.of([b"".join(blob)])
        parts = [[head] for _ in range(n)]
        for key, prefix, htype, empty in fields:
            arr = v.format(key)
            values = [empty] * n if arr is None else _format_parts(arr, prefix, htype, n)
            for p, value in zip(parts, values, strict=True):
                p.append(value)
        return layout.VarChunk.of([b"".join(p) for p in parts])

    def _fields_of(self, fmt_keys: list[str]) -> _FmtFields:
        """The blob count of a FORMAT column and each key's but GT: key, `key` NUL, htslib
        type, and the key's part when a record has no value for it."""
        fields = []
        for key in fmt_keys:
            if key != "GT":
                htype = self._format_types.get(key, layout.HT_STR)
                prefix = key.encode() + b"\0"
                fields.append((key, prefix, htype, prefix + struct.pack("<ii", htype, 0)))
        return struct.pack("<I", len(fields)), fields

    def _genotypes(
        self, v: cyvcf2.Variant, n_alleles: int, index: int
    ) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.samples)
        if n == 0 or "GT" not in v.FORMAT:
            return np.full((n, 1), -1, dtype=np.int16), np.zeros(n, dtype=bool)
        arr = v.genotype.array()
        gt, phased = arr[:, :-1].astype(np.int16), arr[:, -1].astype(bool)
        if gt.shape[1] == 1:
            phased[:] = False  # haploid: no phase (cyvcf2 reads it past the call)
        if gt.size and int(gt.max()) >= n_alleles:
            raise self._error(
                index, f"genotype allele index {int(gt.max())} >= {n_alleles} alleles"
            )
        return gt, phased

    def _info_blob(self, v: cyvcf2.Variant) -> bytes:
        """TileDB-VCF's info blob (`layout.encode_blob`'s bytes, built inline)."""
        parts = [b""]
        for key, value in v.INFO:
            found = self._info_keys.get(key)
            if found is None:
                htype = self._info_types.get(key, layout.HT_STR)
                prefix = key.encode() + b"\0"
                one = prefix + struct.pack("<ii", htype, 1)
                found = self._info_keys[key] = (prefix, htype, one)
            prefix, htype, one = found
            kind = type(value)  # one value, of the declared type: its bytes as they are
            if kind is int and htype == layout.HT_INT:
                parts.append(one + _I32.pack(value))
            elif kind is float and htype == layout.HT_REAL:
                parts.append(one + _F32.pack(value))
            else:
                count, raw = _encode_values(htype, value)
                parts.append(prefix + struct.pack("<ii", htype, count) + raw)
        parts[0] = struct.pack("<I", len(parts) - 1)
        return b"".join(parts)

    def _fmt_blobs(self, v: cyvcf2.Variant) -> layout.VarChunk:
        keys = [k for k in v.FORMAT if k != "GT"]
        n = len(self.samples)
        if not keys:
            return _no_format(n)  # GT only: one blob
        per_sample: list[list[bytes]] = [[] for _ in range(n)]
        for key in keys:
            htype = self._format_types.get(key, layout.HT_STR)
            prefix = key.encode() + b"\0"
            for i, (count, raw) in enumerate(_format_values(v, key, htype, n)):
                per_sample[i].append(prefix + struct.pack("<ii", htype, count) + raw)
        head = struct.pack("<I", len(keys))
        return layout.VarChunk.of([head + b"".join(parts) for parts in per_sample])


class RegionError(IngestError):
    """A record read through a region query failed; its line is not known here."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message, path=path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:  # type: ignore[override]
        return RegionError, (self.detail, self.path)  # crosses process boundaries


def _types(vcf: cyvcf2.VCF, kind: str) -> dict[str, int]:
    """htslib value type of each INFO or FORMAT key the header declares; inputs declaring
    the same share one dict (thousands of per-sample inputs of one pipeline)."""
    out = {}
    for h in vcf.header_iter():
        if h.type == kind:
            info = h.info()
            out[info.get("ID", "")] = _TYPES.get(info.get("Type", ""), layout.HT_STR)
    return _SHARED_TYPES.setdefault(tuple(out.items()), out)


_SHARED_TYPES: dict[tuple[tuple[str, int], ...], dict[str, int]] = {}


def locate_error(path: Path, *, threads: int = 1) -> None:
    """Read the file from its start and raise the `IngestError` (with its line) of its
    first bad record; return when every record parses."""
    for _ in VcfInput(path, threads=threads).records():
        pass


def _is_bcf(path: Path) -> bool:
    with path.open("rb") as fh:
        start = fh.read(2)
    try:
        if start == b"\x1f\x8b":
            with gzip.open(path, "rb") as gz:
                return gz.read(3) == b"BCF"
        with path.open("rb") as fh:
            return fh.read(3) == b"BCF"
    except (OSError, EOFError):
        return False


def _count_header_lines(path: Path) -> int:
    """Header lines as in the file (htslib's re-rendered header may add ##FILTER=PASS)."""
    with path.open("rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    count = 0
    with gzip.open(path, "rb") if gz else path.open("rb") as fh:
        for line in fh:
            if not line.startswith(b"#"):
                break
            count += 1
    return count


_HAS_FILTERS = hasattr(cyvcf2.Variant, "FILTERS")  # cyvcf2 >= 0.31's list of FILTERs


def _filters(v: cyvcf2.Variant) -> tuple[str, ...]:
    text = v.FILTERS if _HAS_FILTERS else None
    if text is not None:
        return tuple(text)
    raw = v.FILTER
    return ("PASS",) if raw is None else tuple(raw.split(";"))


def _encode_values(htype: int, value: object) -> tuple[int, bytes]:
    if htype == layout.HT_FLAG:
        return 1, layout.FLAG_VALUE
    values = value if isinstance(value, tuple | list) else (value,)
    if htype == layout.HT_INT:
        ints = [layout.INT32_MISSING if x is None else int(x) for x in values]
        return len(ints), np.asarray(ints, dtype="<i4").tobytes()
    if htype == layout.HT_REAL:
        parts = [_MISSING_REAL if x is None else struct.pack("<f", float(x)) for x in values]
        return len(parts), b"".join(parts)
    text = ",".join("." if x is None else str(x) for x in values).encode()
    return len(text), text


def _format_values(v: cyvcf2.Variant, key: str, htype: int, n: int) -> list[tuple[int, bytes]]:
    arr = v.format(key)
    if arr is None:
        return [(0, b"")] * n
    if htype == layout.HT_STR or arr.dtype.kind in "USO":
        texts = [str(x).encode() for x in np.asarray(arr).reshape(n, -1)[:, 0]]
        return [(len(t), t) for t in texts]
    if htype == layout.HT_REAL:
        mat = np.ascontiguousarray(arr, dtype="<f4").reshape(n, -1)
        width = mat.shape[1]
        return [(width, mat[i].tobytes()) for i in range(n)]
    mat = np.ascontiguousarray(arr, dtype="<i4").reshape(n, -1)
    counts = (mat != layout.INT32_VECTOR_END).sum(axis=1)
    return [(int(counts[i]), mat[i, : counts[i]].tobytes()) for i in range(n)]


# Up to this many samples per record, GT blobs are packed per sample in Python: numpy's
# per-call overhead made a 1-sample record's blob cost ~43 µs, half of parsing it.
_SMALL_GT = 32


def _gt_blobs(gt: np.ndarray, phased: np.ndarray) -> layout.VarChunk:
    """htslib GT codes: `(allele + 1) << 1`, phase bit on every allele after the first."""
    if len(gt) <= _SMALL_GT:
        return _gt_blobs_small(gt, phased)
    alleles = gt.astype(np.int32)
    codes = np.where(alleles >= 0, (alleles + 1) << 1, 0)
    if codes.shape[1] > 1:
        codes[:, 1:] |= phased[:, None].astype(np.int32)
    widths = (alleles != -2).sum(axis=1)
    if widths.size and (widths == widths[0]).all():
        # One ploidy for all samples (the usual case): one buffer, sliced per sample.
        width = int(widths[0])
        rows = np.empty((len(widths), 2 + width), dtype="<i4")
        rows[:, 0], rows[:, 1] = layout.HT_INT, width
        rows[:, 2:] = codes[:, :width]
        sizes = np.full(len(widths), 4 * (2 + width), dtype=np.uint64)
        return layout.VarChunk(rows.tobytes(), sizes)
    return layout.VarChunk.of(
        [
            struct.pack("<ii", layout.HT_INT, int(w)) + codes[i, :w].astype("<i4").tobytes()
            for i, w in enumerate(widths)
        ]
    )


_CALLS_SEEN = 4096  # distinct calls kept per input (`VcfInput._calls_seen`)
# the highest allele index, genotypes, phase, GT blobs and allele lists of one record's calls
_SmallGT = tuple[int, np.ndarray, np.ndarray, layout.VarChunk, list[list[int]]]


def _small_gt(raw: list[list[int]]) -> _SmallGT:
    """The calls of a few samples from cyvcf2's `genotype.array().tolist()` rows (alleles,
    then phase): shared between the records with the same calls, so the arrays are made
    read-only (no reader writes them)."""
    top = max(max(r[:-1]) for r in raw)
    arr = np.array(raw, dtype=np.int16)
    gt, phased = arr[:, :-1], arr[:, -1].astype(bool)
    gt.setflags(write=False)
    phased.setflags(write=False)
    rows = [[a for a in r[:-1] if a != -2] for r in raw]
    return top, gt, phased, _gt_blobs_rows([list(r) for r in raw]), rows


def _format_parts(arr: np.ndarray, prefix: bytes, htype: int, n: int) -> list[bytes]:
    """Each of `n` samples' part of their `fmt` blobs for one FORMAT key (`arr`: cyvcf2's
    `format()` of it), as `_format_values` encodes them, without numpy per sample."""
    if htype == layout.HT_STR or arr.dtype.kind in "USO":
        texts = [str(x).encode() for x in np.asarray(arr).reshape(n, -1)[:, 0].tolist()]
        return [prefix + struct.pack("<ii", htype, len(t)) + t for t in texts]
    if htype == layout.HT_REAL:
        mat = np.ascontiguousarray(arr, dtype="<f4").reshape(n, -1)
        head = prefix + struct.pack("<ii", htype, mat.shape[1])
        return [head + row.tobytes() for row in mat]
    out = []
    for ints in arr.reshape(n, -1).tolist():
        if layout.INT32_VECTOR_END in ints:
            ints = [x for x in ints if x != layout.INT32_VECTOR_END]
        out.append(prefix + _ints(len(ints) + 2).pack(htype, len(ints), *ints))
    return out


def _gt_blobs_rows(raw: list[list[int]]) -> layout.VarChunk:
    """`_gt_blobs` of cyvcf2's `genotype.array().tolist()` rows (alleles, then phase)."""
    cells = []
    for row in raw:
        phase = row.pop()
        if -2 in row:
            del row[row.index(-2) :]  # htslib's vector end: a lower ploidy
        codes = [(a + 1) << 1 if a >= 0 else 0 for a in row]
        if phase:
            codes[1:] = [c | 1 for c in codes[1:]]
        cells.append(_ints(2 + len(codes)).pack(layout.HT_INT, len(codes), *codes))
    return layout.VarChunk.of(cells)


@functools.lru_cache(maxsize=64)
def _no_format(n: int) -> layout.VarChunk:
    """The `fmt` blobs of `n` samples with no FORMAT field but GT, shared by the records
    (their bytes are immutable and their lengths read-only)."""
    chunk = layout.VarChunk.repeat(_NO_FORMAT, n)
    chunk.lengths.setflags(write=False)
    return chunk


@functools.cache
def _ints(count: int) -> struct.Struct:
    """The packer of `count` little-endian int32s."""
    return struct.Struct(f"<{count}i")


def _no_calls(n: int) -> tuple[np.ndarray, np.ndarray, layout.VarChunk, list[list[int]]]:
    """The calls of `n` samples of a record without GT: all missing."""
    gt, phased = np.full((n, 1), -1, dtype=np.int16), np.zeros(n, dtype=bool)
    return gt, phased, _gt_blobs_small(gt, phased), [[-1] for _ in range(n)]


def _gt_blobs_small(gt: np.ndarray, phased: np.ndarray) -> layout.VarChunk:
    """`_gt_blobs` for a few samples, with the same bytes (tests/store/test_vcfio_gt.py)."""
    return _gt_blobs_rows([[*row, p] for row, p in zip(gt.tolist(), phased.tolist(), strict=True)])
