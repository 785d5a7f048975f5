"""Issue 18 item 4: `fednode ingest --workers N`, one commit for every worker's fragments.

The truth is a one-writer ingest of the same files (every cell of every array, summed
where readers sum) and TileDB-VCF's export of the result against `bcftools view -s`.
A worker killed with SIGKILL (a `sitecustomize` on the child's path kills the first
worker process that writes a fragment) leaves the dataset as every reader saw it.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from node.errors import IngestError
from node.store.ingest.ingest_parallel import ProcessRunner
from node.store.ingest.ingest_tasks import plan_tasks
from node.store.ingest.vcfio import VcfInput
from node.store.tiledbvcf import TileDBVCFStore
from node.synth import CohortInfo, generate_cohort
from tests.store import test_tiledbvcf_compat as compat
from tests.store.dataset_cells import dataset_cells
from tests.store.test_ingest_staging import _staged, plain_view, tiledbvcf_view
from tests.store.test_tiledbvcf import BCFTOOLS, sh

tiledbvcf = compat.tiledbvcf  # the fixture: the binary, or a skip saying why not
pytestmark = pytest.mark.skipif(BCFTOOLS is None, reason="bcftools is not installed")
REPO = Path(__file__).resolve().parents[2]

# Loaded by every Python process of the child ingest (PYTHONPATH): the first worker
# process (not the coordinator) to write a fragment kills itself, once (a marker file).
KILLER = """
import multiprocessing, os, signal
from node.store.dataset import layout
_write = layout.write_columns
def write_columns(*args, **kwargs):
    if multiprocessing.parent_process() is not None:
        try:
            os.close(os.open(os.environ["FEDNODE_TEST_KILLED"], os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            pass
        else:
            os.kill(os.getpid(), signal.SIGKILL)
    return _write(*args, **kwargs)
layout.write_columns = write_columns
"""


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> CohortInfo:
    """Two sample groups over two contigs, bgzipped and indexed (regions can be read)."""
    path = tmp_path_factory.mktemp("cohort") / "c.vcf.gz"
    return generate_cohort(path, samples=12, length=400_000, seed=11, contigs=("1", "2"), groups=2)


def _inputs(paths: tuple[Path, ...]) -> dict[str, Path]:
    return {s: p for p in paths for s in sh(f"bcftools query -l {p}").split()}


def _ingest(uri: Path, paths: tuple[Path, ...], runner: ProcessRunner | None) -> None:
    store = TileDBVCFStore.create(str(uri))
    try:
        store.ingest(list(paths), runner=runner)
    finally:
        store.close()


def test_the_plan_splits_files_and_contigs(cohort: CohortInfo) -> None:
    inputs = [VcfInput(p) for p in cohort.paths]
    specs = plan_tasks(inputs, workers=2, dataset="d", staging="s", config={}, t_write=10,
                       aggregate=True, genotypes=True)
    regions = {(s.path, s.region[0]) for s in specs if s.region is not None}
    assert regions == {(str(p), c) for p in cohort.paths for c in ("1", "2")}
    assert len(specs) > len(regions)  # contigs are split into several regions
    for path in cohort.paths:  # the regions of each contig tile it, in timestamp order
        for contig in ("1", "2"):
            mine = sorted((s.timestamp, s.region) for s in specs
                          if s.path == str(path) and s.region and s.region[0] == contig)
            assert mine[0][1][1] == 0
            assert all(a[1][2] == b[1][1] for a, b in itertools.pairwise(mine))


def test_workers_write_what_one_writer_writes(
    tiledbvcf: Path, tmp_path: Path, cohort: CohortInfo
) -> None:
    _ingest(tmp_path / "one", cohort.paths, None)
    _ingest(tmp_path / "two", cohort.paths, ProcessRunner(2))
    assert dataset_cells(tmp_path / "two") == dataset_cells(tmp_path / "one")
    inputs = _inputs(cohort.paths)
    assert compat.tdb(tiledbvcf, "list", "-u", tmp_path / "two").split() == sorted(inputs)
    checked = compat.assert_exports_equal_inputs(tiledbvcf, tmp_path / "two", inputs,
                                                 tmp_path / "export")
    assert checked > 0


def test_workers_add_and_replace_samples_like_one_writer(
    tmp_path: Path, cohort: CohortInfo
) -> None:
    """Samples added to a dataset, then replaced (`--replace`: the coordinator negates
    their statistics and deletes their cells, the tasks write the new ones); the second
    input is not indexed, so it is one whole-file task."""
    plain = tmp_path / "g2.vcf"
    sh(f"bcftools view -Ov -o {plain} {cohort.paths[1]}")
    for name, runner in (("one", None), ("two", ProcessRunner(2))):
        store = TileDBVCFStore.create(str(tmp_path / name))
        store.ingest([cohort.paths[0]])
        store.ingest([plain], runner=runner)
        store.ingest([cohort.paths[1]], replace=True, runner=runner)
        store.close()
    assert dataset_cells(tmp_path / "two") == dataset_cells(tmp_path / "one")


def test_many_per_sample_files_share_tasks_and_store_what_one_writer_stores(
    tiledbvcf: Path, tmp_path: Path, cohort: CohortInfo
) -> None:
    """More small files than the plan's pieces (indexed per-sample files, too small to
    cut into regions): tasks take several whole files each, and the dataset is a
    one-writer ingest's."""
    split = tmp_path / "split"
    split.mkdir()
    for path in cohort.paths:  # 12 samples: more than 2 workers' 8 pieces
        sh(f"bcftools +split -Oz -o {split} {path}")
    files = tuple(sorted(split.glob("*.vcf.gz")))
    for f in files:
        sh(f"bcftools index -t {f}")
    specs = plan_tasks([VcfInput(p) for p in files], workers=2, dataset="d", staging="s",
                       config={}, t_write=10, aggregate=True, genotypes=True)
    assert len(files) > len(specs) > 1 and all(s.region is None for s in specs)
    planned = [(s.path, s.index) for s in specs] + [m for s in specs for m in s.more]
    assert sorted(planned) == [(str(p), i) for i, p in enumerate(files)]  # each file once
    _ingest(tmp_path / "one", files, None)
    _ingest(tmp_path / "two", files, ProcessRunner(2))
    assert dataset_cells(tmp_path / "two") == dataset_cells(tmp_path / "one")
    inputs = _inputs(files)
    checked = compat.assert_exports_equal_inputs(tiledbvcf, tmp_path / "two", inputs,
                                                 tmp_path / "export")
    assert checked > 0


def bad_vcf(folder: Path) -> tuple[Path, int]:
    """An indexed VCF over two contigs with one bad record (GT allele 7) in the middle of
    the second, and that record's line."""
    lines = [
        "##fileformat=VCFv4.2", "##contig=<ID=1,length=10000>", "##contig=<ID=2,length=10000>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1",
    ]
    for contig in ("1", "2"):
        for pos in range(100, 9000, 500):
            gt = "0/7" if (contig, pos) == ("2", 5100) else "0/1"
            lines.append(f"{contig}\t{pos}\t.\tA\tG\t.\tPASS\t.\tGT\t{gt}")
    vcf = folder / "bad.vcf"
    vcf.write_text("\n".join(lines) + "\n")
    sh(f"bgzip {vcf} && tabix -p vcf {vcf}.gz")
    bad = next(i for i, line in enumerate(lines) if line.endswith("0/7"))
    return Path(f"{vcf}.gz"), bad + 1


def test_a_malformed_record_in_a_region_names_file_and_line(tmp_path: Path) -> None:
    vcf, line = bad_vcf(tmp_path)
    errors = []
    for runner in (None, ProcessRunner(2)):
        store = TileDBVCFStore.create(str(tmp_path / f"ds{len(errors)}"))
        with pytest.raises(IngestError) as raised:
            store.ingest([vcf], runner=runner)
        errors.append(raised.value.message)
        assert store.samples == ()
        store.close()
    assert errors[1] == errors[0]
    assert errors[0].startswith(f"{vcf}:{line}: ")  # the bad record's line


def test_a_killed_worker_leaves_the_dataset_unchanged(
    tiledbvcf: Path, tmp_path: Path, cohort: CohortInfo
) -> None:
    home = tmp_path / "home"
    subprocess.run([sys.executable, "-m", "node", "init", home], check=True, capture_output=True)
    dataset = home / "datasets" / "ds"
    store = TileDBVCFStore.create(str(dataset))
    store.ingest([cohort.paths[0]])
    store.close()
    plain, theirs = plain_view(dataset), tiledbvcf_view(tiledbvcf, dataset, tmp_path / "before")
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(KILLER)
    marker = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": f"{hooks}:{REPO}", "FEDNODE_TEST_KILLED": str(marker)}
    run = subprocess.run(
        [sys.executable, "-m", "node", "ingest", home, "--dataset", "ds", "--workers", "2",
         cohort.paths[1]],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert marker.exists()  # a worker did die
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert "an ingest worker process died while ingesting" in run.stderr
    assert str(cohort.paths[1]) in run.stderr
    assert plain_view(dataset) == plain
    assert tiledbvcf_view(tiledbvcf, dataset, tmp_path / "after") == theirs
    assert _staged(dataset) == []
