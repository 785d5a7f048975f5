"""The node's filtering terms (Beacon v2 `/filtering_terms`, framework
`responses/sections/beaconFilteringTermsResults.json#/$defs/FilteringTerm`).

- ontologyTerm: every term the records carry, and its ancestors in the loaded ontology
  (a filter on an ancestor matches through descendants), scoped to the entry types that
  carry the term or a descendant;
- alphanumeric: the terms the data provider declared (BFF `filtering_terms.json`), every
  field path holding numbers or ISO 8601 durations, and measurement assay codes;
- custom: `<field>:<value>` of the categorical fields in filters.CUSTOM_FIELDS.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from node.catalog.bff import ENTRY_TYPES, SCOPES
from node.catalog.filters import CUSTOM_FIELDS, duration_days, field_values

if TYPE_CHECKING:
    from node.catalog.index import Index

__all__ = ["filtering_terms"]


def filtering_terms(index: Index, dataset_ids: Sequence[str]) -> list[dict[str, Any]]:
    terms: dict[tuple[str, str], dict[str, Any]] = {}
    for dataset_id in dataset_ids:
        for entry_type in ENTRY_TYPES:
            _ontology(index, dataset_id, entry_type, terms)
            _alphanumeric(index, dataset_id, entry_type, terms)
            _custom(index, dataset_id, entry_type, terms)
        for declared in index.datasets[dataset_id].declared_terms:
            _add(terms, declared["type"], declared["id"], declared.get("label"),
                 declared.get("scopes", ()))
    for (kind, term_id), entry in terms.items():
        label = index.ontology.label(term_id) if kind == "ontologyTerm" else None
        if label and "label" not in entry:
            entry["label"] = label
    return [_finish(t) for _, t in sorted(terms.items())]


def _add(
    terms: dict[tuple[str, str], dict[str, Any]], kind: str, term_id: str,
    label: str | None, scopes: Sequence[str],
) -> None:
    entry = terms.setdefault((kind, term_id), {"type": kind, "id": term_id, "scopes": set()})
    if label and "label" not in entry:
        entry["label"] = label
    entry["scopes"].update(scopes)


def _finish(entry: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "scopes": sorted(entry["scopes"])}


def _ontology(
    index: Index, dataset_id: str, entry_type: str, terms: dict[tuple[str, str], dict[str, Any]]
) -> None:
    scope = SCOPES[entry_type]
    seen: dict[str, str | None] = {}
    for rid in index.records(dataset_id, entry_type):
        for term_id, label in index.terms_of(dataset_id, entry_type, rid).items():
            if seen.get(term_id) is None:
                seen[term_id] = label
    for term_id, label in seen.items():
        # The records' own label wins; the ontology's fills the gaps afterwards.
        _add(terms, "ontologyTerm", term_id, label, [scope])
        for ancestor in index.ontology.ancestors(term_id) - {term_id}:
            _add(terms, "ontologyTerm", ancestor, None, [scope])


def _alphanumeric(
    index: Index, dataset_id: str, entry_type: str, terms: dict[tuple[str, str], dict[str, Any]]
) -> None:
    scope = SCOPES[entry_type]
    for record in index.records(dataset_id, entry_type).values():
        for path, value in _leaves(record, ""):
            if _comparable(value):
                _add(terms, "alphanumeric", path, None, [scope])
        for assay in field_values(record, "measures.assayCode") + field_values(
            record, "measurements.assayCode"
        ):
            if isinstance(assay, dict) and isinstance(assay.get("id"), str):
                _add(terms, "alphanumeric", assay["id"], assay.get("label"), [scope])


def _custom(
    index: Index, dataset_id: str, entry_type: str, terms: dict[tuple[str, str], dict[str, Any]]
) -> None:
    for field in CUSTOM_FIELDS.get(entry_type, ()):
        for record in index.records(dataset_id, entry_type).values():
            for value in field_values(record, field):
                if isinstance(value, str):
                    _add(terms, "custom", f"{field}:{value}", None, [SCOPES[entry_type]])


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _leaves(inner, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for inner in value:
            yield from _leaves(inner, path)
    else:
        yield path, value


def _comparable(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and duration_days(value) is not None
