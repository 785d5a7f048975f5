"""Soak: mixed Beacon and htsget load on the demo node for a long while, memory sampled.

    python -m bench.soak [--seconds 600] [--concurrency 8] [--workdir DIR]

The demo node (`fednode demo`'s home, built here) is served by the real `fednode serve` in
its own process; `wrk` (Debian package, `make bench` installs it) cycles its connections
through a mix of requests: Beacon variant queries (hits and misses, count and record),
individuals with filters, `/api/info`, htsget variant tickets by region and read tickets.
The server's RSS is sampled every `--every` seconds from /proc. Reported: requests, rate,
latency, answers by status class, 5xx and socket errors (the target: none), and RSS growth
from the end of the first tenth of the run (warm caches: the baseline, same run) to the end
(the target: under 10%). Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from node.demo import DEMO_DATASET, build_demo

SEED = 7
# wrk: each connection cycles through the paths file; `response` tallies status classes
# (wrk's own error count takes every non-2xx/3xx, and refusals are answers here).
_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("SOAK_PATHS")) do paths[#paths + 1] = line end
local i = math.random(#paths)
local classes = {0, 0, 0, 0, 0}
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
response = function(status, headers, body)
  local c = math.floor(status / 100)
  if c >= 1 and c <= 5 then classes[c] = classes[c] + 1 end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "socket_errors": %d, "seconds": %f, "p50_us": %f, "p99_us": %f}\\n',
    summary.requests, e.connect + e.read + e.write + e.timeout,
    summary.duration / 1e6, latency:percentile(50), latency:percentile(99)))
end
"""


KINDS = ("variants", "individuals", "info", "htsget-variants", "htsget-reads")


def _paths(home: Path, n: int, only: str | None = None) -> list[str]:
    vcf = home / "inputs" / "demo.g1.vcf.gz"  # every site: the groups are one call set
    text = subprocess.run(["bcftools", "query", "-f", "%CHROM\t%POS\t%REF\t%ALT\n", str(vcf)],
                          check=True, capture_output=True, text=True).stdout
    sites = [line.split("\t") for line in text.splitlines()]
    catalog = json.loads((home / "reads" / "catalog.json").read_text())
    reads = sorted(_read_ids(catalog))
    rng = random.Random(SEED)
    out: list[str] = []
    while len(out) < n:
        chrom, pos, ref, alts = rng.choice(sites)
        roll = rng.random()
        if only is not None and _kind(roll, bool(reads)) != only:
            continue
        if roll < 0.5:
            alt = alts.split(",")[0] if rng.random() < 0.7 else ("G" if ref != "G" else "T")
            query = {"referenceName": chrom, "start": int(pos) - 1, "referenceBases": ref,
                     "alternateBases": alt, "requestedGranularity": rng.choice(
                         ["count", "record"])}
            out.append(f"/api/g_variants?{urlencode(query)}")
        elif roll < 0.65:
            out.append("/api/individuals?" + urlencode(
                {"filters": rng.choice(["NCIT:C16576", "NCIT:C20197", "LOINC:8308-9:>170"]),
                 "requestedGranularity": "count"}))
        elif roll < 0.7:
            out.append("/api/info")
        elif roll < 0.85 or not reads:
            start = max(0, int(pos) - rng.randint(0, 5000))
            out.append(f"/htsget/variants/{DEMO_DATASET}?" + urlencode(
                {"referenceName": chrom, "start": start, "end": start + rng.randint(1, 20000)}))
        else:
            start = rng.randint(0, 150_000)
            out.append(f"/htsget/reads/{rng.choice(reads)}?" + urlencode(
                {"referenceName": "22", "start": start, "end": start + 5000}))
    return out


def _kind(roll: float, reads: bool) -> str:
    """Which kind of request a draw of `roll` makes (the mix of `_paths`)."""
    for limit, kind in ((0.5, "variants"), (0.65, "individuals"), (0.7, "info"),
                        (0.85, "htsget-variants")):
        if roll < limit or (kind == "htsget-variants" and not reads):
            return kind
    return "htsget-reads"


def _read_ids(catalog: dict[str, list[dict[str, str]]]) -> list[str]:
    """The ids of the read files registered (`reads/catalog.json`)."""
    return [entry["id"] for entry in catalog["files"] if entry["format"] in ("BAM", "CRAM")]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout_s} s")


def run(seconds: int, concurrency: int, every: float, work: Path,
        only: str | None = None) -> dict[str, object]:
    home = work / "demo"
    build_demo(home)
    port = _free_port()
    log = (work / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "node", "serve", str(home), "--port", str(port)],
        stdout=log, stderr=log)
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    try:
        _wait_ready(f"http://127.0.0.1:{port}/health", 120)
        started = time.monotonic()

        def sample() -> None:
            while not stop.is_set():
                samples.append((time.monotonic() - started, _rss_kib(server.pid)))
                stop.wait(every)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with tempfile.TemporaryDirectory(prefix="fednode-soak-") as tmp:
            paths, script = Path(tmp, "paths"), Path(tmp, "soak.lua")
            paths.write_text("".join(p + "\n" for p in _paths(home, 5000, only)))
            script.write_text(_SCRIPT)
            done = subprocess.run(
                ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "30s",
                 "-s", str(script), f"http://127.0.0.1:{port}"],
                check=True, capture_output=True, text=True, env={**os.environ,
                                                                 "SOAK_PATHS": str(paths)})
        stop.set()
        sampler.join()
        samples.append((time.monotonic() - started, _rss_kib(server.pid)))
        alive = server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=30)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    statuses = _statuses(work / "serve.log")
    warm = [rss for t, rss in samples if t >= seconds / 10]
    baseline, end = warm[0], statistics.median(rss for _, rss in samples[-3:])
    return {
        "seconds": seconds, "concurrency": concurrency, "requests": found["requests"],
        "rps": found["requests"] / found["seconds"], "p50_ms": found["p50_us"] / 1000,
        "p99_ms": found["p99_us"] / 1000, "socket_errors": found["socket_errors"],
        "statuses": statuses, "server_alive": alive,
        "rss_mib_baseline": baseline / 1024, "rss_mib_end": end / 1024,
        "rss_mib_max": max(rss for _, rss in samples) / 1024,
        "rss_growth": end / baseline - 1,
    }


def _statuses(log: Path) -> dict[str, int]:
    """Answers by status class, from the server's own JSON request log lines."""
    counts: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            status = json.loads(line).get("status")
        except ValueError:
            continue
        if isinstance(status, int):
            key = f"{status // 100}xx"
            counts[key] = counts.get(key, 0) + 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--every", type=float, default=5.0, help="RSS sampling period (s)")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--only", choices=KINDS, help="one kind of request instead of the mix")
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="fednode-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# soak, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {platform.node()}, "
          f"nproc {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    out = run(args.seconds, args.concurrency, args.every, work, args.only)
    print(json.dumps(out, indent=2))
    five = out["statuses"].get("5xx", 0)  # type: ignore[union-attr]
    ok = out["server_alive"] and not five and not out["socket_errors"] and (
        out["rss_growth"] < 0.10)  # type: ignore[operator]
    print(f"verdict: {'pass' if ok else 'FAIL'} (5xx {five}, socket errors "
          f"{out['socket_errors']}, RSS growth {100 * out['rss_growth']:.1f}%)")  # type: ignore[operator]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
