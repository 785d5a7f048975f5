"""Beacon use cases: which datasets answer, at which granularity, and with what.

Policy is applied here and only here (`plan`), and every count leaves the node through
`release_count` — the one place the privacy guard (issue 5: thresholds, noise, budgets)
plugs in. Functions are blocking (store calls); transports run them in a thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any, Protocol

import numpy as np

from node.auth.policy import effective_granularity
from node.config import DatasetSettings
from node.domain import AlleleKey, AlleleStats, Filter, Principal, Record, Region, Variant
from node.errors import NotFound, TimedOut
from node.names import CountPrecision, Granularity
from node.privacy.gate import Ledger
from node.privacy.guard import GuardedCount
from node.privacy.people import PeopleSet, people_set
from node.store.base import VariantStore
from node.store.read.batch import genotype_batches
from node.store.registry import DatasetRegistry

__all__ = [
    "AccessPlan",
    "DatasetAccess",
    "DatasetVariants",
    "MetadataCatalog",
    "Planner",
    "ReleasedCount",
    "allele_numbers",
    "carriers",
    "plan",
    "records_of",
    "release_count",
    "release_people",
    "search_variants",
    "subset_stats",
]

Selector = Callable[[VariantStore], Iterator[Variant]]


class MetadataCatalog(Protocol):
    """What the Beacon layer needs of the metadata catalog (node/catalog)."""

    def dataset_ids(self) -> tuple[str, ...]: ...
    def get(self, entry_type: str, entry_id: str) -> dict[str, Any] | None: ...
    def search(
        self, entry_type: str, *, dataset_ids: Sequence[str] | None, filters: Sequence[Filter]
    ) -> list[dict[str, Any]]: ...
    def unknown_filters(self, filters: Sequence[Filter]) -> list[str]: ...
    def related(self, from_type: str, from_id: str, to_type: str) -> list[dict[str, Any]]: ...
    def samples(
        self,
        dataset_id: str,
        *,
        filters: Sequence[Filter] = (),
        entry_ids: Mapping[str, Sequence[str]] | None = None,
    ) -> frozenset[str]: ...
    def sample_to_biosample(
        self, dataset_id: str, vcf_sample: str
    ) -> tuple[str | None, str | None]: ...
    def filtering_terms(self, dataset_ids: Sequence[str] | None = None) -> list[dict[str, Any]]: ...
    def datasets_of(self, entry_type: str, entry_id: str) -> tuple[str, ...]: ...
    def resident(self) -> bool:
        """Whether calls answer from memory now (no I/O): callable on an event loop."""
        ...


@dataclass(frozen=True, slots=True)
class DatasetAccess:
    id: str
    settings: DatasetSettings
    granularity: Granularity  # the most this requester may see of this dataset


@dataclass(frozen=True, slots=True)
class AccessPlan:
    """Datasets answering one request at one `granularity`; `omitted` could only answer
    at a lower one (reported, never silently merged into a more revealing answer)."""

    granularity: Granularity
    datasets: tuple[DatasetAccess, ...]
    omitted: tuple[DatasetAccess, ...] = ()


@dataclass(frozen=True, slots=True)
class ReleasedCount:
    value: int
    precision: CountPrecision = CountPrecision.EXACT
    adjusted_to: int | None = None  # Beacon v2.2 countAdjustedTo: threshold or rounding unit


@dataclass(frozen=True, slots=True)
class DatasetVariants:
    dataset: DatasetAccess
    count: ReleasedCount
    variants: tuple[Variant, ...] = ()  # the requested page, record granularity only
    records: Mapping[AlleleKey, tuple[Record, ...]] = field(default_factory=dict)


def plan(
    ids: Sequence[str],
    settings_of: Callable[[str], DatasetSettings],
    principal: Principal,
    *,
    requested: Sequence[str] | None,
    granularity: Granularity,
    now: int | None = None,
) -> AccessPlan:
    """Which of the node's datasets `ids` answer, and the response granularity: the
    requested one, capped by the best any dataset allows this principal."""
    if requested is not None:
        unknown = sorted(set(requested) - set(ids))
        if unknown:
            raise NotFound(f"unknown dataset id(s): {', '.join(unknown)[:200]}")
    chosen = [i for i in ids if requested is None or i in requested]
    stamp = int(time.time()) if now is None else now
    access = []
    for dataset_id in chosen:
        settings = settings_of(dataset_id)
        allowed = effective_granularity(principal, dataset_id, settings, now=stamp)
        if allowed is not None:
            access.append(DatasetAccess(dataset_id, settings, allowed))
    best = max((a.granularity for a in access), key=lambda g: g.rank, default=granularity)
    level = min(granularity, best, key=lambda g: g.rank)
    keep = tuple(a for a in access if a.granularity.rank >= level.rank)
    omitted = tuple(a for a in access if a.granularity.rank < level.rank)
    return AccessPlan(level, keep, omitted)


class Planner:
    """`plan` for one node's settings, with each dataset's settings read once and the
    plans of anonymous requesters kept: those depend only on the request and the settings
    (no grants, no expiry), and are the same for every anonymous request."""

    _MAX_KEPT = 1024

    def __init__(self, settings_of: Callable[[str], DatasetSettings]) -> None:
        self._settings_of = settings_of
        self._settings: dict[str, DatasetSettings] = {}
        self._anonymous: dict[tuple[object, ...], AccessPlan] = {}

    def settings(self, dataset_id: str) -> DatasetSettings:
        found = self._settings.get(dataset_id)
        if found is None:
            found = self._settings[dataset_id] = self._settings_of(dataset_id)
        return found

    def plan(
        self,
        ids: Sequence[str],
        principal: Principal,
        *,
        requested: Sequence[str] | None,
        granularity: Granularity,
    ) -> AccessPlan:
        if not principal.is_anonymous:
            return plan(ids, self.settings, principal, requested=requested,
                        granularity=granularity)
        key = (tuple(ids), None if requested is None else tuple(requested), granularity)
        found = self._anonymous.get(key)
        if found is None:
            found = plan(ids, self.settings, principal, requested=requested,
                         granularity=granularity)
            if len(self._anonymous) >= self._MAX_KEPT:
                self._anonymous.clear()
            self._anonymous[key] = found
        return found


def release_count(
    n: int,
    dataset: DatasetAccess,
    principal: Principal,
    *,
    ledger: Ledger | None = None,
    granularity: Granularity | None = None,
    alleles: Sequence[AlleleStats] = (),
    individuals: int = 0,
    scope: PeopleSet | None = None,
) -> ReleasedCount:
    """The single exit of every variant count: guarded, charged to the requester's budget
    (raises BudgetExhausted) and recorded in the request's `ledger` (node/privacy/gate.py).

    `alleles`: statistics of the alleles behind the count, in the population it is about
    (`individuals` people; `scope` when a subset of the dataset). Without a ledger (no
    gate: internal callers) the count leaves unchanged.
    """
    del principal  # the ledger already holds the requester's budget key
    if ledger is None:
        return ReleasedCount(n)
    guarded = ledger.release(
        n, dataset.id, granularity=granularity or dataset.granularity, alleles=alleles,
        individuals=individuals, entitled=dataset.granularity, scope=scope)
    return _released(guarded)


def release_people(
    people: PeopleSet,
    dataset: DatasetAccess,
    *,
    ledger: Ledger | None,
    granularity: Granularity,
    universe: PeopleSet | None,
) -> ReleasedCount:
    """The single exit of every count of people: the size of `people`, a subset of the
    dataset's `universe` (all its entries of that kind), as the gate releases it."""
    if ledger is None:
        return ReleasedCount(people.size)
    return _released(ledger.release_people(people, granularity=granularity,
                                           entitled=dataset.granularity, universe=universe))


def _released(guarded: GuardedCount) -> ReleasedCount:
    return ReleasedCount(guarded.value, guarded.precision, guarded.adjusted_to)


def carriers(store: VariantStore, v: Variant, samples: Sequence[str] | None) -> tuple[Record, ...]:
    """The records holding allele `v`, with the genotypes of `samples` (all when None)."""
    region = Region(v.contig, v.start, v.start + 1)
    found: list[Record] = []
    for batch in store.records(region, samples=samples):
        found.extend(r for r in batch if r.start == v.start and r.ref == v.ref and v.alt in r.alts)
    return tuple(found)


_PAGE_GAP = 1_000  # bases between two page variants beyond which they are read apart


def _page_records(
    store: VariantStore,
    page: Sequence[Variant],
    deadline: float | None = None,
    *,
    samples: Sequence[str] | None = None,
) -> dict[AlleleKey, tuple[Record, ...]]:
    """The records of a page of variants (calls of `samples`, all when None): one read per
    run of nearby variants, so a page spread over a chromosome does not read every record
    (and call) in between."""
    return records_of(store, page, _spans(page, _PAGE_GAP), deadline, samples=samples)


def records_of(
    store: VariantStore,
    variants: Sequence[Variant],
    regions: Iterable[Region],
    deadline: float | None = None,
    *,
    samples: Sequence[str] | None = None,
) -> dict[AlleleKey, tuple[Record, ...]]:
    """The records holding each of `variants`, read from `regions` (which cover them),
    with the calls of `samples` (all when None)."""
    out: dict[AlleleKey, list[Record]] = {v.key: [] for v in variants}
    for region in regions:
        _check(deadline)
        for batch in store.records(region, samples=samples):
            for rec in batch:
                for alt in rec.alts:
                    key = AlleleKey(rec.contig, rec.start, rec.ref, alt)
                    if key in out:
                        out[key].append(rec)
    return {k: tuple(v) for k, v in out.items()}


_CARRIED_CHUNK = 1024  # variants whose carriers are read together
_CARRIED_GAP = 100_000  # bases between two variants beyond which they are read apart


def _carried_keys(
    store: VariantStore, variants: Sequence[Variant], samples: Sequence[str]
) -> dict[AlleleKey, AlleleStats]:
    """The alleles among `variants` that some sample of `samples` carries, with their
    statistics among `samples` (what an answer about those samples is priced on).

    The genotype matrices of `samples` are read once per run of nearby variants (one
    region read each), not once per variant.
    """
    wanted = {v.key for v in variants}
    carried: dict[AlleleKey, AlleleStats] = {}
    for region in _spans(variants, _CARRIED_GAP):
        for batch in genotype_batches(store, region, samples=samples):
            for row, site in enumerate(batch.sites):
                calls = batch.alleles[row]
                held = set(np.unique(calls).tolist())
                for index, alt in enumerate(site.alts, 1):
                    key = AlleleKey(site.contig, site.start, site.ref, alt)
                    if index in held and key in wanted:
                        stats = subset_stats(calls, index)
                        known = carried.get(key)
                        carried[key] = stats if known is None else known + stats
    return carried


def subset_stats(calls: np.ndarray, index: int) -> AlleleStats:
    """Statistics of allele `index` in a (samples, ploidy) matrix of allele codes (as
    `AlleleStats` counts them over a dataset: hemizygous carriers are neither hom nor het)."""
    copies = (calls == index).sum(axis=1)
    called = (calls >= 0).sum(axis=1)
    carriers = copies > 0
    hom = carriers & (copies == called) & (called > 1)
    het = carriers & (copies < called)
    return AlleleStats(int(copies.sum()), int(called.sum()), int(hom.sum()), int(het.sum()),
                       int(carriers.sum()), int((called > 0).sum()))


def _spans(variants: Sequence[Variant], gap: int) -> Iterator[Region]:
    """Regions covering the starts of `variants`, split by contig and where two starts
    are more than `gap` bases apart."""
    by_contig: dict[str, list[int]] = {}
    for v in variants:
        by_contig.setdefault(v.contig, []).append(v.start)
    for contig, starts in by_contig.items():
        starts.sort()
        first = last = starts[0]
        for start in starts[1:]:
            if start - last > gap:
                yield Region(contig, first, last + 1)
                first = start
            last = start
        yield Region(contig, first, last + 1)


def _carried_only(
    store: VariantStore, variants: Iterator[Variant], samples: Sequence[str]
) -> Iterator[Variant]:
    """`variants` (in their order) that some sample of `samples` carries, each with its
    statistics among `samples` (not the dataset's)."""
    while chunk := list(islice(variants, _CARRIED_CHUNK)):
        carried = _carried_keys(store, chunk, samples)
        yield from (replace(v, stats=carried[v.key]) for v in chunk if v.key in carried)


def _check(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise TimedOut("the query ran past the node's time limit; narrow it (a smaller "
                       "region, fewer datasets or filters that match fewer samples)")


def _until(deadline: float | None, select: Selector) -> Selector:
    """`select`, stopping with `TimedOut` once `deadline` has passed."""
    if deadline is None:
        return select

    def run(store: VariantStore) -> Iterator[Variant]:
        _check(deadline)
        for v in select(store):  # a look at the clock costs ~0.1 us, a variant far more
            _check(deadline)
            yield v

    return run


def _assembly_ok(store: VariantStore, assembly: str | None) -> bool:
    return assembly is None or store.assembly == assembly


def search_variants(
    registry: DatasetRegistry,
    access: AccessPlan,
    select: Selector,
    principal: Principal,
    *,
    assembly: str | None,
    samples: Mapping[str, frozenset[str]] | None = None,
    skip: int = 0,
    limit: int = 10,
    ledger: Ledger | None = None,
    deadline: float | None = None,
) -> list[DatasetVariants]:
    """Matching variants per dataset. `assembly` is enforced (another build never
    matches); `samples` restricts a dataset to variants carried by those samples.

    `deadline` (`time.monotonic()`): past it the search stops with `TimedOut`, before
    any count of an unfinished dataset is released."""
    out = []
    want_page = access.granularity is Granularity.RECORD
    for dataset in access.datasets:
        store = registry.store(dataset.id)
        subset = None if samples is None else _genotyped(store, samples.get(dataset.id, ()))
        # An answer about some samples is about them: admitted and priced on their own
        # number and statistics, never the dataset's (a scope of one person would
        # otherwise answer about that person's genotype at a common allele's price).
        scope = None if subset is None else people_set(dataset.id, "samples", subset)
        if scope is not None and ledger is not None:
            ledger.admit_scope(scope, people_set(dataset.id, "samples", store.samples),
                               granularity=access.granularity, entitled=dataset.granularity)
        window = (skip, skip + limit) if want_page else (0, 0)
        total, page, stats = _matching(store, _until(deadline, select), assembly, subset,
                                       window)
        # A query scoped to some samples shows their cases only (caseLevelData).
        records = _page_records(store, page, deadline, samples=subset)
        count = release_count(total, dataset, principal, ledger=ledger,
                              granularity=access.granularity, alleles=stats,
                              individuals=len(store.samples) if scope is None else scope.size,
                              scope=scope)
        out.append(DatasetVariants(dataset, count, page, records))
    return out


def allele_numbers(
    registry: DatasetRegistry, access: AccessPlan, key: AlleleKey, *, assembly: str | None
) -> dict[str, AlleleStats | None]:
    """Record granularity: each answering dataset's statistics of `key` (AC 0 and the
    site's AN where it is called there without holding it; None where nobody is called),
    so a "no" still says over how many alleles. Nothing is priced: a requester entitled
    to records can read every genotype at the site."""
    if access.granularity is not Granularity.RECORD:
        return {}
    out: dict[str, AlleleStats | None] = {}
    for dataset in access.datasets:
        store = registry.store(dataset.id)
        if _assembly_ok(store, assembly):
            (out[dataset.id],) = store.allele_stats([key])
    return out


def _genotyped(store: VariantStore, names: Iterable[str]) -> list[str]:
    """`names` the store has genotypes of, sorted: a catalog may describe samples the
    VCF lacks (not sequenced, or not ingested yet); they carry nothing here."""
    held = frozenset(store.samples)
    return sorted(n for n in names if n in held)


def _matching(
    store: VariantStore,
    select: Selector,
    assembly: str | None,
    subset: list[str] | None,
    window: tuple[int, int],
) -> tuple[int, tuple[Variant, ...], tuple[AlleleStats, ...]]:
    """(number of matches, the matches in `window`, the statistics of every match: what
    the privacy gate prices) without holding every matching variant. `subset`: only
    variants these samples (all of them in `store`) carry."""
    if not _assembly_ok(store, assembly) or subset == []:
        return 0, (), ()
    total = 0
    page: list[Variant] = []
    stats: list[AlleleStats] = []
    # Equal statistics are kept once: a broad query matches up to millions of alleles,
    # mostly rare ones sharing a few thousand distinct counts (8 bytes each, not ~100).
    shared: dict[AlleleStats, AlleleStats] = {}
    found = select(store)
    if subset is not None:
        found = _carried_only(store, found, subset)
    for v in found:
        if window[0] <= total < window[1]:
            page.append(v)
        stats.append(shared.setdefault(v.stats, v.stats))
        total += 1
    return total, tuple(page), tuple(stats)
