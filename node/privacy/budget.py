"""Per-requester disclosure budget against membership inference.

Thresholds and noise only raise the price of the Shringarpure-Bustamante attack (hiding
alleles with AC <= 9 still let a defence-aware attacker win in ~300 queries in our
simulation, notes/access-privacy-federation.md); what bounds it is charging each
revealing answer to the requester and refusing once the budget is spent:

- a "yes" is charged the log-likelihood ratio it can give an attacker testing whether a
  target is in the dataset (`membership_llr`, nats);
- a noised count is charged its ε (sequential composition: ε adds up).

Budgets live in SQLite (WAL) by default: they survive restarts and can be shared by
replicas on one host or a shared volume that supports POSIX locks. Check-and-charge is a
single `BEGIN IMMEDIATE` transaction, so concurrent processes cannot both spend the last
unit. Replicas on several hosts share a Redis server instead (node/privacy/redis_budget.py,
`privacy.budget.backend = "redis"`); `open_budget` picks the configured store.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from node.config import BudgetSettings
from node.errors import BudgetExhausted

__all__ = [
    "Account",
    "Balance",
    "BudgetStore",
    "Charge",
    "Limits",
    "Release",
    "SQLiteBudget",
    "beta_prior_llr",
    "budget_refusal",
    "check_fits",
    "membership_llr",
    "open_budget",
]

_SLACK = 1e-9  # float sums: never refuse a charge that fits exactly


def membership_llr(allele_frequency: float, n_individuals: int, *, delta: float = 1e-6) -> float:
    """The evidence (nats) one "yes" gives the SB likelihood-ratio test for membership.

    With D_N = (1-f)^(2N) the chance that none of N diploid individuals carries an allele
    of frequency f, a "yes" contributes log[(1-D_N) / (1-δ·D_{N-1})] to the statistic
    (Shringarpure & Bustamante, AJHG 2015, eq. 2; δ: sequencing error). Its magnitude
    is what we charge: ≈ -log(2Nf) for rare alleles, ≈ 0 for common ones. Capped at
    log(1/δ), beyond which the error model itself makes the answer uninformative.
    """
    if n_individuals < 1 or not 0 < delta < 1:
        raise ValueError("need n_individuals >= 1 and 0 < delta < 1")
    f = min(max(allele_frequency, 0.0), 1.0)
    cap = -math.log(delta)
    if f == 0.0:
        return cap
    if f == 1.0:
        return 0.0
    log_keep = math.log1p(-f)
    d_n1 = math.exp(2 * (n_individuals - 1) * log_keep)
    one_minus_d_n = -math.expm1(2 * n_individuals * log_keep)  # 1 - D_N without cancellation
    return min(cap, max(0.0, math.log1p(-delta * d_n1) - math.log(one_minus_d_n)))


@lru_cache(maxsize=64)
def _beta_d(n_haplotypes: int, a: float, b: float) -> float:
    # D = Π_{r<2N} (b + r)/(a + b + r): P(no carrier) when f ~ Beta(a, b) (the paper's alpha, beta).
    return math.exp(sum(math.log((b + r) / (a + b + r)) for r in range(n_haplotypes)))


def beta_prior_llr(n_individuals: int, a: float, b: float, *, delta: float = 1e-6) -> float:
    """As `membership_llr`, for the paper's unknown frequencies f ~ Beta(alpha=a, beta=b)."""
    if n_individuals < 1 or a <= 0 or b <= 0:
        raise ValueError("need n_individuals >= 1 and a, b > 0")
    d_n = _beta_d(2 * n_individuals, a, b)
    d_n1 = _beta_d(2 * n_individuals - 2, a, b)
    return min(-math.log(delta), max(0.0, math.log1p(-delta * d_n1) - math.log1p(-d_n)))


@dataclass(frozen=True, slots=True)
class Charge:
    """What one answer costs: log-likelihood ratio (nats) and/or DP epsilon."""

    llr: float = 0.0
    epsilon: float = 0.0

    def __post_init__(self) -> None:
        if not (self.llr >= 0 and self.epsilon >= 0):
            raise ValueError("charges are non-negative")

    def __bool__(self) -> bool:
        return self.llr > 0 or self.epsilon > 0


@dataclass(frozen=True, slots=True)
class Account:
    """A budget other than the requester's own: a pooled class budget (`key`) and its
    limits. Charged together with the requester, atomically: both fit or neither."""

    key: str
    max_llr: float
    max_epsilon: float
    label: str = "pooled"  # says whose budget, in the refusal


@dataclass(frozen=True, slots=True)
class Limits:
    max_llr: float
    max_epsilon: float


@dataclass(frozen=True, slots=True)
class Release:
    """A set of people an answer is about (node/privacy/people.py): its charge is paid
    once per holder (a requester, a pool); the set is kept for overlap checks."""

    dataset: str
    kind: str
    digest: str
    members: bytes
    # Paid once per holder: the answer is a function of the set alone (a noised count
    # keyed by it), so asking again reveals nothing new. False: only kept for overlap
    # checks (a variant answer about a scope is charged every time).
    once: bool = True


@dataclass(frozen=True, slots=True)
class Balance:
    llr_spent: float
    llr_limit: float
    epsilon_spent: float
    epsilon_limit: float

    @property
    def llr_left(self) -> float:
        return max(0.0, self.llr_limit - self.llr_spent)

    @property
    def epsilon_left(self) -> float:
        return max(0.0, self.epsilon_limit - self.epsilon_spent)


def check_fits(balance: Balance, charge: Charge, window_s: float | None, *,
               whose: str = "your") -> None:
    """Raise BudgetExhausted unless `charge` fits in what `balance` has left."""
    over_llr = balance.llr_spent + charge.llr > balance.llr_limit + _SLACK
    over_eps = balance.epsilon_spent + charge.epsilon > balance.epsilon_limit + _SLACK
    if over_llr or over_eps:
        raise budget_refusal(window_s, whose=whose)


def budget_refusal(window_s: float | None, *, whose: str = "your") -> BudgetExhausted:
    """The error of an answer refused for the budget (the message says when it refills).
    `whose`: "your" (the requester's own) or the pooled budget refused."""
    when = (
        f"; it is restored as charges older than {window_s:g} s expire"
        if window_s is not None
        else ""
    )
    return BudgetExhausted(
        "privacy budget exhausted: this answer would reveal more about individuals "
        f"than {whose} remaining budget allows{when}"
    )


class BudgetStore(Protocol):
    max_llr: float
    max_epsilon: float
    window_s: float | None

    def charge(
        self,
        requester_id: str,
        charge: Charge,
        *,
        limits: Limits | None = None,
        pool: Account | None = None,
        release: Release | None = None,
    ) -> Balance: ...
    def balance(self, requester_id: str, limits: Limits | None = None) -> Balance: ...
    def released(self, holder: str, dataset: str, kind: str) -> list[bytes]: ...
    def close(self) -> None: ...


@dataclass(slots=True)
class _Pending:
    """One caller's charge in a group-committed batch, and how it ended."""

    requester: str
    charge: Charge
    now: float
    limits: Limits
    pool: Account | None = None
    release: Release | None = None
    balance: Balance | None = None
    error: BaseException | None = None
    done: bool = False


_SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    requester TEXT NOT NULL,
    at REAL NOT NULL,
    llr REAL NOT NULL,
    epsilon REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS charges_by_requester ON charges (requester, at);
CREATE TABLE IF NOT EXISTS released (
    holder TEXT NOT NULL,
    dataset TEXT NOT NULL,
    kind TEXT NOT NULL,
    digest TEXT NOT NULL,
    at REAL NOT NULL,
    members BLOB NOT NULL,
    PRIMARY KEY (holder, dataset, kind, digest)
);
"""


class SQLiteBudget:
    """Budgets in one SQLite file. Methods block briefly; call them off the event loop
    (`asyncio.to_thread`) in servers."""

    def __init__(
        self,
        path: Path,
        *,
        max_llr: float,
        max_epsilon: float,
        window_s: float | None = None,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 10.0,
    ) -> None:
        self.max_llr, self.max_epsilon, self.window_s = max_llr, max_epsilon, window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._queue: list[_Pending] = []
        self._writing = False
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            path, timeout=timeout_s, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def from_settings(cls, settings: BudgetSettings, *, home: Path) -> SQLiteBudget:
        path = Path(settings.path)
        return cls(
            path if path.is_absolute() else home / path,
            max_llr=settings.max_llr,
            max_epsilon=settings.max_epsilon,
            window_s=settings.window_s,
        )

    def charge(
        self,
        requester_id: str,
        charge: Charge,
        *,
        limits: Limits | None = None,
        pool: Account | None = None,
        release: Release | None = None,
    ) -> Balance:
        """Spend `charge` or raise BudgetExhausted, atomically across processes.

        `limits`: the requester's, when not the store's defaults; `pool`: a pooled budget
        charged too (both fit or neither is charged); `release`: the set of people the
        answer is about: each holder pays for a given set once per window.

        Group commit: concurrent charges join one transaction (one fsync); each is checked
        against the balance its predecessors in the batch left, in arrival order, and every
        caller returns only once the transaction holding its charge is committed."""
        item = _Pending(requester_id, charge, self._clock(),
                        limits or Limits(self.max_llr, self.max_epsilon), pool, release)
        with self._cond:
            self._queue.append(item)
            while not item.done:
                if self._writing:
                    self._cond.wait()
                    continue
                self._writing = True
                batch, self._queue = self._queue, []
                self._cond.release()
                try:
                    self._charge_batch(batch)
                finally:
                    self._cond.acquire()
                    self._writing = False
                    self._cond.notify_all()
        if item.error is not None:
            raise item.error
        assert item.balance is not None
        return item.balance

    def _charge_batch(self, batch: list[_Pending]) -> None:
        try:
            with self._lock:
                # IMMEDIATE takes the write lock before reading: no two processes can both
                # read the same balance and both spend it.
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    results = [self._charge_one(item) for item in batch]
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
        except BaseException as exc:  # nothing of the batch was charged: all fail closed
            for item in batch:
                item.error, item.done = exc, True
            return
        for item, result in zip(batch, results, strict=True):
            if isinstance(result, BudgetExhausted):
                item.error = result
            else:
                item.balance = result
            item.done = True

    def _charge_one(self, item: _Pending) -> Balance | BudgetExhausted:
        holders = [(item.requester, item.limits, "your")]
        if item.pool is not None and item.pool.key != item.requester:
            pool = item.pool
            holders.append((pool.key, Limits(pool.max_llr, pool.max_epsilon), pool.label))
        due: list[tuple[str, Charge]] = []
        mine: Balance | None = None
        for key, limits, whose in holders:
            spent = self._balance(key, item.now, limits)
            charge = self._due(key, item)
            if charge:
                try:
                    check_fits(spent, charge, self.window_s, whose=whose)
                except BudgetExhausted as refused:
                    return refused
            due.append((key, charge))
            mine = mine or Balance(spent.llr_spent + charge.llr, limits.max_llr,
                                   spent.epsilon_spent + charge.epsilon, limits.max_epsilon)
        for key, charge in due:
            self._record(key, charge, item)
        assert mine is not None
        return mine

    def _due(self, holder: str, item: _Pending) -> Charge:
        """`item`'s charge to `holder`: nothing when it paid for the same set already."""
        r = item.release
        if r is None or not r.once or not item.charge:
            return item.charge
        found = self._db.execute(
            "SELECT 1 FROM released WHERE holder = ? AND dataset = ? AND kind = ? AND "
            "digest = ? AND at > ?", (holder, r.dataset, r.kind, r.digest,
                                      self._since(item.now))).fetchone()
        return Charge() if found else item.charge

    def _record(self, holder: str, charge: Charge, item: _Pending) -> None:
        r = item.release
        if not charge and r is None:
            return
        self._prune(holder, item.now)
        if charge:
            self._db.execute("INSERT INTO charges VALUES (?, ?, ?, ?)",
                             (holder, item.now, charge.llr, charge.epsilon))
        if r is not None:  # a set released before keeps its first time (when it was paid)
            self._db.execute("INSERT OR IGNORE INTO released VALUES (?, ?, ?, ?, ?, ?)",
                             (holder, r.dataset, r.kind, r.digest, item.now, r.members))

    def released(self, holder: str, dataset: str, kind: str) -> list[bytes]:
        """The sets of `kind` in `dataset` released to `holder` in the window."""
        with self._lock:
            rows = self._db.execute(
                "SELECT members FROM released WHERE holder = ? AND dataset = ? AND kind = ? "
                "AND at > ?", (holder, dataset, kind, self._since(self._clock()))).fetchall()
        return [bytes(r[0]) for r in rows]

    def balance(self, requester_id: str, limits: Limits | None = None) -> Balance:
        with self._lock:
            return self._balance(requester_id, self._clock(), limits)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _since(self, now: float) -> float:
        return -math.inf if self.window_s is None else now - self.window_s

    def _balance(self, requester_id: str, now: float, limits: Limits | None = None
                 ) -> Balance:
        llr, eps = self._db.execute(
            "SELECT COALESCE(SUM(llr), 0), COALESCE(SUM(epsilon), 0) FROM charges "
            "WHERE requester = ? AND at > ?",
            (requester_id, self._since(now)),
        ).fetchone()
        limits = limits or Limits(self.max_llr, self.max_epsilon)
        return Balance(float(llr), limits.max_llr, float(eps), limits.max_epsilon)

    def _prune(self, requester_id: str, now: float) -> None:
        if self.window_s is not None:
            since = self._since(now)
            self._db.execute(
                "DELETE FROM charges WHERE requester = ? AND at <= ?", (requester_id, since))
            self._db.execute(
                "DELETE FROM released WHERE holder = ? AND at <= ?", (requester_id, since))


def open_budget(settings: BudgetSettings, *, home: Path) -> BudgetStore:
    """The configured budget store: SQLite under `home`, or the Redis server."""
    if settings.backend == "redis":
        from node.privacy.redis_budget import RedisBudget

        return RedisBudget.from_settings(settings)
    return SQLiteBudget.from_settings(settings, home=home)
