"""Issue 18 item 7: `fednode store consolidate` while the node serves.

A dataset of several single-sample ingests and a `--replace` (a delete among the merged
fragments) answers the same after consolidation as before: fednode's allele statistics
(also checked against bcftools +fill-tags), region records and headers, and the real
TileDB-VCF's `export`, `stat` and `vcfstats`. A store held open across a consolidation and
a later vacuum (and one left on an older committed timestamp) keeps answering as a fresh
one; the CLI is refused while another writer holds the dataset; a consolidation killed at
any step leaves the answers and TileDB-VCF's view unchanged.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import tiledb

from node.domain import Region
from node.store.dataset import layout
from node.store.dataset.consolidation import consolidate
from node.store.tiledbvcf import TileDBVCFStore
from tests.store.test_tiledbvcf import (
    BCFTOOLS,
    assert_stats_match,
    cohort_rows,
    fill_tags_truth,
    write_vcf,
)
from tests.store.tiledbvcf_tool import TileDBVCF, split_samples

pytestmark = pytest.mark.skipif(BCFTOOLS is None, reason="bcftools is not installed")
REPO = Path(__file__).resolve().parents[2]
SAMPLES = [f"C{i:02d}" for i in range(6)]
REGIONS = [Region("1", 0, 300_000_000), Region("X", 0, 300_000_000), Region("1", 5000, 20000)]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Path]]:
    """The cohort VCF, a dataset of it ingested sample by sample (one replaced), and the
    per-sample files."""
    folder = tmp_path_factory.mktemp("consolidation")
    vcf = write_vcf(folder / "cohort.vcf.gz", SAMPLES, cohort_rows(len(SAMPLES), seed=11))
    files = split_samples(vcf, folder / "split")
    store = TileDBVCFStore.create(str(folder / "ds"))
    try:
        for path in files:
            store.ingest([path])
        store.ingest([files[1]], replace=True)  # a delete between merged fragments
    finally:
        store.close()
    return vcf, folder / "ds", files


@pytest.fixture
def dataset(source: tuple[Path, Path, list[Path]], tmp_path: Path) -> Path:
    target = tmp_path / "ds"
    shutil.copytree(source[1], target)
    return target


def answers(uri: Path | str) -> tuple[object, ...]:
    store = TileDBVCFStore.open(str(uri))
    try:
        return answers_of(store)
    finally:
        store.close()


def answers_of(store: TileDBVCFStore) -> tuple[object, ...]:
    variants = [list(store.variants(r)) for r in REGIONS]
    records = [[rec for batch in store.records(r) for rec in batch] for r in REGIONS]
    return store.samples, variants, records, store.vcf_headers()


def fragment_dirs(uri: Path) -> int:
    return sum(len(list((uri / n / "__fragments").glob("__*"))) for n in layout.ALL_ARRAYS)


def test_answers_identical_before_and_after(
    source: tuple[Path, Path, list[Path]], dataset: Path, shared_dir: Path
) -> None:
    tool = TileDBVCF.find(shared_dir)
    regions = ["chr1:1-300000000", "chrX:1-300000000"]
    before = answers(dataset)
    export_before = tool.export(dataset, dataset.parent / "export-before")
    stats_before = tool.variant_stats(dataset, regions)
    stat_before = tool.stat(dataset)
    assert len(before[2][0]) > 50 and before[0] == tuple(SAMPLES)  # a real dataset

    summary = consolidate(str(dataset), vacuum_after_s=0)
    assert summary.before[layout.DATA] == len(SAMPLES) + 1 and summary.after[layout.DATA] == 1
    assert fragment_dirs(dataset) == sum(summary.after.values())  # vacuumed

    assert answers(dataset) == before
    store = TileDBVCFStore.open(str(dataset))
    try:
        assert assert_stats_match(store, fill_tags_truth(source[0])) > 50
    finally:
        store.close()
    assert tool.export(dataset, dataset.parent / "export-after") == export_before
    assert tool.variant_stats(dataset, regions) == stats_before
    assert tool.stat(dataset) == stat_before
    assert_keys_follow_fragments(dataset)


def assert_keys_follow_fragments(dataset: Path) -> None:
    """TileDB-VCF's fragment -> samples keys name the merged fragment with every sample."""
    for name in (layout.VARIANT_STATS, layout.ALLELE_COUNT):
        with tiledb.open(str(dataset / name)) as arr:
            keys = {k: arr.meta[k] for k in arr.meta if "/__fragments/" in k}
        (fragment,) = tiledb.array_fragments(str(dataset / name))
        assert list(keys) == [fragment.uri]
        assert sorted(keys[fragment.uri].decode().split(",")) == SAMPLES


def test_a_reader_held_open_across_consolidate_and_vacuum(
    source: tuple[Path, Path, list[Path]], dataset: Path
) -> None:
    """The server's way: arrays kept open, `housekeeping` every period; vacuum only after
    the grace. One reader was opened before another process committed a sample."""
    expected = answers(dataset)
    held = TileDBVCFStore.open(str(dataset))
    stale = TileDBVCFStore.open(str(dataset))
    try:
        assert answers_of(held) == expected  # its arrays are open now
        assert answers_of(stale) == expected
        extra = write_vcf(dataset.parent / "late.vcf.gz", ["LATE"], cohort_rows(1, seed=3))
        writer = TileDBVCFStore.open(str(dataset))
        writer.ingest([extra])
        writer.close()
        after_ingest = answers(dataset)
        assert after_ingest != expected

        now = 1_000_000.0
        first = consolidate(str(dataset), vacuum_after_s=60, clock=lambda: now)
        assert first.vacuum_pending and not first.vacuumed
        assert answers_of(held) == expected  # still its old arrays and committed state
        held.housekeeping()  # the server's period passes
        stale.housekeeping()
        early = consolidate(str(dataset), vacuum_after_s=60, clock=lambda: now + 30)
        assert not early.vacuumed
        assert fragment_dirs(dataset) > sum(early.after.values())  # the inputs are kept
        assert answers_of(held) == after_ingest
        late = consolidate(str(dataset), vacuum_after_s=60, clock=lambda: now + 120)
        assert late.vacuumed and fragment_dirs(dataset) == sum(late.after.values())
        assert answers_of(held) == after_ingest
        assert answers_of(stale) == after_ingest
        assert answers(dataset) == after_ingest
    finally:
        held.close()
        stale.close()


_HOLDER = """
import sys
from node.store.dataset.writer_lock import writer_lock
with writer_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_cli_refuses_while_another_writer_holds_the_dataset(tmp_path: Path, dataset: Path) -> None:
    home = tmp_path / "home"
    assert _fednode("init", home).returncode == 0
    (home / "datasets").rmdir()
    shutil.move(dataset, home / "datasets" / "ds")
    target = home / "datasets" / "ds"
    count = fragment_dirs(target)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(target)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        refused = _fednode("store", "consolidate", home, "--dataset", "ds", "--wait", "0")
        assert refused.returncode == 2
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and "dataset ds is being written" in lines[0], refused.stderr
        assert f"pid {holder.pid}" in lines[0]
        assert fragment_dirs(target) == count
    finally:
        holder.communicate("\n", timeout=60)
    done = _fednode("store", "consolidate", home, "--dataset", "ds", "--vacuum-after", "0")
    assert done.returncode == 0, done.stderr
    assert "consolidated into 7" in done.stdout and fragment_dirs(target) == 7
    missing = _fednode("store", "consolidate", home, "--dataset", "nope")
    assert missing.returncode == 2 and "no dataset 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr


# A consolidation that SIGKILLs itself at one of its steps: after the Nth TileDB
# consolidate call, or when it is about to write the group metadata (the commit).
_KILLED = """
import os, signal, sys
import tiledb
from node.store.dataset.consolidation import consolidate
point, calls = sys.argv[2], []
original_consolidate, original_group = tiledb.consolidate, tiledb.Group
def counted(*args, **kwargs):
    original_consolidate(*args, **kwargs)
    calls.append(1)
    if point == f"call{len(calls)}":
        os.kill(os.getpid(), signal.SIGKILL)
class Group(original_group):
    def __init__(self, uri, mode="r", *args, **kwargs):
        if mode == "w" and point == "commit":
            os.kill(os.getpid(), signal.SIGKILL)
        super().__init__(uri, mode, *args, **kwargs)
tiledb.consolidate, tiledb.Group = counted, Group
consolidate(sys.argv[1], vacuum_after_s=0)
"""


@pytest.mark.parametrize("point", ["call1", "call4", "call7", "commit", "call20"])
def test_a_killed_consolidation_changes_nothing_visible(dataset: Path, point: str) -> None:
    before = answers(dataset)
    cells_before = _latest_cells(dataset)
    child = subprocess.run(
        [sys.executable, "-c", _KILLED, str(dataset), point],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert answers(dataset) == before
    assert _latest_cells(dataset) == cells_before  # what TileDB-VCF reads
    consolidate(str(dataset), vacuum_after_s=0)  # the next run finishes the work
    assert answers(dataset) == before
    assert _latest_cells(dataset) == cells_before
    assert_keys_follow_fragments(dataset)


def _latest_cells(uri: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every array's cells at the latest timestamp, sorted (TileDB-VCF's view)."""
    out = {}
    for name in layout.ALL_ARRAYS:
        with tiledb.open(str(uri / name)) as arr:
            cells = arr.query(return_arrow=False)[:]
        columns = [cells[k] for k in sorted(cells)]
        rows = [tuple(_plain(c[i]) for c in columns) for i in range(len(columns[0]))]
        out[name] = sorted(rows, key=repr)
    return out


def _plain(value: object) -> str:
    """Comparable text of a cell value (a NaN QUAL equals itself)."""
    tolist = getattr(value, "tolist", None)
    return repr(tolist() if callable(tolist) else value)


def _fednode(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node", *map(str, args)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip


def test_the_merged_inputs_stay_until_the_grace_has_passed(dataset: Path) -> None:
    count = fragment_dirs(dataset)
    summary = consolidate(str(dataset), vacuum_after_s=600)
    assert summary.vacuum_pending
    assert fragment_dirs(dataset) == count + sum(1 for n in summary.after.values() if n)
