"""Reading Beacon-Friendly-Format (BFF) files: one JSON array of records per entry type.

BFF is the layout of the EGA/CNAG beacon2 tools: `individuals.json`, `biosamples.json`,
`runs.json`, `analyses.json`, `cohorts.json`, `datasets.json` (Beacon v2 default-model
records), plus `targets.json` (`biosampleIds`: the VCF's sample columns in order) and
`filtering_terms.json` (terms the data provider declares). `genomicVariations.json` and
`caseLevelData.json` are skipped: variants come from the VCF ingested into the store.

Records are checked for what the node relies on (the default schemas' required
properties, ontology terms as `{id: CURIE}` objects, unique string ids); errors name the
file and the record (index and id). MongoDB's `_id` is dropped and `datasetId` set to the
dataset being loaded.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.errors import IngestError

__all__ = ["ENTRY_TYPES", "SCOPES", "BffBundle", "read_bff"]

ENTRY_TYPES = ("individuals", "biosamples", "cohorts", "datasets", "runs", "analyses")
# Beacon filtering-term scopes name entry types in the singular.
SCOPES = {
    "individuals": "individual",
    "biosamples": "biosample",
    "cohorts": "cohort",
    "datasets": "dataset",
    "runs": "run",
    "analyses": "analysis",
}

# Required properties of each default schema (beacon-v2 v2.1.1 models/json/.../defaultSchema).
_REQUIRED = {
    "individuals": ("id", "sex"),
    "biosamples": ("id", "biosampleStatus", "sampleOriginType"),
    "cohorts": ("id", "name", "cohortType"),
    "datasets": ("id", "name"),
    "runs": ("id", "biosampleId", "runDate"),
    "analyses": ("id", "analysisDate", "pipelineName"),
}
# Top-level properties the schemas type as an ontologyTerm (id: CURIE, label?).
_ONTOLOGY_FIELDS = {
    "individuals": ("sex", "ethnicity", "geographicOrigin"),
    "biosamples": (
        "biosampleStatus", "sampleOriginType", "sampleOriginDetail", "histologicalDiagnosis",
        "pathologicalStage", "tumorGrade", "tumorProgression", "sampleProcessing",
        "sampleStorage",
    ),
    "runs": ("librarySource", "platformModel"),
    "cohorts": ("cohortDesign",),
}
_SKIPPED = ("genomicVariations", "caseLevelData")


@dataclass
class BffBundle:
    """Everything read from the files of one `metadata load`."""

    records: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {t: [] for t in ENTRY_TYPES}
    )
    targets: list[str] | None = None
    declared_terms: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def read_bff(dataset_id: str, paths: Sequence[Path]) -> BffBundle:
    """Read and check BFF files (folders are expanded to their *.json / *.json.gz files)."""
    bundle = BffBundle()
    for path in _expand(paths):
        _read_one(bundle, dataset_id, path)
    for entry_type, records in bundle.records.items():
        _check_unique(entry_type, records)
    return bundle


def _expand(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted([*path.glob("*.json"), *path.glob("*.json.gz")]))
        else:
            files.append(path)
    if not files:
        raise IngestError("no BFF files given", path=", ".join(map(str, paths)) or "<none>")
    return files


def _kind(path: Path) -> str:
    name = path.name.removesuffix(".gz").removesuffix(".json")
    known = (*ENTRY_TYPES, "targets", "filtering_terms", *_SKIPPED)
    if name not in known:
        raise IngestError(
            f"unrecognised BFF file name; expected one of {', '.join(k + '.json' for k in known)}",
            path=str(path),
        )
    return name


def _read_one(bundle: BffBundle, dataset_id: str, path: Path) -> None:
    kind = _kind(path)
    if kind in _SKIPPED:
        bundle.skipped.append(str(path))
        return
    doc = _parse(path)
    if not isinstance(doc, list):
        raise IngestError("expected a JSON array of records", path=str(path))
    if kind == "targets":
        bundle.targets = _targets(doc, path)
    elif kind == "filtering_terms":
        bundle.declared_terms.extend(_declared_terms(doc, path))
    else:
        for index, raw in enumerate(doc):
            bundle.records[kind].append(_record(kind, raw, dataset_id, path, index))


def _parse(path: Path) -> Any:
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise IngestError(f"not valid JSON: {exc.msg}", path=str(path), line=exc.lineno) from exc
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise IngestError(f"cannot read: {exc}", path=str(path)) from exc


def _where(path: Path, index: int, raw: Any) -> str:
    rid = raw.get("id") if isinstance(raw, dict) else None
    return f"record #{index}" + (f" (id {rid!r})" if isinstance(rid, str) else "")


def _record(kind: str, raw: Any, dataset_id: str, path: Path, index: int) -> dict[str, Any]:
    where = _where(path, index, raw)
    if not isinstance(raw, dict):
        raise IngestError(f"{where}: expected a JSON object", path=str(path))
    missing = [key for key in _REQUIRED[kind] if key not in raw]
    if missing:
        raise IngestError(f"{where}: missing required {', '.join(missing)}", path=str(path))
    if not isinstance(raw["id"], str) or not raw["id"]:
        raise IngestError(f"{where}: `id` must be a non-empty string", path=str(path))
    for key in _ONTOLOGY_FIELDS.get(kind, ()):
        if key in raw and not _is_term(raw[key]):
            raise IngestError(
                f"{where}: `{key}` must be an ontology term {{id: CURIE, label?}}", path=str(path)
            )
    record = {k: v for k, v in raw.items() if k != "_id"}
    if kind != "datasets":
        record["datasetId"] = dataset_id
    return record


def _is_term(value: Any) -> bool:
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        return False
    prefix, sep, local = value["id"].partition(":")
    return bool(prefix and sep and local)


def _targets(doc: list[Any], path: Path) -> list[str]:
    samples: list[str] = []
    for index, raw in enumerate(doc):
        ids = raw.get("biosampleIds") if isinstance(raw, dict) else None
        if not isinstance(ids, list) or not all(isinstance(s, str) and s for s in ids):
            raise IngestError(f"record #{index}: `biosampleIds` must be a list of strings",
                              path=str(path))
        samples.extend(ids)
    return samples


def _declared_terms(doc: list[Any], path: Path) -> list[dict[str, Any]]:
    for index, raw in enumerate(doc):
        ok = isinstance(raw, dict) and isinstance(raw.get("id"), str)
        if not ok or raw.get("type") not in ("alphanumeric", "custom", "ontologyTerm"):
            raise IngestError(
                f"record #{index}: a filtering term needs `id` and `type` "
                "(alphanumeric, custom or ontologyTerm)", path=str(path)
            )
    return [dict(raw) for raw in doc]


def _check_unique(entry_type: str, records: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for record in records:
        if record["id"] in seen:
            raise IngestError(f"duplicate id {record['id']!r}", path=f"{entry_type}.json")
        seen.add(record["id"])
