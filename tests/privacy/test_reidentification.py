"""Re-identification: the Shringarpure-Bustamante likelihood-ratio attack over HTTP.

A simulated population of 2,000 diploid individuals (msprime, node.synth) is split in
two halves with the same sites: the Beacon holds the first 1,000, the second 1,000 are
non-members from the same population. For 40 members and 40 non-members the attacker
asks, one allele per request, about alleles the victim carries, rarest first (Raisaro et
al. 2017) and in random order, computes the SB statistic (refused answers carry no
information), calibrates its threshold on the non-members at 5% false positives and
reports the share of members detected (power).

Threat model: each victim is attacked by its own requester (a fresh client address):
the whole of one requester's budget is spent on one genome, the worst case for a
per-requester budget (an attacker with one identity is weaker).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from aiohttp.test_utils import TestClient

from node.config import AuditSettings, BudgetSettings, DatasetSettings, PrivacySettings, Settings
from node.domain import AlleleStats
from node.names import Granularity, SecurityLevel
from node.store.registry import DatasetRegistry
from node.synth import generate_cohort
from node.web.app import create_app
from tests.privacy.attack import (
    Outcome,
    Site,
    StatsStore,
    attack,
    carried,
    cohort_stats,
    power_at,
    sb_terms,
)

Client = Callable[..., Awaitable[TestClient]]
MEMBERS = 1000
LENGTH_MB = 8
VICTIMS = 40
RAREST, RANDOM = 30, 40  # queries per victim
FPR = 0.05
PUBLIC_BOOLEAN = DatasetSettings(
    assembly="GRCh38",
    security_level=SecurityLevel.PUBLIC,
    max_granularity={SecurityLevel.PUBLIC: Granularity.COUNT},
)


@dataclass
class Cohort:
    sites: list[Site]
    stats: list[AlleleStats]
    freq: np.ndarray  # population frequency (all 2,000): what the attacker knows
    store: StatsStore
    members: list[np.ndarray]  # alleles carried by each member victim
    non_members: list[np.ndarray]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    path = tmp_path_factory.mktemp("cohort") / "pop.vcf.gz"
    info = generate_cohort(path, samples=2 * MEMBERS, length=LENGTH_MB * 1_000_000, seed=11,
                           groups=2, indel_rate=0, multiallelic_rate=0, missing_rate=0)
    beacon, held_out = info.paths
    sites, stats, freq = cohort_stats(beacon, held_out)
    alts = carried_keep(beacon)
    rng = np.random.default_rng(5)
    names = info.samples
    member_names = [names[i] for i in rng.choice(MEMBERS, VICTIMS, replace=False)]
    other_names = [names[MEMBERS + i] for i in rng.choice(MEMBERS, VICTIMS, replace=False)]
    return Cohort(
        sites, stats, freq, StatsStore(names[:MEMBERS], sites, stats),
        carried(beacon, member_names, len(sites), alts),
        carried(held_out, other_names, len(sites), alts),
    )


def carried_keep(path: Path) -> list[bool]:
    import subprocess

    out = subprocess.run(["bcftools", "query", "-f", "%ALT\n", str(path)],
                         capture_output=True, check=True, text=True).stdout
    return ["," not in alt for alt in out.split()]


async def node(aiohttp_client: Client, home: Path, store: StatsStore, privacy: PrivacySettings
               ) -> TestClient:
    settings = Settings(home=home, datasets={"sim": PUBLIC_BOOLEAN}, privacy=privacy,
                        audit=AuditSettings(fsync=False))

    def registry(s: Settings) -> DatasetRegistry:
        return DatasetRegistry(s, opener=lambda _: store, lister=lambda: ["sim"])

    return await aiohttp_client(create_app(settings, registry_factory=registry))


def orders(c: Cohort, alleles: np.ndarray, seed: int) -> dict[str, list[int]]:
    rarest = alleles[np.argsort(c.freq[alleles], kind="stable")][:RAREST]
    shuffled = np.random.default_rng(seed).permutation(alleles)[:RANDOM]
    return {"rarest": [int(i) for i in rarest], "random": [int(i) for i in shuffled]}


async def run(client: TestClient, c: Cohort, order: str
              ) -> tuple[list[Outcome], list[Outcome], list[list[int]]]:
    yes, no = sb_terms(c.freq, MEMBERS)
    limit = asyncio.Semaphore(24)
    plans = [orders(c, a, seed) for seed, a in enumerate(c.members + c.non_members)]
    queries = [p[order] for p in plans]
    outcomes = await asyncio.gather(*(
        attack(client, c.sites, q, yes, no, requester=f"{order}-{k}", limit=limit)
        for k, q in enumerate(queries)))
    return outcomes[:VICTIMS], outcomes[VICTIMS:], queries


def power(members: list[Outcome], non_members: list[Outcome]) -> float:
    return power_at([o.statistic for o in members], [o.statistic for o in non_members], FPR)


async def test_without_defences_the_attack_identifies_members(
    aiohttp_client: Client, tmp_path: Path, cohort: Cohort
) -> None:
    off = PrivacySettings(min_count=1, strict_pricing=False, budget=BudgetSettings(enabled=False),
                          client_address_header="X-Forwarded-For")
    client = await node(aiohttp_client, tmp_path, cohort.store, off)
    members, non_members, _ = await run(client, cohort, "rarest")
    # Truth check: undefended answers are the beacon's true presence.
    for o, q in zip(members, [orders(cohort, a, 0)["rarest"] for a in cohort.members],
                    strict=True):
        assert o.answers == tuple(int(cohort.stats[i].ac > 0) for i in q)
    print(f"defences off, rarest: power {power(members, non_members):.3f} at FPR {FPR}")
    assert power(members, non_members) >= 0.5


async def test_with_defences_power_stays_at_the_false_positive_rate(
    aiohttp_client: Client, tmp_path: Path, cohort: Cohort
) -> None:
    # The DEFAULT privacy settings (strict pricing, the default budget); only the
    # client-address header, so that each victim has its own attacker identity.
    on = PrivacySettings(client_address_header="X-Forwarded-For")
    assert on.model_dump(exclude={"client_address_header"}) == PrivacySettings().model_dump(
        exclude={"client_address_header"})
    client = await node(aiohttp_client, tmp_path, cohort.store, on)
    for order in ("rarest", "random"):
        members, non_members, queries = await run(client, cohort, order)
        common = [o.answers[j] == int(cohort.stats[i].ac > 0)
                  for o, q in zip(members + non_members, queries, strict=True)
                  for j, i in enumerate(q) if cohort.freq[i] >= 0.01]
        share = f"{sum(common) / len(common):.3f} of {len(common)}" if common else "none asked"
        print(f"defaults, {order}: power {power(members, non_members):.3f} at FPR {FPR}; "
              f"AF >= 1% answered exactly: {share}")
        assert sum(common) >= 0.95 * len(common)
        # 40 victims measure power to about ±3.5% (one standard error at 5%): allow two.
        assert power(members, non_members) <= FPR + 2 * math.sqrt(FPR * (1 - FPR) / VICTIMS)
