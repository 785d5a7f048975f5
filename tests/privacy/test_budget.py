"""Disclosure budget: the SB charge, and the SQLite store across reopen, threads, processes.

The pool, release and limits semantics are tested against both stores, SQLite and Redis,
in test_redis_budget.py (`make_store`)."""

from __future__ import annotations

import math
import multiprocessing
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.config import BudgetSettings
from node.errors import BudgetExhausted
from node.privacy.budget import (
    Account,
    Charge,
    Limits,
    Release,
    SQLiteBudget,
    beta_prior_llr,
    membership_llr,
)

DELTA = 1e-6


def _direct_llr(f: float, n: int, delta: float = DELTA) -> float:
    # Shringarpure & Bustamante's "yes" term, evaluated naively (fine for moderate f, N).
    d_n, d_n1 = (1 - f) ** (2 * n), (1 - f) ** (2 * n - 2)
    return -math.log((1 - d_n) / (1 - delta * d_n1))


@given(f=st.floats(1e-4, 0.2), n=st.integers(1, 2000))
def test_llr_matches_the_formula(f: float, n: int) -> None:
    expected = max(0.0, _direct_llr(f, n))
    assert math.isclose(membership_llr(f, n, delta=DELTA), expected, rel_tol=1e-6, abs_tol=1e-9)


def test_llr_shape() -> None:
    n = 1000
    # Rare alleles: ~ -log(2Nf); the rarer, the more it reveals; common ones reveal ~nothing.
    assert math.isclose(membership_llr(1e-6, n), -math.log(2 * n * 1e-6), rel_tol=1e-3)
    charges = [membership_llr(f, n) for f in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)]
    assert charges == sorted(charges, reverse=True)
    assert membership_llr(0.3, n) < 1e-12
    assert membership_llr(0.0, n) == pytest.approx(-math.log(DELTA))  # capped
    assert membership_llr(1e-12, n) == pytest.approx(-math.log(DELTA))


def test_beta_prior_llr_matches_product() -> None:
    n, a, b = 50, 0.3, 2.0
    d_n = math.prod((b + r) / (a + b + r) for r in range(2 * n))
    d_n1 = math.prod((b + r) / (a + b + r) for r in range(2 * n - 2))
    expected = -math.log((1 - d_n) / (1 - DELTA * d_n1))
    assert math.isclose(beta_prior_llr(n, a, b, delta=DELTA), expected, rel_tol=1e-9)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _store(path: Path, **kw: object) -> SQLiteBudget:
    params: dict[str, object] = {"max_llr": 10.0, "max_epsilon": 2.0}
    params.update(kw)
    return SQLiteBudget(path / "budget.sqlite3", **params)  # type: ignore[arg-type]


def test_charges_accumulate_until_exhausted(tmp_path: Path) -> None:
    store = _store(tmp_path)
    for spent in (4.0, 8.0):
        assert store.charge("alice", Charge(llr=4.0)).llr_spent == pytest.approx(spent)
    with pytest.raises(BudgetExhausted, match="budget exhausted") as info:
        store.charge("alice", Charge(llr=4.0))
    assert info.value.http_status == 403 and info.value.grpc_code == "RESOURCE_EXHAUSTED"
    # The refused charge cost nothing; what still fits is allowed; the budget is exact.
    assert store.balance("alice").llr_spent == pytest.approx(8.0)
    assert store.charge("alice", Charge(llr=2.0)).llr_left == pytest.approx(0.0)
    # Non-revealing answers cost nothing and are always allowed.
    assert store.charge("alice", Charge()).llr_spent == pytest.approx(10.0)
    # Other requesters are unaffected.
    assert store.charge("bob", Charge(llr=9.0)).llr_left == pytest.approx(1.0)


def test_epsilon_budget_separate(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.charge("alice", Charge(epsilon=1.5))
    with pytest.raises(BudgetExhausted):
        store.charge("alice", Charge(llr=0.1, epsilon=1.0))
    assert store.balance("alice").llr_spent == 0.0  # all-or-nothing
    store.charge("alice", Charge(llr=9.0, epsilon=0.5))


def test_negative_charge_refused() -> None:
    with pytest.raises(ValueError):
        Charge(llr=-1.0)
    with pytest.raises(ValueError):
        Charge(epsilon=float("nan"))


def test_window_restores_budget(tmp_path: Path) -> None:
    clock = Clock()
    store = _store(tmp_path, window_s=3600, clock=clock)
    store.charge("alice", Charge(llr=10.0))
    with pytest.raises(BudgetExhausted, match="3600"):
        store.charge("alice", Charge(llr=1.0))
    clock.now += 3601
    assert store.charge("alice", Charge(llr=1.0)).llr_spent == pytest.approx(1.0)


def test_persists_across_reopen(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.charge("alice", Charge(llr=7.5, epsilon=1.0))
    store.close()
    reopened = SQLiteBudget.from_settings(
        BudgetSettings(path="budget.sqlite3", max_llr=10.0, max_epsilon=2.0), home=tmp_path
    )
    balance = reopened.balance("alice")
    assert (balance.llr_spent, balance.epsilon_spent) == (pytest.approx(7.5), 1.0)
    with pytest.raises(BudgetExhausted):
        reopened.charge("alice", Charge(llr=3.0))


def test_pools_and_releases_persist_across_reopen(tmp_path: Path) -> None:
    pool = Account("pool:registered:ds", max_llr=5.0, max_epsilon=1.0)
    release = Release("ds", "individuals", "d1", b"\x00\xffmembers")
    store = _store(tmp_path)
    store.charge("alice", Charge(llr=4.0), pool=pool, release=release)
    store.close()
    reopened = _store(tmp_path)
    assert reopened.released("alice", "ds", "individuals") == [release.members]
    assert reopened.released(pool.key, "ds", "individuals") == [release.members]
    assert reopened.charge("bob", Charge(llr=4.0), pool=pool, release=release).llr_spent == 4.0
    assert reopened.balance(pool.key, Limits(5.0, 1.0)).llr_left == pytest.approx(1.0)


def test_threads_do_not_overspend(tmp_path: Path) -> None:
    store = _store(tmp_path, max_llr=50.0)
    granted: list[int] = []

    def spend() -> None:
        for _ in range(10):
            try:
                store.charge("alice", Charge(llr=1.0))
                granted.append(1)
            except BudgetExhausted:
                pass

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 50
    assert store.balance("alice").llr_spent == pytest.approx(50.0)


def _spend_in_process(path: str, attempts: int, results: multiprocessing.Queue[int]) -> None:
    store = SQLiteBudget(Path(path), max_llr=40.0, max_epsilon=1.0)
    granted = 0
    for _ in range(attempts):
        try:
            store.charge("alice", Charge(llr=1.0))
            granted += 1
        except BudgetExhausted:
            pass
    results.put(granted)


def test_two_processes_do_not_overspend(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    SQLiteBudget(path, max_llr=40.0, max_epsilon=1.0).close()  # create schema first
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[int] = ctx.Queue()
    procs = [ctx.Process(target=_spend_in_process, args=(str(path), 30, results)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    granted = [results.get(timeout=5) for _ in procs]
    assert sum(granted) == 40  # 60 attempts, 40 units: exactly the budget, never more
    final = SQLiteBudget(path, max_llr=40.0, max_epsilon=1.0).balance("alice")
    assert final.llr_spent == pytest.approx(40.0)


def test_concurrent_charges_share_commits_and_spend_exactly_the_limit(tmp_path: Path) -> None:
    store = SQLiteBudget(tmp_path / "b.sqlite3", max_llr=10.0, max_epsilon=1.0)
    commits: list[str] = []

    def slow_commit(sql: str) -> None:
        if sql == "COMMIT":
            commits.append(sql)
            time.sleep(0.005)  # a disk's flush: what group commit amortises

    store._db.set_trace_callback(slow_commit)
    answered: list[bool] = []

    def worker() -> None:
        for _ in range(5):
            try:
                store.charge("alice", Charge(llr=0.5))
                answered.append(True)
            except BudgetExhausted:
                answered.append(False)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answered.count(True) == 20 and answered.count(False) == 20
    assert store.balance("alice").llr_spent == pytest.approx(10.0)
    assert len(commits) < 40  # charges of several callers committed together
    store.close()
