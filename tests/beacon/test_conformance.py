"""The conformance runner against a live node started here (and against a broken one,
which it must fail)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from conformance import run
from node.catalog import Catalog
from node.config import DatasetSettings
from node.names import Granularity, SecurityLevel
from node.store.base import VariantStore
from tests.beacon.conftest import make_app
from tests.conftest import REPO

CINECA = "beacon-testdata/ega-beacon2-ri-tools-v2/bff/CINECA_synthetic_cohort_EUROPE_UK1"
OPEN38 = DatasetSettings(assembly="GRCh38", security_level=SecurityLevel.PUBLIC,
                         max_granularity={SecurityLevel.PUBLIC: Granularity.RECORD})


async def test_live_node_passes(aiohttp_server: Any, tmp_path: Path, shared_dir: Path,
                                synth_store: VariantStore) -> None:
    Catalog.open(tmp_path).load("cineca", [shared_dir / CINECA])
    # Open datasets: the suite asks ~50 people counts as one anonymous client, beyond
    # what a CONTROLLED dataset's anonymous budget allows (tests/privacy/test_attacks.py).
    app = make_app(tmp_path, {"synth": synth_store}, {"synth": OPEN38, "cineca": OPEN38})
    server = await aiohttp_server(app)
    report = await run(str(server.make_url("")), suites=["beacon"], schemas=shared_dir)
    assert report.ok, report.render()
    names = {r.name for r in report.results}
    assert len(report.results) > 100
    assert any("POST" in n for n in names) and any("-> 404" in n for n in names)
    # The command line prints the same report and exits 0.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "conformance", str(server.make_url("")),
        "--suite", "beacon", "--schemas", str(shared_dir), cwd=REPO, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()[-2000:]
    assert "checks passed" in out.decode()


async def test_broken_node_fails(aiohttp_server: Any, shared_dir: Path) -> None:
    async def bad_info(request: web.Request) -> web.Response:
        return web.json_response({"meta": {}, "response": {"id": 1}})

    app = web.Application()
    app.router.add_get("/api/info", bad_info)
    server = await aiohttp_server(app)
    report = await run(str(server.make_url("")), suites=["beacon"], schemas=shared_dir)
    assert not report.ok
    failed = {r.name for r in report.failures()}
    assert "GET /info: beaconInfoResponse.json" in failed
    assert "GET /map usable" in failed
