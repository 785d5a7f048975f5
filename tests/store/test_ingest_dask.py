"""Issue 18 item 5: the partitioned ingest on a Dask cluster (`--dask local` here: a
LocalCluster of two worker processes), committed once by the client.

The truth is a one-writer ingest of the same files, cell for cell (`dataset_cells`). A
worker process killed with SIGKILL in the middle of a task (after it wrote a fragment) has
its task rerun by Dask's scheduler on a fresh worker; the dataset holds each cell once.
On object storage (moto's S3 server) the workers write their parts through TileDB's VFS.
The deploy/compose.yaml scheduler and worker commands run as local processes and take a
`fednode ingest --dask tcp://...`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from node.errors import IngestError
from node.store.ingest.ingest_parallel import DaskRunner
from node.store.tiledbvcf import TileDBVCFStore
from node.synth import CohortInfo, generate_cohort
from tests.store.dataset_cells import dataset_cells
from tests.store.test_ingest_workers import KILLER
from tests.store.test_object_store import BUCKET, s3  # noqa: F401  (the moto fixture)
from tests.store.test_tiledbvcf import BCFTOOLS

pytestmark = pytest.mark.skipif(BCFTOOLS is None, reason="bcftools is not installed")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> CohortInfo:
    path = tmp_path_factory.mktemp("cohort") / "c.vcf.gz"
    return generate_cohort(path, samples=10, length=300_000, seed=5, contigs=("1", "2"), groups=2)


@pytest.fixture(scope="module")
def one_writer(tmp_path_factory: pytest.TempPathFactory, cohort: CohortInfo) -> dict[str, object]:
    uri = tmp_path_factory.mktemp("one") / "ds"
    store = TileDBVCFStore.create(str(uri))
    store.ingest(list(cohort.paths))
    store.close()
    return dataset_cells(uri)


def test_a_worker_killed_mid_task_is_retried_and_the_dataset_equals_one_writer(
    tmp_path: Path, cohort: CohortInfo, one_writer: dict[str, object]
) -> None:
    home = tmp_path / "home"
    subprocess.run([sys.executable, "-m", "node", "init", home], check=True, capture_output=True)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(KILLER)
    marker = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": f"{hooks}:{REPO}", "FEDNODE_TEST_KILLED": str(marker)}
    run = subprocess.run(
        [sys.executable, "-m", "node", "ingest", home, "--dataset", "ds", "--dask", "local",
         "--workers", "2", *cohort.paths],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert marker.exists()  # a worker process did die in a task
    assert dataset_cells(home / "datasets" / "ds") == one_writer


def test_dask_on_object_storage_equals_one_writer(
    s3: dict[str, str],  # noqa: F811
    cohort: CohortInfo,
    one_writer: dict[str, object],
) -> None:
    uri = f"s3://{BUCKET}/{uuid.uuid4().hex}/ds"
    store = TileDBVCFStore.create(uri, tiledb_config=s3)
    try:
        summary = store.ingest(list(cohort.paths), runner=DaskRunner("local", workers=2))
    finally:
        store.close()
    assert summary.samples_added == cohort.samples
    assert dataset_cells(uri, s3) == one_writer


def test_ingest_on_the_compose_files_dask_cluster(
    tmp_path: Path, cohort: CohortInfo, one_writer: dict[str, object]
) -> None:
    """The scheduler and worker commands of deploy/compose.yaml, run as local processes,
    and `fednode ingest --dask tcp://...` as the compose file's one-shot client runs it."""
    services = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())["services"]
    client = services["ingest-dask"]["entrypoint"]
    address = client[client.index("--dask") + 1]
    scheduler = services["dask-scheduler"]["entrypoint"]
    assert address == f"tcp://dask-scheduler:{scheduler[scheduler.index('--port') + 1]}"
    worker = services["dask-worker"]["entrypoint"]
    assert worker[2] == address
    assert set(services["ingest-dask"]["volumes"]) <= set(services["dask-worker"]["volumes"])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    local = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).parent / "dask")
    replace = {"0.0.0.0": "127.0.0.1", "8786": str(port), address: local, "/tmp": str(tmp_path)}
    commands = [scheduler] + [worker] * services["dask-worker"]["deploy"]["replicas"]
    started = []
    try:
        for command in commands:
            args = [dask, *(replace.get(a, a) for a in command[1:])]
            started.append(subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
        home = tmp_path / "home"
        subprocess.run([sys.executable, "-m", "node", "init", home], check=True,
                       capture_output=True)
        run = subprocess.run(
            [sys.executable, "-m", "node", "ingest", home, "--dataset", "ds", "--dask", local,
             *cohort.paths],
            capture_output=True, text=True, timeout=600,
        )
        assert run.returncode == 0, run.stderr[-3000:]
    finally:
        for proc in started:
            proc.terminate()
        for proc in started:
            proc.wait(timeout=60)
    assert dataset_cells(home / "datasets" / "ds") == one_writer


def test_a_task_failing_on_its_input_fails_the_ingest_with_file_and_line(tmp_path: Path) -> None:
    from tests.store.test_ingest_workers import bad_vcf

    vcf, line = bad_vcf(tmp_path)
    store = TileDBVCFStore.create(str(tmp_path / "ds"))
    with pytest.raises(IngestError) as raised:
        store.ingest([vcf], runner=DaskRunner("local", workers=2))
    assert raised.value.message.startswith(f"{vcf}:{line}: ")
    assert store.samples == ()
    assert not any((tmp_path / "ds" / "__fednode_staging").iterdir())
    store.close()
