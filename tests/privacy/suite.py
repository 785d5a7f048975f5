"""The attack suite's node and attacks, over HTTP (used by tests/privacy/test_attacks.py
and bench/privacy_bench.py).

The node: a simulated cohort (msprime, node.synth) of `MEMBERS` people in a TileDB-VCF
store, with Beacon-Friendly-Format metadata (sex, ethnicity, height, diseases; the
demo's generator), as a PUBLIC dataset whose anonymous requesters get counts, under the
default privacy settings. Truths come from outside the node: genotypes and allele
frequencies from bcftools, group sizes from the metadata files.

Attacks (each returns what the attacker achieved, so a test can compare it with a bound
and with the same attack against a node whose defences are off):

- `scoped_genotype`: a body height that one person exceeds scopes a variant query to
  that person; for alleles the person carries and alleles it does not, the attacker's
  best rule maps each distinct response (status, exists, count, precision, message) to
  the more frequent truth behind it: its accuracy is what the answers reveal.
- `differencing`: groups of 1-4 people isolated by a height threshold (alone or within a
  sex), each attacked by a fresh anonymous address that knows the dataset's size and
  asks the complement, the complement split by sex, the sex's total, each twice and
  worded two ways, then the group itself. Its estimate is the mean of every difference it
  could complete (and of an exact direct count), rounded; it recovers the group when that
  equals the true size.
- `people_utility` / `variant_utility`: the share of counts >= 50 within 10% and of
  exact-allele queries on alleles with AF >= 1% that are answered.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from node.catalog import Catalog
from node.config import (
    AuditSettings,
    BudgetSettings,
    DatasetSettings,
    PrivacySettings,
    Settings,
)
from node.demo.metadata import write_bff
from node.names import Granularity, SecurityLevel
from node.store.base import VariantStore
from node.store.registry import DatasetRegistry
from node.store.tiledbvcf import TileDBVCFStore
from node.synth import generate_cohort
from node.web.app import create_app

MEMBERS = 1000
DATASET = "ds"
HEIGHT = "LOINC:8308-9"
MALE, FEMALE = "NCIT:C20197", "NCIT:C16576"
PUBLIC_COUNT = DatasetSettings(
    assembly="GRCh38", security_level=SecurityLevel.PUBLIC,
    max_granularity={SecurityLevel.PUBLIC: Granularity.COUNT})
SECRET = bytes(range(32))  # the node's noise key: fixed, so every run answers alike
ClientFactory = Callable[[Settings, VariantStore], Awaitable[TestClient]]


@dataclass(frozen=True)
class Person:
    id: str
    sex: str
    height: float


@dataclass
class Cohort:
    vcf: Path
    bff: Path
    store: VariantStore
    people: list[Person]
    sites: list[tuple[int, str, str, float]] = field(default_factory=list)  # POS REF ALT AF


def build_cohort(folder: Path, *, members: int = MEMBERS, seed: int = 20261207) -> Cohort:
    generated = generate_cohort(folder / "cohort.vcf.gz", samples=members, length=300_000,
                                seed=seed, multiallelic_rate=0.0)
    store = TileDBVCFStore.create(str(folder / "store"), assembly="GRCh38")
    store.ingest(list(generated.paths), assembly="GRCh38")
    bff = folder / "bff"
    write_bff(bff, dataset_id=DATASET, name="attack suite", samples=generated.samples,
              sequenced=[], seed=seed)
    people = [Person(r["id"], r["sex"]["id"], r["measures"][0]["measurementValue"]["value"])
              for r in json.loads((bff / "individuals.json").read_text())]
    cohort = Cohort(generated.paths[0], bff, store, people)
    cohort.sites = _biallelic_frequencies(cohort.vcf)
    return cohort


def _biallelic_frequencies(vcf: Path) -> list[tuple[int, str, str, float]]:
    filled = subprocess.run(["bcftools", "+fill-tags", str(vcf), "-Ou", "--", "-t", "AF"],
                            capture_output=True, check=True).stdout
    out = subprocess.run(["bcftools", "query", "-i", "N_ALT=1", "-f", "%POS\t%REF\t%ALT\t%AF\n"],
                         input=filled, capture_output=True, check=True).stdout.decode()
    return [(int(p), r, a, float(f)) for p, r, a, f in
            (line.split("\t") for line in out.splitlines())]


def genotypes_of(vcf: Path, sample: str) -> dict[int, str]:
    """POS -> GT of `sample`, from bcftools."""
    out = subprocess.run(["bcftools", "query", "-s", sample, "-f", "%POS\t[%GT]\n", str(vcf)],
                         capture_output=True, check=True, text=True).stdout
    return {int(p): gt for p, gt in (line.split("\t") for line in out.splitlines())}


def node_settings(home: Path, *, defended: bool = True) -> Settings:
    """The default settings (a proxy header only so that a test client can be many
    addresses); `defended=False`: the people-count defences off, as before issue 13."""
    privacy = PrivacySettings(client_address_header="X-Forwarded-For")
    if not defended:
        privacy = PrivacySettings(client_address_header="X-Forwarded-For",
                                  people_epsilon=None, overlap_control=False, min_scope=1,
                                  budget=BudgetSettings(enabled=False))
    return Settings(home=home, datasets={DATASET: PUBLIC_COUNT}, privacy=privacy,
                    audit=AuditSettings(fsync=False))


def prepare_home(home: Path, cohort: Cohort, *, secret: bytes = SECRET) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "privacy.secret").write_bytes(secret)
    Catalog.open(home).load(DATASET, [cohort.bff])


def app_for(settings: Settings, store: VariantStore) -> Any:
    def registry(s: Settings) -> DatasetRegistry:
        return DatasetRegistry(s, opener=lambda _: store, lister=lambda: [DATASET])

    return create_app(settings, registry_factory=registry)


# -- requests ---------------------------------------------------------------------------

Filters = list[dict[str, str]]


def sex_filter(sex: str) -> dict[str, str]:
    return {"id": sex}


def height_filter(op: str, value: float) -> dict[str, str]:
    return {"id": HEIGHT, "operator": op, "value": f"{value:.3f}"}


async def count_people(client: TestClient, filters: Filters, who: str) -> tuple[int, Any]:
    body = {"meta": {"apiVersion": "v2.0"},
            "query": {"filters": filters, "requestedGranularity": "count"}}
    resp = await client.post("/api/individuals", json=body, headers={"X-Forwarded-For": who})
    return resp.status, await resp.json()


def reading(status: int, doc: Any) -> float | None:
    """The number a count answer gives an attacker: None for refusals and for counts
    raised to the threshold (they say only "between 1 and k-1")."""
    if status != 200:
        return None
    summary = doc["responseSummary"]
    if summary.get("countAdjustedTo") is not None and summary["countPrecision"] == "imprecise":
        return None
    return float(summary["numTotalResults"])


# -- the scoped-genotype attack ------------------------------------------------------------

def tallest_scope(people: Sequence[Person]) -> tuple[Person, float]:
    """The tallest person and a height threshold that only they exceed."""
    ranked = sorted(people, key=lambda p: p.height, reverse=True)
    assert ranked[0].height > ranked[1].height, "the tallest is not unique"
    return ranked[0], (ranked[0].height + ranked[1].height) / 2


def target_alleles(cohort: Cohort, target: Person, n: int) -> list[tuple[int, str, str, bool]]:
    """`n` common alleles (AF >= 5%), half carried by the target, half not."""
    gts = genotypes_of(cohort.vcf, target.id)
    carried = [(p, r, a, True) for p, r, a, f in cohort.sites if f >= 0.05 and "1" in gts[p]]
    absent = [(p, r, a, False) for p, r, a, f in cohort.sites
              if f >= 0.05 and "1" not in gts[p] and "." not in gts[p]]
    assert len(carried) >= n // 2 and len(absent) >= n // 2
    return carried[: n // 2] + absent[: n // 2]


async def scoped_genotype(client: TestClient, cohort: Cohort, *, alleles: int = 40,
                          who: str = "198.51.100.1") -> float:
    """The best accuracy any rule on the responses reaches at telling carried alleles."""
    target, threshold = tallest_scope(cohort.people)
    seen: Counter[tuple[Any, ...]] = Counter()
    truths: dict[tuple[Any, ...], Counter[bool]] = {}
    for pos, ref, alt, carried in target_alleles(cohort, target, alleles):
        body = {"meta": {"apiVersion": "v2.0"}, "query": {
            "requestParameters": {"referenceName": "1", "start": [pos - 1],
                                  "referenceBases": ref, "alternateBases": alt,
                                  "assemblyId": "GRCh38"},
            "filters": [height_filter(">", threshold)], "requestedGranularity": "count"}}
        resp = await client.post("/api/g_variants", json=body,
                                 headers={"X-Forwarded-For": who})
        doc = await resp.json()
        summary = doc.get("responseSummary", {})
        signature = (resp.status, summary.get("exists"), summary.get("numTotalResults"),
                     summary.get("countPrecision"), doc.get("error", {}).get("errorMessage"))
        seen[signature] += 1
        truths.setdefault(signature, Counter())[carried] += 1
    return sum(max(c.values()) for c in truths.values()) / sum(seen.values())


# -- the differencing attack -----------------------------------------------------------------

@dataclass(frozen=True)
class Group:
    size: int
    sex: str | None  # the group lies within this sex (an ontology filter), or everyone
    op: str  # ">" (the tallest) or "<" (the shortest)
    threshold: float

    def filters(self, *, complement: bool = False, nudge: float = 0.0) -> Filters:
        op = {">": "<=", "<": ">="}[self.op] if complement else self.op
        out = [height_filter(op, self.threshold + nudge)]
        return out if self.sex is None else [sex_filter(self.sex), *out]


def small_groups(people: Sequence[Person]) -> list[Group]:
    """Groups of 1..4 people cut by a height threshold, in everyone and within each sex."""
    out = []
    for sex in (None, MALE, FEMALE):
        pool = sorted(p.height for p in people if sex is None or p.sex == sex)
        for size in range(1, 5):
            for op, edge in ((">", pool[::-1]), ("<", pool)):
                inside, outside = edge[size - 1], edge[size]
                if inside != outside:  # a tie would not cut exactly `size` people
                    out.append(Group(size, sex, op, (inside + outside) / 2))
    return out


async def attack_group(client: TestClient, group: Group, members: int, who: str) -> bool:
    """Whether a fresh anonymous address recovers the group's exact size."""
    estimates: list[float] = []
    for nudge in (0.0, 0.001):  # the same sets, worded two ways: repetition
        for _ in range(2):
            estimates += await _differences(client, group, members, who, nudge)
    direct = reading(*await count_people(client, group.filters(), who))
    if direct is not None:
        estimates.append(direct)
    if not estimates:
        return False
    return round(sum(estimates) / len(estimates)) == group.size


async def _differences(client: TestClient, group: Group, members: int, who: str,
                       nudge: float) -> list[float]:
    rest = group.filters(complement=True, nudge=nudge)
    out = []
    if group.sex is None:
        whole = reading(*await count_people(client, rest, who))
        if whole is not None:
            out.append(members - whole)
        split = [reading(*await count_people(client, [sex_filter(s), *rest], who))
                 for s in (MALE, FEMALE)]
        if None not in split:
            out.append(members - sum(v for v in split if v is not None))
    else:
        total = reading(*await count_people(client, [sex_filter(group.sex)], who))
        part = reading(*await count_people(client, rest, who))
        if total is not None and part is not None:
            out.append(total - part)
    return out


async def differencing_alone(make_client: Callable[[], Awaitable[TestClient]],
                             cohort: Cohort) -> tuple[float, int]:
    """As `differencing`, each group attacked on a fresh node (nothing released before,
    the whole pool free): the bound one address's own budget sets."""
    groups = small_groups(cohort.people)
    won = []
    for g in groups:
        client = await make_client()
        try:
            won.append(await attack_group(client, g, len(cohort.people), "203.0.113.1"))
        finally:
            await client.close()
    return sum(won) / len(won), len(groups)


async def differencing(client: TestClient, cohort: Cohort) -> tuple[float, int]:
    """(share of groups recovered, number of groups), one fresh address per group."""
    groups = small_groups(cohort.people)
    won = [await attack_group(client, g, len(cohort.people), f"203.0.113.{i}")
           for i, g in enumerate(groups)]
    return sum(won) / len(won), len(groups)


# -- utility --------------------------------------------------------------------------------

async def people_utility(client: TestClient, cohort: Cohort, *, sets: int = 20
                         ) -> tuple[float, int]:
    """(share of answered counts within 10% of the truth, answered) over `sets` height
    ranges holding 50 or more people, each 6 or more people apart (distinct questions,
    not differencing pairs), two per anonymous address."""
    heights = sorted((p.height for p in cohort.people), reverse=True)
    cuts: list[tuple[float, int]] = []
    for i in range(49, len(heights) - 1):
        if heights[i] != heights[i + 1] and (not cuts or i + 1 - cuts[-1][1] >= 6):
            cuts.append(((heights[i] + heights[i + 1]) / 2, i + 1))
    good = answered = 0
    for i, (threshold, truth) in enumerate(cuts[:sets]):
        status, doc = await count_people(client, [height_filter(">", threshold)],
                                         f"192.0.2.{i // 2}")
        value = reading(status, doc)
        if value is None:
            continue
        answered += 1
        good += abs(value - truth) <= 0.1 * truth
    return (good / answered if answered else 0.0), answered


async def variant_utility(client: TestClient, cohort: Cohort) -> tuple[float, int]:
    """(share answered, number asked): exact-allele boolean queries on every allele with
    AF >= 1%, from one anonymous address."""
    asked = answered = 0
    for pos, ref, alt, af in cohort.sites:
        if af < 0.01:
            continue
        params = {"referenceName": "1", "start": str(pos - 1), "referenceBases": ref,
                  "alternateBases": alt, "assemblyId": "GRCh38",
                  "requestedGranularity": "boolean"}
        resp = await client.get("/api/g_variants", params=params,
                                headers={"X-Forwarded-For": "192.0.2.200"})
        asked += 1
        answered += resp.status == 200
    return answered / asked, asked
