"""VCF in, cells out: the blob codec against TileDB-VCF's own blobs, FILTER ids, INFO/FORMAT
values against bcftools, assembly detection, errors, and the two statistics code paths."""

from __future__ import annotations

import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tiledb

from node.domain import Region
from node.errors import IngestError
from node.store.dataset import layout
from node.store.ingest import stats
from node.store.ingest.vcfio import VcfInput, detect_assembly
from node.store.tiledbvcf import TileDBVCFStore
from tests.store.test_tiledbvcf import BCFTOOLS, cohort_rows, sh, write_vcf

pytestmark = pytest.mark.skipif(BCFTOOLS is None, reason="bcftools is not installed")


@pytest.fixture(scope="module")
def fixture_dir(shared_dir: Path) -> Path:
    path = shared_dir / "tiledbvcf-fixture"
    if not path.is_dir():
        pytest.skip(f"{path} not present: TileDB-VCF fixture datasets unavailable")
    return path


@pytest.mark.parametrize("name", ["ds_small", "ds_synthetic_gvcf10", "ds_snp_cohort10"])
def test_blob_codec_reencodes_tiledbvcf_blobs_exactly(fixture_dir: Path, name: str) -> None:
    with tiledb.open(str(fixture_dir / name / "data")) as arr:
        cells = arr.query(attrs=["info", "fmt", "fmt_GT"]).multi_index[:]
    assert len(cells["info"]) > 10
    for column in ("info", "fmt"):
        for blob in cells[column]:
            raw = bytes(blob)
            assert layout.encode_blob(layout.decode_blob(raw)) == raw
    for blob in cells["fmt_GT"]:
        decoded = layout.decode_field(bytes(blob))
        assert decoded is not None and layout.encode_field(*decoded) == bytes(blob)


def test_filter_ids_decode_to_the_filters_bcftools_prints(fixture_dir: Path) -> None:
    """filter_ids index htslib's header dictionary; ds_small has a LowQual record."""
    store = TileDBVCFStore.open(str(fixture_dir / "ds_small"))
    got: Counter[tuple[str, int, str]] = Counter()
    for batch in store.records(Region("1", 0, 300_000_000)):
        for r in batch:
            for c in r.calls:
                got[(c.sample, r.start + 1, ";".join(r.filters) or ".")] += 1
    expected: Counter[tuple[str, int, str]] = Counter()
    for f in sorted((fixture_dir / "inputs/small").glob("*.bcf")):
        for line in sh(f"bcftools query -f '[%SAMPLE]\\t%POS\\t%FILTER\\n' {f}").splitlines():
            sample, pos, filt = line.split("\t")
            expected[(sample, int(pos), filt)] += 1
    assert got == expected
    assert any(k[2] == "LowQual" for k in got)


def test_info_and_format_values_match_bcftools(tmp_path: Path) -> None:
    vcf = write_vcf(tmp_path / "v.vcf.gz", ["A", "B", "C"], cohort_rows(3, seed=21))
    store = TileDBVCFStore.create(str(tmp_path / "ds"))
    store.ingest([vcf])
    fmt = "%POS\\t%INFO/END\\t%INFO/SVTYPE\\t%INFO/DB\\t%INFO/AF_IN[\\t%AD:%DP:%FT]\\n"
    expected = sh(f"bcftools view -r chr1 {_indexed(vcf)} | bcftools query -f '{fmt}'").splitlines()
    got = []
    for batch in store.records(Region("1", 0, 300_000_000)):
        for r in batch:
            info = r.info
            af = info.get("AF_IN")
            afs = (
                "."
                if af is None
                else ",".join(f"{x:g}" for x in (af if isinstance(af, tuple) else (af,)))
            )
            cols = [str(r.start + 1), str(info.get("END", ".")), str(info.get("SVTYPE", ".")),
                    "1" if info.get("DB") else ".", afs]  # fmt: skip
            by_sample = {c.sample: c for c in r.calls}
            for sample in store.samples:
                c = by_sample.get(sample)
                assert c is not None  # every call is stored, ./. included
                ad = c.fields.get("AD")
                ads = ",".join(
                    "." if x is None else str(x) for x in (ad if isinstance(ad, tuple) else (ad,))
                )
                cols.append(f"{ads}:{c.fields.get('DP', '.')}:{c.fields.get('FT', '.')}")
            got.append(cols)
    assert len(got) == len(expected) > 50
    for mine, line in zip(got, expected, strict=True):
        theirs = line.split("\t")
        for a, b in zip(mine, theirs, strict=True):
            assert a == b, (mine, theirs)


def _indexed(vcf: Path) -> Path:
    sh(f"tabix -f -p vcf {vcf}")
    return vcf


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("##reference=file:///refs/GRCh38_full_analysis_set.fa", "GRCh38"),
        ("##reference=hs37d5.fa.gz", "GRCh37"),
        ("##reference=file:///seq/Homo_sapiens_assembly19.fasta", "GRCh37"),
        ("##assembly=hg19", "GRCh37"),
        ("##contig=<ID=chr1,length=248956422,assembly=hg38>", "GRCh38"),
        ("##contig=<ID=1,length=249250621>", None),
        ("##source=GRCh38-caller", None),
    ],
)
def test_detect_assembly(line: str, expected: str | None) -> None:
    assert detect_assembly(f"##fileformat=VCFv4.2\n{line}\n#CHROM\tPOS\n") == expected


def test_bcf_errors_name_the_record(tmp_path: Path) -> None:
    rows = ["chr1\t100\t.\tA\tG\t.\tPASS\t.\tGT:DP:AD:FT\t0/1:3:1,2:PASS",
            "chr1\t200\t.\tA\tG\t.\tPASS\t.\tGT:DP:AD:FT\t0/4:3:1,2:PASS"]  # fmt: skip
    vcf = write_vcf(tmp_path / "x.vcf.gz", ["S"], rows)
    bcf = tmp_path / "x.bcf"
    sh(f"bcftools view -Ob -o {bcf} {vcf}")
    inp = VcfInput(bcf)
    assert inp.is_bcf
    with pytest.raises(IngestError, match=r"x\.bcf: record 2: genotype allele index 4"):
        list(inp.records())


def test_progress_bar_only_on_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    vcf = write_vcf(tmp_path / "p.vcf.gz", ["S"], cohort_rows(1, seed=2, records=30))
    TileDBVCFStore.create(str(tmp_path / "quiet")).ingest([vcf], progress=True)
    assert "variants" not in capsys.readouterr().err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    TileDBVCFStore.create(str(tmp_path / "loud")).ingest([vcf], progress=True)
    assert "30 variants" in capsys.readouterr().err


def _cells(column: object) -> list[object]:
    """A column's values: bytes for a text column, ints otherwise."""
    if not isinstance(column, layout.Var):
        return np.asarray(column).tolist()
    data = column.data.tobytes()
    starts = column.offsets.tolist()
    ends = [*starts[1:], len(data)] if starts else []
    return [data[a:b] for a, b in zip(starts, ends, strict=True)]


def _collect(gt: np.ndarray, samples: list[str], ref_block: bool, small: bool,
             monkeypatch: pytest.MonkeyPatch) -> tuple[object, ...]:  # fmt: skip
    monkeypatch.setattr(stats, "SMALL", 10_000 if small else 0)
    c = stats.StatsCollector()
    for pos in (100, 100, 250):  # two records at one position: sites counted once
        c.add(contig="chr2", pos=pos, end=pos + 2, ref="ACG", alts=("A", "TCG", "<NON_REF>"),
              filters=("PASS",), gt=gt, samples=samples, ref_block=ref_block)  # fmt: skip
    keys = {k: tuple(int(x) for x in v) for k, v in c.keys.items()}
    columns = c.variant_stats.take().columns()
    vs = Counter(zip(*(_cells(columns[k]) for k in sorted(columns)), strict=True))
    rows = c.allele_count.take()
    ac = Counter(zip(*(rows[k] for k in sorted(rows)), strict=True))
    cov = sorted(zip(*(c.coverage.cols[k] for k in sorted(c.coverage.cols)), strict=True))
    samples_out = c.take_sample_stats()
    counters = {k: np.asarray(v).tolist() for k, v in samples_out.items() if k != "sample"}
    return keys, vs, ac, cov, samples_out["sample"], counters


@pytest.mark.parametrize("seed", range(6))
def test_plain_python_and_numpy_statistics_agree(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    n, ploidy = rng.randint(1, 6), rng.choice([1, 2, 3])
    gt = np.array([[rng.choice([-1, 0, 0, 1, 2, 3]) for _ in range(ploidy)] for _ in range(n)],
                  dtype=np.int16)  # fmt: skip
    if ploidy > 1:
        gt[0, -1] = -2  # one sample with a lower ploidy
    samples = [f"s{i}" for i in range(n)]
    ref_block = seed % 2 == 0
    small = _collect(gt, samples, ref_block, True, monkeypatch)
    large = _collect(gt, samples, ref_block, False, monkeypatch)
    assert small == large
