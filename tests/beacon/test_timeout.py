"""`server.request_timeout_s` bounds a Beacon query: past it the client gets a Beacon
error with status 504 on time, the query's thread stops between store reads, nothing is
released for the unfinished dataset, and the node keeps answering."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.config import DatasetSettings, ServerSettings
from node.domain import Region, Variant
from node.names import Granularity, SecurityLevel
from node.store.memory import MemoryStore
from node.synth import generate_cohort
from tests.beacon.conftest import make_app
from tests.conftest import SHARED

OPEN = DatasetSettings(assembly="GRCh38", security_level=SecurityLevel.PUBLIC,
                       max_granularity={SecurityLevel.PUBLIC: Granularity.RECORD})
TIMEOUT_S = 0.4
SLEEP_S = 0.02  # per variant read: the whole contig takes seconds


class SlowStore(MemoryStore):
    """A store whose variant scans are slow; counts the variants read after a deadline."""

    def __init__(self) -> None:
        super().__init__(assembly="GRCh38")
        self.slow = False
        self.read = 0
        self.scanning = threading.Event()
        self.finished = threading.Event()

    def variants(self, region: Region, **kwargs: Any) -> Iterator[Variant]:
        if not self.slow:
            yield from super().variants(region, **kwargs)
            return
        self.scanning.set()
        try:
            for v in super().variants(region, **kwargs):
                time.sleep(SLEEP_S)
                self.read += 1
                yield v
        finally:
            self.finished.set()


@pytest.fixture(scope="module")
def slow_store(tmp_path_factory: pytest.TempPathFactory) -> SlowStore:
    info = generate_cohort(tmp_path_factory.mktemp("c") / "c.vcf.gz", samples=4,
                           length=200_000, seed=3)
    store = SlowStore()
    store.ingest(list(info.paths))
    return store


async def test_a_slow_query_answers_504_on_time_and_stops(
    aiohttp_client: Any, tmp_path: Path, slow_store: SlowStore
) -> None:
    total = sum(1 for _ in slow_store.variants(Region("1", 0, 300_000)))
    assert total * SLEEP_S > 4 * TIMEOUT_S  # the whole scan would take far longer
    app = make_app(tmp_path, {"synth": slow_store}, {"synth": OPEN},
                   server=ServerSettings(request_timeout_s=TIMEOUT_S))
    client = await aiohttp_client(app)
    params = {"referenceName": "1", "start": "0", "end": "300000",
              "requestedGranularity": "count"}
    slow_store.slow, slow_store.read = True, 0
    slow_store.finished.clear()
    started = time.monotonic()
    resp = await client.get("/api/g_variants", params=params)
    elapsed = time.monotonic() - started
    doc = await resp.json()
    assert resp.status == 504
    assert doc["error"]["errorCode"] == 504 and "time limit" in doc["error"]["errorMessage"]
    assert "response" not in doc and "responseSummary" not in doc
    assert TIMEOUT_S <= elapsed < TIMEOUT_S + 1.0
    # The thread stopped itself soon after the deadline, far from the end of the scan.
    assert slow_store.finished.wait(2.0)
    assert slow_store.read < total / 2
    if SHARED.is_dir():
        from tests.beacon.schemas import validate

        validate(doc, "framework/json/responses/beaconErrorResponse.json")
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert lines[-1]["query"]["outcome"] == "timed out" and lines[-1]["counts"] == {}

    slow_store.slow = False  # the node still answers the next query
    resp = await client.get("/api/g_variants", params=params)
    assert resp.status == 200
    assert (await resp.json())["responseSummary"]["numTotalResults"] == total
