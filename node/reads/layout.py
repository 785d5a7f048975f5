"""Where things are in an indexed BAM/CRAM/VCF/BCF file: header extent, reference names,
and the byte segments holding the records of a set of regions.

A result is a list of segments, served in order: `Span` (raw file bytes, served by the data
endpoint) or `Inline` (a few freshly compressed bytes, a `data:` URI). Their concatenation
is a whole valid file: header, records in file order each once, EOF marker.
"""

from __future__ import annotations

import gzip
import struct
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from node.errors import InvalidInput, NotFound
from node.reads.bgzf import BGZF_EOF, compress_block, iter_blocks, split_voffset
from node.reads.blocks import BlockCache, BlockSource
from node.reads.index import BinIndex, Chunk, parse_index
from node.reads.storage import ByteSource, LocalFile, Opened

__all__ = [
    "FileFormat",
    "Inline",
    "Layout",
    "Query",
    "Segment",
    "Span",
    "file_version",
    "load_layout",
]

FileFormat = Literal["BAM", "CRAM", "VCF", "BCF"]
_MAX_HEADER = 256 << 20  # refuse absurd headers instead of reading a whole file
CRAM_EOF_V3 = bytes.fromhex(
    "0f000000ffffffff0fe0454f4600000000010005bdd94f0001000606010001000100ee63014b"
)


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Inline:
    data: bytes


Segment = Span | Inline


@dataclass(frozen=True, slots=True)
class Query:
    """One region: reference name ("*" = unplaced reads, None = everything), 0-based half-open."""

    reference: str | None
    start: int = 0
    end: int | None = None


@dataclass(frozen=True, slots=True)
class CraiEntry:
    ref_id: int
    start: int  # 0-based
    span: int
    container: int


@dataclass(frozen=True, slots=True)
class Layout:
    source: ByteSource
    format: FileFormat
    size: int
    references: tuple[str, ...]
    header: tuple[Segment, ...]
    data_start: int  # virtual offset (BGZF) or byte offset (CRAM) of the first record
    data_end: int  # byte offset where the EOF marker starts
    eof: bytes
    index: BinIndex | tuple[CraiEntry, ...]
    version: str = ""  # the version parsed (storage.py): block URLs name the version they cut
    blocks: BlockCache = field(default_factory=BlockCache, compare=False, repr=False)

    @property
    def path(self) -> Path:
        """The local file (a remote object has none)."""
        if not isinstance(self.source, LocalFile):
            raise TypeError(f"{self.source.location} is not a local file")
        return self.source.path

    def ref_id(self, name: str) -> int:
        try:
            return self.references.index(name)
        except ValueError:
            raise NotFound(f"reference {name!r} is not in this file") from None

    def body(self, queries: Sequence[Query], *, max_reads: int | None = None) -> list[Segment]:
        """Segments of the records of `queries`, merged, in file order, each record once.

        `max_reads`: how many blocks not yet cached may be read, else `BlockMiss`.
        """
        if isinstance(self.index, tuple):
            return _cram_body(self, self.index, queries)
        with BlockSource(
            self.source, self.version, self.format, self.blocks, max_reads=max_reads
        ) as src:
            return _bgzf_body(self, self.index, src, queries)


def load_layout(
    path: ByteSource | Path, index_path: ByteSource | Path, fmt: FileFormat
) -> Layout:
    """Parse the index and header of one version of a file (blocking; callers cache it)."""
    source = LocalFile(path) if isinstance(path, Path) else path
    index_source = LocalFile(index_path) if isinstance(index_path, Path) else index_path
    with index_source.open() as idx:
        raw_index = idx.fh.read()
    with source.open() as opened:
        if fmt == "CRAM":
            return _cram_layout(source, opened, raw_index)
        return _bgzf_layout(source, opened, parse_index(raw_index), fmt)


def _bgzf_layout(source: ByteSource, opened: Opened, index: BinIndex, fmt: FileFormat) -> Layout:
    fh, size = opened.fh, opened.size
    header_len, refs = _bgzf_header(fh, fmt)
    c_h, u_h, header = _header_segments(fh, header_len)
    has_eof = size >= len(BGZF_EOF) and opened.fetch(size - len(BGZF_EOF), 64) == BGZF_EOF
    if index.names is not None and fmt != "BCF":
        # Tabix names only contigs with records; header-only contigs come after them, so
        # they are known (an empty result) but have no index entries.
        refs = index.names + tuple(r for r in refs if r not in index.names)
    data_end = size - len(BGZF_EOF) if has_eof else size
    data_start = c_h << 16 | u_h
    return Layout(
        source, fmt, size, refs, header, data_start, data_end, BGZF_EOF, index, opened.version
    )


def file_version(path: Path) -> str:
    return LocalFile(path).version()


def _bgzf_header(fh: BinaryIO, fmt: FileFormat) -> tuple[int, tuple[str, ...]]:
    """Uncompressed header length and reference names (BAM binary / BCF, VCF text)."""
    buf = bytearray()
    for _block, data in iter_blocks(fh):
        buf += data
        parsed = _try_header(bytes(buf), fmt)
        if parsed is not None:
            return parsed
        if len(buf) > _MAX_HEADER:
            break
    raise InvalidInput(f"cannot find the end of the {fmt} header")


def _try_header(buf: bytes, fmt: FileFormat) -> tuple[int, tuple[str, ...]] | None:
    if fmt == "BAM":
        return _bam_header(buf)
    if fmt == "BCF":
        if len(buf) < 9:
            return None
        (l_text,) = struct.unpack_from("<I", buf, 5)
        if len(buf) < 9 + l_text:
            return None
        return 9 + l_text, _vcf_contigs(buf[9 : 9 + l_text].decode(errors="replace"))
    pos = 0
    while True:  # VCF: the header is every line starting with '#'
        if pos >= len(buf):
            return None
        if buf[pos] != ord("#"):
            return pos, _vcf_contigs(buf[:pos].decode(errors="replace"))
        nl = buf.find(b"\n", pos)
        if nl < 0:
            return None
        pos = nl + 1


def _bam_header(buf: bytes) -> tuple[int, tuple[str, ...]] | None:
    # SAM v1 §4.2: magic, l_text, text, n_ref, then (l_name, name, l_ref) per reference.
    if len(buf) < 12:
        return None
    if buf[:4] != b"BAM\x01":
        raise InvalidInput("not a BAM file")
    (l_text,) = struct.unpack_from("<I", buf, 4)
    pos = 8 + l_text
    if len(buf) < pos + 4:
        return None
    (n_ref,) = struct.unpack_from("<I", buf, pos)
    pos += 4
    names: list[str] = []
    for _ in range(n_ref):
        if len(buf) < pos + 4:
            return None
        (l_name,) = struct.unpack_from("<I", buf, pos)
        if len(buf) < pos + 8 + l_name:
            return None
        names.append(buf[pos + 4 : pos + 4 + l_name - 1].decode())
        pos += 8 + l_name
    return pos, tuple(names)


def _vcf_contigs(text: str) -> tuple[str, ...]:
    # VCF 4.3 §1.4.7; BCF's contig dictionary is the ##contig lines in order (or IDX=).
    found: list[tuple[int, str]] = []
    for n, line in enumerate(text.splitlines()):
        if not line.startswith("##contig=<"):
            continue
        fields = dict(kv.split("=", 1) for kv in line[10:].rstrip(">").split(",") if "=" in kv)
        if "ID" in fields:
            found.append((int(fields["IDX"]) if "IDX" in fields else n, fields["ID"]))
    return tuple(name for _, name in sorted(found))


def _header_segments(fh: BinaryIO, header_len: int) -> tuple[int, int, tuple[Segment, ...]]:
    """Header bytes: whole blocks raw, plus the header's part of a shared block inline."""
    done = 0
    for block, data in iter_blocks(fh):
        if done + len(data) > header_len:
            u = header_len - done
            head: list[Segment] = [Span(0, block.offset)] if block.offset else []
            if u:
                head.append(Inline(compress_block(data[:u])))
            return block.offset, u, tuple(head)
        done += len(data)
        if done == header_len:
            return block.end, 0, (Span(0, block.end),)
    raise InvalidInput("file ends inside its header")


def _bgzf_body(
    layout: Layout, index: BinIndex, src: BlockSource, queries: Sequence[Query]
) -> list[Segment]:
    chunks = _merge([c for q in queries for c in _chunks(layout, index, q)])
    out: list[Segment] = []
    floor = layout.data_start
    for chunk in chunks:
        beg = max(chunk.beg, floor)
        if beg >= chunk.end:
            continue
        segments, floor = _chunk_segments(src, beg, chunk.end, floor)
        out.extend(segments)
    return _coalesce(out)


def _chunks(layout: Layout, index: BinIndex, q: Query) -> list[Chunk]:
    end_all = layout.data_end << 16
    if q.reference is None:
        return [Chunk(layout.data_start, end_all)]
    if q.reference == "*":
        return [Chunk(max(index.placed_end(), layout.data_start), end_all)]
    ref_id = layout.ref_id(q.reference)
    end = q.end if q.end is not None else 1 << 31
    return index.chunks(ref_id, q.start, end)


def _merge(chunks: list[Chunk]) -> list[Chunk]:
    """Chunks in file order, overlapping ones joined; so are chunks that meet inside one
    block (as htslib does): the few records between them come along (htsget allows it)
    and the block is cut once instead of twice."""
    merged: list[Chunk] = []
    for c in sorted(chunks, key=lambda c: c.beg):
        if merged and c.beg >> 16 <= merged[-1].end >> 16:
            last = merged[-1]
            merged[-1] = Chunk(last.beg, max(last.end, c.end))
        else:
            merged.append(c)
    return merged


def _chunk_segments(src: BlockSource, beg: int, end: int, floor: int) -> tuple[list[Segment], int]:
    """Segments of [beg, end) and the virtual offset they really reach.

    Whole blocks are served from the file wherever that adds only whole records: a chunk
    starting inside a block starts at the block when records fill it from its first byte
    and nothing before `floor` (already sent) is in it; a chunk ending inside a block is
    extended to the end of that block, found from the block's header, when records fill it
    to its last byte. Otherwise the block is cut exactly and the piece sent inline (bgzip'd
    text crosses block boundaries mid-line; a header may share a block with records).
    """
    cb, ub = split_voffset(beg)
    ce, ue = split_voffset(end)
    out: list[Segment] = []
    start = cb
    if ub:
        block = src.facts(cb).block
        whole = cb << 16 >= floor and src.reaches(cb, 0, ub)
        lo = 0 if whole else ub
        if ce == cb:
            return _tail(src, cb, lo, ue, out)
        out.append(Span(cb, block.end) if whole else Inline(compress_block(src.data(cb)[ub:])))
        start = block.end
    if ce > start:
        out.append(Span(start, ce))
    if not ue:
        return out, end
    return _tail(src, ce, 0, ue, out)


def _tail(
    src: BlockSource, offset: int, lo: int, ue: int, out: list[Segment]
) -> tuple[list[Segment], int]:
    facts = src.facts(offset)
    block = facts.block
    if src.reaches(offset, ue, facts.length):
        whole = Span(block.offset, block.end)
        out.append(whole if not lo else Inline(compress_block(src.data(offset)[lo:])))
        return out, block.end << 16
    if ue > lo:
        out.append(Inline(compress_block(src.data(offset)[lo:ue])))
    return out, block.offset << 16 | ue


def _coalesce(segments: list[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for seg in segments:
        prev = out[-1] if out else None
        if isinstance(seg, Span) and isinstance(prev, Span) and prev.end == seg.start:
            out[-1] = Span(prev.start, seg.end)
        else:
            out.append(seg)
    return out


def _cram_layout(source: ByteSource, opened: Opened, raw_index: bytes) -> Layout:
    entries = _parse_crai(raw_index)
    size = opened.size
    major = opened.fetch(0, 5)[4]
    tail = opened.fetch(max(size - len(CRAM_EOF_V3), 0), len(CRAM_EOF_V3))
    has_eof = major >= 3 and tail == CRAM_EOF_V3
    first = min((e.container for e in entries), default=size - len(tail) if has_eof else size)
    refs = _cram_references(opened.fetch(0, first), tail if has_eof else b"")
    data_end = size - len(CRAM_EOF_V3) if has_eof else size
    eof = CRAM_EOF_V3 if major >= 3 else b""
    return Layout(
        source, "CRAM", size, refs, (Span(0, first),), first, data_end, eof, entries,
        opened.version,
    )


def _cram_references(head: bytes, eof: bytes) -> tuple[str, ...]:
    """Reference names from the CRAM header (a compressed container: htslib reads it),
    taken from the file definition and header container alone, written out with the EOF
    container as a record-less CRAM, so a remote file is not downloaded for it."""
    import tempfile

    import pysam

    with tempfile.NamedTemporaryFile(suffix=".cram") as tmp:
        tmp.write(head + eof)
        tmp.flush()
        try:
            with pysam.AlignmentFile(tmp.name, "rc", check_sq=False) as cram:
                return tuple(cram.references)
        except (OSError, ValueError) as exc:
            raise InvalidInput("cannot read the CRAM header") from exc


def _parse_crai(raw: bytes) -> tuple[CraiEntry, ...]:
    text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    entries = []
    for line in text.decode().splitlines():
        if line.strip():
            f = line.split("\t")
            entries.append(CraiEntry(int(f[0]), max(int(f[1]) - 1, 0), int(f[2]), int(f[3])))
    return tuple(entries)


def _cram_body(
    layout: Layout, entries: tuple[CraiEntry, ...], queries: Sequence[Query]
) -> list[Segment]:
    # CRAM v3 §: whole containers; a container with several slices is taken once.
    bounds = sorted({e.container for e in entries} | {layout.data_end})
    chosen: set[int] = set()
    for q in queries:
        chosen |= {e.container for e in entries if _crai_hit(layout, e, q)}
    spans = [Span(c, bounds[bisect_right(bounds, c)]) for c in sorted(chosen)]
    return _coalesce(list(spans))


def _crai_hit(layout: Layout, e: CraiEntry, q: Query) -> bool:
    if q.reference is None:
        return True
    if q.reference == "*":
        return e.ref_id == -1
    if e.ref_id != layout.ref_id(q.reference):
        return False
    end = q.end if q.end is not None else 1 << 62
    return e.start < end and e.start + e.span > q.start
