"""The offline schema validator itself: it accepts what the spec accepts and rejects what
it rejects, with refs across files (framework → model, model → VRS) resolved offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.beacon.schemas import validate

INDIVIDUALS = "models/json/beacon-v2-default-model/individuals/defaultSchema.json"
VARIANTS = "models/json/beacon-v2-default-model/genomicVariations/defaultSchema.json"
ERROR = "framework/json/responses/beaconErrorResponse.json"


@pytest.fixture(autouse=True)
def _needs_shared(shared_dir: Path) -> None:
    """Every test here reads the schemas from ../shared."""


def test_valid_individual_passes() -> None:
    validate({"id": "i1", "sex": {"id": "NCIT:C16576", "label": "female"}}, INDIVIDUALS)


def test_invalid_individual_lists_every_error() -> None:
    with pytest.raises(AssertionError) as info:
        validate({"id": 3, "sex": "female"}, INDIVIDUALS)
    message = str(info.value)
    assert "2 schema error(s)" in message
    assert "at id:" in message and "at sex:" in message


def test_missing_required_property_fails() -> None:
    with pytest.raises(AssertionError, match="'sex' is a required property"):
        validate({"id": "i1"}, INDIVIDUALS)


def test_variant_refs_into_vrs_resolve() -> None:
    location = {
        "type": "SequenceLocation",
        "sequence_id": "refseq:NC_000022.11",
        "interval": {
            "type": "SequenceInterval",
            "start": {"type": "Number", "value": 16050073},
            "end": {"type": "Number", "value": 16050074},
        },
    }
    good = {
        "variantInternalId": "v1",
        "variation": {
            "variantType": "SNP",
            "referenceBases": "A",
            "alternateBases": "G",
            "location": location,
        },
    }
    validate(good, VARIANTS)
    bad_location = dict(location, interval={"type": "SequenceInterval", "start": "x"})
    bad = {"variantInternalId": "v1", "variation": dict(good["variation"], location=bad_location)}
    with pytest.raises(AssertionError):
        validate(bad, VARIANTS)


def test_framework_response_refs_resolve() -> None:
    summary = {
        "apiVersion": "v2.0.0",
        "requestedSchemas": [],
        "pagination": {"skip": 0, "limit": 10},
        "requestedGranularity": "boolean",
    }
    meta = {
        "beaconId": "org.example.fednode",
        "apiVersion": "v2.0.0",
        "returnedSchemas": [],
        "returnedGranularity": "boolean",
        "receivedRequestSummary": summary,
    }
    with pytest.raises(AssertionError, match="'error' is a required property"):
        validate({"meta": meta}, ERROR)
    bad_summary = {k: v for k, v in summary.items() if k != "pagination"}
    with pytest.raises(AssertionError, match="'pagination' is a required property"):
        validate({"meta": dict(meta, receivedRequestSummary=bad_summary), "error": {
            "errorCode": 400}}, ERROR)
    validate(
        {"meta": meta, "error": {"errorCode": 400, "errorMessage": "bad filter"}}, ERROR
    )


def test_unknown_schema_path_is_an_error() -> None:
    with pytest.raises(AssertionError, match="no schema registered"):
        validate({}, "framework/json/nope.json")
