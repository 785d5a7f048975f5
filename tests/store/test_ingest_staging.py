"""Issue 14, finding 7: a failed or killed ingest is invisible to every reader.

fednode's own readers open the arrays at the committed timestamp; TileDB-VCF and plain
tiledb-py open them at the latest. An ingest now writes into staging copies of the arrays
and moves its files in as its last step, so both kinds of reader see the dataset as it was
until then. The child ingests here kill themselves (SIGKILL) at a chosen step: after N
fragment writes, before the commit decision, or half-way through moving the files in.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import tiledb

from node.errors import IngestError
from node.store.dataset import layout
from node.store.ingest.ingest_writer import IngestWriter
from node.store.tiledbvcf import TileDBVCFStore
from node.synth import CohortInfo, generate_cohort
from tests.store import test_tiledbvcf_compat as compat
from tests.store.test_tiledbvcf import BCFTOOLS, sh
from tests.store.test_tiledbvcf_compat import assert_exports_equal_inputs, tdb

tiledbvcf = compat.tiledbvcf  # the fixture: the binary, or a skip saying why not
pytestmark = pytest.mark.skipif(BCFTOOLS is None, reason="bcftools is not installed")
REPO = Path(__file__).resolve().parents[2]
STAGING = "__fednode_staging"

_CHILD = """
import os, signal, sys
from pathlib import Path
from node.store.dataset import dataset_state, layout
from node.store.ingest import global_order
from node.store import tiledbvcf
uri, vcf, step, after = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
tiledbvcf.IngestWriter.FLUSH_BYTES = 1 << 16  # many write batches
calls = 0

def kill_after(fn):
    def wrapped(*args, **kwargs):
        global calls
        calls += 1
        if calls > after:
            os.kill(os.getpid(), signal.SIGKILL)
        return fn(*args, **kwargs)
    return wrapped

if step == "write":  # any array's fragment write, or a `data` batch
    layout.write_columns = kill_after(layout.write_columns)
    if hasattr(global_order, "FragmentStream"):
        global_order.FragmentStream.submit = kill_after(global_order.FragmentStream.submit)
elif step == "decide":  # everything written, nothing published
    tiledbvcf.publish = kill_after(tiledbvcf.publish)
elif step == "publish":  # one folder of one array moved in per call
    dataset_state._move_children = kill_after(dataset_state._move_children)
tiledbvcf.TileDBVCFStore.open(uri).ingest([Path(vcf)])
"""


def plain_view(uri: Path) -> dict[str, object]:
    """What plain tiledb-py sees at the latest timestamp: each array's cell count and
    metadata, and the group metadata."""
    view: dict[str, object] = {}
    for name in layout.ALL_ARRAYS:
        with tiledb.open(str(uri / name)) as arr:
            first = arr.schema.domain.dim(0).name
            cells = arr.query(attrs=[], dims=[first])[:][first]
            view[name] = (len(cells), dict(arr.meta.items()))
    with tiledb.Group(str(uri)) as group:
        view["group"] = dict(group.meta.items())
    return view


def tiledbvcf_view(binary: Path, uri: Path, out: Path) -> dict[str, str]:
    """What TileDB-VCF sees: `list`, `stat` and every sample's export."""
    view = {"list": tdb(binary, "list", "-u", uri), "stat": tdb(binary, "stat", "-u", uri)}
    out.mkdir()
    tdb(binary, "export", "-u", uri, "-O", "v", "-d", out)
    view.update({p.name: p.read_text() for p in sorted(out.iterdir())})
    return view


def _cell_counts(uri: Path) -> dict[str, int]:
    counts = {}
    for name in layout.ALL_ARRAYS:
        with tiledb.open(str(uri / name)) as arr:
            first = arr.schema.domain.dim(0).name
            counts[name] = len(arr.query(attrs=[], dims=[first])[:][first])
    return counts


def _staged(uri: Path) -> list[str]:
    folder = uri / STAGING
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _killed_ingest(uri: Path, vcf: Path, step: str, after: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, str(uri), str(vcf), step, str(after)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]


@pytest.fixture
def cohort(tmp_path: Path) -> CohortInfo:
    """Two sample groups of one joint call set; the first is ingested before each test."""
    path = tmp_path / "cohort.vcf.gz"
    return generate_cohort(path, samples=16, length=300_000, seed=7, contigs=("1", "2"), groups=2)


@pytest.fixture
def dataset(tmp_path: Path, cohort: CohortInfo) -> Path:
    uri = tmp_path / "ds"
    store = TileDBVCFStore.create(str(uri))
    store.ingest([cohort.paths[0]])
    store.close()
    return uri


def _inputs(paths: tuple[Path, ...]) -> dict[str, Path]:
    return {s: p for p in paths for s in sh(f"bcftools query -l {p}").split()}


@pytest.mark.parametrize("after", [2, 15])
def test_ingest_killed_while_writing_is_invisible_and_cleaned_on_open(
    tiledbvcf: Path, tmp_path: Path, cohort: CohortInfo, dataset: Path, after: int
) -> None:
    plain, theirs = plain_view(dataset), tiledbvcf_view(tiledbvcf, dataset, tmp_path / "before")
    _killed_ingest(dataset, cohort.paths[1], "write", after)
    assert plain_view(dataset) == plain  # no reader sees the partial work...
    assert tiledbvcf_view(tiledbvcf, dataset, tmp_path / "killed") == theirs
    assert _staged(dataset)  # ...which is on disk
    store = TileDBVCFStore.open(str(dataset))  # removes the dead ingest's staging
    assert _staged(dataset) == []
    assert plain_view(dataset) == plain
    assert store.ingest([cohort.paths[1]]).samples_added == tuple(_inputs(cohort.paths[1:]))
    assert_exports_equal_inputs(tiledbvcf, dataset, _inputs(cohort.paths), tmp_path / "after")


def test_ingest_killed_before_deciding_is_rolled_back(
    tiledbvcf: Path, tmp_path: Path, cohort: CohortInfo, dataset: Path
) -> None:
    plain, theirs = plain_view(dataset), tiledbvcf_view(tiledbvcf, dataset, tmp_path / "before")
    _killed_ingest(dataset, cohort.paths[1], "decide", 0)
    assert _staged(dataset)  # every fragment written, none published
    assert plain_view(dataset) == plain
    assert tiledbvcf_view(tiledbvcf, dataset, tmp_path / "killed") == theirs
    store = TileDBVCFStore.open(str(dataset))
    assert _staged(dataset) == [] and plain_view(dataset) == plain
    assert store.samples == tuple(_inputs(cohort.paths[:1]))


def test_ingest_killed_while_publishing_is_finished_on_open(
    tiledbvcf: Path, tmp_path: Path, cohort: CohortInfo, dataset: Path
) -> None:
    """Once the decision is written the ingest has committed: opening the dataset moves the
    rest of its files in and writes the group metadata."""
    reference = tmp_path / "reference"
    store = TileDBVCFStore.create(str(reference))
    for path in cohort.paths:
        store.ingest([path])
    _killed_ingest(dataset, cohort.paths[1], "publish", 20)  # metadata moves under way
    assert _staged(dataset)
    store = TileDBVCFStore.open(str(dataset))
    assert _staged(dataset) == []
    assert store.samples == tuple(_inputs(cohort.paths))
    assert _cell_counts(dataset) == _cell_counts(reference)
    assert_exports_equal_inputs(tiledbvcf, dataset, _inputs(cohort.paths), tmp_path / "after")


def test_failing_ingest_is_invisible_while_it_runs_and_after(
    tiledbvcf: Path,
    tmp_path: Path,
    cohort: CohortInfo,
    dataset: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reader opening the dataset while an ingest runs (here: when its sixth fragment
    write fails with a full disk) sees it as it was, and so does every reader after."""
    plain, theirs = plain_view(dataset), tiledbvcf_view(tiledbvcf, dataset, tmp_path / "before")
    seen = []
    real = layout.write_columns
    calls = 0

    def failing(array: tiledb.Array, columns: object, **options: bool) -> str | None:
        nonlocal calls
        calls += 1
        if calls == 6:
            seen.append(plain_view(dataset))
            raise OSError(28, "No space left on device")
        return real(array, columns, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(IngestWriter, "FLUSH_BYTES", 1 << 16)
    monkeypatch.setattr(layout, "write_columns", failing)
    store = TileDBVCFStore.open(str(dataset))
    with pytest.raises(IngestError, match="No space left"):
        store.ingest([cohort.paths[1]])
    assert seen == [plain]
    assert _staged(dataset) == []
    assert plain_view(dataset) == plain
    assert tiledbvcf_view(tiledbvcf, dataset, tmp_path / "failed") == theirs


def test_open_leaves_a_running_ingest_alone(dataset: Path) -> None:
    """Another process opening the dataset does not touch the staging of an ingest still
    running (this process's); a dead process's staging is removed."""
    from node.store.dataset.dataset_state import stage

    ctx = tiledb.Ctx()
    live = stage(str(dataset), ctx, 10**13)
    TileDBVCFStore.open(str(dataset)).close()
    assert _staged(dataset) == [str(10**13)]
    script = "import os; print(os.getpid())"
    dead = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True)
    owner = Path(live.root) / "owner.json"
    owner.write_text(json.dumps({**json.loads(owner.read_text()), "pid": int(dead.stdout)}))
    TileDBVCFStore.open(str(dataset)).close()
    assert _staged(dataset) == []
