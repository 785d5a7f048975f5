"""Answering Beacon requests: parsed request + entry type → response document.

Blocking (store and catalog calls); the web layer runs these in a thread. Policy and
counts go through `node.service` (plan, release_count), so this module never decides who
sees what; it only decides what a Beacon answer looks like.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from node.beacon.annotations import GeneIndex
from node.beacon.info import EntryType, by_path
from node.beacon.models import BeaconRequest
from node.beacon.render import (
    case_page_info,
    record_of_variant,
    response_envelope,
    result_set,
)
from node.beacon.variants import VariantQuery, exact_key, query_for_id, selector
from node.config import Settings
from node.domain import AlleleStats, Filter, Principal
from node.errors import InvalidInput, NotFound
from node.names import Granularity
from node.privacy.gate import Ledger
from node.privacy.people import people_set
from node.service import (
    AccessPlan,
    DatasetAccess,
    DatasetVariants,
    MetadataCatalog,
    Planner,
    ReleasedCount,
    allele_numbers,
    carriers,
    plan,
    release_people,
    search_variants,
)
from node.store.registry import DatasetRegistry

__all__ = ["Context", "answer", "in_memory"]


@dataclass(frozen=True)
class Context:
    """One request's view of the node. Dataset listings are read once per request (on
    object storage a listing is a remote call)."""

    settings: Settings
    registry: DatasetRegistry
    catalog: MetadataCatalog | None
    principal: Principal
    genes: Mapping[str, GeneIndex] | None = None  # assembly -> gene coordinates
    ledger: Ledger | None = None  # this request's privacy gate (guard, budget, audit)
    planner: Planner | None = None  # shared by the node's requests (plans of anonymous)
    deadline: float | None = None  # time.monotonic() past which the work stops (TimedOut)

    # Computed on first use and kept (not functools.cached_property: on Python 3.11 it
    # takes a lock per first access, measurable once per request).
    @property
    def store_ids(self) -> frozenset[str]:
        found: frozenset[str] | None = self.__dict__.get("_store_ids")
        if found is None:
            found = self.__dict__["_store_ids"] = frozenset(self.registry.ids())
        return found

    def dataset_ids(self) -> tuple[str, ...]:
        found: tuple[str, ...] | None = self.__dict__.get("_all_ids")
        if found is None:
            extra = self.catalog.dataset_ids() if self.catalog is not None else ()
            found = self.__dict__["_all_ids"] = tuple(sorted(self.store_ids | set(extra)))
        return found


def _plan(ctx: Context, req: BeaconRequest, *, force: Granularity | None = None) -> AccessPlan:
    if req.test_mode:
        # Beacon v2 TestMode: answer, but with no real data (nothing sensitive is used).
        return AccessPlan(req.granularity, ())
    if ctx.planner is not None:
        return ctx.planner.plan(ctx.dataset_ids(), ctx.principal, requested=req.dataset_ids,
                                granularity=force or req.granularity)
    return plan(ctx.dataset_ids(), ctx.registry.settings, ctx.principal,
                requested=req.dataset_ids, granularity=force or req.granularity)


def _info(
    ctx: Context, req: BeaconRequest, access: AccessPlan, unknown: Sequence[str],
    *, unheld: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if access.omitted:
        out["omittedDatasets"] = {
            "reason": "granularity allowed for these datasets is lower than returned",
            "datasets": {a.id: a.granularity.value for a in access.omitted}}
    warnings: dict[str, Any] = {}
    if unknown:
        # Unrecognised filters cannot be evaluated: they match nothing rather than being
        # silently dropped (which would broaden the answer), and are reported here.
        warnings["unknownFilters"] = list(unknown)
    if unheld:  # a "no" that only says the name is not one any dataset here uses
        warnings.update(unheld)
    if warnings:
        out["warnings"] = warnings
    if req.test_mode:
        out["testMode"] = "answered without real data (Beacon v2 testMode)"
    return out


def _known_filters(ctx: Context, filters: Sequence[Filter]) -> tuple[list[Filter], list[str]]:
    if not filters:
        return [], []
    if ctx.catalog is None:
        return [], [f.id for f in filters]
    unknown = ctx.catalog.unknown_filters(filters)
    return [f for f in filters if f.id not in unknown], unknown


def in_memory(ctx: Context, entry: EntryType, req: BeaconRequest, *, nested: str | None
              ) -> bool:
    """Whether `answer` needs no I/O for this request and takes microseconds, so a server
    may run it on its event loop rather than a thread: an exact-allele g_variants query
    below record granularity and without filters (a statistics lookup and at most a one-base
    scan of the in-memory index), on stores and a catalog that hold what it reads in memory.
    With a disclosure budget on, the caller's ledger must defer charges (its store is
    SQLite or Redis: I/O; `Ledger.defer_charges`)."""
    q = req.variant
    if (entry.path != "g_variants" or nested is not None or req.filters or q is None
            or req.granularity is Granularity.RECORD or q.kind != "sequence"
            or q.contig is None or q.needs_annotations):
        return False
    if ctx.catalog is not None and not ctx.catalog.resident():
        return False
    return ctx.registry.resident(q.contig, req.dataset_ids)


def answer(
    ctx: Context,
    entry: EntryType,
    req: BeaconRequest,
    *,
    entry_id: str | None = None,
    nested: str | None = None,
) -> dict[str, Any]:
    """The response document for GET/POST /{entry}[/{id}[/{nested}]]."""
    target = by_path(nested) if nested else entry
    if target.path == "g_variants":
        return _variants(ctx, entry, req, entry_id)
    if entry.path == "g_variants":
        if entry_id is None:
            raise InvalidInput("a variant id is required")
        return _entries_of_variant(ctx, target, req, entry_id)
    return _entries(ctx, entry, target, req, entry_id)


# -- genomic variants ----------------------------------------------------------------


def _variant_scope(ctx: Context, entry: EntryType, req: BeaconRequest, entry_id: str | None
                   ) -> tuple[BeaconRequest, VariantQuery | None, dict[str, frozenset[str]] | None]:
    if entry.path == "g_variants":
        query = query_for_id(entry_id) if entry_id else req.variant
        return req, query, None
    if entry.path == "datasets":
        assert entry_id is not None
        if req.dataset_ids is not None and entry_id not in req.dataset_ids:
            raise InvalidInput("datasetIds does not include the dataset of the path")
        return replace(req, dataset_ids=(entry_id,)), req.variant, None
    if ctx.catalog is None:
        raise NotFound(f"no metadata catalog: /{entry.path}/{{id}}/g_variants is empty")
    ids = {entry.path: [entry_id or ""]}
    samples = {d: ctx.catalog.samples(d, entry_ids=ids) for d in ctx.dataset_ids()}
    return req, req.variant, samples


def _variants(ctx: Context, entry: EntryType, req: BeaconRequest, entry_id: str | None
              ) -> dict[str, Any]:
    # /g_variants/{id} is one variant: there `skip` pages its caseLevelData instead.
    by_id = entry.path == "g_variants" and entry_id is not None
    req, query, samples = _variant_scope(ctx, entry, req, entry_id)
    known, unknown = _known_filters(ctx, req.filters)
    if known and ctx.catalog is not None:
        matched = {d: ctx.catalog.samples(d, filters=known) for d in ctx.dataset_ids()}
        samples = matched if samples is None else {
            d: s & matched.get(d, frozenset()) for d, s in samples.items()}
    if unknown:
        samples = {}
    access = _plan(ctx, req)
    stored = tuple(a for a in access.datasets if a.id in ctx.store_ids)
    found = search_variants(
        ctx.registry, access if len(stored) == len(access.datasets) else replace(
            access, datasets=stored),
        selector(query, ctx.genes, by_stats=access.granularity is not Granularity.RECORD),
        ctx.principal,
        assembly=query.assembly if query else None, samples=samples,
        skip=0 if by_id else req.skip, limit=req.limit, ledger=ctx.ledger,
        deadline=ctx.deadline)
    key = exact_key(query) if samples is None else None  # frequencies are dataset-wide
    numbers = {} if key is None else allele_numbers(
        ctx.registry, replace(access, datasets=stored), key,
        assembly=query.assembly if query else None)
    sets = [_variant_set(ctx, d, case_skip=req.skip if by_id else 0,
                         absent=numbers.get(d.dataset.id, _NOT_ASKED))
            for d in found]
    g_variants = by_path("g_variants")
    return response_envelope(ctx.settings.node.id, req, g_variants, access.granularity, sets,
                             info=_info(ctx, req, access, unknown, unheld=None if any(
                                 d.count.value for d in found) else _unheld(ctx, query, stored)))


def _unheld(ctx: Context, query: VariantQuery | None, stored: Sequence[DatasetAccess]
            ) -> dict[str, str]:
    """The query's referenceName / assemblyId when no answering dataset uses it: said
    in words, so an empty answer is not taken for an absent variant. Names of contigs and
    assemblies are not data about anyone."""
    if query is None or not stored:
        return {}
    stores = [ctx.registry.store(a.id) for a in stored]
    out = {}
    if query.assembly is not None and all(s.assembly != query.assembly for s in stores):
        out["unknownAssemblyId"] = (
            f"no dataset here is on assembly {query.assembly!r} "
            f"(they are on {', '.join(sorted({s.assembly for s in stores}))})")
    if query.contig is not None and all(query.contig not in s.contigs() for s in stores):
        out["unknownReferenceName"] = (
            f"no dataset here has reference sequence {query.contig!r}")
    return out


_NOT_ASKED = AlleleStats(-1, -1, -1, -1, -1, -1)  # no exact allele asked of this dataset


def _variant_set(ctx: Context, found: DatasetVariants, *, case_skip: int,
                 absent: AlleleStats | None = _NOT_ASKED) -> dict[str, Any]:
    if not found.variants:  # boolean and count answers carry no records
        extra = _precision(found.count)
        # (An allele held but not matched, by a type or length bound, is left unsaid.)
        if absent is not _NOT_ASKED and not found.count.value and (absent is None
                                                                   or absent.ac == 0):
            extra["info"] = {"alleleFrequency": _allele_number(absent)}
        return result_set(found.dataset.id, found.count.value, [], **extra)
    store = ctx.registry.store(found.dataset.id)
    catalog = ctx.catalog

    def biosample_of(sample: str) -> tuple[str | None, str | None]:
        if catalog is None:
            return None, None
        return catalog.sample_to_biosample(found.dataset.id, sample)

    pages = [
        record_of_variant(v, assembly=store.assembly, dataset_id=found.dataset.id,
                          records=found.records.get(v.key, ()), biosample_of=biosample_of,
                          case_skip=case_skip)
        for v in found.variants
    ]
    results = [record for record, _ in pages]
    info = case_page_info([(r["variantInternalId"], n) for r, n in pages], case_skip)
    extra = {**_precision(found.count), **({"info": info} if info else {})}
    return result_set(found.dataset.id, found.count.value, results, **extra)


# -- metadata entries -----------------------------------------------------------------


def _require_catalog(ctx: Context) -> MetadataCatalog:
    if ctx.catalog is None:
        raise NotFound("this node has no metadata catalog loaded")
    return ctx.catalog


def _rows(ctx: Context, entry: EntryType, target: EntryType, dataset_id: str,
          entry_id: str | None, filters: Sequence[Filter]) -> list[dict[str, Any]]:
    catalog = _require_catalog(ctx)
    if entry_id is None:
        return catalog.search(target.path, dataset_ids=[dataset_id], filters=filters)
    if entry is target:
        rows = catalog.search(target.path, dataset_ids=[dataset_id], filters=filters)
        return [r for r in rows if r.get("id") == entry_id]
    if entry.path == "datasets":
        if entry_id != dataset_id:
            return []
        return catalog.search(target.path, dataset_ids=[dataset_id], filters=filters)
    related = {r.get("id") for r in catalog.related(entry.path, entry_id, target.path)}
    rows = catalog.search(target.path, dataset_ids=[dataset_id], filters=filters)
    return [r for r in rows if r.get("id") in related]


def _entries(ctx: Context, entry: EntryType, target: EntryType, req: BeaconRequest,
             entry_id: str | None) -> dict[str, Any]:
    if target.collection:
        return _collections(ctx, target, req, entry_id if entry is target else None)
    known, unknown = _known_filters(ctx, req.filters)
    access = _plan(ctx, req)
    sets = []
    for dataset in access.datasets:
        rows = [] if unknown else _rows(ctx, entry, target, dataset.id, entry_id, known)
        sets.append(_entry_set(ctx, req, access, dataset, rows, target.path))
    return response_envelope(ctx.settings.node.id, req, target, access.granularity, sets,
                             info=_info(ctx, req, access, unknown))


def _entry_set(ctx: Context, req: BeaconRequest, access: AccessPlan, dataset: DatasetAccess,
               rows: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    # Entries are people or their samples: their number leaves as a count of people.
    catalog = _require_catalog(ctx)
    everyone = catalog.search(kind, dataset_ids=[dataset.id], filters=())
    count = release_people(
        people_set(dataset.id, kind, _ids(rows)), dataset, ledger=ctx.ledger,
        granularity=access.granularity, universe=people_set(dataset.id, kind, _ids(everyone)))
    record = access.granularity is Granularity.RECORD
    page = rows[req.skip : req.skip + req.limit] if record else []
    return result_set(dataset.id, count.value, page, **_precision(count))


def _ids(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [str(r.get("id")) for r in rows]


def _allele_number(stats: AlleleStats | None) -> dict[str, Any]:
    """A record-level "no" to an exact allele: the copies and called alleles the dataset
    has at the position (bcftools +fill-tags AC/AN), `alleleNumber` null where none of
    its samples is called there (unknown, not 0)."""
    if stats is None:
        return {"alleleCount": 0, "alleleNumber": None, "alleleFrequency": None}
    return {"alleleCount": stats.ac, "alleleNumber": stats.an, "alleleFrequency": stats.af}


def _precision(count: ReleasedCount) -> dict[str, Any]:
    """Beacon v2.2 resultSet countPrecision (and countAdjustedTo when adjusted)."""
    out: dict[str, Any] = {"countPrecision": count.precision}
    if count.adjusted_to is not None:
        out["countAdjustedTo"] = count.adjusted_to
    return out


def _dataset_document(ctx: Context, dataset_id: str) -> dict[str, Any]:
    if ctx.catalog is not None:
        found = ctx.catalog.get("datasets", dataset_id)
        if found is not None:
            return found
    settings = ctx.registry.settings(dataset_id)
    doc: dict[str, Any] = {"id": dataset_id, "name": settings.name or dataset_id}
    if settings.description:
        doc["description"] = settings.description
    return doc


def _collections(ctx: Context, target: EntryType, req: BeaconRequest, entry_id: str | None
                 ) -> dict[str, Any]:
    """datasets and cohorts: descriptive collections, listed to every requester (they
    are what networks use to route queries), at record granularity."""
    if target.path == "datasets":
        docs = [_dataset_document(ctx, d) for d in ctx.dataset_ids()
                if req.dataset_ids is None or d in req.dataset_ids]
    else:
        docs = ctx.catalog.search("cohorts", dataset_ids=req.dataset_ids, filters=()) \
            if ctx.catalog is not None else []
    if entry_id is not None:
        docs = [d for d in docs if d.get("id") == entry_id]
    page = docs[req.skip : req.skip + req.limit]
    sets = [{"exists": bool(docs), "resultsCount": len(docs), "results": page}]
    granularity = Granularity.RECORD if req.granularity is Granularity.RECORD else req.granularity
    return response_envelope(ctx.settings.node.id, req, target, granularity, sets)


def _entries_of_variant(ctx: Context, target: EntryType, req: BeaconRequest, variant_id: str
                        ) -> dict[str, Any]:
    """/g_variants/{id}/{biosamples,individuals,runs,analyses}: entries of the carriers."""
    catalog = _require_catalog(ctx)
    query = query_for_id(variant_id)
    access = _plan(ctx, req)
    sets = []
    for dataset in access.datasets:
        ids: list[str] = []
        if dataset.id in ctx.store_ids:
            store = ctx.registry.store(dataset.id)
            for v in selector(query)(store):
                for rec in carriers(store, v, None):
                    index = rec.alts.index(v.alt) + 1
                    ids += [c.sample for c in rec.calls if index in c.alleles]
        rows = _carrier_rows(catalog, dataset.id, sorted(set(ids)), target)
        sets.append(_entry_set(ctx, req, access, dataset, rows, target.path))
    return response_envelope(ctx.settings.node.id, req, target, access.granularity, sets,
                             info=_info(ctx, req, access, ()))


def _carrier_rows(catalog: MetadataCatalog, dataset_id: str, samples: list[str],
                  target: EntryType) -> list[dict[str, Any]]:
    if not samples:
        return []
    wanted = catalog.samples(dataset_id)
    linked = [catalog.sample_to_biosample(dataset_id, s) for s in samples if s in wanted]
    biosamples = sorted({b for b, _ in linked if b})
    rows: dict[str, dict[str, Any]] = {}
    for b in biosamples:
        found = [catalog.get("biosamples", b)] if target.path == "biosamples" \
            else catalog.related("biosamples", b, target.path)
        rows.update({r["id"]: r for r in found if r is not None and "id" in r})
    return [rows[k] for k in sorted(rows)]

