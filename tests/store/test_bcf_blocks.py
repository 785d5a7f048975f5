"""The block reader (`bcf_blocks`: htslib through ctypes, numba kernels) against the cyvcf2
parser of `vcfio`, a second implementation of the same records: every `ParsedRecord`
field equal, for VCF text and BCF, one and three samples, random records reaching every
branch of the decoder, the few-sample files of ../shared, and the records the decoder
hands over to cyvcf2 (a non-ASCII value, mixed ploidy, undeclared keys) with what follows
them. Errors are the cyvcf2 parser's, with the same file and line.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest

from node.errors import IngestError
from node.store.ingest import vcfio
from tests.store.test_small_paths import _write_vcf


def _records(path: Path, blocks: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[list, int]:
    monkeypatch.setattr(vcfio, "BLOCKS", blocks)
    inp = vcfio.VcfInput(path)
    out = list(inp.records())
    return out, inp.block_records


def _value(x: object) -> object:
    if isinstance(x, np.ndarray):
        return (x.dtype.str, x.shape, x.tolist())
    if hasattr(x, "lengths"):
        return (x.data, x.lengths.tolist())  # type: ignore[attr-defined]
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    return x


def _fields(rec: vcfio.ParsedRecord) -> dict[str, object]:
    return {f: _value(getattr(rec, f)) for f in rec.__slots__}


def _same(path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Assert both readers give the same records; the count the block reader read."""
    plain, none = _records(path, False, monkeypatch)
    blocks, count = _records(path, True, monkeypatch)
    assert none == 0
    assert len(blocks) == len(plain)
    for a, b in zip(plain, blocks, strict=True):
        assert _fields(b) == _fields(a), (path, a.line)
    return count


def _bcf(vcf: Path) -> Path:
    """`vcf` as BCF (htslib writes no BCF with a FILTER its header lacks: declared)."""
    declared = vcf.with_name("declared.vcf")
    text = vcf.read_text()
    if "LowGQ" in text:
        text = text.replace("##INFO", '##FILTER=<ID=LowGQ,Description="l">\n##INFO', 1)
    declared.write_text(text)
    out = vcf.with_suffix(".bcf")
    subprocess.run(["bcftools", "view", "-Ob", "-o", str(out), str(declared)], check=True,
                   capture_output=True)  # fmt: skip
    return out


@pytest.mark.parametrize("seed", range(6))
def test_random_records_equal_the_cyvcf2_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    vcf = tmp_path / "in.vcf"
    _write_vcf(vcf, 100 + seed)
    n_samples = len(vcfio.VcfInput(vcf).samples)
    for path in (vcf, _bcf(vcf)):
        count = _same(path, monkeypatch)
        if n_samples == 1:  # one sample: every record decoded by blocks
            assert count == 300, path


_HEADER = """##fileformat=VCFv4.2
##contig=<ID=1,length=1000000>
##FILTER=<ID=q10,Description="q">
##INFO=<ID=DP,Number=1,Type=Integer,Description="d">
##INFO=<ID=AC,Number=A,Type=Integer,Description="c">
##INFO=<ID=AF,Number=A,Type=Float,Description="f">
##INFO=<ID=DB,Number=0,Type=Flag,Description="b">
##INFO=<ID=S,Number=.,Type=String,Description="s">
##INFO=<ID=C,Number=1,Type=Character,Description="c">
##INFO=<ID=BIG,Number=.,Type=Integer,Description="wide ints">
##FORMAT=<ID=GT,Number=1,Type=String,Description="g">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="a">
##FORMAT=<ID=PL,Number=G,Type=Integer,Description="p">
##FORMAT=<ID=HQ,Number=2,Type=Float,Description="h">
##FORMAT=<ID=FT,Number=1,Type=String,Description="t">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1
"""
# One sample, each line a branch of the decoder; all decoded by blocks.
_DECODED = [
    "1\t10\trs1;rs2\tA\tC,G\t.\tq10;PASS\tDP=.;AF=0.5,.;AC=1,.;DB;S=ab,c;C=x\tGT:AD:PL:FT:HQ\t0|1:3,.:1,2,3:PASS:1.5,.",
    "1\t11\t.\tA\tT\t3.5\t.\tDP=4\tGT:AD\t./.:.",
    "1\t12\t.\tA\t.\t7\tPASS\t.\tGT\t.",
    "1\t13\t.\tAT\t<DEL>\t7\tPASS\tS=.;BIG=70000,-3,200\tGT:AD\t1:3",
    "1\t14\t.\tA\tT\t7\tPASS\tDP=40000\tGT:HQ\t.|1:1",
    "1\t15\t.\tA\tT,G\t7\tPASS\tDP=4\tGT:PL\t1/1/.:0,1,2,300,4,5,6,7,8,9",
    "1\t16\tx\tACGT\tA\t1e-3\tPASS\tAF=nan\tGT:FT\t0/1:lowq",
    "1\t17\t.\tA\tC\t7\tPASS\t.\tAD\t5,6",
]


def test_every_branch_of_one_sample_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vcf = tmp_path / "edge.vcf"
    vcf.write_text(_HEADER + "\n".join(_DECODED) + "\n")
    for path in (vcf, _bcf(vcf)):
        assert _same(path, monkeypatch) == len(_DECODED), path


@pytest.mark.parametrize(
    ("line", "decoded"),
    [
        # a value past ASCII: that record and the rest are cyvcf2's
        ("1\t20\t.\tA\tC\t7\tPASS\tS=caf\u00e9\tGT\t0/1", False),
        # keys and a contig the header lacks: htslib declares them, the reader reads again
        ("1\t20\t.\tA\tC\t7\tPASS\tUNDECLARED=5\tGT\t0/1", True),
        ("1\t20\t.\tA\tC\t7\tLowQ\tDP=3\tGT\t0/1", True),
        ("2\t20\t.\tA\tC\t7\tPASS\tDP=3\tGT\t0/1", True),
    ],
)
def test_records_handed_to_cyvcf2_and_those_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, decoded: bool
) -> None:
    vcf = tmp_path / "mixed.vcf"
    after = [r.replace("1\t1", "2\t3", 1) for r in _DECODED]  # later positions
    vcf.write_text(_HEADER + "\n".join([*_DECODED, line, *after]) + "\n")
    count = _same(vcf, monkeypatch)
    assert count == (2 * len(_DECODED) + 1 if decoded else len(_DECODED))


def test_mixed_ploidy_of_three_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three samples, one haploid: cyvcf2 reads a phase where the decoder sees htslib's
    vector end, so the record is cyvcf2's; the diploid records before it are blocks'."""
    header = _HEADER.replace("\tS1\n", "\tS1\tS2\tS3\n")
    rows = [
        f"1\t{10 + i}\t.\tA\tC\t7\tPASS\tDP=3\tGT:AD\t0|1:1,2\t1/1:.\t./.:3,4" for i in range(5)
    ]
    rows.append("1\t30\t.\tA\tC\t7\tPASS\tDP=3\tGT\t0|1\t1\t0/0")
    vcf = tmp_path / "trio.vcf"
    vcf.write_text(header + "\n".join(rows) + "\n")
    assert _same(vcf, monkeypatch) == 5
    assert _same(_bcf(vcf), monkeypatch) == 5


@pytest.mark.parametrize(
    "bad",
    [
        "1\t20\t.\tA\tC\t7\tPASS\tDP=3\tGT\t0/5",  # allele index past the ALTs
        "1\t20\t.\tA\tC\t7\tPASS\tDP=3\tGT\t0/1:5",  # more values than FORMAT keys (htslib)
    ],
)
def test_errors_name_the_same_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    vcf = tmp_path / "bad.vcf"
    vcf.write_text(_HEADER + "\n".join([*_DECODED, bad, *_DECODED[:2]]) + "\n")
    messages = []
    for blocks in (False, True):
        monkeypatch.setattr(vcfio, "BLOCKS", blocks)
        with pytest.raises(IngestError) as err:
            list(vcfio.VcfInput(vcf).records())
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    assert f":{_HEADER.count(chr(10)) + len(_DECODED) + 1}" in messages[1]


def test_few_sample_files_of_shared(monkeypatch: pytest.MonkeyPatch, shared_dir: Path) -> None:
    files = [
        "beacon-testdata/ega-beacon2-ri-tools-v2/vcf/case1C_subset.vcf.gz",
        "htsget-testdata/bcf/sample1-bcbio-cancer.bcf",
        "htsget-testdata/vcf/sample1-bcbio-cancer.vcf.gz",
        "htsget-testdata/bcf/spec-v4.3.bcf",
        "htsget-testdata/vcf/spec-v4.3.vcf.gz",
        "tiledbvcf-fixture/inputs/small/small.bcf",
        "tiledbvcf-fixture/inputs/small/small2.bcf",
        "tiledbvcf-fixture/inputs/snp_cohort10/S000.vcf.gz",
        "tiledbvcf-fixture/inputs/synthetic_gvcf/G1.bcf",
    ]
    for name in files:
        path = shared_dir / name
        n = sum(1 for _ in vcfio.VcfInput(path).records())
        assert _same(path, monkeypatch) == n, name  # all of it by blocks


def test_large_block_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """More records than a block, and one record larger than the first buffers."""
    rng = random.Random(7)
    rows = []
    for i in range(10_000):
        note = "x" * (3 << 20) if i == 6000 else f"n{rng.randint(0, 9)}"
        rows.append(f"1\t{100 + i}\t.\tA\tC\t7\tPASS\tDP={rng.randint(0, 99)};S={note}\tGT\t0/1")
    vcf = tmp_path / "many.vcf"
    vcf.write_text(_HEADER + "\n".join(rows) + "\n")
    assert _same(vcf, monkeypatch) == 10_000


def test_htslib_symbols_stay_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernels bind htslib by address: after a block read, the process's global
    symbols still name no htslib function, so an htslib loaded later (Debian's libhts,
    tests/store/test_stats_rows.py) keeps its own (with pysam's opened RTLD_GLOBAL, its
    calls went to pysam's and crashed)."""
    import ctypes

    vcf = tmp_path / "edge.vcf"
    vcf.write_text(_HEADER + "\n".join(_DECODED) + "\n")
    assert _same(vcf, monkeypatch) == len(_DECODED)
    with pytest.raises(AttributeError):
        ctypes.CDLL(None).bcf_read  # noqa: B018


def test_a_block_reader_that_cannot_start_leaves_the_file_to_cyvcf2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """numba unable to compile (here: made to fail) costs speed, not the ingest."""
    from node.store.ingest import bcf_blocks

    vcf = tmp_path / "edge.vcf"
    vcf.write_text(_HEADER + "\n".join(_DECODED) + "\n")
    plain, _ = _records(vcf, False, monkeypatch)

    def broken() -> None:
        raise RuntimeError("no LLVM today")

    monkeypatch.setattr(bcf_blocks, "_prepare", broken)
    blocks, count = _records(vcf, True, monkeypatch)
    assert count == 0
    assert [_fields(r) for r in blocks] == [_fields(r) for r in plain]
    assert "no LLVM today" in caplog.text


def test_the_setting_turns_the_block_reader_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`[ingest] block_reader = false` (FEDNODE_INGEST__BLOCK_READER): every record through
    cyvcf2, in this process and in `--workers` tasks."""
    from node.config import Settings
    from node.store.ingest import ingest_tasks
    from node.store.tiledbvcf import TileDBVCFStore

    assert Settings().ingest.block_reader is True
    monkeypatch.setenv("FEDNODE_INGEST__BLOCK_READER", "false")
    assert Settings().ingest.block_reader is False
    vcf = tmp_path / "edge.vcf"
    vcf.write_text(_HEADER + "\n".join(_DECODED) + "\n")
    used: list[str] = []
    real = vcfio.VcfInput._block_records

    def spy(self: vcfio.VcfInput):  # type: ignore[no-untyped-def]
        used.append(self.name)
        return (yield from real(self))

    monkeypatch.setattr(vcfio.VcfInput, "_block_records", spy)
    TileDBVCFStore.create(str(tmp_path / "off")).ingest([vcf], block_reader=False)
    assert used == []
    TileDBVCFStore.create(str(tmp_path / "on")).ingest([vcf])
    assert used == [str(vcf)]
    spec = ingest_tasks.plan_tasks(
        [vcfio.VcfInput(vcf)], workers=1, dataset="d", staging="s", config={}, t_write=1,
        aggregate=True, genotypes=True, block_reader=False,
    )  # fmt: skip
    assert [s.block_reader for s in spec] == [False]


def _corrupt_second_info(tmp_path: Path) -> Path:
    """An uncompressed BCF whose second record's INFO value claims two int8s where it has
    one: the second is the next record's first byte, though the record's lengths are
    intact (htslib reads it)."""
    vcf = tmp_path / "three.vcf"
    rows = [f"1\t{100 + i}\t.\tA\tC\t7\tPASS\tDP=5\tGT\t0/1" for i in range(3)]
    vcf.write_text(_HEADER + "\n".join(rows) + "\n")
    bcf = tmp_path / "three.bcf"
    subprocess.run(["bcftools", "view", "-Ou", "-o", str(bcf), str(vcf)], check=True,
                   capture_output=True)  # fmt: skip
    raw = bytearray(gzip.decompress(bcf.read_bytes()))  # BGZF blocks: raw BCF bytes
    assert raw[:5] == b"BCF\x02\x02"
    at = 9 + int.from_bytes(raw[5:9], "little")  # the first record
    shared, indiv = (int.from_bytes(raw[at + k : at + k + 4], "little") for k in (0, 4))
    at += 8 + shared + indiv  # the second
    # shared: 24 fixed bytes, ID ".", alleles A and C, FILTER PASS, INFO key DP, its value
    value = at + 8 + 24 + 1 + 4 + 2 + 2
    assert raw[at + 8 + 24 : value - 1] == b"\x07\x17A\x17C\x11\x00\x11"
    assert raw[value : value + 2] == b"\x11\x05" and value + 2 == at + 8 + shared
    raw[value] = 0x21
    bcf.write_bytes(bytes(raw))
    return bcf


def test_a_record_running_past_its_end_is_not_read_past_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record whose values run past its end is handed to cyvcf2 (which reports it),
    the records before it read by blocks: htslib's own check of a BCF record
    (`bcf_record_check`) refuses it before the decoder sees it; the decoder checks every
    typed value against its record's bytes as well, so bytes htslib let through are never
    read past."""
    bcf = _corrupt_second_info(tmp_path)
    monkeypatch.setattr(vcfio, "BLOCKS", False)
    first = _fields(next(iter(vcfio.VcfInput(bcf).records())))
    monkeypatch.setattr(vcfio, "BLOCKS", True)
    inp = vcfio.VcfInput(bcf)
    records = inp.records()
    assert _fields(next(records)) == first
    with contextlib.suppress(IngestError):  # cyvcf2's concern from here
        for _ in records:
            pass
    assert inp.block_records == 1
