"""Variant queries scoped to some samples (`/individuals/{id}/g_variants`, filters) over a
catalog made by the demo's metadata writer for a synthetic cohort, plus one individual the
VCF lacks: the variants are those the scope's samples carry (bcftools truth), the record
results list the scope's cases only, and an individual without genotypes has no variants
rather than failing the query."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from node.catalog import Catalog
from node.config import DatasetSettings
from node.demo.metadata import write_bff
from node.names import Granularity, SecurityLevel
from node.store.memory import MemoryStore
from node.synth import generate_cohort
from tests.beacon.conftest import make_app
from tests.test_service_carriers import bcftools_carried

OPEN = DatasetSettings(assembly="GRCh38", security_level=SecurityLevel.PUBLIC,
                       max_granularity={SecurityLevel.PUBLIC: Granularity.RECORD})
UNSEQUENCED = "SYN_NOT_SEQUENCED"


@pytest.fixture(scope="module")
def node(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, MemoryStore, Path, tuple[str, ...]]:
    folder = tmp_path_factory.mktemp("scope")
    info = generate_cohort(folder / "c.vcf.gz", samples=8, length=20_000, seed=11)
    store = MemoryStore(assembly="GRCh38")
    store.ingest(list(info.paths))
    home = folder / "home"
    home.mkdir()
    files = write_bff(folder / "bff", dataset_id="syn", name="synthetic",
                      samples=[*info.samples, UNSEQUENCED], sequenced=info.samples[:1], seed=1)
    Catalog.open(home).load("syn", files)
    return home, store, info.paths[0], info.samples


@pytest.fixture
async def client(aiohttp_client: Any, node: tuple[Path, MemoryStore, Path, tuple[str, ...]]
                 ) -> Any:
    home, store, _, _ = node
    return await aiohttp_client(make_app(home, {"syn": store}, {"syn": OPEN}))


async def test_an_individuals_variants_show_only_its_cases(
    client: Any, node: tuple[Path, MemoryStore, Path, tuple[str, ...]]
) -> None:
    _, _, vcf, names = node
    person = names[2]
    expected = bcftools_carried(vcf, [person])
    doc = await (await client.get(f"/api/individuals/{person}/g_variants", params={
        "requestedGranularity": "record", "limit": str(len(expected) + 5)})).json()
    (rs,) = doc["response"]["resultSets"]
    assert rs["resultsCount"] == len(expected) > 0
    got = {(r["variation"]["location"]["interval"]["start"]["value"]) for r in rs["results"]}
    assert got == {start for _, start, _, _ in expected}
    cases = [c for r in rs["results"] for c in r["caseLevelData"]]
    assert len(cases) == len(expected)  # one case per variant: this person's
    assert {c["biosampleId"] for c in cases} == {person}


async def test_an_individual_without_genotypes_has_no_variants(client: Any) -> None:
    resp = await client.get(f"/api/individuals/{UNSEQUENCED}/g_variants",
                            params={"requestedGranularity": "count"})
    doc = await resp.json()
    assert resp.status == 200, doc
    summary = doc["responseSummary"]
    assert (summary["exists"], summary["numTotalResults"]) == (False, 0)
