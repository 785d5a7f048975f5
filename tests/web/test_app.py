"""The root application: health, Prometheus metrics, request ids, last-resort errors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient

from node.config import Settings
from node.store.memory import MemoryStore
from node.store.registry import DatasetRegistry
from node.store.tiledbvcf import TileDBVCFStore
from node.synth import generate_cohort
from node.web.app import create_app


def _registry_with(stores: dict[str, MemoryStore]) -> DatasetRegistry:
    settings = Settings(home=Path("."))

    def lister() -> Iterable[str]:
        return stores.keys()

    return DatasetRegistry(settings, opener=stores.__getitem__, lister=lister)


async def test_health_lists_datasets_and_metrics_count_requests(
    aiohttp_client: object, tmp_path: Path
) -> None:
    cohort = generate_cohort(tmp_path / "c.vcf.gz", samples=5, length=5_000, seed=1)
    store = MemoryStore()
    store.ingest(list(cohort.paths))
    app = create_app(
        Settings(home=tmp_path), registry_factory=lambda s: _registry_with({"d1": store})
    )
    client: TestClient = await aiohttp_client(app)  # type: ignore[operator]

    resp = await client.get("/health", headers={"X-Request-Id": "abc123"})
    assert resp.status == 200
    assert (await resp.json())["datasets"] == ["d1"]
    assert resp.headers["X-Request-Id"] == "abc123"

    metrics = await (await client.get("/metrics")).text()
    assert 'fednode_http_requests_total{method="GET",route="/health",status="200"} 1.0' in metrics


async def test_unexpected_exception_is_a_generic_500_without_details(
    aiohttp_client: object, tmp_path: Path
) -> None:
    app = create_app(Settings(home=tmp_path), registry_factory=lambda s: _registry_with({}))

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret path /etc/shadow")

    app.router.add_get("/boom", boom)
    client: TestClient = await aiohttp_client(app)  # type: ignore[operator]
    resp = await client.get("/boom")
    assert resp.status == 500
    body = await resp.text()
    assert "shadow" not in body and "Traceback" not in body
    assert (await resp.json())["requestId"] == resp.headers["X-Request-Id"]


async def test_lookup_indexes_are_built_at_start_up_without_a_query(
    aiohttp_client: object, tmp_path: Path
) -> None:
    cohort = generate_cohort(tmp_path / "c.vcf.gz", samples=5, length=5_000, seed=1)
    TileDBVCFStore.create(str(tmp_path / "ds")).ingest(list(cohort.paths))
    store = TileDBVCFStore.open(str(tmp_path / "ds"))
    contig = store.contigs()[0]
    assert not store.resident(contig)
    app = create_app(
        Settings(home=tmp_path),
        registry_factory=lambda s: _registry_with({"d1": store}),  # type: ignore[dict-item]
    )
    await aiohttp_client(app)  # type: ignore[operator]
    for _ in range(200):  # built in a background thread
        if store.resident(contig):
            break
        await asyncio.sleep(0.05)
    assert store.resident(contig)


def test_serving_processes_freeze_startup_objects() -> None:
    # Process-wide, so checked in a child process: the startup hook `serve` installs.
    import subprocess
    import sys

    code = (
        "import asyncio, gc\n"
        "from node.web.serve import tune_gc\n"
        "before = gc.get_threshold()\n"
        "asyncio.run(tune_gc(None))\n"
        "assert gc.get_freeze_count() > 1000, gc.get_freeze_count()\n"
        "assert gc.get_threshold() == before, gc.get_threshold()  # young objects: default\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


async def test_a_client_that_hangs_up_is_not_counted_as_a_server_error(
    aiohttp_client: object, tmp_path: Path
) -> None:
    """The handler is cancelled when its client disconnects: logged and counted as 499
    (client closed request), never as a 500 (the soak run counted those as errors)."""
    app = create_app(Settings(home=tmp_path), registry_factory=lambda s: _registry_with({}))
    entered, cancelled = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        entered.set()
        try:
            await asyncio.Event().wait()  # never answers
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    app.router.add_get("/slow", slow)
    client: TestClient = await aiohttp_client(app)  # type: ignore[operator]
    request = asyncio.ensure_future(client.get("/slow"))
    await entered.wait()
    request.cancel()  # closes the connection
    await asyncio.wait_for(cancelled.wait(), timeout=30)
    metrics = ""
    for _ in range(100):  # the middleware's finally runs after the handler's
        metrics = await (await client.get("/metrics")).text()
        if 'route="/slow"' in metrics:
            break
        await asyncio.sleep(0.01)
    assert 'fednode_http_requests_total{method="GET",route="/slow",status="499"} 1.0' in metrics
    assert 'route="/slow",status="500"' not in metrics


async def test_the_server_runs_the_store_housekeeping_periodically(
    aiohttp_client: object, tmp_path: Path
) -> None:
    calls: list[float] = []
    settings = Settings(home=tmp_path, server={"housekeeping_s": 0.01})

    class Kept(MemoryStore):
        def housekeeping(self) -> None:
            calls.append(1)

    registry = _registry_with({"d1": Kept()})
    registry.store("d1")  # opened: open stores are kept
    app = create_app(settings, registry_factory=lambda s: registry)
    await aiohttp_client(app)  # type: ignore[operator]
    for _ in range(1000):  # a bounded wait for the second run, not a timing assertion
        if len(calls) >= 2:
            break
        await asyncio.sleep(0.01)
    assert len(calls) >= 2


def test_housekeeping_while_queries_run_changes_no_answer(tmp_path: Path) -> None:
    """Housekeeping runs on another thread than the queries (fresh contexts, TileDB's
    statistics reset): every answer read meanwhile equals the one read before."""
    import threading

    from node.domain import Region
    from node.store.housekeeping import release_query_statistics

    cohort = generate_cohort(tmp_path / "c.vcf.gz", samples=4, length=20_000, seed=3)
    TileDBVCFStore.create(str(tmp_path / "ds")).ingest(list(cohort.paths))
    store = TileDBVCFStore.open(str(tmp_path / "ds"))
    contig = store.contigs()[0]
    regions = [Region(contig, start, start + 500) for start in range(0, 20_000, 500)]
    expected = [[r for b in store.records(region) for r in b] for region in regions]
    stop = threading.Event()

    def reset() -> None:
        while not stop.is_set():
            release_query_statistics()
            store.housekeeping()  # fresh contexts under running readers

    resetter = threading.Thread(target=reset)
    resetter.start()
    try:
        for _ in range(5):
            got = [[r for b in store.records(region) for r in b] for region in regions]
            assert got == expected
    finally:
        stop.set()
        resetter.join()
    assert sum(map(len, expected)) > 0
