"""The disclosure gate: every answer of the node leaves through it.

One `DisclosureGate` per node (built from settings, holding the budget store, the audit
log and the key of the people-count noise); one `Ledger` per request, opened with the
requester's budget key and class (anonymous: an address; registered: a token). Exits:

- `Ledger.release` — a count of *variants*. Priced per matched allele as the
  Shringarpure-Bustamante log-likelihood ratio a "yes" can give an attacker
  (`membership_llr`) when the allele is rare (`disclosure`), in the population the
  answer is about: the dataset, or the scope a query's filters or entry id select, with
  the scope's own allele statistics and size (service.search_variants). A scope is first
  admitted (`Ledger.admit_scope`): below record level, fewer than `scope_floor` people,
  or a differencing pair with one already answered about, is refused before anything is
  computed, so the refusal is the same whatever the answer would have been.
- `Ledger.release_people` — a count of *people* (individuals, biosamples, runs,
  analyses, carriers). Exact at record level; below it refused when it completes a
  differencing pair (`check_overlap`), else noised with the two-sided geometric
  mechanism keyed by the set (node/privacy/people.py: the same set gets the same answer),
  thresholded, marked imprecise and charged its ε once per distinct set.
- `Ledger.account` — a charge priced elsewhere with this gate (the aggregator's merged
  federated answer, the peer API's batches).

Each charge (`spend`) is taken atomically from the requester's budget and from its
class's pooled budget for the dataset (anonymous and registered requesters each share
one, so fresh addresses or tokens do not multiply what the class can learn); a charge
that does not fit raises `BudgetExhausted` (403 / gRPC RESOURCE_EXHAUSTED) and nothing
is released. A requester entitled to records is never charged. The ledger keeps what was
released and charged, so the transport writes exactly one audit entry per request
(`DisclosureGate.audit`), refused requests included.

Budget keys: an authenticated requester is `Principal.requester_id` (pseudonymous);
anonymous requesters are keyed per client address (`anonymous_key`).

Blocking (SQLite or Redis, the log file): call from a worker thread.
"""

from __future__ import annotations

import hashlib
import logging
import random
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from node.config import PrivacySettings, Settings
from node.domain import AlleleStats, Principal
from node.errors import BudgetExhausted, PermissionDenied
from node.names import CountPrecision, Granularity
from node.privacy.audit import AuditLog, entry
from node.privacy.budget import (
    Account,
    Balance,
    BudgetStore,
    Charge,
    Limits,
    Release,
    budget_refusal,
    check_fits,
    open_budget,
)
from node.privacy.guard import CountGuard, GuardedCount
from node.privacy.people import PeopleSet, keyed_noise, load_secret, members_of, overlap
from node.privacy.pricing import Pricing

__all__ = ["ChargeDeferred", "DisclosureGate", "Ledger", "anonymous_key"]

log = logging.getLogger("fednode.privacy")


def anonymous_key(client_address: str | None) -> str:
    """The budget key of an anonymous client: a hash, so the log holds no addresses."""
    return _anonymous_key((client_address or "unknown").strip())


@lru_cache(maxsize=4096)  # bounded: a hash per request is measurable under load
def _anonymous_key(address: str) -> str:
    return "anon:" + hashlib.sha256(address.encode()).hexdigest()[:32]


class ChargeDeferred(Exception):
    """Raised by a deferring ledger (`Ledger.defer_charges`) before the first answer that
    costs budget: charging needs the budget store (I/O), so the caller answers again off
    the event loop with a fresh ledger. Nothing was charged or released."""


def requester_key(principal: Principal, client_address: str | None) -> str:
    return anonymous_key(client_address) if principal.is_anonymous else principal.requester_id


@dataclass
class Ledger:
    """What one request released and was charged (not shared between requests)."""

    gate: DisclosureGate
    requester: str
    anonymous: bool = False  # its class: anonymous (an address) or authenticated (a token)
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)
    llr: float = 0.0
    epsilon: float = 0.0
    # On an event loop: raise ChargeDeferred rather than call the budget store.
    defer_charges: bool = False

    @contextmanager
    def deferring(self) -> Iterator[None]:
        """Answers on an event loop: an answer costing budget raises ChargeDeferred, and
        what was released before it is forgotten (nothing was charged: the answer is
        computed again with the store)."""
        self.defer_charges = True
        try:
            yield
        except ChargeDeferred:
            self.counts.clear()
            self.llr = self.epsilon = 0.0
            raise
        finally:
            self.defer_charges = False

    def release(
        self,
        n: int,
        dataset_id: str,
        *,
        granularity: Granularity,
        alleles: Sequence[AlleleStats] = (),
        individuals: int = 0,
        entitled: Granularity | None = None,
        scope: PeopleSet | None = None,
    ) -> GuardedCount:
        """The reportable form of a variant count `n` for `dataset_id`, after charging
        what it reveals.

        `alleles`: statistics of the matched alleles, in the population the answer is
        about; `individuals`: that population's size (the N of the likelihood ratio);
        `scope`: that population when it is a subset of the dataset (admitted before with
        `admit_scope`; recorded for overlap checks with the charge); `entitled`: the most
        this requester may see of the dataset. A requester entitled to records is not
        charged, whatever granularity it asked for: it could read them.
        """
        priced_at = _priced_at(granularity, entitled)
        gate = self.gate
        guarded = gate.variant_count(n, granularity=priced_at, alleles=len(alleles))
        if gate.charging:  # without a budget nothing is charged, so nothing is priced
            charge = gate.price(alleles, priced_at, individuals, guarded)
            recorded = scope if priced_at is not Granularity.RECORD else None
            if self.defer_charges and (gate.needs_store(charge) or recorded is not None):
                raise ChargeDeferred
            gate.spend(self, charge, dataset=dataset_id, people=recorded)
            self.llr += charge.llr
            self.epsilon += charge.epsilon
        self.counts[dataset_id] = _count_entry(guarded)
        return guarded

    def admit_scope(self, scope: PeopleSet, universe: PeopleSet, *,
                    granularity: Granularity, entitled: Granularity | None) -> None:
        """Refuse (PermissionDenied) an answer about `scope`, a subset of the dataset's
        `universe`, that is too small or too close to one already given, below record
        level. Called before the answer is computed: the refusal is the same whatever the
        answer would have been."""
        if _priced_at(granularity, entitled) is Granularity.RECORD:
            return
        floor = self.gate.privacy.scope_floor
        if scope.size < floor:
            raise PermissionDenied(
                f"the query is about fewer than {floor} people (its filters or entry id "
                "select so few samples); such answers need record-level access")
        self.gate.check_overlap(self, scope, universe)

    def release_people(
        self,
        people: PeopleSet,
        *,
        granularity: Granularity,
        entitled: Granularity | None = None,
        universe: PeopleSet | None = None,
    ) -> GuardedCount:
        """The reportable size of a set of people (individuals, biosamples, runs,
        analyses, carriers): exact for record-level requesters; below it, refused when it
        would complete a differencing pair, else noised (keyed by the set), thresholded
        and charged once per distinct set (node/privacy/people.py)."""
        gate = self.gate
        if _priced_at(granularity, entitled) is Granularity.RECORD:
            guarded = GuardedCount(people.size, CountPrecision.EXACT)
        else:
            if self.defer_charges:
                raise ChargeDeferred
            if universe is not None:
                gate.check_overlap(self, people, universe)
            guarded = gate.people_count(people, upper=None if universe is None
                                        else max(universe.size, people.size))
            charge = Charge(epsilon=guarded.epsilon or 0.0)
            gate.spend(self, charge, dataset=people.dataset, people=people, once=True)
            # What this request was charged: a set paid for before costs nothing again.
            self.epsilon += charge.epsilon
        self.counts[people.dataset] = _count_entry(guarded)
        return guarded

    def account(self, charge: Charge, counts: Mapping[str, Mapping[str, Any]],
                *, dataset: str) -> None:
        """Charge an answer priced elsewhere (the aggregator's merged federated answer,
        priced by node/peer/pricing.py with this gate) through the gate's one exit."""
        self.gate.spend(self, charge, dataset=dataset)
        self.llr += charge.llr
        self.epsilon += charge.epsilon
        self.counts.update({k: dict(v) for k, v in counts.items()})


def _priced_at(granularity: Granularity, entitled: Granularity | None) -> Granularity:
    return Granularity.RECORD if entitled is Granularity.RECORD else granularity


def _fits_empty(budget: BudgetStore, charge: Charge, limits: Limits | None = None) -> bool:
    limits = limits or Limits(budget.max_llr, budget.max_epsilon)
    try:
        check_fits(Balance(0.0, limits.max_llr, 0.0, limits.max_epsilon), charge, None)
    except BudgetExhausted:
        return False
    return True


def _too_close(k: int) -> PermissionDenied:
    return PermissionDenied(
        f"this answer would be about a group of people that differs by fewer than {k} "
        "from the whole dataset or from a group already answered about; comparing the two "
        "would reveal individuals, so it needs record-level access")


def _count_entry(guarded: GuardedCount) -> dict[str, Any]:
    entry: dict[str, Any] = {"value": guarded.value, "precision": guarded.precision.value}
    if guarded.adjusted_to is not None:
        entry["adjustedTo"] = guarded.adjusted_to
    if guarded.epsilon is not None:
        entry["epsilon"] = guarded.epsilon
    return entry


class DisclosureGate:
    """Guard, budget and audit of one node. `budget`/`audit` None: that defence is off."""

    def __init__(
        self,
        privacy: PrivacySettings,
        *,
        budget: BudgetStore | None,
        audit: AuditLog | None,
        rng: random.Random | None = None,
        secret: bytes | None = None,
        on_pool_refusal: Callable[[str], None] | None = None,
    ) -> None:
        self.privacy = privacy
        # The key of the people-count noise: the node's (from_settings), else one of this
        # gate's own (tests; answers then differ between gates).
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._on_pool_refusal = on_pool_refusal
        self._guard = CountGuard.from_settings(privacy, rng=rng)
        self._variant_guard = (
            CountGuard(min_count=1, epsilon=privacy.variant_epsilon, rng=rng)
            if privacy.variant_epsilon is not None
            else None
        )
        self._pricing = Pricing(privacy)
        self._budget = budget
        self._audit = audit

    @classmethod
    def from_settings(cls, settings: Settings, *,
                      on_pool_refusal: Callable[[str], None] | None = None) -> DisclosureGate:
        privacy = settings.privacy
        budget = (
            open_budget(privacy.budget, home=settings.home)
            if privacy.budget.enabled
            else None
        )
        audit = (
            AuditLog.from_settings(settings.audit, home=settings.home)
            if settings.audit.enabled
            else None
        )
        secret = load_secret(settings.home / privacy.noise_secret_file)
        return cls(privacy, budget=budget, audit=audit, secret=secret,
                   on_pool_refusal=on_pool_refusal)

    @property
    def charging(self) -> bool:
        """Whether answers are charged to a budget (else they are not priced either)."""
        return self._budget is not None

    def ledger(self, principal: Principal, client_address: str | None) -> Ledger:
        return Ledger(self, requester_key(principal, client_address),
                      anonymous=principal.is_anonymous)

    def people_count(self, people: PeopleSet, *, upper: int | None) -> GuardedCount:
        """`people.size` with the set's keyed noise (clamped to [0, upper]), threshold
        and rounding; exact but thresholded when `people_epsilon` is off."""
        eps = self.privacy.people_epsilon
        if eps is None:
            return self._guard.coarsen(people.size)
        noised = max(0, people.size + keyed_noise(self._secret, people, eps))
        if upper is not None:
            noised = min(noised, upper)
        return self._guard.coarsen(noised, epsilon=eps, bound=upper)

    def check_overlap(self, ledger: Ledger, people: PeopleSet, universe: PeopleSet) -> None:
        """Refuse `people` when it differs by 1..k-1 people from the whole dataset or from
        a set of its kind already released to the requester's class (its pool; its own
        when it has none): the second half of a differencing pair."""
        if not self.privacy.overlap_control:
            return
        k = self.privacy.min_count
        if 0 < overlap(people.members, universe.members) < k:
            raise _too_close(k)
        if self._budget is None:
            return
        holder = self._holder(ledger, people.dataset)
        for blob in self._budget.released(holder, people.dataset, people.kind):
            other = members_of(blob)
            if abs(other.size - people.size) < k and 0 < overlap(people.members, other) < k:
                raise _too_close(k)

    def _holder(self, ledger: Ledger, dataset: str) -> str:
        pool = self._pool(ledger, dataset)
        return ledger.requester if pool is None else pool.key

    def _pool(self, ledger: Ledger, dataset: str) -> Account | None:
        """The pooled class budget `ledger`'s requester shares, per dataset."""
        settings, store = self.privacy.budget, self._budget
        if store is None:
            return None
        who = "anonymous" if ledger.anonymous else "registered"
        llr = settings.pool_max_llr if settings.pool_max_llr is not None else 50 * store.max_llr
        return Account(f"pool:{who}:{dataset}", llr, settings.pool_max_epsilon,
                       label=f"the {who} requesters' pooled")

    def _limits(self, ledger: Ledger) -> Limits:
        """The store's limits; an anonymous address gets no more ε than its own cap."""
        assert self._budget is not None
        store = self._budget
        eps = store.max_epsilon
        if ledger.anonymous:
            eps = min(eps, self.privacy.budget.anonymous_max_epsilon)
        return Limits(store.max_llr, eps)

    def variant_count(self, n: int, *, granularity: Granularity, alleles: int
                      ) -> GuardedCount:
        """Variant counts are exact unless `variant_epsilon` is set: then the two-sided
        geometric mechanism (sensitivity 1: one person adds or removes one matched allele),
        `imprecise`, carrying ε times the alleles matched (group privacy over them)."""
        if self._variant_guard is None or granularity is Granularity.RECORD:
            return GuardedCount(n, CountPrecision.EXACT)
        noised = self._variant_guard.count(n)
        return replace(noised, precision=CountPrecision.IMPRECISE,
                       epsilon=(noised.epsilon or 0.0) * max(1, alleles))

    def price(
        self,
        alleles: Sequence[AlleleStats],
        granularity: Granularity,
        individuals: int,
        guarded: GuardedCount,
        *,
        people: bool = False,
    ) -> Charge:
        """What an answer about `alleles` reveals (node/privacy/pricing.py)."""
        return self._pricing.price(alleles, granularity, individuals, guarded, people=people)

    def needs_store(self, charge: Charge) -> bool:
        """Whether `spend(charge)` calls the budget store (I/O); free answers, and charges
        larger than a whole budget (refused whatever was spent), do not."""
        return self._budget is not None and bool(charge) and _fits_empty(self._budget, charge)

    def spend(self, ledger: Ledger, charge: Charge, *, dataset: str,
              people: PeopleSet | None = None, once: bool = False) -> None:
        """Charge `ledger`'s requester and its class's pool for `dataset`, or raise
        BudgetExhausted (nothing is charged then). `people`: the set the answer is about,
        kept for overlap checks; `once`: the answer is a function of that set alone (a
        keyed noised count), paid once per holder. The one exit every charge of the node
        passes through."""
        budget = self._budget
        if budget is None or (not charge and people is None):
            return
        limits = self._limits(ledger)
        if not _fits_empty(budget, charge, limits):
            # More than a whole budget: refused whatever was spent, no store call needed.
            raise budget_refusal(budget.window_s)
        release = None if people is None else Release(
            people.dataset, people.kind, people.digest, people.blob(), once=once)
        pool = self._pool(ledger, dataset)
        try:
            budget.charge(ledger.requester, charge, limits=limits, pool=pool, release=release)
        except BudgetExhausted as refused:
            if pool is not None and pool.label in str(refused):
                self._pool_refused(pool.key)
            raise

    def _pool_refused(self, key: str) -> None:
        log.warning("pooled privacy budget spent: %s (answers refused until it refills)", key)
        if self._on_pool_refusal is not None:
            self._on_pool_refusal(key)

    def audit(
        self,
        ledger: Ledger,
        *,
        request_id: str,
        datasets: Sequence[str],
        query: Mapping[str, Any],
        granularity: str | None,
        outcome: str = "answered",
    ) -> None:
        """One entry per request: who, which datasets, what was asked and released."""
        record = self.audit_entry(ledger, request_id=request_id, datasets=datasets,
                                  query=query, granularity=granularity, outcome=outcome)
        if self._audit is not None and record is not None:
            self._audit.append_records([record])

    @property
    def audit_log(self) -> AuditLog | None:
        return self._audit

    def audit_entry(
        self,
        ledger: Ledger,
        *,
        request_id: str,
        datasets: Sequence[str],
        query: Mapping[str, Any],
        granularity: str | None,
        outcome: str = "answered",
    ) -> dict[str, Any] | None:
        """The audit entry of `audit` without writing it (None: the audit is off). No I/O."""
        if self._audit is None:
            return None
        budget = {"llr": ledger.llr, "epsilon": ledger.epsilon} if self._budget else {}
        return entry(request_id=request_id, requester=ledger.requester, datasets=datasets,
                     query={**query, "outcome": outcome}, granularity=granularity,
                     counts=ledger.counts, budget=budget)

    def close(self) -> None:
        if self._budget is not None:
            self._budget.close()
