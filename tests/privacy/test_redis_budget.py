"""The Redis budget store against a real redis-server: shared by replicas, atomic under
concurrency, windowed, failing closed. Skips only when the redis-server binary is absent
(`make debian-tools` installs it)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from node.config import BudgetSettings, Settings, dump_settings
from node.errors import BudgetExhausted, Unavailable
from node.privacy.budget import Charge, SQLiteBudget, open_budget
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
