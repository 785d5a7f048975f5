"""Non-variant entry types and nested routes over the CINECA metadata catalog linked to
the 1000 Genomes samples: truth from the raw BFF files and bcftools; every response and
record validated against the official schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from node.beacon.info import ENTRY_TYPES
from node.catalog import Catalog
from node.store.base import VariantStore
from tests.beacon.cases import all_cases
from tests.beacon.conftest import OPEN, make_app
from tests.beacon.schemas import validate
from tests.beacon.truth import _pipeline, carriers, indexed_copy

CINECA = "beacon-testdata/ega-beacon2-ri-tools-v2/bff/CINECA_synthetic_cohort_EUROPE_UK1"
RESP = "framework/json/responses/"
FEMALE = "NCIT:C16576"
MODEL = "models/json/beacon-v2-default-model/"
SCHEMAS = {"boolean": "beaconBooleanResponse.json", "count": "beaconCountResponse.json",
           "record": "beaconResultsetsResponse.json"}


@pytest.fixture(scope="module")
def home(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("node")
    Catalog.open(home).load("tg", [shared_dir / CINECA])
    return home


@pytest.fixture(scope="module")
def raw(shared_dir: Path) -> dict[str, list[dict[str, Any]]]:
    names = ("individuals", "biosamples", "cohorts", "datasets", "runs", "analyses")
    return {n: json.loads((shared_dir / CINECA / f"{n}.json").read_text()) for n in names}


@pytest.fixture(scope="module")
def indexed(tg_vcf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return indexed_copy(tg_vcf, tmp_path_factory.mktemp("truth") / "tg.vcf.gz")


@pytest.fixture
async def client(aiohttp_client: Any, home: Path, tg_store: VariantStore) -> Any:
    return await aiohttp_client(make_app(home, {"tg": tg_store}, {"tg": OPEN}))


def check(doc: dict[str, Any], entry_path: str) -> None:
    entry = next(e for e in ENTRY_TYPES if e.path == entry_path)
    if entry.collection and doc["meta"]["returnedGranularity"] == "record":
        validate(doc, RESP + "beaconCollectionsResponse.json")
        records = doc["response"]["collections"]
    else:
        validate(doc, RESP + SCHEMAS[doc["meta"]["returnedGranularity"]])
        records = [r for rs in doc.get("response", {}).get("resultSets", []) for r in rs["results"]]
    for record in records:
        validate(record, MODEL + entry.schema_path.split(MODEL, 1)[1])


@pytest.mark.parametrize("path", ["individuals", "biosamples", "runs", "analyses",
                                  "cohorts", "datasets"])
@pytest.mark.parametrize("granularity", ["boolean", "count", "record"])
async def test_entry_collections(client: Any, raw: dict[str, Any], path: str,
                                 granularity: str) -> None:
    resp = await client.get(f"/api/{path}", params={"requestedGranularity": granularity,
                                                    "limit": "5"})
    assert resp.status == 200
    doc = await resp.json()
    check(doc, path)
    if granularity != "boolean":
        expected = len(raw[path]) if path != "datasets" else 1
        assert doc["responseSummary"]["numTotalResults"] == expected


async def test_filtered_individuals_and_post(client: Any, raw: dict[str, Any]) -> None:
    females = [r for r in raw["individuals"] if r["sex"]["id"] == FEMALE]
    doc = await (await client.get("/api/individuals", params={
        "filters": FEMALE, "requestedGranularity": "count"})).json()
    check(doc, "individuals")
    assert doc["responseSummary"]["numTotalResults"] == len(females)
    body = {"query": {"filters": [{"id": FEMALE}], "requestedGranularity": "record",
                      "pagination": {"skip": 3, "limit": 4}}}
    page = await (await client.post("/api/individuals", json=body)).json()
    check(page, "individuals")
    ids = [r["id"] for r in page["response"]["resultSets"][0]["results"]]
    assert ids == [r["id"] for r in females[3:7]]


async def test_individual_by_id_and_its_biosamples(client: Any, raw: dict[str, Any]) -> None:
    person = raw["individuals"][5]
    doc = await (await client.get(f"/api/individuals/{person['id']}",
                                  params={"requestedGranularity": "record"})).json()
    check(doc, "individuals")
    assert [r["id"] for r in doc["response"]["resultSets"][0]["results"]] == [person["id"]]
    nested = await (await client.get(f"/api/individuals/{person['id']}/biosamples",
                                     params={"requestedGranularity": "record"})).json()
    check(nested, "biosamples")
    expected = sorted(b["id"] for b in raw["biosamples"] if b["individualId"] == person["id"])
    got = sorted(r["id"] for r in nested["response"]["resultSets"][0]["results"])
    assert got == expected and got


async def test_variants_of_one_individual_match_bcftools(
    client: Any, raw: dict[str, Any], indexed: Path
) -> None:
    person = raw["individuals"][0]["id"]
    (sample,) = [b["id"] for b in raw["biosamples"] if b["individualId"] == person]
    text = _pipeline(
        ["bcftools", "view", "-Ou", "-r", "1:10001-16000", "-s", sample, str(indexed)],
        ["bcftools", "norm", "-m-", "-Ou", "-"],
        ["bcftools", "view", "-H", "-i", 'GT="alt"', "-"],
    )
    expected = len(text.splitlines())
    doc = await (await client.get(f"/api/individuals/{person}/g_variants", params={
        "referenceName": "1", "start": "10000", "end": "16000",
        "requestedGranularity": "count"})).json()
    check(doc, "g_variants")
    assert doc["responseSummary"]["numTotalResults"] == expected > 0


async def test_biosamples_of_a_variant_are_its_carriers(client: Any, indexed: Path) -> None:
    truth = carriers(indexed, 15274, "A", "T")
    doc = await (await client.get("/api/g_variants/chr1_15274_A_T/biosamples", params={
        "requestedGranularity": "record", "limit": "100"})).json()
    check(doc, "biosamples")
    (rs,) = doc["response"]["resultSets"]
    assert rs["resultsCount"] == len(truth)
    assert {r["id"] for r in rs["results"]} <= set(truth)


async def test_filtering_terms_and_dataset_scope(client: Any) -> None:
    doc = await (await client.get("/api/filtering_terms")).json()
    validate(doc, RESP + "beaconFilteringTermsResponse.json")
    assert any(t["id"] == FEMALE for t in doc["response"]["filteringTerms"])
    scoped = await (await client.get("/api/datasets/tg/filtering_terms")).json()
    validate(scoped, RESP + "beaconFilteringTermsResponse.json")
    assert scoped["response"]["filteringTerms"] == doc["response"]["filteringTerms"]


async def test_filtered_variants_match_bcftools(
    client: Any, raw: dict[str, Any], indexed: Path, tmp_path: Path
) -> None:
    female = {r["id"] for r in raw["individuals"] if r["sex"]["id"] == FEMALE}
    samples = sorted(b["id"] for b in raw["biosamples"] if b["individualId"] in female)
    listed = tmp_path / "samples.txt"
    listed.write_text("\n".join(samples) + "\n")
    text = _pipeline(
        ["bcftools", "view", "-Ou", "-r", "1:10001-10600", "-S", str(listed),
         "--force-samples", str(indexed)],
        ["bcftools", "norm", "-m-", "-Ou", "-"],
        ["bcftools", "view", "-H", "-i", 'GT="alt"', "-"],
    )
    everyone = await (await client.get("/api/g_variants", params={
        "referenceName": "1", "start": "10000", "end": "10600",
        "requestedGranularity": "count"})).json()
    doc = await (await client.get("/api/g_variants", params={
        "referenceName": "1", "start": "10000", "end": "10600", "filters": FEMALE,
        "requestedGranularity": "count"})).json()
    check(doc, "g_variants")
    expected = len(text.splitlines())
    assert doc["responseSummary"]["numTotalResults"] == expected > 0
    assert expected < everyone["responseSummary"]["numTotalResults"]


async def test_case_level_data_links_biosamples_to_individuals(
    client: Any, raw: dict[str, Any], indexed: Path
) -> None:
    owner = {b["id"]: b["individualId"] for b in raw["biosamples"]}
    doc = await (await client.get("/api/g_variants", params={
        "referenceName": "1", "start": "15273", "referenceBases": "A", "alternateBases": "T",
        "requestedGranularity": "record"})).json()
    check(doc, "g_variants")
    (record,) = doc["response"]["resultSets"][0]["results"]
    cases = await all_cases(client, doc["response"]["resultSets"][0], record)
    assert {c["biosampleId"] for c in cases} == set(carriers(indexed, 15274, "A", "T"))
    for case in cases:
        assert case["individualId"] == owner[case["biosampleId"]]


def _taller_than(raw: dict[str, Any], cm: float, *, sex: str | None = None) -> set[str]:
    """Individuals with a standing height (LOINC:8308-9) above `cm`, from the BFF itself."""
    return {r["id"] for r in raw["individuals"]
            if (sex is None or r["sex"]["id"] == sex)
            and any(m["assayCode"]["id"] == "LOINC:8308-9"
                    and m["measurementValue"]["value"] > cm for m in r.get("measures", []))}


@pytest.mark.parametrize("written", ["LOINC:8308-9:>180", "LOINC:8308-9>180"])
async def test_get_alphanumeric_filters_match_post_and_the_records(
    client: Any, raw: dict[str, Any], written: str
) -> None:
    expected = _taller_than(raw, 180, sex=FEMALE)
    assert 0 < len(expected) < len(raw["individuals"])
    params = {"filters": f"{FEMALE},{written}", "requestedGranularity": "record",
              "limit": "0"}
    got = await (await client.get("/api/individuals", params=params)).json()
    check(got, "individuals")
    assert got["meta"]["receivedRequestSummary"]["filters"] == [FEMALE, "LOINC:8308-9:>180"]
    body = {"query": {"requestedGranularity": "count", "filters": [
        {"id": FEMALE}, {"id": "LOINC:8308-9", "operator": ">", "value": "180"}]}}
    posted = await (await client.post("/api/individuals", json=body)).json()
    assert got["responseSummary"]["numTotalResults"] == len(expected)
    assert posted["responseSummary"]["numTotalResults"] == len(expected)
    if len(expected) <= 100:
        (rs,) = got["response"]["resultSets"]
        assert {r["id"] for r in rs["results"]} == expected


@pytest.mark.parametrize("bad", ["LOINC:8308-9>", ">180", "age:>"])
async def test_malformed_get_alphanumeric_filter_is_a_400(client: Any, bad: str) -> None:
    resp = await client.get("/api/individuals", params={"filters": bad})
    assert resp.status == 400
    doc = await resp.json()
    validate(doc, RESP + "beaconErrorResponse.json")
    assert "id:OPvalue" in doc["error"]["errorMessage"]
