"""/datasets/{id}/filtering_terms and /cohorts/{id}/filtering_terms (beacon-v2 models'
datasets and cohorts endpoints, GET and POST) hold the terms of that dataset, or of the
dataset holding the cohort (BFF cohorts carry no member list), checked against the terms
the BFF records themselves carry; `skip`/`limit` page them; unknown ids are 404s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from node.catalog import Catalog
from node.catalog.filters import ontology_terms
from node.store.base import VariantStore
from tests.beacon.conftest import OPEN, make_app
from tests.beacon.schemas import validate

CINECA = "beacon-testdata/ega-beacon2-ri-tools-v2/bff/CINECA_synthetic_cohort_EUROPE_UK1"
RESP = "framework/json/responses/"
TERMS = RESP + "beaconFilteringTermsResponse.json"
# Terms only the small second dataset carries.
OTHER_ONLY = {"NCIT:C28421", "EFO:0030035"}
OTHER = {
    "individuals": [{"id": "P1", "sex": {"id": "NCIT:C28421", "label": "sex"}}],
    "biosamples": [{"id": "B1", "individualId": "P1", "biosampleStatus": {"id": "EFO:0030035"},
                    "sampleOriginType": {"id": "UBERON:0000178"}}],
    "cohorts": [{"id": "small-cohort", "name": "small", "cohortType": "study-defined"}],
}


def _bff_terms(folder: Path, names: tuple[str, ...]) -> set[str]:
    found: set[str] = set()
    for name in names:
        path = folder / f"{name}.json"
        if path.is_file():
            for record in json.loads(path.read_text()):
                found |= set(ontology_terms(record))
    return found


@pytest.fixture(scope="module")
def folders(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    other = tmp_path_factory.mktemp("other-bff")
    for name, records in OTHER.items():
        (other / f"{name}.json").write_text(json.dumps(records))
    return {"tg": shared_dir / CINECA, "other": other}


@pytest.fixture(scope="module")
def home(folders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("node")
    catalog = Catalog.open(home)
    for dataset_id, folder in folders.items():
        catalog.load(dataset_id, [folder])
    return home


@pytest.fixture
async def client(aiohttp_client: Any, home: Path, tg_store: VariantStore) -> Any:
    return await aiohttp_client(make_app(home, {"tg": tg_store}, {"tg": OPEN}))


async def _terms(client: Any, path: str, **params: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/{path}", params=params)
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    validate(doc, TERMS)
    terms: list[dict[str, Any]] = doc["response"]["filteringTerms"]
    return terms


async def test_dataset_terms_are_that_datasets(client: Any, folders: dict[str, Path]) -> None:
    names = ("individuals", "biosamples", "cohorts", "runs", "analyses")
    everything = {t["id"] for t in await _terms(client, "filtering_terms")}
    for dataset_id, folder in folders.items():
        own = {t["id"] for t in await _terms(client, f"datasets/{dataset_id}/filtering_terms")}
        assert _bff_terms(folder, names) <= own <= everything
        if dataset_id == "tg":
            assert not own & OTHER_ONLY
        else:
            assert own >= OTHER_ONLY and "NCIT:C16576" not in own  # CINECA's "female"


async def test_cohort_terms_are_its_datasets(client: Any, folders: dict[str, Path]) -> None:
    cohort = json.loads((folders["tg"] / "cohorts.json").read_text())[0]["id"]
    for cohort_id, dataset_id in ((cohort, "tg"), ("small-cohort", "other")):
        got = await _terms(client, f"cohorts/{cohort_id}/filtering_terms")
        assert got == await _terms(client, f"datasets/{dataset_id}/filtering_terms")
        resp = await client.post(f"/api/cohorts/{cohort_id}/filtering_terms", json={})
        assert resp.status == 200 and (await resp.json())["response"]["filteringTerms"] == got


async def test_terms_are_paged_when_asked(client: Any) -> None:
    every = await _terms(client, "datasets/tg/filtering_terms")
    assert len(every) > 15
    assert await _terms(client, "datasets/tg/filtering_terms", skip="5", limit="7") == every[5:12]
    body = {"query": {"pagination": {"skip": 3, "limit": 4}}}
    resp = await client.post("/api/datasets/tg/filtering_terms", json=body)
    assert (await resp.json())["response"]["filteringTerms"] == every[3:7]


@pytest.mark.parametrize("path", ["datasets/nope/filtering_terms",
                                  "cohorts/nope/filtering_terms"])
async def test_unknown_scope_is_a_404(client: Any, path: str) -> None:
    resp = await client.get(f"/api/{path}")
    assert resp.status == 404
    validate(await resp.json(), RESP + "beaconErrorResponse.json")
