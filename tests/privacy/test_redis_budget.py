"""The Redis budget store against a real redis-server: shared by replicas, atomic under
concurrency, windowed, failing closed. Skips only when the redis-server binary is absent
(`make debian-tools` installs it). The pool, release and limits semantics run against
both stores, SQLite and Redis (`make_store`): one behaviour, two backends."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from node.config import BudgetSettings, Settings, dump_settings
from node.errors import BudgetExhausted, Unavailable
from node.privacy.budget import (
    Account,
    Charge,
    Limits,
    Release,
    SQLiteBudget,
    open_budget,
)
from node.privacy.redis_budget import RedisBudget

SERVER = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if SERVER is None:
        pytest.skip("redis-server is not installed (Debian package redis-server; "
                    "`make debian-tools` installs it)")
    workdir = tmp_path_factory.mktemp("redis")
    port = _free_port()
    proc = subprocess.Popen(
        [SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
         "--save", "", "--appendonly", "no", "--requirepass", "s3cret-pw"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://:s3cret-pw@127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None:
                    pytest.fail(f"redis-server exited with {proc.returncode}")
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def settings(redis_url: str, request: pytest.FixtureRequest) -> BudgetSettings:
    # A key prefix per test: tests share the server, not budgets.
    return BudgetSettings(backend="redis", redis_url=redis_url, max_llr=3.0, max_epsilon=1.0,
                          redis_prefix=f"test:{request.node.name}:")


def test_open_budget_picks_the_backend(settings: BudgetSettings, tmp_path: Path) -> None:
    store = open_budget(settings, home=tmp_path)
    assert isinstance(store, RedisBudget)
    store.close()
    sqlite = open_budget(BudgetSettings(), home=tmp_path)
    assert isinstance(sqlite, SQLiteBudget) and (tmp_path / "budget.sqlite3").exists()
    sqlite.close()
    with pytest.raises(ValueError, match="redis_url"):
        BudgetSettings(backend="redis")
    # The URL (and its password) never appears when settings are printed.
    assert "s3cret-pw" not in dump_settings(Settings(privacy={"budget": settings}))


def test_charges_add_up_and_the_overdraft_is_refused(settings: BudgetSettings) -> None:
    store = RedisBudget.from_settings(settings)
    assert store.charge("alice", Charge(llr=1.25)).llr_spent == pytest.approx(1.25)
    assert store.charge("alice", Charge(llr=1.75, epsilon=0.5)).llr_left == pytest.approx(0.0)
    with pytest.raises(BudgetExhausted, match="budget exhausted"):
        store.charge("alice", Charge(llr=1e-3))
    with pytest.raises(BudgetExhausted):
        store.charge("alice", Charge(epsilon=0.6))
    balance = store.balance("alice")  # refused charges cost nothing
    assert (balance.llr_spent, balance.epsilon_spent) == (pytest.approx(3.0), 0.5)
    assert store.charge("alice", Charge()).llr_spent == pytest.approx(3.0)  # free answers flow
    assert store.balance("bob").llr_spent == 0.0
    store.close()


def test_two_replicas_share_one_budget_and_it_survives_reconnecting(
    settings: BudgetSettings,
) -> None:
    first, second = RedisBudget.from_settings(settings), RedisBudget.from_settings(settings)
    first.charge("carol", Charge(llr=2.0))
    assert second.balance("carol").llr_spent == pytest.approx(2.0)
    with pytest.raises(BudgetExhausted):
        second.charge("carol", Charge(llr=1.5))
    second.charge("carol", Charge(llr=1.0))
    first.close()
    second.close()
    restarted = RedisBudget.from_settings(settings)
    assert restarted.balance("carol").llr_left == pytest.approx(0.0)
    restarted.close()


def test_concurrent_charges_from_two_replicas_never_overspend(settings: BudgetSettings) -> None:
    replicas = [RedisBudget.from_settings(settings.model_copy(update={"max_llr": 50.5}))
                for _ in range(2)]
    granted: list[int] = []
    refused: list[int] = []

    def spend(store: RedisBudget) -> None:
        for _ in range(20):
            try:
                store.charge("dave", Charge(llr=1.0))
                granted.append(1)
            except BudgetExhausted:
                refused.append(1)

    threads = [threading.Thread(target=spend, args=(replicas[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (len(granted), len(refused)) == (50, 110)
    assert replicas[0].balance("dave").llr_spent == pytest.approx(50.0)
    for store in replicas:
        store.close()


def test_charges_expire_with_the_window(redis_url: str) -> None:
    now = [1000.0]
    client = redis.Redis.from_url(redis_url)
    store = RedisBudget(client, max_llr=2.0, max_epsilon=1.0, window_s=60,
                        prefix="test:window:", clock=lambda: now[0])
    store.charge("erin", Charge(llr=2.0))
    with pytest.raises(BudgetExhausted, match="60 s"):
        store.charge("erin", Charge(llr=0.5))
    now[0] += 61
    assert store.charge("erin", Charge(llr=1.5)).llr_spent == pytest.approx(1.5)
    assert 0 < client.ttl("test:window:erin") <= 62  # idle requesters' keys go away
    store.close()


def test_unreachable_redis_fails_closed_without_leaking_the_url() -> None:
    url = f"redis://:hunter2-secret@127.0.0.1:{_free_port()}/0"
    store = RedisBudget.from_settings(BudgetSettings(backend="redis", redis_url=url))
    with pytest.raises(Unavailable) as caught:
        store.charge("frank", Charge(llr=1.0))
    assert "hunter2" not in str(caught.value) and caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    with pytest.raises(Unavailable):
        store.released("frank", "ds", "individuals")


def test_release_keys_expire_with_the_window(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = RedisBudget(client, max_llr=2.0, max_epsilon=1.0, window_s=60,
                        prefix="test:release-ttl:")
    store.charge("gina", Charge(llr=1.0), release=Release("ds", "individuals", "d1", b"\0"))
    keys = client.keys("test:release-ttl:gina*")
    assert len(keys) == 3  # the charges, the release's members and its times
    assert all(0 < client.ttl(k) <= 62 for k in keys)  # idle holders' keys go away
    store.close()


# The same semantics against both stores.

Store = SQLiteBudget | RedisBudget
MakeStore = Callable[..., Store]
POOL = Account("pool:registered:ds", max_llr=4.0, max_epsilon=1.0,
               label="the registered requesters' pooled")
POOL_LIMITS = Limits(POOL.max_llr, POOL.max_epsilon)


def _release(digest: str, members: bytes = b"\x00\xff\x01members\x00") -> Release:
    return Release("ds", "individuals", digest, members)


@pytest.fixture(params=["sqlite", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStore]:
    """Opens stores on one budget (a file, a key prefix): each call is another replica."""
    opened: list[Store] = []

    def make(*, window_s: float | None = None, clock: Callable[[], float] = time.time
             ) -> Store:
        store: Store
        if request.param == "sqlite":
            store = SQLiteBudget(tmp_path / "budget.sqlite3", max_llr=3.0, max_epsilon=1.0,
                                 window_s=window_s, clock=clock)
        else:  # the server is started only for the Redis runs
            client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
            store = RedisBudget(client, max_llr=3.0, max_epsilon=1.0, window_s=window_s,
                                clock=clock, prefix=f"test:{request.node.name}:")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def test_the_pool_is_charged_with_the_requester(make_store: MakeStore) -> None:
    store = make_store()
    assert store.charge("alice", Charge(llr=2.5), pool=POOL).llr_spent == pytest.approx(2.5)
    assert store.charge("bob", Charge(llr=1.5), pool=POOL).llr_left == pytest.approx(1.5)
    assert store.balance(POOL.key, POOL_LIMITS).llr_left == pytest.approx(0.0)
    with pytest.raises(BudgetExhausted, match="the registered requesters' pooled remaining"):
        store.charge("bob", Charge(llr=0.5), pool=POOL)
    with pytest.raises(BudgetExhausted, match="your remaining"):
        store.charge("alice", Charge(llr=1.0))
    assert store.charge("carol", Charge(), pool=POOL).llr_spent == 0.0  # free answers flow


def test_a_refusal_charges_neither_budget(make_store: MakeStore) -> None:
    store = make_store()
    store.charge("alice", Charge(llr=3.0))
    with pytest.raises(BudgetExhausted, match="your remaining"):  # alice is spent
        store.charge("alice", Charge(llr=1.0), pool=POOL)
    assert store.balance(POOL.key, POOL_LIMITS).llr_spent == 0.0
    store.charge("bob", Charge(epsilon=0.5), pool=POOL)
    with pytest.raises(BudgetExhausted, match="pooled"):  # the pool is spent, not carol
        store.charge("carol", Charge(llr=1.0, epsilon=0.75), pool=POOL)
    carol, pool = store.balance("carol"), store.balance(POOL.key, POOL_LIMITS)
    assert (carol.llr_spent, carol.epsilon_spent) == (0.0, 0.0)
    assert (pool.llr_spent, pool.epsilon_spent) == (0.0, pytest.approx(0.5))


def test_a_release_is_paid_once_per_holder(make_store: MakeStore) -> None:
    store = make_store()
    first = _release("d1")
    assert store.charge("alice", Charge(llr=1.0), pool=POOL, release=first).llr_spent == 1.0
    again = store.charge("alice", Charge(llr=1.0), pool=POOL, release=first)
    assert again.llr_spent == pytest.approx(1.0)  # alice holds it already: free
    # bob pays for it himself; the pool paid once already.
    assert store.charge("bob", Charge(llr=1.0), pool=POOL, release=first).llr_spent == 1.0
    assert store.balance(POOL.key, POOL_LIMITS).llr_spent == pytest.approx(1.0)
    # Another set is paid again, by both; even a spent holder sees what it paid for.
    store.charge("alice", Charge(llr=2.0), pool=POOL, release=_release("d2"))
    assert store.balance(POOL.key, POOL_LIMITS).llr_spent == pytest.approx(3.0)
    assert store.charge("alice", Charge(llr=2.0), release=_release("d2")).llr_left == 0.0
    with pytest.raises(BudgetExhausted):
        store.charge("alice", Charge(llr=1.0), release=_release("d3"))


def test_released_sets_are_kept_and_expire_with_the_window(make_store: MakeStore) -> None:
    now = [1000.0]
    store = make_store(window_s=60, clock=lambda: now[0])
    first, second = _release("d1", b"\x00first\xff"), _release("d2", b"second\x00")
    store.charge("alice", Charge(), pool=POOL, release=first)  # kept even when free
    assert store.released("alice", "ds", "individuals") == [first.members]
    assert store.released(POOL.key, "ds", "individuals") == [first.members]
    assert store.released("alice", "ds", "biosamples") == []
    assert store.released("alice", "other", "individuals") == []
    assert store.released("bob", "ds", "individuals") == []
    now[0] += 30
    store.charge("alice", Charge(llr=1.0), release=second)
    store.charge("alice", Charge(llr=1.0), release=first)  # kept since t=1000: no renewal
    assert sorted(store.released("alice", "ds", "individuals")) == sorted(
        [first.members, second.members])
    now[0] += 31  # the first release (t=1000) is out of the window, the second is not
    assert store.released("alice", "ds", "individuals") == [second.members]
    assert store.released(POOL.key, "ds", "individuals") == []
    assert store.charge("alice", Charge(llr=1.0), release=first).llr_spent == 2.0  # paid again
    assert sorted(store.released("alice", "ds", "individuals")) == sorted(
        [first.members, second.members])


def test_limits_override_the_store_defaults(make_store: MakeStore) -> None:
    store = make_store()
    generous, strict = Limits(max_llr=5.0, max_epsilon=2.0), Limits(1.0, 0.25)
    spent = store.charge("alice", Charge(llr=4.0, epsilon=1.5), limits=generous)
    assert (spent.llr_limit, spent.llr_left, spent.epsilon_left) == (5.0, 1.0, 0.5)
    assert store.balance("alice", generous).llr_left == pytest.approx(1.0)
    assert store.balance("alice").llr_left == 0.0  # beyond the default limits
    with pytest.raises(BudgetExhausted):
        store.charge("alice", Charge(llr=0.5))
    with pytest.raises(BudgetExhausted):
        store.charge("bob", Charge(epsilon=0.5), limits=strict)
    assert store.charge("bob", Charge(llr=1.0), limits=strict).llr_left == 0.0


def test_replicas_never_overspend_a_shared_pool(make_store: MakeStore) -> None:
    replicas = [make_store(), make_store()]
    pool = Account("pool:anonymous:ds", max_llr=20.5, max_epsilon=1.0)
    granted: list[str] = []

    def spend(store: Store, requester: str) -> None:
        for _ in range(10):
            try:
                store.charge(requester, Charge(llr=1.0), limits=Limits(100.0, 1.0), pool=pool)
                granted.append(requester)
            except BudgetExhausted:
                pass

    threads = [threading.Thread(target=spend, args=(replicas[i % 2], f"r{i}"))
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 20
    assert replicas[0].balance(pool.key, Limits(20.5, 1.0)).llr_spent == pytest.approx(20.0)
    own = sum(replicas[1].balance(f"r{i}").llr_spent for i in range(4))
    assert own == pytest.approx(20.0)  # every granted charge hit both budgets


def test_concurrent_answers_about_one_set_pay_for_it_once(make_store: MakeStore) -> None:
    store = make_store()  # one SQLite store: its callers share group-committed batches
    release = _release("d1")

    def ask() -> None:
        for _ in range(5):
            store.charge("alice", Charge(llr=1.0), pool=POOL, release=release)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.balance("alice").llr_spent == pytest.approx(1.0)
    assert store.balance(POOL.key, POOL_LIMITS).llr_spent == pytest.approx(1.0)
    assert store.released("alice", "ds", "individuals") == [release.members]
