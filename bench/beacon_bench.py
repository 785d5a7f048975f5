"""Beacon count-query throughput: `python -m bench.beacon_bench [--store tiledb|memory]`.

Count-granularity exact-allele queries (hits from the VCF, and misses) against a
2,504-sample dataset (1000 Genomes chr1 subset from ../shared), from 64 concurrent
clients, beside a bare aiohttp JSON endpoint on the same machine in the same run. Each
server runs in its own process (keep-alive connections). The load generator is `wrk` (C,
one thread, `--client wrk`, the default when it is installed; Debian package `wrk`) or an
aiohttp client in this process (`--client python`, which takes about as much CPU per
request as the bare endpoint itself and so shares the two cores with the server). Reports
requests/s, p50, p99 and the server's CPU time per request for both, and the throughput
ratio (target: >= 0.5, p99 < 20 ms), per run and as medians over `--runs` alternating
runs. `--audit off` measures the audit log's share (production keeps it on).

`--floor` adds a third server between the two: the node's own application answering a
constant count envelope from a route of the root app (`/floor`), so that it does only the
work every request must do whatever its answer (aiohttp, the root middlewares, request id,
metrics, the JSON request log line, the durable audit entry): the node's ceiling with this
stack, as a ratio to the bare endpoint.

`--budget` sets the disclosure budget: `off` (the query path alone); `common` (the default
privacy settings, as in production, with only alleles of AF >= 5% queried: answered
exactly and priced at zero, as an anonymous client's common-allele queries are); `large`
(budget on with a limit one load generator cannot spend: the usual hit/miss mix, every
charged answer written to the budget store).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

SHARED = Path(__file__).resolve().parents[2] / "shared"
VCF = SHARED / "beacon-testdata/cnag-beacon2-cbi-tools/integration_assets/test_1000G.vcf.gz"
DATASET = "kg"
SEED = 2026


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- servers (child processes) ----------------------------------------------------------


def serve_bare(port: int) -> None:
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(_CONSTANT)

    from node.web.serve import tune_gc

    app = web.Application()
    app.router.add_get("/api/g_variants", handler)
    app.on_startup.append(tune_gc)  # as the node's server does: the same process tuning
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=lambda *_: None)


def _privacy(budget: str) -> dict[str, Any]:
    if budget == "off":
        return {"budget": {"enabled": False}}
    if budget == "large":
        return {"budget": {"max_llr": 1e12, "max_epsilon": 1e12}}
    return {}  # "common": the defaults


# The count answer of the bare and floor endpoints: a copy of the node's own answer to one
# of the bench's queries (the same 591 bytes once serialised compactly).
_CONSTANT = {
    "meta": {
        "beaconId": "org.example.fednode", "apiVersion": "v2.1.1",
        "returnedSchemas": [{"entityType": "genomicVariant",
                             "schema": "ga4gh-beacon-genomicVariant-v2.0.0"}],
        "returnedGranularity": "count",
        "receivedRequestSummary": {
            "apiVersion": "v2.1.1", "requestedSchemas": [],
            "pagination": {"skip": 0, "limit": 10}, "requestedGranularity": "count",
            "includeResultsetResponses": "HIT", "testMode": False,
            "requestParameters": {"g_variant": {
                "referenceName": "1", "start": "56930", "referenceBases": "C",
                "alternateBases": "A"}}},
        "testMode": False},
    "responseSummary": {"exists": True, "numTotalResults": 1, "countPrecision": "exact"},
}


def serve_node(port: int, store_kind: str, work: Path, *, audit: bool = True,
               budget: str = "off", floor: bool = False) -> None:
    from aiohttp import web

    from node.config import BudgetSettings, DatasetSettings, Settings
    from node.logs import setup_logging
    from node.names import Granularity, SecurityLevel
    from node.store.registry import DatasetRegistry
    from node.web.app import create_app
    from node.web.serve import tune_gc

    # As `fednode serve`: JSON logs at INFO, a line per request (to a file here, not the
    # terminal); the bare endpoint logs nothing, as a bare endpoint.
    sys.stderr = (work / "node-bench.log").open("a", encoding="utf-8")
    setup_logging("INFO")
    store = _open_store(store_kind, work)
    # Each server starts with no charges: the budget store sums a requester's charges per
    # answer, so charges left by earlier runs would slow the later ones.
    (work / BudgetSettings().path).unlink(missing_ok=True)
    # One load generator is one anonymous client: with the default disclosure budget it
    # would be refused every rare allele and every "no" (as it should), hence `--budget`.
    settings = Settings(home=work, datasets={DATASET: DatasetSettings(
        assembly="GRCh37", security_level=SecurityLevel.PUBLIC,
        max_granularity={SecurityLevel.PUBLIC: Granularity.COUNT})},
        privacy=_privacy(budget), audit={"enabled": audit})
    app = create_app(settings, registry_factory=lambda s: DatasetRegistry(
        s, opener=lambda _: store, lister=lambda: [DATASET]))
    if floor:
        async def constant(request: web.Request) -> web.Response:
            return web.json_response(_CONSTANT)

        app.router.add_get("/floor", constant)
    app.on_startup.append(tune_gc)  # as `fednode serve`
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=lambda *_: None)


def _open_store(kind: str, work: Path):  # type: ignore[no-untyped-def]
    if kind == "memory":
        from node.store.memory import MemoryStore

        store = MemoryStore(assembly="GRCh37")
        store.ingest([VCF])
        return store
    from node.store.tiledbvcf import TileDBVCFStore

    uri = str(work / "kg.tdb")
    if TileDBVCFStore.exists(uri):
        return TileDBVCFStore.open(uri)
    store = TileDBVCFStore.create(uri, assembly="GRCh37")
    store.ingest([VCF])
    return store


# -- load generator ------------------------------------------------------------------


COMMON_AF = 0.05


def _queries(n: int, *, common: bool = False) -> list[dict[str, str]]:
    """70% hits, 30% misses; `common`: only hits on alleles of AF >= COMMON_AF."""
    text = subprocess.run(["bcftools", "query", "-f", "%POS\t%REF\t%ALT\t%AF\n", str(VCF)],
                          check=True, capture_output=True, text=True).stdout
    sites = [line.split("\t") for line in text.splitlines()]
    if common:
        sites = [[pos, ref, alt, af] for pos, ref, alts, afs in sites
                 for alt, af in zip(alts.split(","), afs.split(","), strict=True)
                 if af != "." and float(af) >= COMMON_AF]
    rng = random.Random(SEED)
    out = []
    for _ in range(n):
        pos, ref, alts, _af = rng.choice(sites)
        hit = common or rng.random() < 0.7
        alt = rng.choice(alts.split(",")) if hit else "G" if ref != "G" else "T"
        out.append({"referenceName": "1", "start": str(int(pos) - 1), "referenceBases": ref,
                    "alternateBases": alt, "requestedGranularity": "count",
                    "datasetIds": DATASET})
    return out


async def _load(url: str, queries: list[dict[str, str]], concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    todo: Iterator[dict[str, str]] = iter(queries)
    errors = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        for params in todo:
            started = time.perf_counter()
            async with session.get(url, params=params) as resp:
                await resp.read()
                errors += resp.status != 200
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {"requests": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
            "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))]}


# wrk's script: each connection's requests cycle through the query paths of a file; the
# summary is printed as one JSON line (latencies in microseconds).
_WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local i = math.random(#paths)
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "errors": %d, "seconds": %f, "p50_us": %f, "p99_us": %f}\\n',
    summary.requests, e.status + e.connect + e.read + e.write + e.timeout,
    summary.duration / 1e6, latency:percentile(50), latency:percentile(99)))
end
"""


def _wrk(url: str, queries: list[dict[str, str]], concurrency: int, seconds: float
         ) -> dict[str, float]:
    """`seconds` (whole) of closed-loop load from `concurrency` connections of one wrk thread."""
    from urllib.parse import urlencode, urlsplit

    path = urlsplit(url).path
    with tempfile.TemporaryDirectory(prefix="fednode-wrk-") as tmp:
        paths, script = Path(tmp, "paths"), Path(tmp, "script.lua")
        paths.write_text("".join(f"{path}?{urlencode(q)}\n" for q in queries))
        script.write_text(_WRK_SCRIPT)
        done = subprocess.run(
            ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
             "-s", str(script), url], check=True, capture_output=True, text=True,
            env={**os.environ, "BENCH_PATHS": str(paths)})
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return {"requests": found["requests"], "errors": found["errors"],
            "rps": found["requests"] / found["seconds"], "p50_ms": found["p50_us"] / 1000,
            "p99_ms": found["p99_us"] / 1000}


async def _wait_ready(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as resp:
                    if resp.status < 500:
                        return
            await asyncio.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout_s} s")


@contextlib.contextmanager
def _server(*args: str) -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.beacon_bench", *args],
                            cwd=Path(__file__).resolve().parents[1])
    try:
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(port: int, pid: int, queries: list[dict[str, str]], concurrency: int,
                   ready_s: float, *, client: str, seconds: float, server_side: bool = False,
                   path: str = "/api/g_variants") -> dict[str, float]:
    url = f"http://127.0.0.1:{port}{path}"
    await _wait_ready(url, ready_s)
    if client == "wrk":
        await asyncio.to_thread(_wrk, url, queries, concurrency, max(1.0, seconds / 5))
    else:
        await _load(url, queries[: len(queries) // 10], concurrency)  # warm-up
    before = await _histogram(port) if server_side else {}
    cpu = _cpu_seconds(pid)
    if client == "wrk":
        out = await asyncio.to_thread(_wrk, url, queries, concurrency, seconds)
    else:
        out = await _load(url, queries, concurrency)
    # CPU the server spent per request: unlike requests/s, not skewed by other jobs.
    out["server_cpu_ms_per_request"] = 1000 * (_cpu_seconds(pid) - cpu) / out["requests"]
    if server_side:
        after = await _histogram(port)
        delta = {b: after[b] - before.get(b, 0.0) for b in after}
        out["server_p50_ms_at_most"] = 1000 * _quantile(delta, 0.5)
        out["server_p99_ms_at_most"] = 1000 * _quantile(delta, 0.99)
    return out


async def _histogram(port: int) -> dict[float, float]:
    """Cumulative bucket counts of the node's own request-latency histogram (/metrics),
    for the g_variants route: the server-side time, free of client queueing."""
    url = f"http://127.0.0.1:{port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        text = await resp.text()
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("fednode_http_request_seconds_bucket") and "g_variants" in line:
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            upper = float("inf") if bound == "+Inf" else float(bound)
            buckets[upper] = buckets.get(upper, 0.0) + float(line.rsplit(" ", 1)[1])
    return buckets


def _quantile(cumulative: dict[float, float], q: float) -> float:
    total = max(cumulative.values(), default=0.0)
    for bound in sorted(cumulative):
        if total and cumulative[bound] >= q * total:
            return bound
    return float("nan")


def _pair(store: str, queries: list[dict[str, str]], concurrency: int, work: Path,
          audit: str, budget: str, client: str, seconds: float, floor: bool
          ) -> dict[str, Any]:
    """One run: the bare endpoint, the floor (when asked), then the node, under the same
    load."""
    out: dict[str, Any] = {}
    bare_port, node_port = _free_port(), _free_port()
    load: dict[str, Any] = {"client": client, "seconds": seconds}
    node_args = ("--store", store, "--workdir", str(work), "--audit", audit, "--budget", budget)
    with _server("--serve", "bare", "--port", str(bare_port)) as pid:
        out["bare"] = asyncio.run(_measure(bare_port, pid, queries, concurrency, 30, **load))
    if floor:
        port = _free_port()
        with _server("--serve", "floor", "--port", str(port), *node_args) as pid:
            out["floor"] = asyncio.run(
                _measure(port, pid, queries, concurrency, 900, path="/floor", **load))
        out["floor_ratio"] = out["floor"]["rps"] / out["bare"]["rps"]
    with _server("--serve", "node", "--port", str(node_port), *node_args) as pid:
        out["node"] = asyncio.run(
            _measure(node_port, pid, queries, concurrency, 900, server_side=True, **load))
    out["throughput_ratio"] = out["node"]["rps"] / out["bare"]["rps"]
    return out


def run(store: str, requests: int, concurrency: int, work: Path, *, audit: str = "on",
        budget: str = "off", runs: int = 3, client: str = "python", seconds: float = 10.0,
        floor: bool = False) -> dict[str, object]:
    """`runs` alternating pairs of runs; medians over them (other jobs share the cores).
    The python client sends `requests` requests; wrk cycles through as many distinct
    queries for `seconds`."""
    queries = _queries(requests, common=budget == "common")
    pairs = [_pair(store, queries, concurrency, work, audit, budget, client, seconds, floor)
             for _ in range(runs)]
    servers = ("bare", "floor", "node") if floor else ("bare", "node")
    median: dict[str, Any] = {
        server: {k: statistics.median(p[server][k] for p in pairs) for k in pairs[0][server]}
        for server in servers}
    for ratio in ("throughput_ratio", "floor_ratio") if floor else ("throughput_ratio",):
        median[ratio] = statistics.median(p[ratio] for p in pairs)
    return {
        "store": store, "concurrency": concurrency, "audit": audit, "budget": budget,
        "client": client,
        "runs": pairs,
        "median": median, "load_average": os.getloadavg(),
        # Target: >= 0.5x the bare endpoint's requests/s and p99 < 20 ms. With 64 clients
        # always waiting, p99 < 20 ms needs well over 3,200 requests/s (Little's law: the
        # mean latency is 64 / throughput); `--floor` shows what the node's application
        # reaches with a constant answer.
        "meets_target": median["throughput_ratio"] >= 0.5 and median["node"]["p99_ms"] < 20,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.beacon_bench", description=__doc__)
    parser.add_argument("--store", choices=("tiledb", "memory"), default="tiledb")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workdir", type=Path, help="keep the ingested store here")
    parser.add_argument("--runs", type=int, default=3, help="pairs of runs (medians)")
    parser.add_argument("--audit", choices=("on", "off"), default="on",
                        help="the node's audit log (off: to measure its share only)")
    parser.add_argument("--budget", choices=("off", "common", "large"), default="off",
                        help="the disclosure budget (see above)")
    parser.add_argument("--client", choices=("wrk", "python"),
                        default="wrk" if shutil.which("wrk") else "python",
                        help="the load generator (default: wrk when installed)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="length of each wrk run (after a warm-up of a fifth of it)")
    parser.add_argument("--floor", action="store_true",
                        help="also measure the node's per-request floor (see above)")
    parser.add_argument("--serve", choices=("bare", "floor", "node"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve == "bare":
        serve_bare(args.port)
        return 0
    if args.serve in ("node", "floor"):
        serve_node(args.port, args.store, args.workdir, audit=args.audit == "on",
                   budget=args.budget, floor=args.serve == "floor")
        return 0
    if not VCF.is_file():
        print(f"the 2,504-sample VCF is not at {VCF} (../shared missing)", file=sys.stderr)
        return 2

    def report(work: Path) -> None:
        print(json.dumps(run(args.store, args.requests, args.concurrency, work,
                             audit=args.audit, budget=args.budget, runs=args.runs,
                             client=args.client, seconds=args.seconds, floor=args.floor),
                         indent=2))

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        report(args.workdir)
        return 0
    with tempfile.TemporaryDirectory(prefix="fednode-beacon-bench-") as tmp:
        report(Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
