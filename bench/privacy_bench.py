"""Attack success and utility at the default privacy settings:
`python -m bench.privacy_bench [--keys N] [--seeds N] [--workdir DIR]`.

Runs tests/privacy/suite.py's attacks over HTTP (an in-process server) against a node
with the default settings and against the same node with the people-count defences off
(the baseline: the node as it was before issue 13), for several noise keys (each key is
another draw of every noised answer) and cohorts, and prints each figure's median and
range over the runs, with the bound the attack suite asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from tests.privacy import suite

Measure = Callable[[TestClient, suite.Cohort], Awaitable[float]]


async def _scoped(client: TestClient, cohort: suite.Cohort) -> float:
    return await suite.scoped_genotype(client, cohort, alleles=40)


async def _differencing(client: TestClient, cohort: suite.Cohort) -> float:
    return (await suite.differencing(client, cohort))[0]


async def _people(client: TestClient, cohort: suite.Cohort) -> float:
    return (await suite.people_utility(client, cohort, sets=20))[0]


async def _variants(client: TestClient, cohort: suite.Cohort) -> float:
    return (await suite.variant_utility(client, cohort))[0]


# (figure, measure, bound at the defaults)
FIGURES: list[tuple[str, Measure | None, str]] = [
    ("scoped-genotype: best-rule accuracy", _scoped, "<= 0.60"),
    ("differencing: small groups recovered", _differencing, "<= 0.20"),
    ("differencing, each group on a fresh node", None, "<= 0.20"),
    ("people counts >= 50 within 10%", _people, ">= 0.95"),
    ("common-allele queries answered", _variants, ">= 0.95"),
]


async def _client(home: Path, cohort: suite.Cohort, *, defended: bool, secret: bytes
                  ) -> TestClient:
    suite.prepare_home(home, cohort, secret=secret)
    app = suite.app_for(suite.node_settings(home, defended=defended), cohort.store)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def _run(home: Path, cohort: suite.Cohort, measure: Measure | None, *,
               defended: bool, secret: bytes) -> float:
    if measure is None:  # one fresh node (home) per group
        homes = iter(range(10**6))

        async def fresh() -> TestClient:
            return await _client(home / f"g{next(homes)}", cohort, defended=defended,
                                 secret=secret)

        return (await suite.differencing_alone(fresh, cohort))[0]
    client = await _client(home, cohort, defended=defended, secret=secret)
    try:
        return await measure(client, cohort)
    finally:
        await client.close()


def _summary(values: list[float]) -> str:
    return (f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}], "
            f"mean {statistics.fmean(values):.3f}")


async def bench(workdir: Path, *, keys: int, seeds: int) -> None:
    results: dict[tuple[str, bool], list[float]] = {}
    runs = 0
    for seed in range(seeds):
        cohort = suite.build_cohort(_fresh(workdir / f"cohort{seed}"), seed=20261207 + seed)
        print(f"cohort {seed}: {len(cohort.people)} people, {len(cohort.sites)} biallelic "
              "sites", file=sys.stderr)
        for key in range(keys):
            secret = bytes((key * 37 + i) % 256 for i in range(32))
            for name, measure, _ in FIGURES:
                for defended in (True, False):
                    runs += 1
                    home = _fresh(workdir / f"home{runs}")
                    value = await _run(home, cohort, measure, defended=defended,
                                       secret=secret)
                    results.setdefault((name, defended), []).append(value)
    print("| figure | defaults, median [range], mean | bound | defences off |")
    print("|---|---|---|---|")
    for name, _, bound in FIGURES:
        print(f"| {name} | {_summary(results[name, True])} | {bound} | "
              f"{_summary(results[name, False])} |")
    print(f"\n{seeds} cohorts x {keys} noise keys per figure", file=sys.stderr)


def _fresh(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.privacy_bench", description=__doc__)
    parser.add_argument("--keys", type=int, default=5, help="noise keys per cohort")
    parser.add_argument("--seeds", type=int, default=2, help="cohorts")
    parser.add_argument("--workdir", type=Path, help="keep cohorts and node homes here")
    args = parser.parse_args(argv)
    if args.workdir is not None:
        asyncio.run(bench(args.workdir, keys=args.keys, seeds=args.seeds))
        return 0
    with tempfile.TemporaryDirectory(prefix="fednode-privacy-bench-") as tmp:
        asyncio.run(bench(Path(tmp), keys=args.keys, seeds=args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
