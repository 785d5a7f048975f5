"""fednode's `allele_count`, `variant_stats` and `sample_stats` rows follow TileDB-VCF's
writer (issue 14, finding 5), checked on hand-made records whose rows are derived from
TileDB-VCF's source (stats/allele_count.cc, variant_stats.cc, sample_stats.cc).
tests/store/test_tiledbvcf_stats.py compares the same arrays with the real TileDB-VCF.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import random
import shutil
import struct
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tiledb

from node.store.dataset import layout
from node.store.dataset.write_buffers import VarChunk
from node.store.ingest import sample_stats_rows, stats, vs_rows
from node.store.ingest.sample_stats_rows import variant_type
from node.store.tiledbvcf import TileDBVCFStore

BCFTOOLS = shutil.which("bcftools")
HEADER = """##fileformat=VCFv4.2
##contig=<ID=1,length=1000000>
##contig=<ID=2,length=1000000>
##INFO=<ID=END,Number=1,Type=Integer,Description="End">
##FILTER=<ID=q10,Description="Quality below 10">
##ALT=<ID=NON_REF,Description="Any other allele">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">
##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">
"""


def write_vcf(path: Path, samples: list[str], rows: list[str]) -> Path:
    """A bgzipped, indexed VCF of `rows` (tab-separated from CHROM on)."""
    columns = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples)
    plain = path.with_suffix("")
    plain.write_text(HEADER + columns + "\n" + "\n".join(rows) + "\n")
    subprocess.run(["bgzip", "-f", str(plain)], check=True)
    subprocess.run(["bcftools", "index", "-f", str(path)], check=True)
    return path


def cells(uri: Path, name: str) -> Counter[tuple[tuple[str, object], ...]]:
    """Every cell of an array as (attribute, value) pairs: text decoded, nulls None."""
    with tiledb.open(str(uri / name)) as arr:
        data = arr[:]
    out: Counter[tuple[tuple[str, object], ...]] = Counter()
    for i in range(len(next(iter(data.values())))):
        row = []
        for key in sorted(data):
            value = data[key][i]
            if value is np.ma.masked:
                value = None
            elif isinstance(value, bytes):
                value = value.decode()
            elif isinstance(value, np.generic):
                value = value.item()
            row.append((key, value))
        out[tuple(row)] += 1
    return out


def ingested(tmp_path: Path, samples: list[str], rows: list[str]) -> Path:
    uri = tmp_path / "ds"
    store = TileDBVCFStore.create(str(uri), variant_stats_version=3)
    store.ingest([write_vcf(tmp_path / "in.vcf.gz", samples, rows)])
    store.close()
    return uri


needs_bcftools = pytest.mark.skipif(BCFTOOLS is None, reason="bcftools is not installed")


# --- allele_count -----------------------------------------------------------------------


@needs_bcftools
def test_half_missing_calls_have_allele_count_rows_with_ref_as_alt(tmp_path: Path) -> None:
    """`.|0` and `0/.` count as `.,1` with ALT = REF (TileDB-VCF's `alt0`/`alt1` of a
    missing pair); ploidy 3 has no row; `1/2` lists the ALTs in byte order."""
    rows = [
        "1\t100\t.\tA\tG\t.\tPASS\t.\tGT\t.|0\t0/.\t./1\t0/0\t./.\t1\t0/1/1",
        "1\t200\t.\tC\tT,A\t.\tq10\t.\tGT\t2/1\t1|1\t0/2\t.|2\t0/0\t2\t1/1/1",
    ]
    uri = ingested(tmp_path, [f"S{i}" for i in range(7)], rows)
    rows = [dict(r) for r in cells(uri, "allele_count")]
    got = {(r["pos"], r["ref"], r["alt"], r["gt"]): r["count"] for r in rows}
    assert got == {
        (99, "A", "A", ".,1"): 2,
        (99, "A", "G", ".,1"): 1,
        (99, "A", "G", "1"): 1,
        (199, "C", "A,T", "1,2"): 1,
        (199, "C", "T", "1,1"): 1,
        (199, "C", "A", "0,1"): 1,
        (199, "C", "A", ".,1"): 1,
        (199, "C", "A", "1"): 1,
    }
    assert {r["pos"]: r["filter"] for r in rows} == {99: "PASS", 199: "q10"}
    assert len(rows) == len(got)  # one row per key


# --- sample_stats -----------------------------------------------------------------------

SAMPLE_ROWS = [
    "1\t10\t.\tA\tG\t.\t.\t.\tGT:DP:GQ\t0/1:10:30\t1/1:.:20",  # transition
    "1\t20\t.\tC\tA\t.\t.\t.\tGT:DP:GQ\t.|0:5:.\t./.:.:.",  # transversion; .|0 is het
    "1\t30\t.\tA\tAT\t.\t.\t.\tGT:DP:GQ\t0/1:.:99\t1/1:.:.",  # insertion
    "1\t40\t.\tAT\tA\t.\t.\t.\tGT:DP:GQ\t1/1:7:1\t0/0:.:.",  # deletion
    "1\t50\t.\tA\tG,T\t.\t.\t.\tGT:DP:GQ\t1/2:0:2\t0/0:.:.",  # multi-allelic, ti + tv
    "1\t60\t.\tA\tT,*\t.\t.\t.\tGT:DP:GQ\t0/2:3:3\t./.:.:.",  # star allele
]
EXPECTED_SAMPLE_STATS = {
    "S1": {
        "n_records": 6, "n_called": 6, "n_not_called": 0, "n_hom_ref": 0, "n_het": 5,
        "n_singleton": 5, "n_snp": 3, "n_transition": 2, "n_transversion": 1,
        "n_insertion": 1, "n_deletion": 2, "n_star": 1, "n_multiallelic": 2,
        "dp_sum": 25, "dp_sum2": 183, "dp_count": 5, "dp_min": 0, "dp_max": 10,
        "gq_sum": 135, "gq_sum2": 10715, "gq_count": 5, "gq_min": 1, "gq_max": 99,
    },
    "S2": {
        "n_records": 6, "n_called": 4, "n_not_called": 2, "n_hom_ref": 2, "n_het": 0,
        "n_singleton": 0, "n_snp": 2, "n_transition": 2, "n_transversion": 0,
        "n_insertion": 2, "n_deletion": 0, "n_star": 0, "n_multiallelic": 2,
        "dp_sum": None, "dp_sum2": None, "dp_count": None, "dp_min": None, "dp_max": None,
        "gq_sum": 20, "gq_sum2": 400, "gq_count": 1, "gq_min": 20, "gq_max": 20,
    },
}  # fmt: skip


@needs_bcftools
def test_sample_stats_counts_variant_types_calls_and_depths(tmp_path: Path) -> None:
    uri = ingested(tmp_path, ["S1", "S2"], SAMPLE_ROWS)
    got = {dict(row)["sample"]: dict(row) for row in cells(uri, "sample_stats")}
    for sample, expected in EXPECTED_SAMPLE_STATS.items():
        assert {k: got[sample][k] for k in expected} == expected, sample


# --- variant_stats ----------------------------------------------------------------------

GVCF_ROWS = [
    "1\t100\t.\tA\t<NON_REF>\t.\t.\tEND=150\tGT:DP:GQ\t0/0:5:5",  # block: nr
    "1\t151\t.\tC\tT,<NON_REF>\t.\t.\t.\tGT:DP:GQ\t0/1:5:5",  # two ALTs: ref
    "1\t152\t.\tG\t.\t.\t.\t.\tGT:DP:GQ\t0/0:5:5",  # no ALT: ref
    "1\t153\t.\tT\t<*>\t.\t.\tEND=160\tGT:DP:GQ\t0/0:5:5",  # <*>: ref
    "1\t161\t.\tA\t<NON_REF>\t.\t.\tEND=170\tGT:DP:GQ\t0/1:5:5",  # first allele 0: nr
    "1\t171\t.\tC\t<NON_REF>\t.\t.\tEND=175\tGT:DP:GQ\t./0:5:5",  # first allele missing
    "1\t180\t.\tCAC\tC\t.\t.\t.\tGT:DP:GQ\t./1:5:5",  # an = ploidy; key trimmed
]


@needs_bcftools
def test_variant_stats_nr_only_for_non_ref_blocks(tmp_path: Path) -> None:
    uri = ingested(tmp_path, ["G"], GVCF_ROWS)
    got = sorted(
        (r["pos"], r["allele"], r["ac"], r["an"], r["n_hom"], r["end"], r["max_length"])
        for r in map(dict, cells(uri, "variant_stats"))
    )
    assert got == [
        (99, "nr", 2, 2, 1, 149, 51),
        (150, "C,T", 1, 2, 0, 150, 51),
        (150, "ref", 1, 2, 0, 150, 51),
        (151, "ref", 2, 2, 1, 151, 51),
        (152, "ref", 2, 2, 1, 159, 51),
        (160, "A,<NON_REF>", 1, 2, 0, 169, 51),
        (160, "nr", 1, 2, 0, 169, 51),
        (170, "ref", 1, 2, 0, 174, 51),
        (179, "CA,", 1, 2, 0, 181, 51),
    ]
    with tiledb.open(str(uri / "variant_stats")) as arr:
        assert arr.meta["version"] == 3 and arr.meta["max_length"] == 51


def test_loci_merge_records_at_one_position_and_end() -> None:
    """Consecutive records of a sample with one (pos, end) are one locus: `ac`, `n_hom`
    summed, `an` and `max_length` of the last record with the allele; a sample's running
    maximum includes the longer records of samples with smaller names at its position."""
    rows = vs_rows.VariantStatsRows(version=3)
    records = [("A", ("G",), [[0, 1], [1, 1]]), ("AT", ("A",), [[1, 1], [-1, -1]]),
               ("A", ("C",), [[0, 1], [0, 0]])]  # fmt: skip
    for ref, alts, gt in records:
        rows.add("1", 79, 79 + len(ref) - 1, ref, alts, np.array(gt), ["s1", "s2"])
    columns = rows.take().columns()
    got = sorted(zip(*(_texts(columns[k]) for k in ("sample", "allele", "ac", "an",
                                                       "n_hom", "end", "max_length")),
                     strict=True))  # fmt: skip
    assert got == [
        ("s1", "A,C", 1, 2, 0, 79, 2),
        ("s1", "A,G", 1, 2, 0, 79, 1),
        ("s1", "AT,A", 2, 2, 1, 80, 2),
        ("s1", "ref", 1, 2, 0, 79, 1),
        ("s1", "ref", 1, 2, 0, 79, 2),  # the third record's: a new locus after AT,A
        ("s2", "A,G", 2, 2, 1, 79, 2),  # s1's AT,A (length 2) came first
        ("s2", "ref", 2, 2, 1, 79, 2),
    ]


def test_version_2_rows_have_an_empty_ref_row_per_call() -> None:
    rows = vs_rows.VariantStatsRows(version=2)
    rows.add("1", 9, 9, "A", ("G", "T"), np.array([[1, 2], [-1, 1], [-1, -1]]), ["a", "b", "c"])
    columns = rows.take().columns()
    assert set(columns) == {"contig", "pos", "allele", "ac", "an", "n_hom"}
    got = Counter(zip(*(_texts(columns[k]) for k in ("allele", "ac", "an", "n_hom")),
                      strict=True))  # fmt: skip
    assert got == Counter({("A,G", 1, 2, 0): 2, ("A,T", 1, 2, 0): 1, ("ref", 0, 0, 0): 2})


def _texts(column: object) -> list[object]:
    if not isinstance(column, layout.Var):
        return np.asarray(column).tolist()
    data, starts = column.data.tobytes(), column.offsets.tolist()
    ends = [*starts[1:], len(data)]
    return [data[a:b].decode() for a, b in zip(starts, ends, strict=True)]


# --- the plain-Python and numpy paths agree ---------------------------------------------


def _fmt(rng: random.Random, n: int) -> VarChunk:
    """FORMAT blobs as vcfio writes them: AD (Number=R), FT (a string), DP, GQ."""
    blobs = []
    for _ in range(n):
        ad = [rng.randint(0, 50) for _ in range(rng.choice([0, 1, 2]))]
        ft = b"PASS"[: rng.randint(0, 4)]
        dp = rng.choice([layout.INT32_MISSING, 0, 7, 2**31 - 1, -3])
        gq = rng.choice([layout.INT32_MISSING, 99])
        fields = [("AD", layout.HT_INT, len(ad), struct.pack(f"<{len(ad)}i", *ad)),
                  ("FT", layout.HT_STR, len(ft), ft),
                  ("DP", layout.HT_INT, 1, struct.pack("<i", dp)),
                  ("GQ", layout.HT_INT, 1, struct.pack("<i", gq))]  # fmt: skip
        blobs.append(layout.encode_blob(fields))
    return VarChunk.of(blobs)


def _collect(seed: int, small: bool, version: int, monkeypatch: pytest.MonkeyPatch) -> object:
    rng = random.Random(seed)
    limit = 10_000 if small else 0
    for module in (stats, vs_rows, sample_stats_rows):
        monkeypatch.setattr(module, "SMALL", limit)
    n = rng.randint(1, 7)
    samples = [f"s{rng.randint(0, 99)}:{i}" for i in range(n)]
    c = stats.StatsCollector(variant_stats_version=version)
    for pos in (100, 100, 100, 250, 251):
        alts = rng.choice([("G",), ("<NON_REF>",), ("GT", "*"), ("C", "G", "T")])
        ploidy = rng.choice([1, 2, 3])
        gt = np.array([[rng.choice([-1, 0, 0, 1, len(alts)]) for _ in range(ploidy)]
                       for _ in range(n)], dtype=np.int16)  # fmt: skip
        if ploidy > 1:
            gt[rng.randrange(n), -1] = -2  # one sample with a lower ploidy
        end = pos + rng.choice([0, 0, 1, 50])
        c.add(contig="1", pos=pos, end=end, ref="ACG"[: end - pos + 1] or "A", alts=alts,
              filters=(), gt=gt, samples=samples, ref_block=False, fmt=_fmt(rng, n))  # fmt: skip
    columns = c.variant_stats.take().columns()
    vs = Counter(zip(*(_texts(columns[k]) for k in sorted(columns)), strict=True))
    ac_rows = c.allele_count.take()
    ac = Counter(zip(*(ac_rows[k] for k in sorted(ac_rows)), strict=True))
    ss = {k: np.asarray(v).tolist() for k, v in c.take_sample_stats().items()}
    return vs, ac, ss, c.max_length


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("version", [2, 3])
def test_plain_python_and_numpy_rows_agree(
    seed: int, version: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = _collect(seed, True, version, monkeypatch)
    assert small == _collect(seed, False, version, monkeypatch)


# --- htslib's variant types -------------------------------------------------------------


class _KString(ctypes.Structure):
    _fields_ = [("l", ctypes.c_size_t), ("m", ctypes.c_size_t), ("s", ctypes.c_char_p)]


@pytest.fixture(scope="module")
def htslib_types() -> object:
    """`bcf_has_variant_type` of Debian's libhts 1.16 (the htslib TileDB-VCF 0.40.2 uses)."""
    name = ctypes.util.find_library("hts")
    try:
        lib = ctypes.CDLL(name or "libhts.so.3")
    except OSError:
        pytest.skip("libhts is not installed (apt-get install libhts3)")
    lib.bcf_hdr_init.restype = lib.bcf_init.restype = ctypes.c_void_p
    lib.bcf_hdr_init.argtypes = [ctypes.c_char_p]
    lib.bcf_hdr_append.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.bcf_hdr_sync.argtypes = [ctypes.c_void_p]
    lib.vcf_parse.argtypes = [ctypes.POINTER(_KString), ctypes.c_void_p, ctypes.c_void_p]
    lib.bcf_has_variant_type.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.bcf_destroy.argtypes = [ctypes.c_void_p]
    header = lib.bcf_hdr_init(b"w")
    lib.bcf_hdr_append(header, b"##contig=<ID=1>")
    lib.bcf_hdr_sync(header)

    def types(ref: str, alt: str) -> int | None:
        record = lib.bcf_init()
        try:
            line = f"1\t100\t.\t{ref}\t{alt}\t.\t.\t.".encode()
            text = _KString(len(line), len(line) + 1, line)
            if lib.vcf_parse(ctypes.byref(text), header, record) != 0:
                return None
            bits = (1, 2, 4, 8, 16, 32, 64, 128)
            return sum(b for b in bits if lib.bcf_has_variant_type(record, 1, b))
        finally:
            lib.bcf_destroy(record)

    return types


def test_variant_types_are_htslibs(htslib_types: object) -> None:
    rng = random.Random(14)
    cases = [("A", "<NON_REF>"), ("A", "<*>"), ("A", "<X>"), ("A", "<DEL>"), ("A", "*"),
             ("A", "X"), ("a", "A"), ("A", "G]1:5]"), ("A", "[1:5[A"), ("A", ".A"),
             ("ACGT", "A"), ("TA", "GTA"), ("AC", "GT"), ("N", "A")]  # fmt: skip
    for _ in range(4000):
        ref = "".join(rng.choice("ACGTNacgt") for _ in range(rng.randint(1, 4)))
        alt = "".join(rng.choice("ACGTacgt[]:.<>*X") for _ in range(rng.randint(1, 5)))
        if alt != ".":  # "." is no ALT at all
            cases.append((ref, alt))
    checked = 0
    for ref, alt in cases:
        expected = htslib_types(ref, alt)  # type: ignore[operator]
        if expected is not None:  # htslib parses it
            assert variant_type(ref, alt) == expected, (ref, alt)
            checked += 1
    assert checked > 3500
