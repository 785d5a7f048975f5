"""The catalog on small synthetic BFF files written by the tests (no ../shared needed):
ontology files, filter operators, malformed input, atomic loads and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import node.catalog.store as store_module
from node.catalog import Catalog
from node.catalog.filters import duration_days
from node.catalog.ontology import Ontology, load_ontology_file
from node.cli import main
from node.domain import Filter
from node.errors import IngestError, InvalidInput

OBO = """\
format-version: 1.2

[Term]
id: TST:0000001
name: root ! a comment-looking name part
[Term]
id: TST:0000002
name: child
is_a: TST:0000001 ! root
[Term]
id: TST:0000003
name: grandchild
is_a: TST:0000002 ! child
[Term]
id: TST:0000004
name: obsolete one
is_a: TST:0000001
is_obsolete: true
[Typedef]
id: part_of
"""


def _individual(rid: str, sex: str, *, disease: str | None = None, age: str | None = None,
                height: float | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"id": rid, "sex": {"id": sex, "label": sex}, "_id": "mongo"}
    if disease:
        onset = {"ageOfOnset": {"iso8601duration": age}} if age else {}
        record["diseases"] = [{"diseaseCode": {"id": disease, "label": disease}, **onset}]
    if height is not None:
        record["measures"] = [{
            "assayCode": {"id": "LOINC:8308-9", "label": "Height-standing"},
            "measurementValue": {"value": height, "unit": {"id": "NCIT:C49668"}},
        }]
    return record


INDIVIDUALS = [
    _individual("I1", "NCIT:C16576", disease="TST:0000003", age="P45Y", height=170.0),
    _individual("I2", "NCIT:C20197", disease="TST:0000002", age="P30Y6M", height=181.5),
    _individual("I3", "NCIT:C16576", disease="TST:0000001", age="P540M"),
    _individual("I4", "NCIT:C20197"),
]
BIOSAMPLES = [
    {"id": f"S{i}", "individualId": f"I{i}", "biosampleStatus": {"id": "EFO:0009654"},
     "sampleOriginType": {"id": "UBERON:0000178"}, "collectionMoment": f"P{40 + i}Y"}
    for i in range(1, 5)
]
RUNS = [{"id": "R1", "biosampleId": "S1|S2", "individualId": "I1|I2", "runDate": "2020-01-01",
         "libraryStrategy": "WGS"},
        {"id": "R2", "biosampleId": "S3", "individualId": "I3", "runDate": "2021-01-01",
         "libraryStrategy": "WES"}]


def _write(folder: Path, name: str, doc: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


@pytest.fixture
def bff(tmp_path: Path) -> Path:
    folder = tmp_path / "bff"
    _write(folder, "individuals.json", INDIVIDUALS)
    _write(folder, "biosamples.json", BIOSAMPLES)
    _write(folder, "runs.json", RUNS)
    _write(folder, "targets.json", [{"biosampleIds": ["S4", "S2", "S1", "S3", "SX"]}])
    return folder


@pytest.fixture
def obo(tmp_path: Path) -> Path:
    return _write(tmp_path, "tst.obo", OBO)


@pytest.fixture
def catalog(tmp_path: Path, bff: Path, obo: Path) -> Catalog:
    cat = Catalog.open(tmp_path / "home")
    cat.load("ds1", [bff], ontology=obo)
    return cat


def _ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in records]


def _search(catalog: Catalog, *filters: Filter, entry: str = "individuals") -> list[str]:
    return _ids(catalog.search(entry, dataset_ids=None, filters=list(filters)))


def test_obo_parsing_and_descendants(obo: Path) -> None:
    onto = load_ontology_file(obo)
    assert "TST:0000004" not in onto  # obsolete terms are dropped
    assert onto.label("TST:0000001") == "root"  # " ! ..." is an OBO comment
    assert onto.descendants("TST:0000001") == {"TST:0000001", "TST:0000002", "TST:0000003"}
    assert onto.descendants("TST:0000003") == {"TST:0000003"}
    assert onto.ancestors("TST:0000003") == {"TST:0000001", "TST:0000002", "TST:0000003"}


def test_shipped_subset_is_consistent() -> None:
    onto = Ontology.shipped()
    doc = json.loads(
        (Path(__file__).resolve().parents[2] / "node/catalog/data/ontology.json").read_text()
    )
    ids = {t["id"] for t in doc["terms"]}
    for term in doc["terms"]:
        assert set(term["is_a"]) <= ids, term["id"]  # no dangling parents
        for parent in term["is_a"]:
            assert term["id"] in onto.descendants(parent)


def test_bad_obo_names_file_and_line(tmp_path: Path) -> None:
    bad = _write(tmp_path, "bad.obo", "[Term]\nid: TST:1\nis_a: not a curie\n")
    with pytest.raises(IngestError, match=r"bad\.obo:3: is_a is not a CURIE"):
        load_ontology_file(bad)


def test_ontology_filter_uses_loaded_hierarchy(catalog: Catalog) -> None:
    assert _search(catalog, Filter("TST:0000001")) == ["I1", "I2", "I3"]
    assert _search(catalog, Filter("TST:0000002")) == ["I1", "I2"]
    assert _search(catalog, Filter("TST:0000002", include_descendants=False)) == ["I2"]
    assert _search(catalog, Filter("TST:0000001"), Filter("NCIT:C16576")) == ["I1", "I3"]


def test_without_ontology_no_descendants(tmp_path: Path, bff: Path) -> None:
    cat = Catalog.open(tmp_path / "other")
    cat.load("ds1", [bff])
    assert _search(cat, Filter("TST:0000001")) == ["I3"]


def test_durations() -> None:
    assert duration_days("P1Y") == duration_days("P12M")
    assert duration_days("P45Y") == duration_days("P540M")
    assert duration_days("P2W") == 14
    assert duration_days("PT36H") == 1.5
    for bad in ("P", "45", "PT", "P1Y1", "Y1P"):
        assert duration_days(bad) is None


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("=", "P45Y", ["I1", "I3"]),  # P540M is 45 years
        (">", "P40Y", ["I1", "I3"]),
        ("<", "P40Y", ["I2"]),
        (">=", "P30Y6M", ["I1", "I2", "I3"]),
        ("<=", "P30Y5M", []),
        ("!", "P45Y", ["I2", "I4"]),
    ],
)
def test_age_filters(catalog: Catalog, op: str, value: str, expected: list[str]) -> None:
    flt = Filter("diseases.ageOfOnset.iso8601duration", op, value)
    assert _search(catalog, flt) == expected


def test_numeric_and_text_filters(catalog: Catalog) -> None:
    assert _search(catalog, Filter("LOINC:8308-9", ">", "175")) == ["I2"]
    assert _search(catalog, Filter("measures.measurementValue.value", "<", "175")) == ["I1"]
    assert _search(catalog, Filter("libraryStrategy", "=", "w%s"), entry="runs") == ["R1", "R2"]
    assert _search(catalog, Filter("libraryStrategy", "=", "WG%"), entry="runs") == ["R1"]
    assert _search(catalog, Filter("libraryStrategy:WES"), entry="runs") == ["R2"]
    assert _search(catalog, Filter("collectionMoment", ">=", "P43Y"), entry="biosamples") == [
        "S3", "S4"
    ]


def test_bad_operator_is_invalid_input(catalog: Catalog) -> None:
    with pytest.raises(InvalidInput, match="unsupported operator"):
        catalog.search("individuals", dataset_ids=None, filters=[Filter("x", "~", "1")])


def test_scopes_and_links(catalog: Catalog) -> None:
    # an individual-level term selects biosamples and runs through the links
    assert _search(catalog, Filter("NCIT:C20197"), entry="biosamples") == ["S2", "S4"]
    assert _search(catalog, Filter("NCIT:C20197"), entry="runs") == ["R1"]
    # a run-level field selects individuals, including both of a multi-sample run
    assert _search(catalog, Filter("libraryStrategy:WGS")) == ["I1", "I2"]
    scoped = Filter("NCIT:C16576", scope="individual")
    assert _search(catalog, scoped, entry="biosamples") == ["S1", "S3"]
    with pytest.raises(InvalidInput, match="unknown filter scope"):
        _search(catalog, Filter("NCIT:C16576", scope="planet"))
    assert _ids(catalog.related("runs", "R1", "individuals")) == ["I1", "I2"]
    assert _ids(catalog.related("individuals", "I3", "runs")) == ["R2"]


def test_samples(catalog: Catalog) -> None:
    # all VCF columns without constraints; SX (no metadata) can match no filter
    assert catalog.samples("ds1") == {"S1", "S2", "S3", "S4", "SX"}
    assert catalog.samples("ds1", filters=[Filter("NCIT:C16576")]) == {"S1", "S3"}
    # a run-level field reaches samples through the runs (S4 has none)
    assert catalog.samples("ds1", filters=[Filter("libraryStrategy", "!", "WES")]) == {"S1", "S2"}
    assert catalog.samples("ds1", entry_ids={"runs": ["R1"]}) == {"S1", "S2"}
    assert catalog.samples("nope") == frozenset()
    assert catalog.sample_to_biosample("ds1", "S2") == ("S2", "I2")


def test_unknown_and_terms(catalog: Catalog) -> None:
    unknown = [Filter("TST:0000009"), Filter("NCIT:C16576"), Filter("nope", "=", "1")]
    assert catalog.unknown_filters(unknown) == ["TST:0000009", "nope"]
    terms = {(t["type"], t["id"]): t for t in catalog.filtering_terms()}
    assert terms[("ontologyTerm", "TST:0000001")]["scopes"] == ["individual"]
    assert terms[("ontologyTerm", "TST:0000001")]["label"] == "TST:0000001"  # record's label
    assert ("alphanumeric", "diseases.ageOfOnset.iso8601duration") in terms
    assert ("custom", "libraryStrategy:WES") in terms


def test_records_are_cleaned_and_copied(catalog: Catalog) -> None:
    record = catalog.get("individuals", "I1")
    assert record is not None and "_id" not in record and record["datasetId"] == "ds1"
    record["sex"] = "mutated"
    assert catalog.get("individuals", "I1") == {**record, "sex": INDIVIDUALS[0]["sex"]}
    assert catalog.get("datasets", "ds1") == {"id": "ds1", "name": "ds1"}
    assert catalog.get("individuals", "nope") is None
    with pytest.raises(InvalidInput, match="unknown entry type"):
        catalog.get("planets", "x")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("individuals.json", "[{", r"individuals\.json:1: not valid JSON"),
        ("individuals.json", '{"id": "x"}', r"individuals\.json: expected a JSON array"),
        ("individuals.json", '[{"id": "I9"}]',
         r"individuals\.json: record #0 \(id 'I9'\): missing required sex"),
        ("individuals.json", '[{"id": "I9", "sex": "female"}]',
         r"record #0 \(id 'I9'\): `sex` must be an ontology term"),
        ("biosamples.json", '[{"id": 5, "biosampleStatus": {}, "sampleOriginType": {}}]',
         r"biosamples\.json: record #0: `id` must be a non-empty string"),
        ("patients.json", "[]", r"patients\.json: unrecognised BFF file name"),
        ("runs.json", json.dumps(RUNS + RUNS[:1]), r"runs\.json: duplicate id 'R1'"),
    ],
)
def test_malformed_bff_names_file_and_record(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = _write(tmp_path / "bad", name, content)
    with pytest.raises(IngestError, match=message):
        Catalog.open(tmp_path).load("ds1", [path])


def test_failed_load_leaves_catalog_unchanged(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = catalog.search("individuals", dataset_ids=None, filters=[])
    bad = _write(tmp_path / "bad", "individuals.json", '[{"id": "Z"}]')
    with pytest.raises(IngestError):
        catalog.load("ds1", [bad])
    # A failure in the middle of the write itself rolls back too.
    real_dumps = json.dumps
    calls = {"n": 0}

    def failing_dumps(obj: Any, **kw: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk on fire")
        return real_dumps(obj, **kw)

    good = _write(tmp_path / "good", "individuals.json", INDIVIDUALS[:1])
    monkeypatch.setattr(store_module.json, "dumps", failing_dumps)
    with pytest.raises(RuntimeError):
        catalog.load("ds1", [good])
    monkeypatch.undo()
    assert calls["n"] == 2
    fresh = Catalog(catalog._file.root)
    assert fresh.search("individuals", dataset_ids=None, filters=[]) == before
    assert fresh.ontology.descendants("TST:0000001") >= {"TST:0000003"}


def test_reload_replaces_dataset(catalog: Catalog, tmp_path: Path) -> None:
    only = _write(tmp_path / "v2", "individuals.json", INDIVIDUALS[3:])
    catalog.load("ds1", [only])
    assert _search(catalog) == ["I4"]
    assert catalog.search("runs", dataset_ids=None, filters=[]) == []
    catalog.load("ds2", [only])
    assert catalog.dataset_ids() == ("ds1", "ds2")
    assert _ids(catalog.search("individuals", dataset_ids=["ds2"], filters=[])) == ["I4"]


def test_dataset_record_from_datasets_json(tmp_path: Path, bff: Path) -> None:
    _write(bff, "datasets.json", [{"id": "orig", "name": "Original", "_id": "m"}])
    cat = Catalog.open(tmp_path / "h")
    cat.load("ds1", [bff])
    assert cat.get("datasets", "ds1") == {"id": "ds1", "name": "Original"}
    _write(bff, "datasets.json", [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}])
    with pytest.raises(InvalidInput, match="none is 'ds1'"):
        cat.load("ds1", [bff])


def test_cli_metadata_load(
    tmp_path: Path, bff: Path, obo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "node"
    assert main(["init", str(home)]) == 0
    files = [str(bff / "individuals.json"), str(bff / "biosamples.json")]
    code = main(["metadata", "load", str(home), "--dataset", "ds1", "--ontology", str(obo),
                 *files])
    out = capsys.readouterr().out
    assert code == 0
    assert "4 individuals" in out and "3 ontology term(s) added" in out
    assert _search(Catalog.open(home), Filter("TST:0000002")) == ["I1", "I2"]


def test_cli_bad_file_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "node"
    assert main(["init", str(home)]) == 0
    bad = _write(tmp_path, "individuals.json", '[{"id": "I9"}]')
    assert main(["metadata", "load", str(home), "--dataset", "ds1", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fednode: error: ")
    assert "individuals.json: record #0 (id 'I9'): missing required sex" in err
    assert "Traceback" not in err
    not_home = tmp_path / "nothing"
    assert main(["metadata", "load", str(not_home), "--dataset", "d", str(bad)]) == 2
    assert "is not a node home" in capsys.readouterr().err


def test_parsed_copy_is_rechecked_within_a_second(
    tmp_path: Path, bff: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = Catalog.open(tmp_path / "home")
    assert reader.dataset_ids() == () and reader.resident()
    writer = Catalog.open(tmp_path / "home")
    writer.load("ds1", [bff])
    assert writer.dataset_ids() == ("ds1",)  # its own load: at once
    monkeypatch.setattr("node.catalog.RECHECK_S", 0.0)
    assert not reader.resident()  # must read the file's generation again: I/O
    assert reader.dataset_ids() == ("ds1",)  # another process's load: after RECHECK_S
