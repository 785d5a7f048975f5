"""htsget benchmark: ticket latency on a whole-genome-sized BAM index, and data-endpoint
throughput for a 100 MB range beside nginx serving the same file over loopback.

    python -m bench.htsget_bench [--workdir DIR] [--reads N] [--tickets N] [--runs N]

A synthetic BAM spans every GRCh38 primary chromosome (one read every few kb, so its BAI
has the linear index and bins of a whole genome), indexed by samtools. The node runs as
`fednode serve` in its own process; nginx (Debian) is started on another port with the
same file.

Latency: one client (this process) sends region tickets one after another over one
keep-alive connection (Python's blocking http.client: no event loop of its own in the
measurement) and times each request until its whole body is read. Every run asks for fresh
random regions, so block caches are as cold as a browser's first visit to a locus. The
same client fetching a 100-byte static file from nginx gives the floor of the loopback and
the client. The node is measured twice: as configured by default (audit on, one fsync per
ticket) and with `audit.fsync = false`, which isolates the audit's share. The result of
each mode is the median over `--runs` runs of each run's p50 and p99.

Throughput: both downloads use curl, so the client is the same. Results are printed and
written to bench/out/htsget.json. Targets: ticket p99 < 5 ms; throughput >= 0.8x nginx.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
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

import aiohttp

REPO = Path(__file__).resolve().parents[1]
GRCH38 = {
    "1": 248956422, "2": 242193529, "3": 198295559, "4": 190214555, "5": 181538259,
    "6": 170805979, "7": 159345973, "8": 145138636, "9": 138394717, "10": 133797422,
    "11": 135086622, "12": 133275309, "13": 114364328, "14": 107043718, "15": 101991189,
    "16": 90338345, "17": 83257441, "18": 80373285, "19": 58617616, "20": 64444167,
    "21": 46709983, "22": 50818468, "X": 156040895, "Y": 57227415,
}  # fmt: skip
RANGE_BYTES = 100 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sam_lines(n_reads: int, seed: int = 7) -> Iterator[str]:
    rng = random.Random(seed)
    total = sum(GRCH38.values())
    yield "@HD\tVN:1.6\tSO:coordinate\n"
    for name, length in GRCH38.items():
        yield f"@SQ\tSN:{name}\tLN:{length}\n"
    for name, length in GRCH38.items():
        n = max(1, n_reads * length // total)
        step = length // n
        for i in range(n):
            seq = "".join(rng.choices("ACGT", k=150))
            qual = "".join(rng.choices("#+5?FIJ", k=150))
            yield f"r{name}_{i}\t0\t{name}\t{i * step + 1}\t60\t150M\t*\t0\t0\t{seq}\t{qual}\n"


def make_bam(path: Path, n_reads: int) -> None:
    with subprocess.Popen(
        ["samtools", "view", "-b", "-o", str(path), "-"], stdin=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdin is not None
        for line in sam_lines(n_reads):
            proc.stdin.write(line)
        proc.stdin.close()
        if proc.wait() != 0:
            raise SystemExit("samtools view failed")
    subprocess.run(["samtools", "index", str(path)], check=True)


def start_node(
    work: Path, bam: Path, port: int, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    home = work / "node"
    fednode = str(Path(sys.executable).with_name("fednode"))
    if not (home / "fednode.toml").is_file():
        subprocess.run([fednode, "init", str(home)], check=True, stdout=subprocess.DEVNULL)
        with (home / "fednode.toml").open("a") as fh:
            fh.write('\n[datasets.bench]\nsecurity_level = "PUBLIC"\n')
            fh.write('max_granularity = { PUBLIC = "record" }\n')
        subprocess.run(
            [fednode, "reads", "add", str(home), "--dataset", "bench", "--id", "wgs", str(bam)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    full_env = dict(os.environ, FEDNODE_SERVER__LOG_LEVEL="WARNING", **(env or {}))
    return subprocess.Popen(
        [fednode, "serve", str(home), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=full_env,
    )  # fmt: skip


def start_nginx(work: Path, root: Path, port: int) -> subprocess.Popen[bytes]:
    prefix = work / "nginx"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    # As root, nginx's workers drop to `nobody`, who cannot enter a private temporary folder.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/logs/e.log;\n"
        "events { worker_connections 64; }\n"
        "http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;\n"
        f"  server {{ listen 127.0.0.1:{port}; root {root}; }}\n}}\n"
    )
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return subprocess.Popen([nginx, "-c", str(conf), "-p", str(prefix)])


async def wait_up(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url) as resp:
                    if resp.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def regions(n: int, seed: int = 11) -> list[tuple[str, int, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ref = rng.choice(list(GRCH38))
        span = rng.choice((1_000, 10_000, 100_000, 1_000_000))
        start = rng.randrange(0, GRCH38[ref] - span)
        out.append((ref, start, start + span))
    return out


def summary(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "n": len(samples),
        "p50_ms": round(statistics.median(samples), 3),
        "p99_ms": round(samples[int(len(samples) * 0.99) - 1], 3),
        "max_ms": round(samples[-1], 3),
    }


def ticket_compute(bam: Path, n: int) -> dict[str, dict[str, float]]:
    """The ticket's own work (index query, block reads, ticket JSON), without HTTP: on fresh
    regions (cold block cache) and again on the same regions (every block known)."""
    from node.htsget.models import HtsgetRequest
    from node.htsget.tickets import file_ticket
    from node.reads.layout import Query, load_layout

    layout = load_layout(bam, Path(str(bam) + ".bai"), "BAM")
    reqs = [
        HtsgetRequest("reads", "wgs", "BAM", regions=(Query(ref, start, end),))
        for ref, start, end in regions(n, seed=12)
    ]
    out = {}
    for label in ("cold", "warm"):
        samples = []
        for req in reqs:
            t0 = time.perf_counter()
            json.dumps(file_ticket(req, layout, lambda s: {"url": f"http://x/{s.start}-{s.end}"}))
            samples.append((time.perf_counter() - t0) * 1000)
        out[label] = summary(samples)
    return out


WARMUP = 50  # index parsing and connection set-up are not per ticket
AUDIT_MODES: dict[str, dict[str, str]] = {
    "audit_fsync": {},  # the default configuration
    "audit_no_fsync": {"FEDNODE_AUDIT__FSYNC": "false"},
}


def sequential_latency(port: int, paths: list[str]) -> dict[str, float]:
    """One client, one keep-alive connection, one request at a time, timed client-side."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    samples, sock = [], None
    try:
        for i, path in enumerate(paths):
            t0 = time.perf_counter()
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            elapsed = (time.perf_counter() - t0) * 1000
            assert resp.status == 200, (resp.status, path)
            sock = sock or conn.sock
            assert conn.sock is sock, "the connection was not kept alive"
            if i >= WARMUP:
                samples.append(elapsed)
    finally:
        conn.close()
    return {**summary(samples), "load_1m": round(os.getloadavg()[0], 2)}


def first_ticket(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", ticket_paths(0, seed=99)[0])
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, resp.status
    finally:
        conn.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid`, all threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ticket_paths(n: int, seed: int) -> list[str]:
    return [
        f"/htsget/reads/wgs?referenceName={ref}&start={start}&end={end}"
        for ref, start, end in regions(n + WARMUP, seed)
    ]


def median_of(runs: list[dict[str, float]]) -> dict[str, object]:
    return {
        "runs": len(runs),
        **{
            key: round(statistics.median(r[key] for r in runs), 3)
            for key in ("p50_ms", "p99_ms", "server_cpu_ms")
        },
        "each": runs,
    }


async def block_url(base: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/htsget/reads/wgs") as resp:
        doc = await resp.json(content_type=None)
    spans = [u["url"] for u in doc["htsget"]["urls"] if u["url"].startswith("http")]
    return str(spans[-1])


def curl_speed(url: str, repeats: int = 5) -> float:
    """Best-of-N throughput (MB/s) of a 100 MB range fetched by curl."""
    speeds = []
    for _ in range(repeats):
        out = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-r", f"0-{RANGE_BYTES - 1}",
             "-w", "%{size_download} %{time_total}", url],
            check=True, capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
        size, seconds = int(out[0]), float(out[1])
        assert size == RANGE_BYTES, f"short download: {size}"
        speeds.append(size / seconds / 1e6)
    return round(max(speeds), 1)


async def node_latency(
    work: Path, bam: Path, mode: str, n: int, runs: int, *, throughput: bool = False
) -> tuple[dict[str, object], float | None]:
    """Latency runs on a node started in `mode` (and the data endpoint's throughput)."""
    port = free_port()
    node = start_node(work, bam, port, AUDIT_MODES[mode])
    try:
        await wait_up(f"http://127.0.0.1:{port}/health")
        first_ticket(port)  # the index is parsed here, outside every measurement
        each = []
        for r in range(runs):
            cpu0 = cpu_seconds(node.pid)
            each.append(sequential_latency(port, ticket_paths(n, seed=11 + r)))
            # Server CPU per ticket: what the load of other processes does not inflate much.
            each[-1]["server_cpu_ms"] = round(
                (cpu_seconds(node.pid) - cpu0) / (n + WARMUP) * 1e3, 3
            )
        speed = curl_speed(await block_url(f"http://127.0.0.1:{port}")) if throughput else None
    finally:
        node.terminate()
        node.wait(timeout=10)
    return median_of(each), speed


async def run(work: Path, n_reads: int, n_tickets: int, runs: int) -> dict[str, object]:
    bam = work / "wgs.bam"
    if not bam.is_file():
        print(f"generating a whole-genome BAM ({n_reads} reads) ...", file=sys.stderr)
        make_bam(bam, n_reads)
    if bam.stat().st_size < RANGE_BYTES + (1 << 20):
        raise SystemExit("the BAM is under 100 MB: raise --reads")
    (work / "ping.txt").write_bytes(b"x" * 100)
    nginx_port = free_port()
    nginx = start_nginx(work, work, nginx_port)
    latency: dict[str, object] = {}
    try:
        await wait_up(f"http://127.0.0.1:{nginx_port}/wgs.bam")
        floor = sequential_latency(nginx_port, ["/ping.txt"] * (n_tickets + WARMUP))
        latency["audit_fsync"], ours = await node_latency(
            work, bam, "audit_fsync", n_tickets, runs, throughput=True
        )
        latency["audit_no_fsync"], _ = await node_latency(
            work, bam, "audit_no_fsync", n_tickets, runs
        )
        theirs = curl_speed(f"http://127.0.0.1:{nginx_port}/wgs.bam")
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
    assert ours is not None
    p99 = float(latency["audit_fsync"]["p99_ms"])  # type: ignore[index]
    bai = Path(str(bam) + ".bai").stat().st_size
    return {
        "bam_bytes": bam.stat().st_size, "bai_bytes": bai,
        "tickets_http": latency, "nginx_static_floor": floor,
        "tickets_compute": ticket_compute(bam, n_tickets),
        "load_average_1m": os.getloadavg()[0], "cpus": os.cpu_count(),
        "throughput_MBps": {"fednode": ours, "nginx": theirs, "ratio": round(ours / theirs, 3)},
        "targets": {"ticket_p99_ms_lt": 5.0, "throughput_ratio_ge": 0.8},
        "met": {"ticket_p99": p99 < 5.0, "throughput": ours >= 0.8 * theirs},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.htsget_bench", description=__doc__)
    p.add_argument("--workdir", type=Path, help="keep the BAM and node home here")
    p.add_argument("--reads", type=int, default=1_000_000)
    p.add_argument("--tickets", type=int, default=2000)
    p.add_argument("--runs", type=int, default=3, help="latency runs per mode (median)")
    args = p.parse_args(argv)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(run(args.workdir.resolve(), args.reads, args.tickets, args.runs))
    else:
        with tempfile.TemporaryDirectory(prefix="fednode-htsget-bench-") as tmp:
            result = asyncio.run(run(Path(tmp), args.reads, args.tickets, args.runs))
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "htsget.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0 if all(result["met"].values()) else 1  # type: ignore[attr-defined]


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
