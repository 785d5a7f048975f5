"""`build_aggregate` (and `fednode index`, and the registry's start-up build) on datasets
TileDB-VCF wrote: TileDB-VCF's arrays stay as they were and TileDB-VCF still reads them;
the build is atomic (a failed or killed one changes nothing readers see); samples TileDB-VCF
stores later are added by the next build; gVCF-like datasets whose samples share no records
get the aggregate without `fednode_genotypes`."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import tiledb

from node.cli import main
from node.config import load_settings
from node.domain import AlleleKey, Region, normalize_contig
from node.errors import UnsupportedFormat
from node.store.dataset import layout
from node.store.ingest import aggregate_build
from node.store.ingest.aggregate_build import aggregate_status, build_aggregate
from node.store.registry import tiledb_registry
from node.store.tiledbvcf import TileDBVCFStore
from tests.store.test_tiledbvcf import assert_stats_match, fill_tags_truth, sh
from tests.store.tiledbvcf_tool import TileDBVCF, multi_record_cohort, split_samples

WHOLE = 300_000_000
SAMPLES = [f"P{i:02d}" for i in range(12)]
TILEDBVCF_PARTS = ("data", "metadata", "allele_count", "variant_stats", "sample_stats")


@pytest.fixture(scope="module")
def tool(shared_dir: Path) -> TileDBVCF:
    return TileDBVCF.find(shared_dir)


@pytest.fixture(scope="module")
def cohort_and_differing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[int]]:
    return multi_record_cohort(tmp_path_factory.mktemp("cohort") / "c.vcf.gz", SAMPLES, seed=9)


@pytest.fixture(scope="module")
def cohort(cohort_and_differing: tuple[Path, set[int]]) -> Path:
    return cohort_and_differing[0]


@pytest.fixture(scope="module")
def files(cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return split_samples(cohort, tmp_path_factory.mktemp("split"))


@pytest.fixture(scope="module")
def own(cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> TileDBVCFStore:
    store = TileDBVCFStore.create(str(tmp_path_factory.mktemp("own") / "ds"))
    store.ingest([cohort])
    return store


@pytest.fixture
def dataset(tool: TileDBVCF, files: list[Path], tmp_path: Path) -> Path:
    return tool.store_files(files, tmp_path / "ds")


def _answers(store: TileDBVCFStore, keys: list[AlleleKey]) -> tuple[object, ...]:
    regions = [Region(c, 0, WHOLE) for c in ("1", "X")]
    return (
        store.samples,
        store.allele_stats(keys),
        [v for r in regions for v in store.variants(r)],
        [x for r in regions for b in store.records(r) for x in b],
    )


def _keys(cohort: Path) -> list[AlleleKey]:
    return list(fill_tags_truth(cohort))


def _files_of(uri: Path) -> dict[str, int]:
    """Every file of TileDB-VCF's own arrays and groups, with its size."""
    out = {}
    for part in TILEDBVCF_PARTS:
        for path in sorted((uri / part).rglob("*")):
            if path.is_file():
                out[str(path.relative_to(uri))] = path.stat().st_size
    return out


def test_tiledbvcf_arrays_untouched_and_still_read_by_tiledbvcf(
    tool: TileDBVCF, dataset: Path, tmp_path: Path, own: TileDBVCFStore, cohort: Path
) -> None:
    before_files = _files_of(dataset)
    before_export = tool.export(dataset, tmp_path / "before")
    before_stats = tool.variant_stats(dataset, ["chr1:1-300000000", "chrX:1-300000000"])
    assert aggregate_status(str(dataset)) == "foreign"
    summary = build_aggregate(str(dataset))
    assert summary.samples == tuple(SAMPLES) and summary.genotypes and summary.cells > 1000
    assert aggregate_status(str(dataset)) == "current"
    assert _files_of(dataset) == before_files
    assert tool.export(dataset, tmp_path / "after") == before_export
    assert tool.variant_stats(dataset, ["chr1:1-300000000", "chrX:1-300000000"]) == before_stats
    assert "12" in tool.stat(dataset)
    with tiledb.Group(str(dataset)) as group:
        members = {m.name for m in group}
    assert members >= {*aggregate_build.FEDNODE_ARRAYS, "data", "variant_stats"}
    store = TileDBVCFStore.open(str(dataset))
    assert store.reads_genotypes_array
    assert _answers(store, _keys(cohort)) == _answers(own, _keys(cohort))
    again = build_aggregate(str(dataset))
    assert again.samples == () and again.cells == 0


def test_failed_or_killed_build_changes_nothing(
    dataset: Path, own: TileDBVCFStore, cohort: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = _keys(cohort)
    before = _answers(TileDBVCFStore.open(str(dataset)), keys)

    def fail(self: object, *args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(aggregate_build._Writer, "finish", fail)
    with pytest.raises(OSError, match="disk full"):
        build_aggregate(str(dataset))
    assert aggregate_status(str(dataset)) == "foreign"
    assert _answers(TileDBVCFStore.open(str(dataset)), keys) == before
    assert not any((dataset / name / "__fragments").exists() and
                   list((dataset / name / "__fragments").iterdir())
                   for name in aggregate_build.FEDNODE_ARRAYS)  # fmt: skip
    # Killed: no cleanup ran. Readers see nothing of it; the next build removes it.
    monkeypatch.setattr(aggregate_build, "_discard_after", lambda *a: None)
    with pytest.raises(OSError):
        build_aggregate(str(dataset))
    monkeypatch.undo()
    assert list((dataset / layout.FEDNODE_STATS / "__fragments").iterdir())
    assert _answers(TileDBVCFStore.open(str(dataset)), keys) == before
    build_aggregate(str(dataset))
    store = TileDBVCFStore.open(str(dataset))
    assert store.reads_genotypes_array
    assert _answers(store, keys) == _answers(own, keys)


def test_samples_stored_later_are_added_by_the_next_build(
    tool: TileDBVCF,
    files: list[Path],
    own: TileDBVCFStore,
    cohort_and_differing: tuple[Path, set[int]],
    tmp_path: Path,
) -> None:
    cohort, differing = cohort_and_differing
    uri = tool.store_files(files[:8], tmp_path / "ds")
    build_aggregate(str(uri))
    first = TileDBVCFStore.open(str(uri))
    tool.store_files(files[8:], uri)
    assert aggregate_status(str(uri)) == "stale"
    # Until the next build, fednode serves the committed snapshot: the first 8 samples.
    assert first.samples == TileDBVCFStore.open(str(uri)).samples == tuple(SAMPLES[:8])
    eight = tmp_path / "eight.vcf.gz"
    sh(f"bcftools view -s {','.join(SAMPLES[:8])} {cohort} -Oz -o {eight}")
    truth = fill_tags_truth(eight)  # per record; fednode's AN is per site where they differ
    comparable = {k: v for k, v in truth.items() if k.start + 1 not in differing}
    assert assert_stats_match(first, comparable) > 50
    summary = build_aggregate(str(uri))
    assert summary.samples == tuple(SAMPLES[8:]) and summary.genotypes
    store = TileDBVCFStore.open(str(uri))
    assert store.samples == tuple(SAMPLES) and store.reads_genotypes_array
    keys = _keys(cohort)
    assert _answers(store, keys)[1:] == _answers(own, keys)[1:]
    tool.delete(uri, ["P02"])
    with pytest.raises(UnsupportedFormat, match="P02"):
        build_aggregate(str(uri))


@pytest.mark.parametrize("name", ["ds_small", "ds_synthetic_gvcf10", "ds_snp_cohort10"])
def test_fixture_datasets_equal_fednode_own(shared_dir: Path, tmp_path: Path, name: str) -> None:
    """TileDB-VCF's own fixture datasets (v2; v3 with gVCF blocks; v3 per-sample calls):
    samples share no records, so no fednode_genotypes; statistics and records equal
    fednode's datasets of the same inputs."""
    fixture = shared_dir / "tiledbvcf-fixture"
    if not fixture.is_dir():
        pytest.skip(f"{fixture} not present")
    pattern = {"ds_small": "small/small*.bcf", "ds_synthetic_gvcf10": "synthetic_gvcf/G*.bcf",
               "ds_snp_cohort10": "snp_cohort10/S0*.vcf.gz"}[name]  # fmt: skip
    inputs = sorted((fixture / "inputs").glob(pattern))
    own = TileDBVCFStore.create(str(tmp_path / "own"))
    own.ingest(inputs)
    uri = shutil.copytree(fixture / name, tmp_path / name)
    for path in [uri, *uri.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    plain = TileDBVCFStore.open(str(uri))
    summary = build_aggregate(str(uri))
    assert not summary.genotypes and summary.cells > 10
    indexed = TileDBVCFStore.open(str(uri))
    regions = [Region(c, 0, WHOLE) for c in own.contigs()]
    variants = [v for r in regions for v in own.variants(r)]
    keys = [k for f in inputs for k in _keys_of([f])]
    expected = own.allele_stats(keys)
    assert sum(e is not None for e in expected) >= (100 if name == "ds_snp_cohort10" else 0)
    assert indexed.allele_stats(keys) == plain.allele_stats(keys) == expected
    assert [v for r in regions for v in indexed.variants(r)] == variants
    records = [x for r in regions for b in own.records(r) for x in b]
    assert [x for r in regions for b in indexed.records(r) for x in b] == records


def test_fednode_index_command(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    assert main(["init", str(home)]) == 0
    shutil.move(dataset, home / "datasets" / "cohort")
    capsys.readouterr()
    assert main(["index", str(home), "--dataset", "cohort"]) == 0
    assert "built for 12 sample(s)" in capsys.readouterr().out
    assert main(["index", str(home), "--dataset", "cohort"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["index", str(home), "--dataset", "absent"]) == 2
    assert "no TileDB-VCF dataset" in capsys.readouterr().err


def test_registry_builds_at_start_up_and_serves_what_it_cannot_build(
    tool: TileDBVCF, files: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    home = tmp_path / "home"
    assert main(["init", str(home)]) == 0
    tool.store_files(files, home / "datasets" / "a")
    tool.store_files(files[:3], home / "datasets" / "b")
    settings = load_settings(home)
    registry = tiledb_registry(settings)
    early = registry.store("a")  # a query before the build: served from `data`
    real = aggregate_build.build_aggregate

    def build(uri: str, **kw: object) -> object:
        if uri.endswith("/b"):
            raise PermissionError("read-only storage")
        return real(uri, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(aggregate_build, "build_aggregate", build)
    with caplog.at_level(logging.WARNING, logger="fednode.store"):
        warmed = registry.warm()
    assert set(warmed) == {"a", "b"} and "preparing dataset b failed" in caplog.text
    store = registry.store("a")
    assert store is not early and store.reads_genotypes_array  # type: ignore[attr-defined]
    assert not registry.store("b").reads_genotypes_array  # type: ignore[attr-defined]
    assert aggregate_status(str(home / "datasets" / "b")) == "foreign"
    keys = _keys_of(files[:3])
    served = registry.store("b").allele_stats(keys)
    assert served == TileDBVCFStore.open(str(home / "datasets" / "b")).allele_stats(keys)
    assert sum(s is not None for s in served) > 10
    registry.close()


def _keys_of(files: list[Path]) -> list[AlleleKey]:
    out = []
    for line in sh(f"bcftools query -f '%CHROM\\t%POS\\t%REF\\t%ALT\\n' {files[0]}").splitlines():
        chrom, pos, ref, alts = line.split("\t")
        contig = normalize_contig(chrom)
        out += [AlleleKey(contig, int(pos) - 1, ref, a) for a in alts.split(",")]
    return out
