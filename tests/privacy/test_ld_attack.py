"""Linkage disequilibrium: a von Thenen-style membership attack over HTTP (issue 13).

von Thenen et al. (Bioinformatics 2019): a Beacon that hides rare alleles still answers on
alleles in linkage disequilibrium (LD) with them, and those answers identify a target.
Here, on the cohort of test_reidentification.py (msprime, 8 Mb; the Beacon holds 1,000
people, 1,000 non-members come from the same population; the same 40 + 40 victims, each
attacked from its own client address), the attacker:

- knows the victim's genotypes and a reference panel: the non-members that are not
  victims (960 people; genotypes extracted with bcftools);
- targets the alleles the victim carries that the node hides (panel frequency below
  `rare_allele_frequency`), rarest first; for each it asks about the target itself if
  the node may answer it, then about the `PARTNERS` alleles within `WINDOW` bp, not yet
  asked and that the node may answer, whose genotype r^2 with the target (over the panel
  and the victim) is highest; `QUERIES` per victim;
- scores the answers, yes / no / refused (403) alike, with a likelihood ratio calibrated
  on the panel (`Model`): the node's published answer rule (`outcome`, checked against
  every answer) applied to the allele's count in the Beacon, beta-binomial around the
  panel's count, plus the victim's own copies if it is a member. A threshold at 5% false
  positives on the non-members gives the power on the members.

Defences off (as in test_reidentification.py) the targets are answered and the attack
succeeds. With the defaults every target and every "no" is refused, so the only
observation left is which partners are answered, and that is where the defaults leak:
an allele is answered (free) when its count, judged without two copies, is far enough
from rare (at N = 1,000: 22 copies or more), and a member's own copies count towards
it; removing two copies from every count moves the line for everyone and leaves that
dependence. `edge_plan` asks about exactly those alleles (the carried ones the victim's
copies push over the line most often): the refusal-pattern attack. Neither costs budget:
answered queries are free and refused ones are not charged.

Measured (60 queries per victim, 5% false positives; `python -m
tests.privacy.test_ld_attack [victims]` prints these):

| attack | 40 + 40 victims (the tests) | 200 + 200 victims |
|---|---|---|
| LD, defences off | 0.55 | 0.51 |
| LD, defaults | 0.175 | 0.07 |
| refusal pattern (`edge_plan`), defences off | 0.575 | 0.50 |
| refusal pattern, defaults | 0.175 | 0.14 |

At the defaults the refusal-pattern scores separate members from non-members by 0.8 nats
(SD 1.7-2.0, 200 + 200 victims; LD: 0.14 nats, SD 0.6); every answer was the one the
attacker's rule predicted. Closing the channel needs the free-or-refused decision not to
depend on the target's copies, or near-line answers priced. Defences off, the power is
held near 0.5 by how few rare alleles a victim carries in 8 Mb: a "yes" on a common
allele says almost nothing, and a non-member whose rare alleles all have carriers among
the members looks like one.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from node.config import BudgetSettings, PrivacySettings
from node.domain import AlleleStats
from node.names import Granularity
from node.privacy.budget import membership_llr
from node.privacy.guard import disclosure
from node.synth import generate_cohort
from tests.privacy.attack import DELTA, Site, StatsStore, attack, power_at
from tests.privacy.test_reidentification import (
    FPR,
    LENGTH_MB,
    MEMBERS,
    VICTIMS,
    Client,
    node,
)

QUERIES = 60  # per victim
WINDOW = 50_000  # bp either side of a target (LD in the simulation decays within ~50 kb)
PARTNERS = 2  # LD partners asked per target
ANSWERABLE = 0.05  # an allele the node answers with less chance than this is not asked
NO, YES, REFUSED = 0, 1, 2  # outcomes; `attack` reports them as 0, 1, None
HTTPClient = TestClient[web.Request, web.Application]
PRIOR = (0.5, 0.5)  # Beta prior of an allele's frequency (Jeffreys)

DEFAULTS = PrivacySettings(client_address_header="X-Forwarded-For")
# Defences off as in test_reidentification.py.
OFF = PrivacySettings(min_count=1, strict_pricing=False, budget=BudgetSettings(enabled=False),
                      client_address_header="X-Forwarded-For")


@dataclass(frozen=True)
class LDCohort:
    sites: list[Site]
    stats: list[AlleleStats]
    store: StatsStore
    pos: np.ndarray  # VCF POS per site
    panel: np.ndarray  # (sites, people) allele dosages of the attacker's reference panel
    members: np.ndarray  # (sites, victims) dosages of the member victims
    non_members: np.ndarray
    panel_ac: np.ndarray  # per site: the panel's copies and their sum of squares
    panel_sq: np.ndarray

    @property
    def beacon_ac(self) -> np.ndarray:
        return np.array([s.ac for s in self.stats])


def dosages(path: Path) -> np.ndarray:
    """(sites, samples) ALT copies, from phased biallelic calls ("0|1": 3 bytes each)."""
    out = subprocess.run(["bcftools", "query", "-f", "[%GT]\n", str(path)],
                         capture_output=True, check=True).stdout
    width = out.index(b"\n") + 1
    rows = np.frombuffer(out, dtype=np.uint8).reshape(-1, width)[:, :-1]
    assert (rows[:, 1::3] == ord("|")).all(), "expected phased diploid calls"
    ones = rows == ord("1")
    copies: np.ndarray = ones[:, 0::3].astype(np.int8) + ones[:, 2::3]
    return copies


def biallelic_sites(path: Path) -> tuple[list[Site], np.ndarray]:
    """The biallelic sites, and which of the file's rows they are."""
    out = subprocess.run(["bcftools", "query", "-f", "%POS\t%REF\t%ALT\n", str(path)],
                         capture_output=True, check=True, text=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    keep = np.array(["," not in alt for _, _, alt in rows])
    return [Site(int(pos), ref, alt) for pos, ref, alt in rows if "," not in alt], keep


def allele_stats(d: np.ndarray) -> list[AlleleStats]:
    """Per site, the statistics of (sites, people) dosages without missing calls: what
    bcftools +fill-tags reports (test_reidentification.py), without a second pass."""
    n = d.shape[1]
    ac = d.sum(axis=1, dtype=np.int64)
    hom, het = (d == 2).sum(axis=1), (d == 1).sum(axis=1)
    return [AlleleStats(int(a), 2 * n, int(h), int(e), int(h + e), n)
            for a, h, e in zip(ac, hom, het, strict=True)]


def build_cohort(root: Path, n_victims: int = VICTIMS) -> LDCohort:
    info = generate_cohort(root / "pop.vcf.gz", samples=2 * MEMBERS,
                           length=LENGTH_MB * 1_000_000, seed=11, groups=2, indel_rate=0,
                           multiallelic_rate=0, missing_rate=0)
    beacon, held_out = info.paths
    sites, keep = biallelic_sites(beacon)  # the groups' files hold the same sites
    with ThreadPoolExecutor(2) as pool:
        inside, outside = (d[keep] for d in pool.map(dosages, (beacon, held_out)))
    stats = allele_stats(inside)
    # With VICTIMS, the victims of test_reidentification.py: same generator, same draws.
    rng = np.random.default_rng(5)
    member_idx = rng.choice(MEMBERS, n_victims, replace=False)
    other_idx = rng.choice(MEMBERS, n_victims, replace=False)
    panel = np.delete(outside, other_idx, axis=1)
    ac = panel.sum(axis=1, dtype=np.int64)
    return LDCohort(
        sites, stats, StatsStore(info.samples[:MEMBERS], sites, stats),
        np.array([s.pos for s in sites]), panel, inside[:, member_idx],
        outside[:, other_idx], ac, ac + 2 * (panel == 2).sum(axis=1))  # d^2 = d + 2[d = 2]


@pytest.fixture(scope="module")
def ld_cohort(tmp_path_factory: pytest.TempPathFactory) -> LDCohort:
    return build_cohort(tmp_path_factory.mktemp("ld-cohort"))


def outcome(ac: int, n: int, privacy: PrivacySettings) -> int:
    """What the node answers (its documented pricing, docs/privacy.md) about an allele
    with `ac` copies among `n` people with no missing calls, asked alone."""
    budget = privacy.budget
    if not budget.enabled:
        return YES if ac else NO
    if privacy.strict_pricing:
        # Rarity judged without the target's copies; a "no" costs a singleton's "yes".
        without = AlleleStats(max(0, ac - 2), 2 * n - 2, 0, 0, 0, n)
        if ac == 0:
            llr = membership_llr(1 / (2 * n), n, delta=budget.sequencing_error)
        elif without.ac > 0 and not _revealing(without, privacy):
            llr = 0.0
        else:
            llr = membership_llr(without.af, n, delta=budget.sequencing_error)
    else:
        stats = AlleleStats(ac, 2 * n, 0, 0, 0, n)
        revealing = ac > 0 and _revealing(stats, privacy)
        llr = membership_llr(stats.af, n, delta=budget.sequencing_error) if revealing else 0.0
    if llr > budget.max_llr:
        return REFUSED
    return YES if ac else NO


def _revealing(stats: AlleleStats, privacy: PrivacySettings) -> bool:
    return disclosure(stats, Granularity.BOOLEAN, min_count=privacy.min_count,
                      rare_allele_count=privacy.rare_allele_count,
                      rare_allele_frequency=privacy.rare_allele_frequency).revealing


class Model:
    """The attacker's outcome probabilities, calibrated on the panel.

    For an allele seen `c` times among the panel's and the victim's haplotypes (`h` in
    all), its frequency is Beta(c + 1/2, h - c + 1/2); the other people in the Beacon
    carry a beta-binomial number of copies; a member adds its own `g`. The node's answer
    rule maps each count to an outcome; a sequencing error (DELTA) makes any outcome
    possible. `p_in[c, g, o]`, `p_out[c, o]`.
    """

    def __init__(self, privacy: PrivacySettings, *, n: int, haplotypes: int) -> None:
        rule = np.array([outcome(ac, n, privacy) for ac in range(2 * n + 1)])
        out = _beta_binomial(2 * n, haplotypes)
        inside = _beta_binomial(2 * n - 2, haplotypes)
        self.p_out = _mix(np.stack([out[:, rule == o].sum(1) for o in (NO, YES, REFUSED)], 1))
        self.p_in = _mix(np.stack([
            np.stack([inside[:, rule[g:2 * n - 1 + g] == o].sum(1) for o in (NO, YES, REFUSED)],
                     1) for g in range(3)], 1))
        self.llr = np.log(self.p_in) - np.log(self.p_out)[:, None, :]

    def answerable(self, c: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Whether the node may answer (if the victim is a member): worth asking."""
        ok: np.ndarray = 1 - self.p_in[c, g, REFUSED] >= ANSWERABLE
        return ok

    def evidence(self, c: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Expected log-likelihood ratio of asking, if the victim is a member."""
        gain: np.ndarray = (self.p_in[c, g] * self.llr[c, g]).sum(axis=-1)
        return gain

    def score(self, c: np.ndarray, g: np.ndarray, outcomes: np.ndarray) -> float:
        """log P(outcomes | member) - log P(outcomes | not), alleles taken as independent."""
        return float(self.llr[c, g, outcomes].sum())


def _beta_binomial(n: int, haplotypes: int) -> np.ndarray:
    """[c, k]: P(k copies among n haplotypes | c copies seen among `haplotypes`), the
    frequency's prior Beta(PRIOR)."""
    a, b = PRIOR
    top = n + haplotypes + 2
    lg = np.array([math.lgamma(m + 1) for m in range(top)])  # log m!
    lga, lgb, lgab = (np.array([math.lgamma(m + x) for m in range(top)]) for x in (a, b, a + b))
    c = np.arange(haplotypes + 1)[:, None]
    k = np.arange(n + 1)[None, :]
    log_p = (lg[n] - lg[k] - lg[n - k] + lga[k + c] + lgb[n - k + haplotypes - c]
             - lgab[n + haplotypes] + lgab[haplotypes] - lga[c] - lgb[haplotypes - c])
    p: np.ndarray = np.exp(log_p)
    return p


def _mix(p: np.ndarray) -> np.ndarray:
    return (1 - DELTA) * p + DELTA / 3


@dataclass(frozen=True)
class Victim:
    genotype: np.ndarray  # dosage per site
    counts: np.ndarray  # per site: copies in the panel and the victim together


def victims_of(c: LDCohort) -> list[Victim]:
    """The member victims, then the non-members."""
    base = c.panel_ac
    return [Victim(g, base + g) for m in (c.members, c.non_members) for g in m.T.astype(np.int64)]


def ld_plan(c: LDCohort, v: Victim, model: Model, privacy: PrivacySettings) -> list[int]:
    """Each rare target (rarest first): itself if the node may answer it, then its
    answerable LD partners by r^2, until QUERIES alleles."""
    g = v.genotype
    carried = np.nonzero(g)[0]
    hidden = c.panel_ac[carried] < privacy.rare_allele_frequency * 2 * c.panel.shape[1]
    targets = carried[hidden][np.argsort(v.counts[carried][hidden], kind="stable")]
    askable = model.answerable(v.counts, g)  # cleared as alleles are asked
    plan: list[int] = []
    for r in targets:
        near = ([int(r)] if askable[r] else []) + partners(c, v, int(r), askable)
        plan += near
        askable[near] = False
        if len(plan) >= QUERIES:
            break
    return plan[:QUERIES]


def partners(c: LDCohort, v: Victim, r: int, askable: np.ndarray) -> list[int]:
    """The askable alleles within WINDOW of `r` (not `r`) with the highest genotype r^2
    to it over the panel and the victim (a target only the victim carries still has
    partners: the alleles on the victim's own haplotype)."""
    lo, hi = np.searchsorted(c.pos, [c.pos[r] - WINDOW, c.pos[r] + WINDOW + 1])
    keep = askable[lo:hi].copy()
    keep[r - lo] = False
    idx = np.arange(lo, hi)[keep]
    if idx.size == 0:
        return []
    g, n = v.genotype, c.panel.shape[1] + 1
    # r is rare: its few carriers in the panel are all the cross products need.
    carriers = np.nonzero(c.panel[r])[0]
    near = c.panel[lo:hi, carriers][keep].astype(np.int64)
    cross = near @ c.panel[r, carriers].astype(np.int64) + g[idx] * g[r]
    total, sq = c.panel_ac[idx] + g[idx], c.panel_sq[idx] + g[idx] ** 2
    total_r, sq_r = c.panel_ac[r] + g[r], c.panel_sq[r] + g[r] ** 2
    cov = cross - total * total_r / n
    var = (sq - total**2 / n) * (sq_r - total_r**2 / n)
    r2 = np.divide(cov**2, var, out=np.zeros(idx.size), where=var > 0)
    return [int(j) for j in idx[np.argsort(-r2, kind="stable")][:PARTNERS]]


def edge_plan(c: LDCohort, v: Victim, model: Model, privacy: PrivacySettings) -> list[int]:
    """The carried alleles whose outcome the victim's own copies move most."""
    carried = np.nonzero(v.genotype)[0]
    gain = model.evidence(v.counts[carried], v.genotype[carried])
    return [int(j) for j in carried[np.argsort(-gain, kind="stable")][:QUERIES]]


PLANS = {"ld": ld_plan, "edge": edge_plan}


@dataclass(frozen=True)
class Result:
    power: float
    members: list[float]  # scores: log-likelihood ratio for membership
    non_members: list[float]
    mismatches: int  # answers the attacker's rule did not predict from the true count
    answered: float  # share of queries answered


async def run(client: HTTPClient, c: LDCohort, privacy: PrivacySettings, plan: str
              ) -> Result:
    model = Model(privacy, n=MEMBERS, haplotypes=2 * c.panel.shape[1] + 2)
    vs = victims_of(c)
    plans = [PLANS[plan](c, v, model, privacy) for v in vs]
    limit = asyncio.Semaphore(24)
    zero = np.zeros(len(c.sites))
    outcomes = await asyncio.gather(*(
        attack(client, c.sites, q, zero, zero, requester=f"{plan}-{k}", limit=limit)
        for k, q in enumerate(plans)))
    beacon_ac = c.beacon_ac
    scores, mismatches, answered, asked = [], 0, 0, 0
    for v, q, o in zip(vs, plans, outcomes, strict=True):
        seen = np.array([REFUSED if a is None else a for a in o.answers], dtype=np.int64)
        idx = np.array(q, dtype=np.int64)
        expected = [outcome(int(ac), MEMBERS, privacy) for ac in beacon_ac[idx]]
        mismatches += int((seen != np.array(expected, dtype=np.int64)).sum())
        answered += int((seen != REFUSED).sum())
        asked += len(q)
        scores.append(model.score(v.counts[idx], v.genotype[idx], seen))
    ms, ns = scores[:c.members.shape[1]], scores[c.members.shape[1]:]
    # power_at detects "statistic below t": negate the membership score.
    power = power_at([-s for s in ms], [-s for s in ns], FPR)
    return Result(power, ms, ns, mismatches, answered / max(1, asked))


def report(name: str, r: Result) -> str:
    return (f"{name}: power {r.power:.3f} at FPR {FPR} ({len(r.members)} + "
            f"{len(r.non_members)} victims); score (log-likelihood ratio) members "
            f"{np.mean(r.members):.2f} +- {np.std(r.members):.2f}, non-members "
            f"{np.mean(r.non_members):.2f} +- {np.std(r.non_members):.2f}; answered "
            f"{r.answered:.2f}; unpredicted answers {r.mismatches}")


async def test_without_defences_the_ld_attack_identifies_members(
    aiohttp_client: Client, tmp_path: Path, ld_cohort: LDCohort
) -> None:
    """Measured: power 0.55 (0.51 over 200 + 200 victims)."""
    client = await node(aiohttp_client, tmp_path, ld_cohort.store, OFF)
    result = await run(client, ld_cohort, OFF, "ld")
    print(report("defences off, ld", result))
    assert result.mismatches == 0  # the answers are the Beacon's true presence
    assert result.power >= 0.5


# Issue 13: which answers are free depends on the victim's own copies (module docstring,
# docs/privacy.md "What is not covered"). This is a measurement, not a privacy claim: the
# bound is the documented ceiling of the leak, so a change that widens it fails here.
CEILING = 0.25  # measured 0.175 for both plans on these 40 + 40 victims


@pytest.mark.parametrize("plan", ["ld", "edge"])
async def test_with_defaults_the_measured_leak_stays_under_its_documented_ceiling(
    aiohttp_client: Client, tmp_path: Path, ld_cohort: LDCohort, plan: str
) -> None:
    """Measured: power 0.175 for both plans at 5% false positives (0.07 for LD and 0.14
    for the refusal pattern over 200 + 200 victims): above the false-positive rate, the
    leak docs/privacy.md states."""
    assert DEFAULTS.model_dump(exclude={"client_address_header"}) == PrivacySettings(
    ).model_dump(exclude={"client_address_header"})
    client = await node(aiohttp_client, tmp_path, ld_cohort.store, DEFAULTS)
    result = await run(client, ld_cohort, DEFAULTS, plan)
    print(report(f"defaults, {plan}", result))
    assert result.mismatches == 0  # the attacker knows the answer rule exactly
    assert result.power <= CEILING, report(f"defaults, {plan}", result)


async def measure_all(root: Path, n_victims: int) -> dict[str, Result]:
    """Every attack against both settings, on a node served outside pytest."""
    cohort = build_cohort(root, n_victims)
    results = {}
    for label, privacy in (("defences off", OFF), ("defaults", DEFAULTS)):
        for plan in PLANS:
            client = await node(_serve, root / f"{label}-{plan}", cohort.store, privacy)
            try:
                results[f"{label}, {plan}"] = await run(client, cohort, privacy, plan)
            finally:
                await client.close()
    return results


async def _serve(app: web.Application) -> HTTPClient:
    client: HTTPClient = TestClient(TestServer(app))
    await client.start_server()
    return client


def measure(n_victims: int = VICTIMS) -> dict[str, float]:
    """Power at 5% FPR of each attack (for docs/privacy.md and docs/benchmarks.md), with
    `n_victims` members and as many non-members (taken out of the reference panel)."""
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(measure_all(Path(tmp), n_victims))
    for name, r in results.items():
        print(report(name, r), file=sys.stderr)
    return {name: r.power for name, r in results.items()}


if __name__ == "__main__":  # python -m tests.privacy.test_ld_attack [victims]
    print(measure(*(int(a) for a in sys.argv[1:2])))
