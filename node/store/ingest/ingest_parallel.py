"""Where a partitioned ingest's tasks run: worker processes (`ProcessRunner`, `fednode
ingest --workers N`) or a Dask cluster (`DaskRunner`, `--dask ADDRESS` or `--dask local`).

Both run the same `ingest_tasks.run_task` on the same specs and hand back every task's
result, or raise: the coordinator (`TileDBVCFStore.ingest`) commits only when every task
succeeded, so a failed or killed worker leaves the dataset as it was. A task that fails
on its input is not retried (it would fail again); a task whose worker process died is
reported (processes) or rerun by Dask's scheduler on another worker (it reschedules the
tasks of a lost worker, up to `distributed.scheduler.allowed-failures` times). Every
attempt writes its own staging part, and only the parts of the results handed back are
published, so a killed attempt's files are never seen.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from node.errors import IngestError, NodeError
from node.store.ingest.ingest_tasks import TaskResult, TaskSpec, run_task
from node.store.ingest.vcfio import RegionError, locate_error

__all__ = ["DaskRunner", "ProcessRunner", "TaskRunner", "WorkerLost", "run_partitioned"]


class WorkerLost(IngestError):
    """A worker process died (killed, out of memory) while running a task."""

    def __init__(self, spec: TaskSpec, how: str) -> None:
        super().__init__(
            f"an ingest worker {how} while ingesting {spec.describe()}; nothing was "
            "committed, the dataset is as it was",
            path=spec.path,
        )


class TaskRunner(Protocol):
    """Runs every task and returns their results in the order given, or raises.
    `shares_machine`: its processes run on this machine (they split the ingest's memory
    budget; a remote cluster's each hold all of it)."""

    workers: int
    shares_machine: bool

    def run(self, specs: Sequence[TaskSpec]) -> list[TaskResult]: ...


class ProcessRunner:
    """`workers` processes of this machine (spawned: TileDB's threads do not survive a
    fork), each running tasks one after another."""

    shares_machine = True

    def __init__(self, workers: int, *, task: Callable[[TaskSpec], TaskResult] = run_task):
        self.workers = workers
        self._task = task

    def run(self, specs: Sequence[TaskSpec]) -> list[TaskResult]:
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        futures = [pool.submit(self._task, spec) for spec in specs]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
            return [_result(f, spec) for f, spec in zip(futures, specs, strict=True)]
        finally:
            # On failure, tasks not started are dropped and running ones finish before
            # the caller removes the staging, so no file lands after it.
            pool.shutdown(wait=True, cancel_futures=True)


def _result(future: Future[TaskResult], spec: TaskSpec) -> TaskResult:
    try:
        return future.result()
    except BrokenProcessPool as exc:
        raise WorkerLost(spec, "process died") from exc


class DaskRunner:
    """A Dask cluster: `address` a scheduler (`tcp://host:8786`) or "local" (a
    LocalCluster of `workers` processes, one thread each)."""

    def __init__(self, address: str, *, workers: int = 2) -> None:
        self.address = address
        self.workers = workers
        self.shares_machine = address == "local"

    def run(self, specs: Sequence[TaskSpec]) -> list[TaskResult]:
        from distributed import Client, KilledWorker

        with self._cluster() as target, Client(target) as client:  # type: ignore[no-untyped-call]
            futures = client.map(run_task, list(specs), pure=False)
            try:
                results: list[TaskResult] = client.gather(futures)
            except KilledWorker as exc:
                spec = next((s for f, s in zip(futures, specs, strict=True) if f.key in str(exc)),
                            specs[0])
                raise WorkerLost(spec, "was lost too many times (Dask KilledWorker)") from exc
            finally:
                client.cancel(futures)
        return results

    @contextmanager
    def _cluster(self) -> Iterator[Any]:
        if self.address != "local":
            yield self.address
            return
        from distributed import LocalCluster

        with LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=self.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        ) as cluster:
            yield cluster


def run_partitioned(runner: TaskRunner, specs: Sequence[TaskSpec]) -> list[TaskResult]:
    """Every task's result, in plan order. An input split into regions that declares a
    FILTER its header lacks is run again whole: one writer numbers such FILTERs in record
    order, which regions cannot know."""
    results = _run(runner, specs)
    split = {s.path for s in specs if s.region is not None}
    redo = sorted(
        {r.spec.path for r in results if r.spec.path in split and _declares(r)},
    )
    if not redo:
        return results
    whole = {}
    for spec in specs:
        if spec.path in redo and spec.path not in whole:
            whole[spec.path] = _whole_file(spec)
    again = dict(zip(redo, _run(runner, [whole[p] for p in redo]), strict=True))
    ordered = []
    for result in results:
        if result.spec.path not in again:
            ordered.append(result)
        elif result.spec.path not in {r.spec.path for r in ordered}:
            ordered.append(again[result.spec.path])
    return ordered


def _declares(result: TaskResult) -> bool:
    return any(result.outcome.extra_filters.values())


def _whole_file(spec: TaskSpec) -> TaskSpec:
    return replace(spec, region=None, timestamp=spec.base)


def _run(runner: TaskRunner, specs: Sequence[TaskSpec]) -> list[TaskResult]:
    try:
        return runner.run(specs)
    except RegionError as exc:
        # The failing record's line: read the file from its start, as one writer would.
        locate_error(Path(exc.path))
        raise IngestError(exc.detail, path=exc.path) from exc
    except NodeError:
        raise
