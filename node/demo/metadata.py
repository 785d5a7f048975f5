"""Beacon-Friendly-Format metadata for the demo cohort: one individual and one biosample per
VCF sample (biosample id = VCF sample name), a run and an analysis for samples with reads,
the dataset and a cohort. Seeded, so the demo is the same on every machine."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_bff"]

_SEX = [("NCIT:C16576", "female"), ("NCIT:C20197", "male")]
_ETHNICITY = [
    ("NCIT:C43856", "Irish"), ("NCIT:C42331", "African"), ("NCIT:C77810", "Caribbean"),
    ("NCIT:C67109", "Any other Asian background"),
]
_DISEASES = [
    ("ICD10:E11", "Non-insulin-dependent diabetes mellitus"), ("ICD10:J45", "Asthma"),
    ("ICD10:I83", "Varicose veins of lower extremities"), ("ICD10:E66", "Obesity"),
]
_BLOOD = {"id": "UBERON:0000178", "label": "blood"}
_REFERENCE_SAMPLE = {"id": "EFO:0009654", "label": "reference sample"}


def write_bff(
    folder: Path, *, dataset_id: str, name: str, samples: Sequence[str],
    sequenced: Sequence[str], seed: int,
) -> list[Path]:
    """Write datasets/cohorts/individuals/biosamples/runs/analyses JSON files into `folder`."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "datasets": [{"id": dataset_id, "name": name, "description": "fednode demo data"}],
        "cohorts": [{"id": f"{dataset_id}-all", "name": f"{name}: everyone",
                     "cohortType": "study-defined"}],
        "individuals": [_individual(s, rng) for s in samples],
        "biosamples": [_biosample(s, rng) for s in samples],
        "runs": [_run(s) for s in sequenced],
        "analyses": [_analysis(s) for s in sequenced],
    }
    paths = []
    for entry_type, records in files.items():
        path = folder / f"{entry_type}.json"
        path.write_text(json.dumps(records, indent=1))
        paths.append(path)
    return paths


def _term(pair: tuple[str, str]) -> dict[str, str]:
    return {"id": pair[0], "label": pair[1]}


def _individual(sample: str, rng: np.random.Generator) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": sample,
        "sex": _term(_SEX[int(rng.integers(0, 2))]),
        "ethnicity": _term(_ETHNICITY[int(rng.integers(0, len(_ETHNICITY)))]),
        "measures": [{
            "assayCode": {"id": "LOINC:8308-9", "label": "Height-standing"},
            "measurementValue": {
                "unit": {"id": "NCIT:C49668", "label": "Centimeter"},
                "value": round(float(rng.normal(170, 9)), 1),
            },
        }],
    }
    if rng.random() < 0.4:
        disease = _DISEASES[int(rng.integers(0, len(_DISEASES)))]
        record["diseases"] = [{"diseaseCode": _term(disease)}]
    return record


def _biosample(sample: str, rng: np.random.Generator) -> dict[str, Any]:
    return {
        "id": sample,
        "individualId": sample,
        "biosampleStatus": _REFERENCE_SAMPLE,
        "sampleOriginType": _BLOOD,
        "collectionMoment": f"P{int(rng.integers(20, 80))}Y",
    }


def _run(sample: str) -> dict[str, Any]:
    return {
        "id": f"{sample}-run1",
        "biosampleId": sample,
        "individualId": sample,
        "runDate": "2026-11-23",
        "libraryStrategy": "WGS",
        "platform": "Illumina",
    }


def _analysis(sample: str) -> dict[str, Any]:
    return {
        "id": f"{sample}-analysis1",
        "runId": f"{sample}-run1",
        "biosampleId": sample,
        "individualId": sample,
        "analysisDate": "2026-11-23",
        "pipelineName": "fednode-demo-simulation",
        "aligner": "none (simulated alignments)",
    }
