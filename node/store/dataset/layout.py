"""The TileDB-VCF v4 dataset layout: array names, schemas, metadata keys and the blob codec.

Everything here mirrors what TileDB-VCF 0.40 writes (checked against the datasets in
`../shared/tiledbvcf-fixture`, written by TileDB-VCF itself): a TileDB group with
`dataset_type = "vcf"` and members `data`, `metadata/vcf_headers`, `allele_count`,
`variant_stats` (write version 3) and `sample_stats`.

fednode adds, as extra group members TileDB-VCF ignores:

- `fednode_allele_stats`: per ingest, one row per (contig, pos, REF, ALT) with summed
  AC / hom / het / carrier counts, plus one "site" row per position (ALT = "") with the
  called-allele and called-sample counts of the samples that have a record there;
- `fednode_coverage`: gVCF reference blocks as intervals (anchored like `data`) with the
  called alleles they contribute, so a block written in one ingest counts as hom-ref for a
  site written by another;
- `fednode_genotypes`: per ingest, one cell per input record (and anchor copy, as `data`)
  with the record's site fields and the packed genotypes of that input's samples, so a
  region is read without one cell per sample (see `genotype_rows` and `genotype_reader`).

Positions are 0-based; `end_pos`/`end` are inclusive, as in TileDB-VCF.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import tiledb

from node.store.dataset import write_buffers
from node.store.dataset.write_buffers import Null, Var, VarChunk, var_of_chunks

__all__ = [
    "ALLELE_COUNT",
    "ANCHOR_GAP",
    "DATA",
    "FEDNODE_COVERAGE",
    "FEDNODE_GENOTYPES",
    "FEDNODE_STATS",
    "HEADERS",
    "SAMPLE_STATS",
    "VARIANT_STATS",
    "Null",
    "Var",
    "VarChunk",
    "anchor_copies",
    "decode_blob",
    "decode_field",
    "encode_blob",
    "header_id_table",
    "var_of_chunks",
    "write_columns",
]

DATA = "data"
METADATA_GROUP = "metadata"
HEADERS = "metadata/vcf_headers"
ALLELE_COUNT = "allele_count"
VARIANT_STATS = "variant_stats"
SAMPLE_STATS = "sample_stats"
FEDNODE_STATS = "fednode_allele_stats"
FEDNODE_COVERAGE = "fednode_coverage"
FEDNODE_GENOTYPES = "fednode_genotypes"
TILEDBVCF_ARRAYS = (DATA, HEADERS, ALLELE_COUNT, VARIANT_STATS, SAMPLE_STATS)
ALL_ARRAYS = (*TILEDBVCF_ARRAYS, FEDNODE_STATS, FEDNODE_COVERAGE, FEDNODE_GENOTYPES)

FORMAT_VERSION = 4
ANCHOR_GAP = 1000
TILE_CAPACITY = 10_000
GENOTYPES_CAPACITY = 512  # cells of ~5 KB at 2,504 samples: a one-site read decodes ~2.5 MB
VARIANT_STATS_VERSION = 2  # what `tiledbvcf create` writes unless asked for 3
VARIANT_STATS_VERSIONS = (2, 3)
EXTRA_ATTRIBUTES = ("fmt_GT",)  # TileDB-VCF always extracts GT
_POS_MAX = 2**32 - 2

# htslib value types inside info/fmt blobs (htslib vcf.h BCF_HT_*).
HT_FLAG, HT_INT, HT_REAL, HT_STR = 0, 1, 2, 3
INT32_MISSING = -(2**31)
INT32_VECTOR_END = -(2**31) + 1
_REAL_MISSING_BITS = 0x7F800001
_REAL_VECTOR_END_BITS = 0x7F800002

SAMPLE_STATS_COUNTERS = (
    "n_records",
    "n_called",
    "n_not_called",
    "n_hom_ref",
    "n_het",
    "n_singleton",
    "n_snp",
    "n_insertion",
    "n_deletion",
    "n_transition",
    "n_transversion",
    "n_star",
    "n_multiallelic",
)
SAMPLE_STATS_NULLABLE = tuple(
    f"{field}_{agg}" for field in ("dp", "gq") for agg in ("sum", "sum2", "count", "min", "max")
)
FEDNODE_COUNTS = ("ac", "an", "n_hom_alt", "n_het", "n_carriers", "n_called")


def _zstd(level: int, *, checksum: bool = True, pre: Sequence[tiledb.Filter] = ()) -> list:  # type: ignore[type-arg]
    filters: list[tiledb.Filter] = [*pre, tiledb.ZstdFilter(level=level)]
    if checksum:
        filters.append(tiledb.ChecksumSHA256Filter())
    return filters


def _str_dim(name: str, filters: Sequence[tiledb.Filter]) -> tiledb.Dim:
    return tiledb.Dim(name=name, dtype="ascii", filters=tiledb.FilterList(filters))


def _pos_dim(name: str, filters: Sequence[tiledb.Filter]) -> tiledb.Dim:
    return tiledb.Dim(
        name=name,
        domain=(0, _POS_MAX),
        tile=_POS_MAX + 1,
        dtype=np.uint32,
        filters=tiledb.FilterList(filters),
    )


def _attr(name: str, dtype: object, filters: Sequence[tiledb.Filter], **kw: object) -> tiledb.Attr:
    return tiledb.Attr(name=name, dtype=dtype, filters=tiledb.FilterList(filters), **kw)


def _sparse(
    dims: list[tiledb.Dim],
    attrs: list[tiledb.Attr],
    *,
    dups: bool,
    offsets: Sequence[tiledb.Filter],
    capacity: int = TILE_CAPACITY,
) -> tiledb.ArraySchema:
    # TileDB-VCF sets the filters of var-size offsets per array too; they are not part of
    # the schema's repr, so they are easy to miss (see the fixture test). The schema-level
    # coordinates pipeline is left at TileDB's default (zstd -1, what TileDB-VCF has on
    # every array but vcf_headers): tiledb-py deprecates setting it and copies it onto every
    # dimension instead, and it has no effect here because every dimension has its own.
    return tiledb.ArraySchema(
        domain=tiledb.Domain(*dims),
        attrs=attrs,
        sparse=True,
        allows_duplicates=dups,
        cell_order="row-major",
        tile_order="row-major",
        capacity=capacity,
        offsets_filters=tiledb.FilterList(offsets),
        validity_filters=tiledb.FilterList([tiledb.RleFilter()]),
    )


def data_schema() -> tiledb.ArraySchema:
    """`data` (TileDB-VCF tiledbvcfdataset.cc, format version 4)."""
    z4 = 4
    dims = [
        _str_dim("contig", [tiledb.RleFilter()]),
        _pos_dim("start_pos", _zstd(z4, pre=[tiledb.DoubleDeltaFilter()])),
        _str_dim("sample", _zstd(z4, checksum=False, pre=[tiledb.DictionaryFilter()])),
    ]
    shuffled = _zstd(z4, pre=[tiledb.ByteShuffleFilter()])
    attrs = [
        _attr("real_start_pos", np.uint32, shuffled),
        _attr("end_pos", np.uint32, shuffled),
        _attr("qual", np.float32, _zstd(z4)),
        _attr("alleles", "ascii", _zstd(z4), var=True),
        _attr("id", "ascii", _zstd(z4), var=True),
        _attr("filter_ids", np.int32, shuffled, var=True),
        _attr("info", np.uint8, _zstd(z4), var=True),
        _attr("fmt", np.uint8, _zstd(z4), var=True),
        *(_attr(name, np.uint8, _zstd(z4), var=True) for name in EXTRA_ATTRIBUTES),
    ]
    return _sparse(dims, attrs, dups=True, offsets=_zstd(z4, pre=[tiledb.DoubleDeltaFilter()]))


def headers_schema() -> tiledb.ArraySchema:
    dims = [_str_dim("sample", [tiledb.ZstdFilter(level=-1)])]
    attrs = [_attr("header", "ascii", _zstd(-1), var=True)]
    offsets = _zstd(-1, pre=[tiledb.DoubleDeltaFilter()])
    return _sparse(dims, attrs, dups=False, offsets=offsets)


def _stats_pos_filters(level: int, *, shuffle: bool) -> list[tiledb.Filter]:
    pre = [tiledb.DoubleDeltaFilter(), tiledb.BitWidthReductionFilter(window=256)]
    post = [tiledb.ByteShuffleFilter()] if shuffle else []
    return [*pre, tiledb.ZstdFilter(level=level), *post, tiledb.ChecksumSHA256Filter()]


def allele_count_schema() -> tiledb.ArraySchema:
    """`allele_count` version 1 (TileDB-VCF stats/allele_count.cc)."""
    dims = [
        _str_dim("contig", [tiledb.RleFilter()]),
        _pos_dim("pos", _stats_pos_filters(-1, shuffle=False)),
    ]
    attrs = [_attr(name, "ascii", _zstd(-1), var=True) for name in ("ref", "alt", "filter", "gt")]
    count_filters = [tiledb.BitWidthReductionFilter(window=256), *_zstd(-1)]
    attrs.append(_attr("count", np.int32, count_filters))
    return _sparse(dims, attrs, dups=True, offsets=_stats_pos_filters(-1, shuffle=False))


def variant_stats_schema(version: int = VARIANT_STATS_VERSION) -> tiledb.ArraySchema:
    """`variant_stats` of write version 2 (dimensions contig, pos) or 3 (contig, pos,
    sample, end; attribute `max_length`), as TileDB-VCF stats/variant_stats.cc creates it."""
    if version not in VARIANT_STATS_VERSIONS:
        raise ValueError(f"variant_stats version {version}: TileDB-VCF writes 2 and 3")
    pos_filters = _stats_pos_filters(9, shuffle=True)
    sample_filters = [
        tiledb.DictionaryFilter(),
        tiledb.ZstdFilter(level=9),
        tiledb.ByteShuffleFilter(),
        tiledb.ChecksumSHA256Filter(),
    ]
    dims = [_str_dim("contig", [tiledb.RleFilter()]), _pos_dim("pos", pos_filters)]
    if version == 3:
        dims += [_str_dim("sample", sample_filters), _pos_dim("end", pos_filters)]
    counts = [
        tiledb.BitWidthReductionFilter(window=256),
        tiledb.ZstdFilter(level=9),
        tiledb.ByteShuffleFilter(),
        tiledb.ChecksumSHA256Filter(),
    ]
    attrs = [
        _attr("allele", "ascii", _zstd(9), var=True),
        *(_attr(name, np.int32, counts) for name in ("ac", "an", "n_hom")),
    ]
    if version == 3:
        attrs.append(_attr("max_length", np.uint32, [tiledb.RleFilter()]))
    return _sparse(dims, attrs, dups=True, offsets=_stats_pos_filters(9, shuffle=False))


def sample_stats_schema() -> tiledb.ArraySchema:
    """`sample_stats` version 1 (TileDB-VCF stats/sample_stats.cc); rows summed on read."""
    dims = [_str_dim("sample", _zstd(13, pre=[tiledb.DictionaryFilter()]))]
    attrs = [_attr(name, np.uint64, _zstd(13), nullable=True) for name in SAMPLE_STATS_NULLABLE]
    attrs += [_attr(name, np.uint64, _zstd(13)) for name in SAMPLE_STATS_COUNTERS]
    return _sparse(dims, attrs, dups=True, offsets=_zstd(13))


def fednode_stats_schema() -> tiledb.ArraySchema:
    """fednode's aggregate: rows are per-ingest deltas, summed on read (few per allele)."""
    pos_filters = _stats_pos_filters(5, shuffle=False)
    dims = [_str_dim("contig", [tiledb.RleFilter()]), _pos_dim("pos", pos_filters)]
    text = ("ref", "alt", "id", "source_contig")
    attrs = [_attr(name, "ascii", _zstd(5), var=True) for name in text]
    attrs.append(_attr("end", np.uint32, _zstd(5)))
    attrs += [_attr(name, np.int32, _zstd(5)) for name in FEDNODE_COUNTS]
    return _sparse(dims, attrs, dups=True, offsets=_zstd(5, checksum=False))


def fednode_coverage_schema() -> tiledb.ArraySchema:
    """Reference-block coverage: `start` is the block start or an anchor inside it."""
    dims = [
        _str_dim("contig", [tiledb.RleFilter()]),
        _pos_dim("start", _stats_pos_filters(5, shuffle=False)),
    ]
    attrs = [_attr(name, np.uint32, _zstd(5)) for name in ("real_start", "end")]
    attrs += [_attr(name, np.int32, _zstd(5)) for name in ("an", "n_called")]
    return _sparse(dims, attrs, dups=True, offsets=_zstd(5, checksum=False))


def fednode_genotypes_schema() -> tiledb.ArraySchema:
    """One cell per input record (`pos` is its start or an anchor, as `data.start_pos`).

    `group` names the input's sample list (array metadata `samples_<group>`); `shape` is
    the ploidy, plus 128 when `gt` holds int16 codes; `gt` (int8/int16 allele codes,
    samples x ploidy), `phased` (bits) and `fmt` (packed FORMAT blobs, empty when no
    sample has any) are not checksummed: they are most of what a region read decodes.
    """
    dims = [
        _str_dim("contig", [tiledb.RleFilter()]),
        _pos_dim("pos", _stats_pos_filters(4, shuffle=False)),
    ]
    shuffled = _zstd(4, pre=[tiledb.ByteShuffleFilter()])
    attrs = [
        _attr("real_start", np.uint32, shuffled),
        _attr("end", np.uint32, shuffled),
        _attr("qual", np.float32, _zstd(4)),
        *(_attr(name, "ascii", _zstd(4), var=True) for name in ("alleles", "id", "filters")),
        _attr("info", np.uint8, _zstd(4), var=True),
        _attr("group", np.uint64, shuffled),
        _attr("shape", np.uint8, _zstd(4)),
        *(
            _attr(name, np.uint8, _zstd(3, checksum=False), var=True)
            for name in ("gt", "phased", "fmt")
        ),
    ]
    offsets = _zstd(4, checksum=False, pre=[tiledb.DoubleDeltaFilter()])
    return _sparse(dims, attrs, dups=True, offsets=offsets, capacity=GENOTYPES_CAPACITY)


def write_columns(
    array: tiledb.Array, columns: Mapping[str, object], *, ordered: bool = False
) -> str | None:
    """`write_buffers.write_columns`, every NaN of a float32 column (QUAL) stored as htslib's
    missing value 0x7f800001 (bcf_float_missing): TileDB-VCF exports another NaN as `nan`,
    and a Python float NaN always arrives quiet (0x7fc00000)."""
    return write_buffers.write_columns(
        array, {name: htslib_missing(column) for name, column in columns.items()}, ordered=ordered
    )


def anchor_copies(pos: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Records' cells with anchor copies, as TileDB-VCF writes them: one every
    ANCHOR_GAP from the start, strictly before end_pos (so a record shorter than the gap
    has none). Returns each cell's record index and start_pos, or None when no record
    needs a copy."""
    copies = (np.maximum(end, pos + 1) - pos + ANCHOR_GAP - 1) // ANCHOR_GAP
    if not (copies > 1).any():
        return None
    record = np.repeat(np.arange(len(pos)), copies)
    first = np.repeat(np.cumsum(copies) - copies, copies)
    return record, pos[record] + ANCHOR_GAP * (np.arange(len(record)) - first)


def htslib_missing(column: object) -> object:
    """`column` with every NaN of a float32 array as bcf_float_missing (a copy if changed)."""
    if not (isinstance(column, np.ndarray) and column.dtype == np.float32):
        return column
    nan = np.isnan(column)
    if not nan.any():
        return column
    bits = np.array(column, dtype=np.float32).view(np.uint32)  # a copy: callers keep theirs
    bits[nan] = _REAL_MISSING_BITS
    return bits.view(np.float32)


SCHEMAS = {
    DATA: data_schema,
    HEADERS: headers_schema,
    ALLELE_COUNT: allele_count_schema,
    VARIANT_STATS: variant_stats_schema,
    SAMPLE_STATS: sample_stats_schema,
    FEDNODE_STATS: fednode_stats_schema,
    FEDNODE_COVERAGE: fednode_coverage_schema,
    FEDNODE_GENOTYPES: fednode_genotypes_schema,
}


# --- info / fmt blobs -------------------------------------------------------------------
# Layout (TileDB-VCF writer_worker_v4.cc buffer_info_field): uint32 field count, then per
# field `key\0`, int32 htslib type, int32 value count, the values: 1 byte each for STR,
# 4 bytes otherwise, FLAG included (utils::bcf_type_size): TileDB-VCF 0.40 writes a Flag
# as int32 1 (0 before its worker has read any value; older releases wrote whatever
# its value buffer held). Extracted `info_X`/`fmt_X` attributes hold one field without
# its key; absent = b"\x00".

BlobField = tuple[str, int, int, bytes]  # key, htslib type, count, raw little-endian values
FLAG_VALUE = struct.pack("<i", 1)
_LEGACY_FLAG = b"\x01"  # fednode before issue 14 stored a Flag as this one byte
_KEY_BYTES = frozenset(range(0x21, 0x7F)) - frozenset(b";=,")


def encode_blob(fields: Iterable[BlobField]) -> bytes:
    items = list(fields)
    parts = [struct.pack("<I", len(items))]
    for key, htype, count, raw in items:
        parts.append(key.encode() + b"\0" + struct.pack("<ii", htype, count) + raw)
    return b"".join(parts)


def encode_field(htype: int, count: int, raw: bytes) -> bytes:
    """An extracted attribute value (no key)."""
    return struct.pack("<ii", htype, count) + raw


def _value_size(htype: int) -> int:
    return 1 if htype == HT_STR else 4


def decode_blob(blob: bytes) -> list[BlobField]:
    """The fields of an `info`/`fmt` blob, Flags read with either width.

    A blob with a Flag that parses exactly with 1-byte flags, each byte 0x01, is one
    fednode wrote before issue 14; otherwise flags are 4 bytes. int32 1 or 0 (TileDB-VCF
    0.40, fednode now) never parses the 1-byte way: the byte after it starts no key. Only
    a blob of an old TileDB-VCF whose stale flag bytes were 0x01 and three key characters,
    before another field, would be misread.
    """
    try:
        fields, flags = _fields(blob)
    except (ValueError, struct.error):  # no key terminator, short values, not UTF-8
        legacy = _legacy_fields(blob)
        if legacy is None:
            raise
        return legacy
    legacy = _legacy_fields(blob) if flags else None
    return fields if legacy is None else legacy


def _fields(blob: bytes) -> tuple[list[BlobField], bool]:
    """The fields with 4-byte flags, and whether there is a flag."""
    if len(blob) < 4:
        return [], False
    (n,) = struct.unpack_from("<I", blob, 0)
    offset, out, flags = 4, list[BlobField](), False
    for _ in range(n):
        end = blob.index(b"\0", offset)
        key = blob[offset:end].decode()
        htype, count = struct.unpack_from("<ii", blob, end + 1)
        start = end + 9
        stop = start + count * _value_size(htype)
        out.append((key, htype, count, blob[start:stop]))
        flags = flags or htype == HT_FLAG
        offset = stop
    return out, flags


def _legacy_fields(blob: bytes) -> list[BlobField] | None:
    """The fields with 1-byte 0x01 flags, when that reading covers `blob` exactly."""
    if len(blob) < 4:
        return None
    (n,) = struct.unpack_from("<I", blob, 0)
    offset, out = 4, list[BlobField]()
    for _ in range(n):
        end = blob.find(b"\0", offset)
        if end <= offset or end + 9 > len(blob) or not _KEY_BYTES.issuperset(blob[offset:end]):
            return None
        htype, count = struct.unpack_from("<ii", blob, end + 1)
        start = end + 9
        stop = start + (1 if htype == HT_FLAG else count * _value_size(htype))
        raw = blob[start:stop]
        if not HT_FLAG <= htype <= HT_STR or count < 0 or stop > len(blob):
            return None
        if htype == HT_FLAG and (count, raw) != (1, _LEGACY_FLAG):
            return None
        out.append((blob[offset:end].decode(), htype, count, raw))
        offset = stop
    return out if offset == len(blob) else None


def decode_field(blob: bytes) -> tuple[int, int, bytes] | None:
    """An extracted attribute value, or None when the record lacks the field."""
    if len(blob) < 8:
        return None
    htype, count = struct.unpack_from("<ii", blob, 0)
    return htype, count, blob[8 : 8 + count * _value_size(htype)]


def field_value(htype: int, raw: bytes) -> object:
    """A blob value as Python: scalars for one value, tuples otherwise; None = missing."""
    if htype == HT_FLAG:
        return True
    if htype == HT_STR:
        return raw.rstrip(b"\0").decode(errors="replace")
    if htype == HT_INT:
        ints = np.frombuffer(raw, dtype="<i4")
        values: list[object] = [
            None if v == INT32_MISSING else int(v) for v in ints if v != INT32_VECTOR_END
        ]
    else:
        bits = np.frombuffer(raw, dtype="<u4")
        floats = np.frombuffer(raw, dtype="<f4")
        values = [
            None if b == _REAL_MISSING_BITS else float(f)
            for b, f in zip(bits, floats, strict=True)
            if b != _REAL_VECTOR_END_BITS
        ]
    return values[0] if len(values) == 1 else tuple(values)


def decode_gt(raw: bytes) -> tuple[tuple[int | None, ...], bool]:
    """htslib GT encoding `(allele + 1) << 1 | phased`; 0/1 = missing; vector end dropped."""
    codes = [int(v) for v in np.frombuffer(raw, dtype="<i4") if v != INT32_VECTOR_END]
    alleles = tuple(None if (c >> 1) == 0 else (c >> 1) - 1 for c in codes)
    phased = any(c & 1 for c in codes[1:])
    return alleles, phased


# --- htslib header dictionary -----------------------------------------------------------


def header_id_table(header: str) -> list[str]:
    """htslib's shared FILTER/INFO/FORMAT id dictionary: PASS is 0, then first-seen order.

    `data.filter_ids` holds indexes into this table of the sample's own header.
    """
    table = ["PASS"]
    seen = {"PASS"}
    for line in header.splitlines():
        if not line.startswith(("##FILTER=<", "##INFO=<", "##FORMAT=<")):
            continue
        ident = _structured_id(line)
        if ident is not None and ident not in seen:
            seen.add(ident)
            table.append(ident)
    return table


def _structured_id(line: str) -> str | None:
    body = line[line.index("<") + 1 :]
    for part in body.split(","):
        if part.startswith("ID="):
            return part[3:].rstrip(">")
    return None


def decode_filters(filter_ids: Sequence[int], table: Sequence[str]) -> tuple[str, ...]:
    if len(filter_ids) == 0 or filter_ids[0] == 0:
        return ()
    return tuple(table[i] if 0 <= i < len(table) else f"FILTER_{i}" for i in filter_ids[1:])


def meta_str(meta: Mapping[str, object], key: str, default: str = "") -> str:
    value = meta.get(key, default)
    return value.decode() if isinstance(value, bytes) else str(value)
