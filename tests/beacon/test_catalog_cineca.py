"""The catalog on real BFF data: the CINECA synthetic cohort EUROPE UK1 (EGA beacon2 tools),
checked against plain-Python evaluation of the raw files and the official schemas."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.catalog import ENTRY_TYPES, Catalog
from node.domain import Filter
from tests.beacon.schemas import validate

CINECA = "beacon-testdata/ega-beacon2-ri-tools-v2/bff/CINECA_synthetic_cohort_EUROPE_UK1"
VCF_1000G = "beacon-testdata/cnag-beacon2-cbi-tools/integration_assets/test_1000G.vcf.gz"
ONTOLOGY = Path(__file__).resolve().parents[2] / "node" / "catalog" / "data" / "ontology.json"
FEMALE = "NCIT:C16576"
DS = "cineca"


@pytest.fixture(scope="module")
def bff(shared_dir: Path) -> Path:
    return shared_dir / CINECA


@pytest.fixture(scope="module")
def raw(bff: Path) -> dict[str, list[dict[str, Any]]]:
    return {t: json.loads((bff / f"{t}.json").read_text()) for t in (*ENTRY_TYPES, "targets")}


@pytest.fixture(scope="module")
def catalog(bff: Path, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    home = tmp_path_factory.mktemp("node")
    Catalog.open(home).load(DS, [bff])
    return Catalog.open(home)  # a fresh handle reads what the load persisted


def _schema(entry_type: str) -> str:
    return f"models/json/beacon-v2-default-model/{entry_type}/defaultSchema.json"


def _shape(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _shape(inner, f"{path}.{key}")
    elif isinstance(value, list):
        for inner in value:
            yield from _shape(inner, path + "[]")
    else:
        yield path, type(value).__name__


def _records(catalog: Catalog, entry_type: str) -> list[dict[str, Any]]:
    return catalog.search(entry_type, dataset_ids=None, filters=[])


def test_load_counts_match_files(catalog: Catalog, raw: dict[str, list[dict[str, Any]]]) -> None:
    for entry_type in ("individuals", "biosamples", "cohorts", "runs", "analyses"):
        ids = [r["id"] for r in _records(catalog, entry_type)]
        assert ids == [r["id"] for r in raw[entry_type]]
    assert catalog.dataset_ids() == (DS,)


def test_records_validate_one_per_shape(catalog: Catalog) -> None:
    """Every distinct structure (paths and value types) of loaded record validates."""
    for entry_type in ENTRY_TYPES:
        seen: set[frozenset[tuple[str, str]]] = set()
        for record in _records(catalog, entry_type):
            shape = frozenset(_shape(record))
            if shape not in seen:
                seen.add(shape)
                validate(record, _schema(entry_type))
        assert seen, entry_type


@pytest.mark.slow
def test_every_record_validates(catalog: Catalog) -> None:
    for entry_type in ENTRY_TYPES:
        for record in _records(catalog, entry_type):
            validate(record, _schema(entry_type))


def test_dataset_record_takes_node_dataset_id(catalog: Catalog, raw: dict[str, Any]) -> None:
    record = catalog.get("datasets", DS)
    assert record is not None
    assert record["name"] == raw["datasets"][0]["name"]
    assert record["id"] == DS
    assert "_id" not in record


def test_sex_filter_matches_plain_count(catalog: Catalog, raw: dict[str, Any]) -> None:
    expected = [r["id"] for r in raw["individuals"] if r["sex"]["id"] == FEMALE]
    got = catalog.search("individuals", dataset_ids=[DS], filters=[Filter(FEMALE)])
    assert [r["id"] for r in got] == expected
    assert 0 < len(expected) < len(raw["individuals"])


def _closure(term: str) -> set[str]:
    """Descendants computed straight from the shipped hierarchy file."""
    terms = json.loads(ONTOLOGY.read_text())["terms"]
    found = {term}
    changed = True
    while changed:
        new = {t["id"] for t in terms if set(t["is_a"]) & found} - found
        changed = bool(new)
        found |= new
    return found


def _disease_ids(individual: dict[str, Any]) -> set[str]:
    return {d["diseaseCode"]["id"] for d in individual.get("diseases", [])}


@pytest.mark.parametrize("chapter", ["ICD10:J00-J99", "ICD10:K00-K93", "ICD10:E00-E90"])
def test_ontology_descendants_match_hierarchy(
    catalog: Catalog, raw: dict[str, Any], chapter: str
) -> None:
    below = _closure(chapter)
    assert len(below) > 2
    expected = [r["id"] for r in raw["individuals"] if _disease_ids(r) & below]
    got = catalog.search("individuals", dataset_ids=None, filters=[Filter(chapter)])
    assert [r["id"] for r in got] == expected and expected
    exact = catalog.search(
        "individuals", dataset_ids=None, filters=[Filter(chapter, include_descendants=False)]
    )
    assert exact == []  # no record carries the chapter itself


def test_filters_are_anded(catalog: Catalog, raw: dict[str, Any]) -> None:
    below = _closure("ICD10:J00-J99")
    expected = [
        r["id"] for r in raw["individuals"] if r["sex"]["id"] == FEMALE and _disease_ids(r) & below
    ]
    got = catalog.search(
        "individuals", dataset_ids=None, filters=[Filter(FEMALE), Filter("ICD10:J00-J99")]
    )
    assert [r["id"] for r in got] == expected and expected


def test_individual_filter_selects_biosamples_and_samples(
    catalog: Catalog, raw: dict[str, Any]
) -> None:
    females = {r["id"] for r in raw["individuals"] if r["sex"]["id"] == FEMALE}
    expected = [b["id"] for b in raw["biosamples"] if b["individualId"] in females]
    got = catalog.search("biosamples", dataset_ids=None, filters=[Filter(FEMALE)])
    assert [b["id"] for b in got] == expected
    targets = raw["targets"][0]["biosampleIds"]
    assert catalog.samples(DS, filters=[Filter(FEMALE)]) == frozenset(
        s for s in targets if s in set(expected)
    )


def test_measurement_filter(catalog: Catalog, raw: dict[str, Any]) -> None:
    def height(r: dict[str, Any]) -> list[float]:
        return [
            m["measurementValue"]["value"]
            for m in r["measures"] if m["assayCode"]["id"] == "LOINC:8308-9"
        ]

    expected = [r["id"] for r in raw["individuals"] if any(h > 180 for h in height(r))]
    got = catalog.search(
        "individuals", dataset_ids=None, filters=[Filter("LOINC:8308-9", ">", "180")]
    )
    assert [r["id"] for r in got] == expected and expected
    by_path = catalog.search(
        "individuals", dataset_ids=None,
        filters=[Filter("measures.measurementValue.value", "<=", "180")],
    )
    assert {r["id"] for r in by_path} == {
        r["id"] for r in raw["individuals"] if any(h <= 180 for h in height(r))
    }


def test_custom_and_wildcard_filters(catalog: Catalog, raw: dict[str, Any]) -> None:
    strategy = raw["runs"][0]["libraryStrategy"]
    got = catalog.search("runs", dataset_ids=None, filters=[Filter(f"libraryStrategy:{strategy}")])
    assert len(got) == sum(r["libraryStrategy"] == strategy for r in raw["runs"])
    wild = catalog.search(
        "runs", dataset_ids=None, filters=[Filter("libraryStrategy", "=", "%wgs%")]
    )
    assert len(wild) == sum("wgs" in r["libraryStrategy"].lower() for r in raw["runs"])
    none = catalog.search(
        "runs", dataset_ids=None, filters=[Filter("libraryStrategy", "!", "%wgs%")]
    )
    assert len(none) == len(raw["runs"]) - len(wild)


def test_related(catalog: Catalog, raw: dict[str, Any]) -> None:
    run = raw["runs"][7]
    runs = catalog.related("individuals", run["individualId"], "runs")
    assert [r["id"] for r in runs] == [
        r["id"] for r in raw["runs"] if r["individualId"] == run["individualId"]
    ]
    analyses = catalog.related("runs", run["id"], "analyses")
    expected = [a["id"] for a in raw["analyses"] if a["runId"] == run["id"]]
    assert [a["id"] for a in analyses] == expected
    cohort = raw["cohorts"][0]["id"]
    assert len(catalog.related("cohorts", cohort, "individuals")) == len(raw["individuals"])


def test_vcf_samples_link_to_biosamples(catalog: Catalog, shared_dir: Path) -> None:
    vcf = shared_dir / VCF_1000G
    names = subprocess.run(
        ["bcftools", "query", "-l", str(vcf)], check=True, capture_output=True, text=True
    ).stdout.split()
    assert len(names) == 2504
    for name in names[:50] + names[-50:]:
        biosample = catalog.get("biosamples", name)
        assert biosample is not None
        assert catalog.sample_to_biosample(DS, name) == (name, biosample["individualId"])
    assert catalog.samples(DS) == frozenset(names)
    assert catalog.sample_to_biosample(DS, "NOT_A_SAMPLE") == (None, None)
    one = catalog.samples(DS, entry_ids={"individuals": [names[3]]})
    assert one == {names[3]}


def test_unknown_filters_reported(catalog: Catalog) -> None:
    filters = [Filter(FEMALE), Filter("NCIT:C9999999"), Filter("noSuchField", ">", "3")]
    assert catalog.unknown_filters(filters) == ["NCIT:C9999999", "noSuchField"]
    assert catalog.search("individuals", dataset_ids=None, filters=filters) == []


def test_filtering_terms(catalog: Catalog, raw: dict[str, Any]) -> None:
    terms = catalog.filtering_terms()
    validate(
        {"filteringTerms": terms},
        "framework/json/responses/sections/beaconFilteringTermsResults.json",
    )
    ontology = {t["id"]: t for t in terms if t["type"] == "ontologyTerm"}
    for individual in raw["individuals"][:200]:
        assert individual["sex"]["id"] in ontology
        for disease in _disease_ids(individual):
            assert "individual" in ontology[disease]["scopes"]
    assert ontology["ICD10:J00-J99"]["scopes"] == ["individual"]  # an ancestor, from the subset
    alnum = {t["id"] for t in terms if t["type"] == "alphanumeric"}
    assert {"libraryStrategy", "collectionMoment", "LOINC:8308-9"} <= alnum
    assert catalog.filtering_terms(["other"]) == []
