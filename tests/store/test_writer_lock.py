"""Issue 18 item 4: one writer per dataset across processes.

A real ingest runs in a child process and pauses inside its first fragment write (it
holds the lock then); a second `fednode ingest` of the same dataset, a separate process,
is refused with a message naming the dataset and the holder, or waits and then ingests.
A holder killed with SIGKILL releases the lock (the kernel drops the flock).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.store.dataset.writer_lock import DatasetBusy, lock_path, writer_lock
from node.store.tiledbvcf import TileDBVCFStore
from node.synth import CohortInfo, generate_cohort
from tests.store.test_tiledbvcf import BCFTOOLS, sh

pytestmark = pytest.mark.skipif(BCFTOOLS is None, reason="bcftools is not installed")
REPO = Path(__file__).resolve().parents[2]

# An ingest that stops inside its first fragment write until a line arrives on stdin.
_PAUSED = """
import sys
from pathlib import Path
from node.store.dataset import layout
from node.store import tiledbvcf
from node.store.dataset.writer_lock import LockOptions
original, paused = layout.write_columns, []
def pause(*args, **kwargs):
    if not paused:
        paused.append(1)
        print("paused", flush=True)
        sys.stdin.readline()
    return original(*args, **kwargs)
layout.write_columns = pause
store = tiledbvcf.TileDBVCFStore.open(sys.argv[1])
store.ingest([Path(sys.argv[2])], lock=LockOptions(label="ds"))
print("done", flush=True)
"""


def fednode(*args: str | Path, wait: str = "0") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "node", "ingest", *map(str, args), "--wait", wait],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


@pytest.fixture
def cohort(tmp_path: Path) -> CohortInfo:
    return generate_cohort(tmp_path / "c.vcf.gz", samples=9, length=60_000, seed=3, groups=3)


@pytest.fixture
def home(tmp_path: Path, cohort: CohortInfo) -> Path:
    """A node home whose dataset `ds` holds the first sample group."""
    home = tmp_path / "home"
    run = subprocess.run([sys.executable, "-m", "node", "init", home], capture_output=True)
    assert run.returncode == 0
    store = TileDBVCFStore.create(str(home / "datasets" / "ds"))
    store.ingest([cohort.paths[0]])
    store.close()
    return home


@pytest.fixture
def holder(home: Path, cohort: CohortInfo) -> Iterator[subprocess.Popen[str]]:
    """A real ingest of the second group, paused while holding the lock."""
    child = subprocess.Popen(
        [sys.executable, "-c", _PAUSED, str(home / "datasets" / "ds"), str(cohort.paths[1])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdout is not None and child.stdout.readline() == "paused\n", child.stderr
    yield child
    if child.poll() is None:
        child.kill()
    child.wait()
    for pipe in (child.stdin, child.stdout, child.stderr):
        if pipe is not None:
            pipe.close()


def _samples(home: Path) -> set[str]:
    store = TileDBVCFStore.open(str(home / "datasets" / "ds"))
    try:
        return set(store.samples)
    finally:
        store.close()


def _of(*paths: Path) -> set[str]:
    return {s for p in paths for s in sh(f"bcftools query -l {p}").split()}


def _release(child: subprocess.Popen[str]) -> None:
    out, err = child.communicate("\n", timeout=300)
    assert child.returncode == 0 and out.strip().endswith("done"), err


def test_second_ingest_is_refused_naming_dataset_and_holder(
    home: Path, cohort: CohortInfo, holder: subprocess.Popen[str]
) -> None:
    second = fednode(home, "--dataset", "ds", cohort.paths[2])
    _, err = second.communicate(timeout=300)
    assert second.returncode == 2, err
    assert "Traceback" not in err
    assert "dataset ds is being written by another ingest" in err
    assert f"pid {holder.pid} on {socket.gethostname()}" in err
    assert _samples(home) == _of(cohort.paths[0])  # neither ingest is visible yet
    _release(holder)
    again = fednode(home, "--dataset", "ds", cohort.paths[2])
    assert again.communicate(timeout=300)[0] and again.returncode == 0
    assert _samples(home) == _of(*cohort.paths)


def test_second_ingest_waits_for_the_first(
    home: Path, cohort: CohortInfo, holder: subprocess.Popen[str]
) -> None:
    second = fednode(home, "--dataset", "ds", cohort.paths[2], wait="600")
    assert second.stderr is not None
    told = second.stderr.readline()  # said before waiting, so the holder is still paused
    assert "dataset ds is being written" in told and f"pid {holder.pid}" in told, told
    assert second.poll() is None  # still waiting
    _release(holder)
    _, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert _samples(home) == _of(*cohort.paths)


def test_a_killed_holder_releases_the_lock_and_its_work_is_dropped(
    home: Path, cohort: CohortInfo, holder: subprocess.Popen[str]
) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    second = fednode(home, "--dataset", "ds", cohort.paths[2])
    _, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert _samples(home) == _of(cohort.paths[0], cohort.paths[2])
    assert not any((home / "datasets" / "ds" / "__fednode_staging").iterdir())


def test_writer_lock_is_exclusive_within_a_process_and_names_the_holder(tmp_path: Path) -> None:
    uri = str(tmp_path / "ds")
    with (
        writer_lock(uri, label="ds"),
        pytest.raises(DatasetBusy) as busy,
        writer_lock(uri, label="ds", wait_s=0),
    ):
        pass
    assert f"pid {os.getpid()}" in busy.value.message
    with writer_lock(uri):  # released
        pass


def test_object_store_locks_live_in_the_lock_folder(tmp_path: Path) -> None:
    path = lock_path("s3://bucket/store/ds", lock_dir=tmp_path)
    assert path.parent == tmp_path
    assert path != lock_path("s3://bucket/store/other", lock_dir=tmp_path)
    assert lock_path(str(tmp_path / "ds")) == tmp_path / ".ds.fednode-lock"


def test_building_the_aggregate_takes_the_writer_lock(tmp_path: Path, cohort: CohortInfo) -> None:
    from node.store.ingest.aggregate_build import build_aggregate

    uri = str(tmp_path / "ds")
    TileDBVCFStore.create(uri).close()
    with writer_lock(uri, label="ds"), pytest.raises(DatasetBusy) as busy:
        build_aggregate(uri)
    assert "dataset" in busy.value.message and f"pid {os.getpid()}" in busy.value.message
    build_aggregate(uri)  # free again: nothing to build on an empty dataset
