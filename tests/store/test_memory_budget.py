"""The ingest's memory budget (issue 18 item 3): `fednode ingest --memory-budget-mb` keeps
the command's peak RSS under the budget, as the kernel measures it (`wait4`'s ru_maxrss
of the child process), on inputs that exceed it when the buffers are as large as
`IngestWriter` allows; the dataset is the same cell for cell. Plus the budget's rules:
the floor, the split between worker processes, the setting and the write queue's depth.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import tiledb

from bench.ingest_bench import _single
from node.config import Settings
from node.errors import InvalidInput
from node.store.dataset import layout
from node.store.ingest.ingest_tasks import TaskResult, TaskSpec, run_task
from node.store.ingest.ingest_writer import IngestWriter
from node.store.ingest.memory_budget import (
    BLOCK_READER_MB,
    COORDINATOR_MB,
    DEFAULT_MB,
    MIN_PROCESS_MB,
    MemoryBudget,
)
from node.store.ingest.vcfio import VcfInput
from node.store.ingest.write_queue import WriteQueue
from node.store.read.vcf_header import stored_headers
from node.store.tiledbvcf import TileDBVCFStore
from node.synth import generate_cohort
from tests.store.dataset_cells import dataset_cells

SMALL = 200  # MiB: the smallest budget an ingest process accepts
UNBOUNDED = 4000  # every threshold at IngestWriter's class constant


# Linux counts in a child's ru_maxrss the pages of its parent it ran in before exec
# (even when vforked), so a large test process would be measured with the ingest: a small
# launcher process starts the command and reports its peak from `wait4`.
_LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
proc.returncode = os.waitstatus_to_exitcode(status)
print(proc.returncode, usage.ru_maxrss)
"""


def _fednode(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str, int]:
    """Exit status, stderr and peak RSS (MiB) of `fednode ARGS` in a child process."""
    command = [sys.executable, "-m", "node", *map(str, args)]
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *command],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=True,
    )
    code, peak_kib = (int(x) for x in done.stdout.split())
    return code, done.stderr, peak_kib // 1024


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    assert _fednode("init", home)[0] == 0
    return home


def _peak(home: Path, dataset: str, vcf: Path, budget: int) -> int:
    code, err, peak = _fednode(
        "ingest", home, "--dataset", dataset, "--memory-budget-mb", budget, vcf
    )
    assert code == 0, err
    return peak


def _budget_holds(tmp_path: Path, vcf: Path, budget: int) -> None:
    home = _home(tmp_path)
    loose = _peak(home, "loose", vcf, UNBOUNDED)
    tight = _peak(home, "tight", vcf, budget)
    assert loose > 1.2 * budget, f"{loose} MiB: the input is too small to test the budget"
    assert tight <= budget, f"peak RSS {tight} MiB over a {budget} MiB budget"
    datasets = home / "datasets"
    assert dataset_cells(datasets / "tight") == dataset_cells(datasets / "loose")


def test_many_sample_ingest_keeps_to_a_small_budget(tmp_path: Path) -> None:
    """2,504 samples: the `data` cells' batches are what the budget bounds."""
    cohort = generate_cohort(tmp_path / "c.vcf.gz", samples=2504, length=60_000, seed=18)
    _budget_holds(tmp_path, cohort.paths[0], SMALL)


def test_one_sample_ingest_keeps_to_a_small_budget(tmp_path: Path) -> None:
    """One sample: the aggregate keys and statistics rows are what the budget bounds."""
    _budget_holds(tmp_path, _single(tmp_path, 75_000), SMALL)


def test_one_sample_ingest_by_blocks_keeps_to_its_budget(tmp_path: Path) -> None:
    """The smallest budget with room for the block reader (numba and LLVM): read by
    blocks, its fixed cost taken off the buffers' share, within the budget."""
    budget = MIN_PROCESS_MB + BLOCK_READER_MB
    assert MemoryBudget(budget).block_reader() and not MemoryBudget(budget - 1).block_reader()
    _budget_holds(tmp_path, _single(tmp_path, 150_000), budget)


def test_the_block_reader_is_used_where_the_budget_has_room(tmp_path: Path) -> None:
    vcf = _single(tmp_path, 10)
    for budget, blocks in ((SMALL, False), (MIN_PROCESS_MB + BLOCK_READER_MB, True)):
        inp = VcfInput(vcf, blocks=MemoryBudget(budget).block_reader())
        assert inp.blocks is blocks
        assert sum(1 for _ in inp.records()) == 10
        assert inp.block_records == (10 if blocks else 0)
    roomy = MemoryBudget(DEFAULT_MB)
    with_blocks = roomy.limits(samples=1, blocks=True)
    assert with_blocks.flush_bytes < roomy.limits(samples=1).flush_bytes


G1000 = "beacon-testdata/cnag-beacon2-cbi-tools/integration_assets/test_1000G.vcf.gz"


def test_records_with_long_info_keep_to_the_budget(tmp_path: Path, shared_dir: Path) -> None:
    """The 1000 Genomes file (2,504 samples, ~200-byte INFO copied into every cell): text
    columns cost the most per buffered byte; its 2,504 x 15.9 KB headers (40 MB stored),
    written in batches, no longer need a larger budget."""
    _budget_holds(tmp_path, shared_dir / G1000, SMALL)


def _many_sample_vcf(path: Path, *, samples: int, header_kb: int, records: int = 4) -> Path:
    """A plain-text VCF of `samples` samples, a header of about `header_kb` KB and a few
    records: its stored headers (one per sample) are `samples` x `header_kb` KB."""
    names = [f"S{i:05d}" for i in range(samples)]
    filler = [f"##fednode_note{i}={'n' * 90}" for i in range(header_kb * 1024 // 110)]
    lines = [
        "##fileformat=VCFv4.2",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "##contig=<ID=1,length=248956422>",
        *filler,
        "\t".join(
            ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *names]
        ),
    ]
    for r in range(records):
        calls = "\t".join("0/1" if (i + r) % 7 == 0 else "0/0" for i in range(samples))
        lines.append(f"1\t{1000 + 100 * r}\t.\tA\tG\t50\tPASS\t.\tGT\t{calls}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_many_samples_headers_keep_to_the_budget(tmp_path: Path) -> None:
    """20,000 samples x 8 KB headers (160 MB stored): written in batches, they fit the
    smallest budget, which reserving 3 x their bytes for one write refused (and writing
    them at once exceeded)."""
    vcf = _many_sample_vcf(tmp_path / "many.vcf", samples=20_000, header_kb=8)
    home = _home(tmp_path)
    peak = _peak(home, "d", vcf, SMALL)
    assert peak <= SMALL, f"peak RSS {peak} MiB over a {SMALL} MiB budget"
    uri = home / "datasets" / "d"
    expected = VcfInput(vcf).sample_header([])
    assert len(expected) > 8000
    with tiledb.open(str(uri / layout.HEADERS)) as arr:
        stored = stored_headers(arr)
    assert sorted(stored) == [f"S{i:05d}" for i in range(20_000)]
    assert set(stored.values()) == {expected}
    fragments = tiledb.array_fragments(str(uri / layout.HEADERS))
    assert len(fragments) >= 20_000 * len(expected) // (64 << 20)  # batches of <= 64 MiB


def test_a_budget_below_the_floor_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    home = _home(tmp_path)
    vcf = _single(tmp_path, 10)
    code, err, _ = _fednode("ingest", home, "--dataset", "d", "--memory-budget-mb", 150, vcf)
    assert code == 2 and "at least 200 MB" in err and "Traceback" not in err
    code, err, _ = _fednode(
        "ingest", home, "--dataset", "d", "--workers", "3", vcf,
        env={"FEDNODE_INGEST__MEMORY_BUDGET_MB": "500"},
    )  # fmt: skip
    assert code == 2 and "use at least 700 MB or fewer workers" in err, err
    assert not (home / "datasets" / "d").exists()
    code, err, _ = _fednode(
        "ingest", home, "--dataset", "d", vcf, env={"FEDNODE_INGEST__MEMORY_BUDGET_MB": "120"}
    )
    assert code == 2 and "memory budget 120 MB" in err  # the setting, when no option


def test_the_settings_default_is_the_stores() -> None:
    assert Settings().ingest.memory_budget_mb == DEFAULT_MB


@pytest.mark.parametrize("samples", [1, 2504])
def test_thresholds_grow_with_the_budget_up_to_the_writers_constants(samples: int) -> None:
    limits = [MemoryBudget.of(mb).limits(samples=samples) for mb in (200, 300, 500, 1000)]
    for small, large in itertools.pairwise(limits):
        assert small.flush_bytes < large.flush_bytes
        assert small.flush_rows < large.flush_rows and small.flush_keys < large.flush_keys
        assert small.queue_depth <= large.queue_depth
    top = MemoryBudget.of(UNBOUNDED).limits(samples=samples)
    assert top.flush_bytes >= IngestWriter.FLUSH_BYTES
    assert top.flush_rows >= IngestWriter.FLUSH_ROWS
    assert top.flush_keys >= IngestWriter.FLUSH_KEYS


def test_many_samples_per_record_leave_room_for_more_rows() -> None:
    """Few keys per row with many samples: rows flush later, within the same memory."""
    budget = MemoryBudget.of(DEFAULT_MB)
    assert budget.limits(samples=2504).flush_rows > 2 * budget.limits(samples=1).flush_rows


def test_workers_split_the_budget() -> None:
    budget = MemoryBudget.of(DEFAULT_MB, workers=2)
    assert budget.for_workers(2).mb == (DEFAULT_MB - COORDINATOR_MB) // 2 >= MIN_PROCESS_MB
    assert budget.coordinator().mb == COORDINATOR_MB
    with pytest.raises(InvalidInput, match="fewer workers"):
        MemoryBudget.of(DEFAULT_MB, workers=3)
    with pytest.raises(InvalidInput, match="at least 200"):
        MemoryBudget.of(MIN_PROCESS_MB - 1)


class _InProcess:
    """A runner of this machine that runs the tasks here and keeps their specs."""

    workers = 2
    shares_machine = True

    def __init__(self) -> None:
        self.specs: list[TaskSpec] = []

    def run(self, specs: list[TaskSpec]) -> list[TaskResult]:
        self.specs.extend(specs)
        return [run_task(spec) for spec in specs]


def test_each_task_of_a_partitioned_ingest_gets_its_share(tmp_path: Path) -> None:
    vcf = _single(tmp_path, 2_000)
    runner = _InProcess()
    store = TileDBVCFStore.create(str(tmp_path / "ds"))
    try:
        store.ingest([vcf], runner=runner, memory_budget_mb=600)
    finally:
        store.close()
    share = (600 - COORDINATOR_MB) // 2
    assert runner.specs and {s.memory_budget_mb for s in runner.specs} == {share}
    config = dict(runner.specs[0].config)
    assert config["sm.mem.total_budget"] == MemoryBudget(share).tiledb_config()[
        "sm.mem.total_budget"
    ]


@pytest.mark.parametrize("depth", [1, 2])
def test_write_queue_holds_at_most_depth_jobs_in_flight(depth: int) -> None:
    queue = WriteQueue(depth=depth)
    done = 0
    lock = threading.Lock()

    def job() -> None:
        nonlocal done
        with lock:
            done += 1

    for submitted in range(1, 50):
        queue.submit(job)
        with lock:
            assert submitted - done <= depth  # the rest finished before submit returned
    queue.join()
    assert done == 49
    with pytest.raises(ValueError):
        WriteQueue(depth=0)


def _per_sample_vcfs(folder: Path, *, files: int, header_kb: int) -> list[Path]:
    """`files` one-sample VCFs, each with a header of its own of about `header_kb` KB (as
    GATK's per-sample command lines make real ones differ) and two records."""
    folder.mkdir()
    paths = []
    for i in range(files):
        filler = [f"##fednode_note{k}=file{i}:{'n' * 90}" for k in range(header_kb * 1024 // 115)]
        lines = [
            "##fileformat=VCFv4.2",
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
            "##contig=<ID=1,length=248956422>",
            *filler,
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tP" + f"{i:05d}",
            "1\t1000\t.\tA\tG\t50\tPASS\t.\tGT\t0/1",
            f"1\t{2000 + i}\t.\tC\tT\t50\tPASS\t.\tGT\t1/1",
        ]
        path = folder / f"p{i:05d}.vcf"
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths


def test_many_per_sample_files_with_their_own_headers_keep_to_the_budget(
    tmp_path: Path,
) -> None:
    """300 per-sample files, each with its own 256 KB header (75 MB of header text): the
    inputs do not hold their headers and the writer writes a whole file's as they come, in
    batches, so the smallest budget holds (holding each header in its input and again
    until the end peaked at ~300 MiB); every sample's stored header is its file's."""
    paths = _per_sample_vcfs(tmp_path / "in", files=300, header_kb=256)
    listing = tmp_path / "files.txt"
    listing.write_text("".join(f"{p}\n" for p in paths))
    home = _home(tmp_path)
    code, err, peak = _fednode(
        "ingest", home, "--dataset", "d", "--memory-budget-mb", SMALL, "--files-from", listing
    )
    assert code == 0, err
    assert peak <= SMALL, f"peak RSS {peak} MiB over a {SMALL} MiB budget"
    with tiledb.open(str(home / "datasets" / "d" / layout.HEADERS)) as arr:
        stored = stored_headers(arr)
    expected = {f"P{i:05d}": VcfInput(p).sample_header([]) for i, p in enumerate(paths)}
    assert len(set(expected.values())) == 300 and min(map(len, expected.values())) > 250_000
    assert stored == expected
