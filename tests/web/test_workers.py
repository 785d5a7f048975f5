"""`fednode serve --workers 2`, as a real process on a real port: two worker processes
answer; the audit chain they share verifies (`fednode audit verify`) after a burst of
concurrent requests and after one worker is killed with SIGKILL mid-load (the parent
replaces it); a requester's budget runs out after the same number of priced answers as
with one server process; SIGTERM stops everything with status 0."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from node.domain import AlleleKey
from node.web.workers import WORKER_HEADER
from tests.store import test_tiledbvcf as vcfs  # VCF writers and the bcftools truth

pytestmark = pytest.mark.skipif(vcfs.BCFTOOLS is None, reason="bcftools is not installed")
DATASET = "cohort"
PUBLIC_COUNTS = f"""
[datasets.{DATASET}]
assembly = "GRCh38"
security_level = "PUBLIC"
max_granularity = {{ PUBLIC = "count" }}
"""


def fednode(*args: str | Path, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[AlleleKey]]:
    """A home with one public dataset (counts for anyone) and its alleles (bcftools)."""
    tmp = tmp_path_factory.mktemp("workers")
    names = [f"P{i}" for i in range(12)]
    vcf = vcfs.write_vcf(tmp / "c.vcf.gz", names, vcfs.cohort_rows(12, seed=7))
    home = tmp / "home"
    assert fednode("init", home).returncode == 0
    with (home / "fednode.toml").open("a") as fh:
        fh.write(PUBLIC_COUNTS)
    done = fednode("ingest", home, "--dataset", DATASET, vcf)
    assert done.returncode == 0, done.stderr
    keys = [k for k in vcfs.fill_tags_truth(vcf) if k.alt.isalpha()]  # no <DEL>: a query
    return home, keys  # in file order


def _copy(prepared: tuple[Path, list[AlleleKey]], dest: Path) -> Path:
    shutil.copytree(prepared[0], dest)
    return dest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _serving(home: Path, *extra: str, env: dict[str, str]) -> Iterator[
        tuple[subprocess.Popen[str], str]]:
    port = _free_port()
    with (home.parent / f"{home.name}.log").open("w") as log:  # a log line per request
        proc = subprocess.Popen(
            [sys.executable, "-m", "node", "serve", str(home), "--port", str(port), *extra],
            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, base)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


def _wait_ready(proc: subprocess.Popen[str], base: str) -> None:
    deadline = time.monotonic() + 180  # start-up of a child Python, not a measured margin
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=1):
            return
        time.sleep(0.2)
    raise AssertionError("the server did not start")


def _query(key: AlleleKey, alt: str | None = None) -> dict[str, str]:
    return {"referenceName": key.contig, "start": str(key.start), "referenceBases": key.ref,
            "alternateBases": alt or key.alt, "datasetIds": DATASET,
            "requestedGranularity": "count"}


async def _get(session: aiohttp.ClientSession, base: str, params: dict[str, str]
               ) -> tuple[int, int, dict[str, object]]:
    """(status, answering worker pid, body); a new connection per request, so the kernel
    picks the worker each time."""
    async with session.get(f"{base}/api/g_variants", params=params) as resp:
        return resp.status, int(resp.headers.get(WORKER_HEADER, "0")), await resp.json()


def _started(home: Path) -> list[int]:
    """The worker pids the server named when it started, worker 0 first."""
    first = (home.parent / f"{home.name}.log").read_text().splitlines()[0]
    return [int(p) for p in first.split("(pids ", 1)[1].split(")", 1)[0].split(", ")]


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=16))


async def _burst(base: str, queries: list[dict[str, str]], *, kill_after: int | None = None,
                 victim: int = 0) -> tuple[int, int, set[int]]:
    """Concurrent requests: (answered, connection failures, pids that answered); kills
    `victim` once `kill_after` answers have arrived."""
    answered = failed = 0
    pids: set[int] = set()
    todo = iter(queries)

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal answered, failed
        for params in todo:
            try:
                status, pid, body = await _get(session, base, params)
            except aiohttp.ClientError:
                failed += 1  # in flight on the killed worker
                continue
            assert status == 200, body
            answered += 1
            pids.add(pid)
            if kill_after is not None and answered == kill_after:
                os.kill(victim, signal.SIGKILL)

    async with _session() as session:
        await asyncio.gather(*(client(session) for _ in range(16)))
    return answered, failed, pids


async def test_two_workers_share_the_port_and_one_audit_chain_through_a_kill(
    prepared: tuple[Path, list[AlleleKey]], tmp_path: Path
) -> None:
    home = _copy(prepared, tmp_path / "home")
    keys = prepared[1]
    queries = [_query(k, alt) for k in keys for alt in (None, "TTTTTTTT")]
    env = {"FEDNODE_PRIVACY__BUDGET__ENABLED": "false"}
    with _serving(home, "--workers", "2", env=env) as (proc, base):
        answered, failed, pids = await _burst(base, queries * 2)
        assert (answered, failed) == (len(queries) * 2, 0)
        assert len(pids) == 2 and {_parent_of(p) for p in pids} == {proc.pid}
        assert pids == set(_started(home))  # the two workers of the start, none replaced
        victim = min(pids)
        more, _, _ = await _burst(base, queries * 4, kill_after=len(queries), victim=victim)
        assert more >= len(queries)
        assert not _alive(victim)
        # The parent replaces the worker: a new pid answers, its child too.
        seen: set[int] = set()
        async with _session() as session:
            deadline = time.monotonic() + 180  # a worker's start-up, not a measured margin
            while not seen - pids and time.monotonic() < deadline:
                status, pid, _ = await _get(session, base, queries[0])
                assert status == 200
                seen.add(pid)
        new = seen - pids
        assert len(new) == 1 and _parent_of(new.pop()) == proc.pid
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    assert all(not _alive(p) for p in pids | seen)
    check = fednode("audit", "verify", home)
    assert check.returncode == 0, check.stdout + check.stderr
    entries = int(check.stdout.rsplit(": ", 1)[1].split()[0])
    # Every answer was audited before it left (the killed worker's last entries may have
    # no answer that arrived), in one chain.
    assert entries >= answered + more + len(seen)
    assert "problem" not in check.stdout


async def _spend(base: str, queries: list[dict[str, str]]) -> tuple[int, set[int], str]:
    """Priced answers, one at a time, until the budget refuses: (answers, pids, refusal)."""
    pids: set[int] = set()
    async with _session() as session:
        for n, params in enumerate(queries):
            status, pid, body = await _get(session, base, params)
            if status != 200:
                error = body.get("error")
                assert isinstance(error, dict), body
                return n, pids, f"{status} {error.get('errorMessage')}"
            pids.add(pid)
    raise AssertionError("the budget never ran out")


async def test_budget_charges_from_both_workers_add_up(
    prepared: tuple[Path, list[AlleleKey]], tmp_path: Path
) -> None:
    # "No" answers at called sites, each priced under strict pricing; a budget that lets
    # a few dozen through, so that both workers answer some of them.
    queries = [_query(k, "TTTTTTTT") for k in prepared[1]]
    env = {"FEDNODE_PRIVACY__BUDGET__MAX_LLR": "10"}
    spent: dict[str, tuple[int, str]] = {}
    for mode, extra in (("one process", ()), ("two workers", ("--workers", "2"))):
        home = _copy(prepared, tmp_path / mode.replace(" ", "-"))
        with _serving(home, *extra, env=env) as (_, base):
            answers, pids, refusal = await _spend(base, queries)
        spent[mode] = answers, refusal.split(" ", 1)[0]
        if extra:
            assert len(pids) == 2, pids  # both workers charged the one budget
    assert spent["one process"][0] >= 10
    assert spent["two workers"] == spent["one process"]
    assert spent["one process"][1] == "403"


def _listeners(port: int) -> list[int]:
    """Socket inodes listening on `port` (each SO_REUSEPORT socket is its own entry)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.append(int(fields[9]))
    return found


def _owner(inode: int) -> int:
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        with contextlib.suppress(OSError):
            if os.readlink(fd) == f"socket:[{inode}]":
                return int(fd.parts[2])
    raise AssertionError(f"no process holds socket {inode}")


async def test_the_peer_server_runs_once_in_worker_zero(
    prepared: tuple[Path, list[AlleleKey]], tmp_path: Path
) -> None:
    home = _copy(prepared, tmp_path / "home")
    grpc_port = _free_port()
    env = {"FEDNODE_PRIVACY__BUDGET__ENABLED": "false"}
    with _serving(home, "--workers", "2", "--grpc-port", str(grpc_port), env=env) as (_, base):
        workers = _started(home)
        deadline = time.monotonic() + 180  # a worker's start-up, not a measured margin
        port = int(base.rsplit(":", 1)[1])
        while (len(_listeners(port)) < 2 or not _listeners(grpc_port)) and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        held = _listeners(grpc_port)
        assert len(held) == 1 and _owner(held[0]) == workers[0]  # one server, worker 0's
        http = _listeners(port)
        assert sorted(_owner(i) for i in http) == sorted(workers)  # HTTP: one per worker
