"""The metadata catalog: Beacon v2 individuals, biosamples, cohorts, datasets, runs and
analyses loaded from Beacon-Friendly-Format JSON, linked to the VCF samples of a dataset.

VCF link: a VCF sample column is the biosample with that id (the beacon2 tools write the
VCF sample names as `biosampleId`s: `targets.json` lists them in column order and
genomicVariations' `caseLevelData[].biosampleId` uses them); a sample with no biosample of
that name falls back to the individual with that id.

    catalog = Catalog.open(home)
    catalog.load("cineca", [Path("bff/individuals.json"), ...])
    catalog.search("individuals", dataset_ids=None, filters=[Filter("NCIT:C16576")])
"""

from __future__ import annotations

import copy
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.catalog.bff import ENTRY_TYPES, BffBundle, read_bff
from node.catalog.index import Index
from node.catalog.ontology import Ontology, load_ontology_file
from node.catalog.store import CatalogFile, DatasetRow
from node.catalog.terms import filtering_terms
from node.domain import Filter
from node.errors import InvalidInput

__all__ = ["ENTRY_TYPES", "Catalog", "LoadSummary", "Ontology"]

_DATASET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# How long the parsed copy is trusted before the file's generation is read again (a
# SQLite round trip per query otherwise): another process's load shows within this time,
# this instance's own loads at once.
RECHECK_S = 1.0


@dataclass(frozen=True, slots=True)
class LoadSummary:
    dataset_id: str
    counts: Mapping[str, int]  # records per entry type
    vcf_samples: int  # sample columns declared (targets.json) or implied (biosample ids)
    unlinked_samples: tuple[str, ...]  # VCF samples with neither biosample nor individual
    ontology_terms: int  # terms added from --ontology
    skipped_files: tuple[str, ...]


Constraint = tuple[set[str], set[str]]  # (biosample ids, individual ids) allowed


class Catalog:
    """The node's metadata catalog under `<home>/catalog` (see node/catalog/store.py)."""

    def __init__(self, root: Path) -> None:
        self._file = CatalogFile(root)
        self._lock = threading.Lock()
        self._index: Index | None = None
        self._checked_at = float("-inf")

    @classmethod
    def open(cls, home: Path) -> Catalog:
        return cls(home / "catalog")

    # -- loading ----------------------------------------------------------------

    def load(
        self, dataset_id: str, files: Sequence[Path], *, ontology: Path | None = None
    ) -> LoadSummary:
        """Replace the metadata of `dataset_id` with the BFF `files`, atomically."""
        if not _DATASET_ID.match(dataset_id):
            raise InvalidInput(f"invalid dataset id {dataset_id!r} (letters, digits, . _ -)")
        bundle = read_bff(dataset_id, files)
        extra = load_ontology_file(ontology) if ontology is not None else None
        row = _dataset_row(dataset_id, bundle)
        terms = extra.to_json()["terms"] if extra is not None else []
        self._file.replace_dataset(dataset_id, row, terms)
        self._checked_at = float("-inf")
        samples = _vcf_samples(row)
        return LoadSummary(
            dataset_id,
            {t: len(row.records.get(t, {})) for t in ENTRY_TYPES if t != "datasets"},
            len(samples),
            tuple(s for s in samples if _link(row, s) == (None, None)),
            len(terms),
            tuple(bundle.skipped),
        )

    # -- queries ----------------------------------------------------------------

    @property
    def ontology(self) -> Ontology:
        return self._current().ontology

    def dataset_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._current().datasets))

    def get(self, entry_type: str, entry_id: str) -> dict[str, Any] | None:
        index = self._current()
        for dataset_id in index.selected(None):
            record = index.records(dataset_id, _entry_type(entry_type)).get(entry_id)
            if record is not None:
                return copy.deepcopy(record)
        return None

    def search(
        self, entry_type: str, *, dataset_ids: Sequence[str] | None, filters: Sequence[Filter]
    ) -> list[dict[str, Any]]:
        """Records of `entry_type` in the datasets satisfying every filter (AND)."""
        index = self._current()
        entry_type = _entry_type(entry_type)
        out: list[dict[str, Any]] = []
        for dataset_id in index.selected(dataset_ids):
            records = index.records(dataset_id, entry_type)
            ids = set(records)
            for flt in filters:
                ids &= index.matching(dataset_id, entry_type, flt)
            out.extend(copy.deepcopy(rec) for rid, rec in records.items() if rid in ids)
        return out

    def unknown_filters(self, filters: Sequence[Filter]) -> list[str]:
        index = self._current()
        return [flt.id for flt in filters if index.classify(flt) is None]

    def related(self, from_type: str, from_id: str, to_type: str) -> list[dict[str, Any]]:
        index = self._current()
        from_type, to_type = _entry_type(from_type), _entry_type(to_type)
        out: list[dict[str, Any]] = []
        for dataset_id in index.selected(None):
            if from_id not in index.records(dataset_id, from_type):
                continue
            ids = index.related_ids(dataset_id, from_type, {from_id}, to_type)
            targets = index.records(dataset_id, to_type)
            out.extend(copy.deepcopy(rec) for rid, rec in targets.items() if rid in ids)
        return out

    def samples(
        self,
        dataset_id: str,
        *,
        filters: Sequence[Filter] = (),
        entry_ids: Mapping[str, Sequence[str]] | None = None,
    ) -> frozenset[str]:
        """VCF sample names of the dataset whose biosample (or individual) satisfies every
        filter and relates to every entry id given (`{"individuals": ["HG00096"]}`)."""
        index = self._current()
        if dataset_id not in index.datasets:
            return frozenset()
        row = index.datasets[dataset_id]
        constraints: list[Constraint] = [
            (index.matching(dataset_id, "biosamples", flt),
             index.matching(dataset_id, "individuals", flt))
            for flt in filters
        ]
        for entry_type, ids in (entry_ids or {}).items():
            kind, wanted = _entry_type(entry_type), set(ids)
            constraints.append((
                index.related_ids(dataset_id, kind, wanted, "biosamples"),
                index.related_ids(dataset_id, kind, wanted, "individuals"),
            ))
        return frozenset(
            s for s in _vcf_samples(row)
            if all(_sample_ok(_link(row, s), c) for c in constraints)
        )

    def sample_to_biosample(
        self, dataset_id: str, vcf_sample: str
    ) -> tuple[str | None, str | None]:
        """(biosampleId, individualId) of a VCF sample column; None where unlinked."""
        index = self._current()
        row = index.datasets.get(dataset_id)
        return _link(row, vcf_sample) if row is not None else (None, None)

    def datasets_of(self, entry_type: str, entry_id: str) -> tuple[str, ...]:
        """The datasets holding the `entry_type` record `entry_id` (a cohort's datasets)."""
        index = self._current()
        kind = _entry_type(entry_type)
        return tuple(d for d in index.selected(None) if entry_id in index.records(d, kind))

    def filtering_terms(self, dataset_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Beacon filteringTerm objects for the datasets (all when None)."""
        index = self._current()
        return filtering_terms(index, index.selected(dataset_ids))

    # -- internals --------------------------------------------------------------

    def resident(self) -> bool:
        """Whether queries answer from the parsed copy now, with no I/O (it was checked
        against the file within `RECHECK_S` and no reload is running)."""
        return (self._index is not None and not self._lock.locked()
                and time.monotonic() - self._checked_at < RECHECK_S)

    def _current(self) -> Index:
        now = time.monotonic()
        index = self._index
        if index is not None and now - self._checked_at < RECHECK_S:
            return index
        generation = self._file.generation()
        with self._lock:
            if self._index is None or self._index.generation != generation:
                snapshot = self._file.snapshot()
                extra = Ontology.from_json({"terms": list(snapshot.ontology_terms)})
                self._index = Index(snapshot, Ontology.shipped().merged(extra))
            self._checked_at = now
            return self._index


def _entry_type(name: str) -> str:
    if name not in ENTRY_TYPES:
        raise InvalidInput(f"unknown entry type {name!r}; one of {', '.join(ENTRY_TYPES)}")
    return name


def _dataset_row(dataset_id: str, bundle: BffBundle) -> DatasetRow:
    records = {t: {r["id"]: r for r in rs} for t, rs in bundle.records.items() if t != "datasets"}
    return DatasetRow(
        _dataset_record(dataset_id, bundle.records["datasets"]),
        tuple(bundle.targets) if bundle.targets is not None else None,
        tuple(bundle.declared_terms),
        records,
    )


def _dataset_record(dataset_id: str, given: list[dict[str, Any]]) -> dict[str, Any]:
    """The dataset's own record: the one with this id, else the only one given, else a
    minimal one. Its `id` is the node's dataset id, which the variant store also uses."""
    chosen = next((d for d in given if d["id"] == dataset_id), None)
    if chosen is None and len(given) == 1:
        chosen = given[0]
    if chosen is None and given:
        ids = ", ".join(repr(d["id"]) for d in given)
        raise InvalidInput(f"datasets.json has several records ({ids}) and none is {dataset_id!r}")
    record = dict(chosen) if chosen is not None else {"name": dataset_id}
    record["id"] = dataset_id
    return record


def _vcf_samples(row: DatasetRow) -> tuple[str, ...]:
    if row.targets is not None:
        return row.targets
    biosamples = tuple(row.records.get("biosamples", {}))
    return biosamples or tuple(row.records.get("individuals", {}))


def _link(row: DatasetRow, sample: str) -> tuple[str | None, str | None]:
    biosample = row.records.get("biosamples", {}).get(sample)
    if biosample is not None:
        individual = biosample.get("individualId")
        return sample, individual if isinstance(individual, str) else None
    if sample in row.records.get("individuals", {}):
        return None, sample
    return None, None


def _sample_ok(link: tuple[str | None, str | None], allowed: Constraint) -> bool:
    biosample, individual = link
    if biosample is not None:
        return biosample in allowed[0]
    return individual is not None and individual in allowed[1]
