"""INFO blobs as TileDB-VCF encodes them (issue 14, finding 2): a Flag's value is 4 bytes.

fednode before issue 14 wrote 1 byte; `layout.decode_blob` reads both, and a dataset
written that way (metadata INT64, QUAL a quiet NaN) still reads back as its input.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import tiledb

from node.domain import Record, Region
from node.store.dataset import dataset_state, layout
from node.store.ingest.vcfio import VcfInput
from node.store.memory import MemoryStore
from node.store.tiledbvcf import TileDBVCFStore
from tests.store.test_tiledbvcf import BCFTOOLS, write_vcf

WHOLE = 300_000_000
# What TileDB-VCF 0.40.2 stores for spec-v4.3 20:14370 `NS=3;DP=14;AF=0.5;DB;H2` (read
# from the dataset `tiledbvcf store` wrote of that file): each Flag is int32 1.
TILEDBVCF_14370 = bytes.fromhex(
    "05000000" "4e5300" "01000000" "01000000" "03000000"
    "445000" "01000000" "01000000" "0e000000"
    "414600" "02000000" "01000000" "0000003f"
    "444200" "00000000" "01000000" "01000000"
    "483200" "00000000" "01000000" "01000000"
)  # fmt: skip
SPEC_INFO = "\n".join(
    [
        '##INFO=<ID=NS,Number=1,Type=Integer,Description="Samples">',
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">',
        '##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency">',
        '##INFO=<ID=H2,Number=0,Type=Flag,Description="HapMap2">',
        '##INFO=<ID=SOMATIC,Number=0,Type=Flag,Description="Somatic">',
    ]
)
# Flags before a key of four or more characters (SVTYPE), last, alone; QUAL `.`.
ROWS = [
    "chr1\t14370\trs6054257\tG\tA\t29\tPASS\tNS=3;DP=14;AF=0.5;DB;H2\tGT:DP\t0|0:1\t1|0:8",
    "chr1\t17330\t.\tT\tA\t.\tq10\tDB;SVTYPE=SNV;DP=11\tGT:DP\t0|1:3\t0/0:5",
    "chr1\t18000\t.\tC\tG\t.\t.\tSOMATIC\tGT:DP\t1/1:7\t./.:.",
    "chr2\t500\t.\tA\tAT,C\t12.5\tPASS\tAF=0.25,0.5;SVTYPE=INS;H2\tGT:DP\t1/2:9\t0/1:4",
]


def _fields(blob: bytes) -> list[tuple[str, object]]:
    return [(k, layout.field_value(t, raw)) for k, t, _c, raw in layout.decode_blob(blob)]


def _legacy(fields: list[layout.BlobField]) -> bytes:
    """The blob as fednode wrote it before issue 14 (a Flag = one byte 0x01)."""
    return layout.encode_blob(
        (k, t, c, b"\x01" if t == layout.HT_FLAG else raw) for k, t, c, raw in fields
    )


def _int(v: int) -> bytes:
    return struct.pack("<i", v)


BLOBS = {
    "tiledbvcf flags (int32 1)": (
        TILEDBVCF_14370,
        [("NS", 3), ("DP", 14), ("AF", 0.5), ("DB", True), ("H2", True)],
    ),
    "tiledbvcf flag before any value (int32 0)": (
        layout.encode_blob([("DB", 0, 1, _int(0)), ("SVTYPE", 3, 3, b"SNV")]),
        [("DB", True), ("SVTYPE", "SNV")],
    ),
    "fednode before issue 14, flag before a long key": (
        _legacy([("DB", 0, 1, b""), ("SVTYPE", 3, 3, b"SNV"), ("DP", 1, 1, _int(11))]),
        [("DB", True), ("SVTYPE", "SNV"), ("DP", 11)],
    ),
    "fednode before issue 14, flags last": (
        _legacy([("NS", 1, 1, _int(3)), ("DB", 0, 1, b""), ("H2", 0, 1, b"")]),
        [("NS", 3), ("DB", True), ("H2", True)],
    ),
    "fednode before issue 14, a flag alone": (
        _legacy([("SOMATIC", 0, 1, b"")]),
        [("SOMATIC", True)],
    ),
}


@pytest.mark.parametrize("name", list(BLOBS))
def test_decode_reads_both_flag_widths(name: str) -> None:
    blob, expected = BLOBS[name]
    assert _fields(blob) == expected


@pytest.mark.skipif(BCFTOOLS is None, reason="bcftools is not installed")
def test_ingest_encodes_flags_as_tiledbvcf(tmp_path: Path) -> None:
    vcf = write_vcf(tmp_path / "flags.vcf.gz", ["A", "B"], ROWS, extra_header=SPEC_INFO)
    records = list(VcfInput(vcf).records())
    assert records[0].info == TILEDBVCF_14370
    assert [_fields(r.info) for r in records[1:]] == [
        [("DB", True), ("SVTYPE", "SNV"), ("DP", 11)],
        [("SOMATIC", True)],
        [("AF", (0.25, 0.5)), ("SVTYPE", "INS"), ("H2", True)],
    ]
    for rec in records:
        flags = [raw for _k, t, _c, raw in layout.decode_blob(rec.info) if t == layout.HT_FLAG]
        assert flags and all(raw == struct.pack("<i", 1) for raw in flags)


def _plain_meta(meta: tiledb.Metadata, array: str, key: str, value: int | str) -> None:
    meta[key] = value  # tiledb-py's default types: INT64, STRING_UTF8


@pytest.mark.skipif(BCFTOOLS is None, reason="bcftools is not installed")
def test_dataset_written_before_issue_14_reads_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1-byte flags, a quiet-NaN QUAL and INT64 metadata, as fednode wrote them before,
    then samples added by this code: records equal the reference store's of the inputs."""
    old = write_vcf(tmp_path / "old.vcf.gz", ["A", "B"], ROWS, extra_header=SPEC_INFO)
    one_sample = [_first_call(r) for r in ROWS]
    new = write_vcf(tmp_path / "new.vcf.gz", ["C"], one_sample, extra_header=SPEC_INFO)
    uri = str(tmp_path / "ds")
    with monkeypatch.context() as m:
        m.setattr(layout, "FLAG_VALUE", b"\x01")
        m.setattr(layout, "htslib_missing", lambda column: column)
        m.setattr(dataset_state, "put_meta", _plain_meta)
        TileDBVCFStore.create(uri).ingest([old])
    with tiledb.open(f"{uri}/data") as arr:
        assert arr.meta.__getitem__("version", include_type=True)[1].name == "INT64"
        cells = arr[:]
    assert b"DB\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01SVTYPE" in bytes(cells["info"][2])
    assert np.float32(np.nan).view(np.uint32) in cells["qual"].view(np.uint32)

    store = TileDBVCFStore.open(uri)
    reference = MemoryStore()
    store.ingest([new])
    reference.ingest([old])
    reference.ingest([new])
    for contig in ("1", "2"):
        region = Region(contig, 0, WHOLE)
        assert _records(store, region) == _records(reference, region)
    at_17330 = [r for b in store.records(Region("1", 17329, 17330)) for r in b]
    assert {r.calls[0].sample for r in at_17330} == {"A", "C"}  # old and new cells
    for r in at_17330:
        assert (r.qual, r.info) == (None, {"DB": True, "SVTYPE": "SNV", "DP": 11})


def _first_call(row: str) -> str:
    return "\t".join(row.split("\t")[:10])


def _records(store: TileDBVCFStore | MemoryStore, region: Region) -> list[tuple[object, ...]]:
    return [_plain(r) for batch in store.records(region) for r in batch]


def _plain(r: Record) -> tuple[object, ...]:
    """A record's fields; a one-value tuple is its value (pysam keeps Number=A as tuples)."""
    calls = [(c.sample, c.alleles, c.phased, _values(c.fields)) for c in r.calls]
    site = (r.contig, r.start, r.end, r.ref, r.alts, r.ids, r.qual, r.filters)
    return (*site, _values(r.info), calls)


def _values(fields: Mapping[str, object]) -> dict[str, object]:
    return {k: v[0] if isinstance(v, tuple) and len(v) == 1 else v for k, v in fields.items()}
