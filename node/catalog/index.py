"""The in-memory view of one catalog generation: records, links between entry types and
filter evaluation across them.

Links (within one dataset): individuals ↔ biosamples ↔ runs ↔ analyses through
`individualId`, `biosampleId` and `runId` (a `|`-joined value names several, as the
beacon2 tools write multi-sample runs); a cohort or dataset relates to every record of
its dataset (BFF cohorts carry no member list).

A filter applies to the entry type searched when that type carries its term or field;
otherwise to the types that do (or to the filter's `scope`), and the matches are carried
to the searched type through the links: an individual-level `sex` filter selects
biosamples of matching individuals.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any, Literal

from node.catalog.bff import ENTRY_TYPES, SCOPES
from node.catalog.filters import (
    CUSTOM_FIELDS,
    OPERATORS,
    alphanumeric_match,
    custom_match,
    field_values,
    measurement_values,
    ontology_terms,
)
from node.catalog.ontology import Ontology
from node.catalog.store import DatasetRow, Snapshot
from node.domain import Filter
from node.errors import InvalidInput

__all__ = ["FilterKind", "Index"]

FilterKind = Literal["ontology", "alphanumeric", "custom"]
_KEYS = {
    "individuals": ("ind",),
    "biosamples": ("bio", "ind"),
    "runs": ("run", "bio", "ind"),
    "analyses": ("run", "bio", "ind"),
}
_TYPE_OF_SCOPE = {v: k for k, v in SCOPES.items()}


class Index:
    def __init__(self, snapshot: Snapshot, ontology: Ontology) -> None:
        self.generation = snapshot.generation
        self.datasets: Mapping[str, DatasetRow] = snapshot.datasets
        self.ontology = ontology
        self._terms: dict[tuple[str, str, str], dict[str, str | None]] = {}
        self._keys: dict[tuple[str, str], dict[str, dict[str, set[str]]]] = {}

    # -- records ---------------------------------------------------------------

    def records(self, dataset_id: str, entry_type: str) -> Mapping[str, dict[str, Any]]:
        row = self.datasets[dataset_id]
        if entry_type == "datasets":
            return {row.dataset["id"]: row.dataset}
        return row.records.get(entry_type, {})

    def selected(self, dataset_ids: Iterable[str] | None) -> list[str]:
        if dataset_ids is None:
            return sorted(self.datasets)
        return [d for d in dict.fromkeys(dataset_ids) if d in self.datasets]

    def terms_of(self, dataset_id: str, entry_type: str, rid: str) -> dict[str, str | None]:
        key = (dataset_id, entry_type, rid)
        if key not in self._terms:
            self._terms[key] = ontology_terms(self.records(dataset_id, entry_type)[rid])
        return self._terms[key]

    # -- links -----------------------------------------------------------------

    def related_ids(self, dataset_id: str, from_type: str, ids: set[str], to_type: str) -> set[str]:
        if from_type == to_type or not ids:
            return set(ids)
        targets = self.records(dataset_id, to_type)
        if {from_type, to_type} & {"cohorts", "datasets"}:
            return set(targets)
        kind = next(k for k in _KEYS[from_type] if k in _KEYS[to_type])
        wanted: set[str] = set()
        for rid in ids:
            wanted |= self._link_keys(dataset_id, from_type).get(rid, {}).get(kind, set())
        back = self._link_keys(dataset_id, to_type)
        return {rid for rid, keys in back.items() if keys.get(kind, set()) & wanted}

    def _link_keys(self, dataset_id: str, entry_type: str) -> dict[str, dict[str, set[str]]]:
        cache_key = (dataset_id, entry_type)
        if cache_key not in self._keys:
            self._keys[cache_key] = {
                rid: _record_keys(entry_type, rec)
                for rid, rec in self.records(dataset_id, entry_type).items()
            }
        return self._keys[cache_key]

    # -- filters ---------------------------------------------------------------

    @cached_property
    def record_terms(self) -> frozenset[str]:
        return frozenset(
            term
            for d in self.datasets
            for t in ENTRY_TYPES
            for rid in self.records(d, t)
            for term in self.terms_of(d, t, rid)
        )

    @cached_property
    def custom_terms(self) -> frozenset[str]:
        return frozenset(
            f"{field}:{value}"
            for d in self.datasets
            for t, fields in CUSTOM_FIELDS.items()
            for rec in self.records(d, t).values()
            for field in fields
            for value in field_values(rec, field)
            if isinstance(value, str)
        )

    def classify(self, flt: Filter) -> FilterKind | None:
        """What kind of filter this is for the catalog, or None when it is unknown."""
        if flt.operator is not None:
            if flt.operator not in OPERATORS:
                raise InvalidInput(
                    f"filter {flt.id!r}: unsupported operator {flt.operator!r}; "
                    f"use one of {' '.join(OPERATORS)}"
                )
            return "alphanumeric" if self._field_known(flt.id) else None
        if flt.id in self.ontology or flt.id in self.record_terms:
            return "ontology"
        return "custom" if flt.id in self.custom_terms else None

    def _field_known(self, field: str) -> bool:
        return any(
            self._values(self.records(d, t)[rid], field)
            for d in self.datasets
            for t in ENTRY_TYPES
            for rid in self.records(d, t)
        ) or any(term.get("id") == field for d in self.datasets
                 for term in self.datasets[d].declared_terms)

    def matching(self, dataset_id: str, entry_type: str, flt: Filter) -> set[str]:
        """Ids of `entry_type` records of the dataset that satisfy the filter."""
        kind = self.classify(flt)
        if kind is None:
            return set()  # unknown filters never widen a result; the caller reports them
        expanded = self._expanded(flt) if kind == "ontology" else frozenset()
        found: set[str] = set()
        for scope in self._scopes(dataset_id, entry_type, flt, kind, expanded):
            direct = {
                rid for rid, rec in self.records(dataset_id, scope).items()
                if self._direct(dataset_id, scope, rid, rec, flt, kind, expanded)
            }
            found |= self.related_ids(dataset_id, scope, direct, entry_type)
        return found

    def _expanded(self, flt: Filter) -> frozenset[str]:
        if flt.include_descendants:
            return self.ontology.descendants(flt.id)
        return frozenset({flt.id})

    def _scopes(
        self, dataset_id: str, entry_type: str, flt: Filter, kind: FilterKind,
        expanded: frozenset[str],
    ) -> list[str]:
        if flt.scope is not None:
            scope = _TYPE_OF_SCOPE.get(flt.scope, flt.scope)
            if scope not in ENTRY_TYPES:
                raise InvalidInput(f"unknown filter scope {flt.scope!r} for filter {flt.id!r}")
            return [scope]
        carriers = [
            t for t in ENTRY_TYPES
            if self._carries(dataset_id, t, flt, kind, expanded)
        ]
        return [entry_type] if entry_type in carriers or not carriers else carriers

    def _carries(
        self, dataset_id: str, entry_type: str, flt: Filter, kind: FilterKind,
        expanded: frozenset[str],
    ) -> bool:
        if kind == "custom":
            return flt.id.partition(":")[0] in CUSTOM_FIELDS.get(entry_type, ())
        records = self.records(dataset_id, entry_type)
        if kind == "ontology":
            return any(expanded & self.terms_of(dataset_id, entry_type, r).keys() for r in records)
        return any(self._values(rec, flt.id) for rec in records.values())

    def _direct(
        self, dataset_id: str, entry_type: str, rid: str, rec: dict[str, Any], flt: Filter,
        kind: FilterKind, expanded: frozenset[str],
    ) -> bool:
        if kind == "ontology":
            return bool(expanded & self.terms_of(dataset_id, entry_type, rid).keys())
        if kind == "custom":
            field, _, value = flt.id.partition(":")
            return custom_match(rec, field, value)
        return alphanumeric_match(self._values(rec, flt.id), flt.operator or "=", flt.value or "")

    @staticmethod
    def _values(rec: dict[str, Any], field: str) -> list[Any]:
        return field_values(rec, field) or measurement_values(rec, field)


def _record_keys(entry_type: str, rec: Mapping[str, Any]) -> dict[str, set[str]]:
    if entry_type == "individuals":
        return {"ind": {rec["id"]}}
    keys = {"ind": _split(rec.get("individualId")), "bio": _split(rec.get("biosampleId"))}
    if entry_type == "biosamples":
        keys["bio"] = {rec["id"]}
    elif entry_type == "runs":
        keys["run"] = {rec["id"]}
    elif entry_type == "analyses":
        keys["run"] = _split(rec.get("runId"))
    return keys


def _split(value: Any) -> set[str]:
    if not isinstance(value, str) or not value:
        return set()
    return {part for part in value.split("|") if part}
