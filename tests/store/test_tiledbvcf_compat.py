"""Datasets fednode writes, read by the real TileDB-VCF 0.40.2 (`../shared/tiledbvcf-bin`).

Issue 14: TileDB-VCF must open every dataset fednode writes (`list`, `stat`, `export`),
each exported sample equal to `bcftools view -s SAMPLE` of the input record by record, and
fednode must write the `data` cells TileDB-VCF writes and read TileDB-VCF's back. Inputs
stay small: one `data` fragment per ingest (export order over many fragments is finding 4).
"""

from __future__ import annotations

import subprocess
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pysam
import pytest
import tiledb

from node.domain import Region
from node.store.dataset import layout
from node.store.tiledbvcf import TileDBVCFStore
from node.synth import generate_cohort
from tests.store.test_tiledbvcf import BCFTOOLS, sh

pytestmark = pytest.mark.skipif(BCFTOOLS is None, reason="bcftools is not installed")
WHOLE = 300_000_000
SPEC = "htsget-testdata/vcf/spec-v4.3.vcf.gz"  # three samples, INFO flags (DB;H2)
BCBIO = "htsget-testdata/vcf/sample1-bcbio-cancer.vcf.gz"  # flags before INFO fields
SMALL = "tiledbvcf-fixture/inputs/small"  # 1000 Genomes gVCF excerpts: QUAL `.`, END
COHORT = "tiledbvcf-fixture/inputs/snp_cohort10"
HTSLIB_MISSING = 0x7F800001


@pytest.fixture(scope="module")
def tiledbvcf(shared_dir: Path) -> Path:
    binary = shared_dir / "tiledbvcf-bin" / "bin" / "tiledbvcf"
    if not binary.is_file():
        pytest.skip(f"{binary} not present: the TileDB-VCF reference binary is unavailable")
    run = subprocess.run([str(binary), "version"], capture_output=True, text=True, check=False)
    if run.returncode != 0:
        pytest.skip(
            f"{binary} does not run ({run.stderr.strip()[:200]}): "
            "install the Debian packages libhts3 and libfmt9 (make debian-tools)"
        )
    return binary


def tdb(binary: Path, *args: str | Path) -> str:
    run = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True)
    # TileDB-VCF prints its errors ("Exception: ...") on stdout
    assert run.returncode == 0, f"tiledbvcf {' '.join(map(str, args))}: {run.stdout}{run.stderr}"
    return run.stdout


@dataclass(frozen=True)
class Case:
    ingests: tuple[tuple[str, ...], ...]  # per ingest, paths under ../shared
    region: str  # an export region (TileDB-VCF's 1-based inclusive syntax)


CASES = {
    "spec-v4.3, one multi-sample ingest": Case(((SPEC,),), "20:14000-1110700"),
    "bcbio, flags before fields": Case(((BCBIO,),), "chrM:100-200"),
    "1000G gVCF, a sample added later": Case(
        ((f"{SMALL}/small.bcf",), (f"{SMALL}/small2.bcf",)), "1:13000-17000"
    ),
    "single-sample calls, two ingests": Case(
        (
            (f"{COHORT}/S000.vcf.gz", f"{COHORT}/S001.vcf.gz"),
            (f"{COHORT}/S002.vcf.gz", f"{COHORT}/S003.vcf.gz"),
        ),
        "chr1:20500000-21000000",
    ),
}


def _ingest(
    uri: Path, ingests: list[list[Path]], version: int = layout.VARIANT_STATS_VERSION
) -> dict[str, Path]:
    """A fednode dataset of `ingests` (variant_stats `version`); which input holds each
    sample."""
    for path in (p for paths in ingests for p in paths):
        if not path.is_file():
            pytest.skip(f"{path} not present: test input unavailable")
    store = TileDBVCFStore.create(str(uri), variant_stats_version=version)
    inputs = {}
    for paths in ingests:
        store.ingest(paths)
        inputs.update({s: p for p in paths for s in sh(f"bcftools query -l {p}").split()})
    store.close()
    return inputs


def _by_contig(lines: str) -> dict[str, list[str]]:
    """Record lines per contig, in order (TileDB-VCF exports contigs in name order)."""
    out: dict[str, list[str]] = defaultdict(list)
    for line in lines.splitlines():
        out[line.split("\t", 1)[0]].append(line)
    return dict(out)


def assert_exports_equal_inputs(
    binary: Path, uri: Path, inputs: dict[str, Path], out: Path, region: str | None = None
) -> int:
    """`tiledbvcf export` of every sample equals `bcftools view -s` of its input."""
    where = ["-r", region] if region else []
    out.mkdir(exist_ok=True)
    tdb(binary, "export", "-u", uri, "-O", "v", "-d", out, "-s", ",".join(inputs), *where)
    checked = 0
    for sample, path in inputs.items():
        opts = f"-r {region}" if region else ""
        expected = sh(f"bcftools view -H -I -s {sample} {opts} {path}")
        exported = sh(f"bcftools view -H {out / sample}.vcf")
        assert _by_contig(exported) == _by_contig(expected), sample
        checked += len(expected.splitlines())
    return checked


@pytest.mark.parametrize("name", list(CASES))
def test_tiledbvcf_reads_fednode_dataset(
    tiledbvcf: Path, shared_dir: Path, tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    uri = tmp_path / "ds"
    inputs = _ingest(uri, [[shared_dir / p for p in paths] for paths in case.ingests])
    assert tdb(tiledbvcf, "list", "-u", uri).split() == sorted(inputs)
    assert f"Number of samples: {len(inputs)}" in tdb(tiledbvcf, "stat", "-u", uri)
    assert assert_exports_equal_inputs(tiledbvcf, uri, inputs, tmp_path / "all") > 0
    assert assert_exports_equal_inputs(tiledbvcf, uri, inputs, tmp_path / "r", case.region) > 0


def test_tiledbvcf_reads_synthetic_cohort_added_in_two_ingests(
    tiledbvcf: Path, tmp_path: Path
) -> None:
    """Every file holds every site, as batches of one joint call set; QUAL `.`."""
    cohort = generate_cohort(
        tmp_path / "cohort.vcf.gz", samples=8, length=30_000, seed=14, contigs=("1", "2"), groups=2
    )
    uri = tmp_path / "ds"
    inputs = _ingest(uri, [[p] for p in cohort.paths])
    assert sorted(inputs) == sorted(cohort.samples)
    assert tdb(tiledbvcf, "list", "-u", uri).split() == sorted(cohort.samples)
    assert assert_exports_equal_inputs(tiledbvcf, uri, inputs, tmp_path / "all") > 0
    region = "1:10000-20000,2:5000-6000"
    assert assert_exports_equal_inputs(tiledbvcf, uri, inputs, tmp_path / "r", region) > 0


# --- fednode's `data` cells are TileDB-VCF's -------------------------------------------


def _split(vcf: Path, folder: Path) -> list[Path]:
    """Single-sample files of `vcf` (TileDB-VCF refuses multi-sample input)."""
    if not vcf.is_file():
        pytest.skip(f"{vcf} not present: test input unavailable")
    folder.mkdir()
    out = []
    for sample in sh(f"bcftools query -l {vcf}").split():
        path = folder / f"{sample}.vcf.gz"
        sh(f"bcftools view -I -s {sample} -Oz -o {path} {vcf} && bcftools index {path}")
        out.append(path)
    return out


def _tiledbvcf_dataset(binary: Path, vcf: Path, tmp_path: Path) -> Path:
    uri = tmp_path / "tiledbvcf"
    tdb(binary, "create", "-u", uri)
    tdb(binary, "store", "-u", uri, *_split(vcf, tmp_path / "split"))
    return uri


def _data_cells(uri: Path) -> dict[tuple[object, ...], dict[str, bytes]]:
    """Every `data` cell's attributes as raw bytes (QUAL by its bits), by coordinates."""
    with tiledb.open(str(uri / "data")) as arr:
        data = arr[:]
    cells = {}
    for i in range(len(data["sample"])):
        key = (data["contig"][i], int(data["start_pos"][i]), data["sample"][i])
        key += (int(data["real_start_pos"][i]),)
        assert key not in cells
        cells[key] = {
            k: bytes(v[i]) if v.dtype == object else v[i].tobytes() for k, v in data.items()
        }
    return cells


def test_data_cells_equal_tiledbvcf_flags(
    tiledbvcf: Path, shared_dir: Path, tmp_path: Path
) -> None:
    """spec-v4.3 (INFO flags): every attribute of every cell, byte for byte."""
    theirs = _tiledbvcf_dataset(tiledbvcf, shared_dir / SPEC, tmp_path)
    _ingest(tmp_path / "ours", [[shared_dir / SPEC]])
    assert _data_cells(tmp_path / "ours") == _data_cells(theirs)


def test_data_cells_equal_tiledbvcf_missing_qual(shared_dir: Path, tmp_path: Path) -> None:
    """The fixture `ds_small` (TileDB-VCF's store of the 1000G excerpts, QUAL `.`)."""
    theirs = shared_dir / "tiledbvcf-fixture" / "ds_small"
    if not theirs.is_dir():
        pytest.skip(f"{theirs} not present: TileDB-VCF fixture datasets unavailable")
    _ingest(tmp_path / "ours", [sorted((shared_dir / SMALL).glob("small*.bcf"))])
    ours = _data_cells(tmp_path / "ours")
    assert ours == _data_cells(theirs)
    quals = np.array([np.frombuffer(c["qual"], dtype="<u4")[0] for c in ours.values()])
    assert quals.size and (quals == HTSLIB_MISSING).all()  # every input QUAL is `.`


def test_missing_qual_is_htslib_missing_and_reads_back_as_missing(
    shared_dir: Path, tmp_path: Path
) -> None:
    """QUAL `.` is stored as 0x7f800001 in `data` and `fednode_genotypes`; fednode reads
    it, and TileDB-VCF's own, as missing."""
    _ingest(tmp_path / "ours", [[shared_dir / f"{SMALL}/small2.bcf"]])
    for name in (layout.DATA, layout.FEDNODE_GENOTYPES):
        with tiledb.open(str(tmp_path / "ours" / name)) as arr:
            bits = arr.query(attrs=["qual"])[:]["qual"].view(np.uint32)
        assert bits.size and (bits == HTSLIB_MISSING).all(), name
    theirs = shared_dir / "tiledbvcf-fixture" / "ds_small"
    for uri in (tmp_path / "ours", *([theirs] if theirs.is_dir() else [])):
        store = TileDBVCFStore.open(str(uri))
        records = [r for batch in store.records(Region("1", 0, WHOLE)) for r in batch]
        assert records and {r.qual for r in records} == {None}, uri


# --- fednode reads what TileDB-VCF wrote ------------------------------------------------


def test_fednode_reads_tiledbvcf_flags(tiledbvcf: Path, shared_dir: Path, tmp_path: Path) -> None:
    """fednode's records of TileDB-VCF's dataset of spec-v4.3 carry the input's INFO
    (20:14370 `DB;H2`, not `DB;=.`) and QUAL."""
    uri = _tiledbvcf_dataset(tiledbvcf, shared_dir / SPEC, tmp_path)
    store = TileDBVCFStore.open(str(uri))
    got = [
        (r.start, r.qual, _info(r.info))
        for batch in store.records(Region("20", 0, WHOLE))
        for r in batch
    ]
    with pysam.VariantFile(str(shared_dir / SPEC)) as vcf:
        expected = [(rec.start, rec.qual, _info(rec.info)) for rec in vcf]
    assert got == expected
    assert got[0][2] == {"NS": 3, "DP": 14, "AF": 0.5, "DB": True, "H2": True}


def _info(info: Mapping[str, object]) -> dict[str, object]:
    """Values as float32 allows (pysam and fednode widen it differently), one-value tuples
    as their value."""
    out: dict[str, object] = {}
    for key, value in info.items():
        values = value if isinstance(value, tuple) else (value,)
        values = tuple(float(f"{v:.6g}") if isinstance(v, float) else v for v in values)
        out[key] = values[0] if len(values) == 1 else values
    return out


# --- array metadata ---------------------------------------------------------------------

TYPED_KEYS = {
    layout.DATA: ("version", "tile_capacity", "anchor_gap", "extra_attributes"),
    layout.ALLELE_COUNT: ("version",),
    layout.VARIANT_STATS: ("version", "max_length"),
    layout.SAMPLE_STATS: ("version",),
}


def _meta_types(uri: Path) -> dict[tuple[str, str], str]:
    out = {}
    for name, keys in TYPED_KEYS.items():
        with tiledb.open(str(uri / name)) as arr:
            for key in (k for k in keys if k in arr.meta):
                out[name, key] = arr.meta.__getitem__(key, include_type=True)[1].name
    return out


@pytest.fixture(scope="module")
def fixture_types(shared_dir: Path) -> dict[tuple[str, str], str]:
    """The types TileDB-VCF itself wrote (a `--variant-stats-version 3` dataset)."""
    theirs = shared_dir / "tiledbvcf-fixture" / "ds_snp_cohort10"
    if not theirs.is_dir():
        pytest.skip(f"{theirs} not present: TileDB-VCF fixture datasets unavailable")
    return _meta_types(theirs)


def test_created_dataset_has_tiledbvcf_metadata_types(
    fixture_types: dict[tuple[str, str], str], tmp_path: Path
) -> None:
    TileDBVCFStore.create(str(tmp_path / "ds"), variant_stats_version=3).close()
    at_store = {(layout.VARIANT_STATS, "max_length")}  # written by the first ingest
    assert _meta_types(tmp_path / "ds") == {
        k: v for k, v in fixture_types.items() if k not in at_store
    }
    assert fixture_types[layout.DATA, "version"] == "UINT32"  # what the types mean
    with tiledb.open(str(tmp_path / "ds" / layout.DATA)) as arr:
        assert layout.meta_str(arr.meta, "extra_attributes") == "Zm10X0dU"  # "fmt_GT"


def test_ingest_keeps_data_metadata_types(
    fixture_types: dict[tuple[str, str], str], shared_dir: Path, tmp_path: Path
) -> None:
    _ingest(tmp_path / "ds", [[shared_dir / SPEC]])
    types = _meta_types(tmp_path / "ds")
    assert {k: v for k, v in types.items() if k[0] == layout.DATA} == {
        k: v for k, v in fixture_types.items() if k[0] == layout.DATA
    }


def test_ingested_dataset_has_tiledbvcf_metadata_types(
    fixture_types: dict[tuple[str, str], str], shared_dir: Path, tmp_path: Path
) -> None:
    _ingest(tmp_path / "ds", [[shared_dir / SPEC]], version=3)
    assert _meta_types(tmp_path / "ds") == fixture_types
    with tiledb.Group(str(tmp_path / "ds")) as group:
        assert group.meta.__getitem__("dataset_type", include_type=True)[1].name == "STRING_ASCII"
    with tiledb.open(str(tmp_path / "ds" / layout.VARIANT_STATS)) as arr:
        fragment_keys = [k for k in arr.meta if k not in ("version", "max_length")]
        assert fragment_keys
        for key in fragment_keys:
            assert arr.meta.__getitem__(key, include_type=True)[1].name == "STRING_ASCII"


@pytest.mark.parametrize("version", [None, 2, 3])
def test_create_makes_tiledbvcf_create_arrays(
    tiledbvcf: Path, tmp_path: Path, version: int | None
) -> None:
    """`TileDBVCFStore.create` and `tiledbvcf create` (default, `--variant-stats-version N`)
    make the same arrays: schemas (with the filters their repr leaves out), metadata keys
    and types, group members; the default version is TileDB-VCF's."""
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    tdb(tiledbvcf, "create", "-u", theirs,
        *(["--variant-stats-version", str(version)] if version else []))  # fmt: skip
    if version is None:
        TileDBVCFStore.create(str(ours)).close()
    else:
        TileDBVCFStore.create(str(ours), variant_stats_version=version).close()
    for name in layout.TILEDBVCF_ARRAYS:
        a = tiledb.ArraySchema.load(str(theirs / name))
        b = tiledb.ArraySchema.load(str(ours / name))
        assert repr(b) == repr(a), name
        for part in ("offsets_filters", "validity_filters"):
            assert repr(getattr(b, part)) == repr(getattr(a, part)), (name, part)
        with tiledb.open(str(theirs / name)) as x, tiledb.open(str(ours / name)) as y:
            assert {k: x.meta.__getitem__(k, include_type=True) for k in x.meta} == {
                k: y.meta.__getitem__(k, include_type=True) for k in y.meta
            }, name
    with tiledb.Group(str(theirs)) as a, tiledb.Group(str(ours)) as b:
        assert {m.name for m in a} == {m.name for m in b} - {
            layout.FEDNODE_STATS, layout.FEDNODE_COVERAGE, layout.FEDNODE_GENOTYPES
        }
    assert "Number of samples: 0" in tdb(tiledbvcf, "stat", "-u", ours)


def test_tiledbvcf_reads_fednode_dataset_of_each_variant_stats_version(
    tiledbvcf: Path, shared_dir: Path, tmp_path: Path
) -> None:
    """Both versions: TileDB-VCF exports every sample equal to bcftools (the statistics
    rows are compared with TileDB-VCF's in test_tiledbvcf_stats.py)."""
    for version in (2, 3):
        uri = tmp_path / f"v{version}"
        inputs = _ingest(uri, [[shared_dir / SPEC]], version=version)
        assert assert_exports_equal_inputs(tiledbvcf, uri, inputs, tmp_path / f"x{version}") > 0


def test_fednode_adds_samples_to_a_tiledbvcf_default_dataset(
    tiledbvcf: Path, shared_dir: Path, tmp_path: Path
) -> None:
    """A dataset `tiledbvcf create` made with its defaults (variant_stats version 2), one
    sample stored by TileDB-VCF and one added by fednode: TileDB-VCF exports both equal to
    bcftools, and its own readers (`vcfstats vs`/`ac`) answer as on the dataset TileDB-VCF
    made of both files."""
    files = [shared_dir / f"{SMALL}/small.bcf", shared_dir / f"{SMALL}/small2.bcf"]
    for path in files:
        if not path.is_file():
            pytest.skip(f"{path} not present: test input unavailable")
    both, mixed = tmp_path / "both", tmp_path / "mixed"
    for uri in (both, mixed):
        tdb(tiledbvcf, "create", "-u", uri)
    tdb(tiledbvcf, "store", "-u", both, "--threads", "1", *files)
    tdb(tiledbvcf, "store", "-u", mixed, "--threads", "1", files[0])
    store = TileDBVCFStore.open(str(mixed))
    store.ingest([files[1]], assembly=store.assembly)
    store.close()
    inputs = {s: p for p in files for s in sh(f"bcftools query -l {p}").split()}
    assert tdb(tiledbvcf, "list", "-u", mixed).split() == sorted(inputs)
    assert assert_exports_equal_inputs(tiledbvcf, mixed, inputs, tmp_path / "out") > 0
    vcfstats = tiledbvcf.parent / "vcfstats"
    rows = {
        (uri.name, reader): sorted(tdb(vcfstats, uri, reader, "1:1-249250621").splitlines())
        for uri in (both, mixed)
        for reader in ("vs", "ac")  # these gVCF excerpts call no ALT: `ac` rows are none
    }
    assert rows["mixed", "vs"] and rows["mixed", "vs"] == rows["both", "vs"]
    assert rows["mixed", "ac"] == rows["both", "ac"]
