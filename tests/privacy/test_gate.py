"""The disclosure gate on its own: guard, pricing, budget refusal, audit entry.

Expected charges are computed here from the Shringarpure-Bustamante formula directly
(not through node.privacy.budget), so a wrong formula in the node fails these tests.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from node.config import BudgetSettings, PrivacySettings
from node.domain import AlleleStats, Principal
from node.errors import BudgetExhausted, PermissionDenied
from node.names import CountPrecision, Granularity
from node.privacy.audit import AuditLog, verify
from node.privacy.budget import SQLiteBudget
from node.privacy.gate import ChargeDeferred, DisclosureGate, anonymous_key
from node.privacy.people import PeopleSet, people_set

N = 1000  # individuals in the dataset
DELTA = 1e-6


def sb_yes_llr(f: float, n: int = N) -> float:
    """-log P(yes | not a member) + log P(yes | member): SB 2015 with D_N = (1-f)^(2N)."""
    d_n, d_n1 = (1 - f) ** (2 * n), (1 - f) ** (2 * n - 2)
    return math.log(1 - DELTA * d_n1) - math.log(1 - d_n)


def stats(ac: int, carriers: int) -> AlleleStats:
    return AlleleStats(ac=ac, an=2 * N, n_hom_alt=0, n_het=carriers, n_carriers=carriers,
                       n_called=N)


RARE = stats(3, 3)  # AF 0.0015, 3 carriers
COMMON = stats(400, 360)  # AF 0.2
ONE = sb_yes_llr(3 / (2 * N))  # a "yes" on RARE, priced at the dataset's frequency


def gate(tmp_path: Path, *, max_llr: float = 25.0, audit: bool = False) -> DisclosureGate:
    """Lenient pricing (a "yes" priced at the dataset's frequency, "no" free)."""
    budget = SQLiteBudget(tmp_path / "b.sqlite3", max_llr=max_llr, max_epsilon=10.0)
    log = AuditLog(tmp_path / "audit.jsonl", fsync=False) if audit else None
    return DisclosureGate(PrivacySettings(strict_pricing=False), budget=budget, audit=log)


def test_defaults_are_strict_with_a_budget_below_any_no(tmp_path: Path) -> None:
    defaults = PrivacySettings()
    assert defaults.strict_pricing and defaults.budget.enabled
    limit = defaults.budget.max_llr
    # Power of any test on one requester's answers <= FPR * exp(budget): <= 5.3% at 5%.
    assert 0.05 * math.exp(limit) <= 0.053
    # A "no" must never fit in a fresh default budget, whatever the dataset's size.
    for n in (1, 2, 5, 10, 100, 1000, 10**4, 10**6):
        assert sb_yes_llr(1 / (2 * n), n) > limit


def test_default_gate_answers_common_alleles_and_refuses_no_and_rare(tmp_path: Path) -> None:
    budget = SQLiteBudget(tmp_path / "b.sqlite3", max_llr=PrivacySettings().budget.max_llr,
                          max_epsilon=10.0)
    g = DisclosureGate(PrivacySettings(), budget=budget, audit=None)
    ledger = g.ledger(Principal.anonymous(), "10.0.0.1")
    for _ in range(50):
        out = ledger.release(1, "d", granularity=Granularity.BOOLEAN, alleles=[COMMON],
                             individuals=N)
        assert (out.value, out.precision) == (1, CountPrecision.EXACT)
    for refused in ([RARE], [stats(1, 1)], []):
        with pytest.raises(BudgetExhausted):
            ledger.release(len(refused), "d", granularity=Granularity.BOOLEAN,
                           alleles=refused, individuals=N)
    assert ledger.llr == 0.0


def group(n: int, kind: str = "individuals", first: int = 0) -> PeopleSet:
    return people_set("d", kind, [f"I{i:04d}" for i in range(first, first + n)])


def test_people_counts_below_k_are_imprecise_never_exact(tmp_path: Path) -> None:
    # Noise off: the small-count threshold alone (no overlap control: no universe given).
    g = DisclosureGate(PrivacySettings(strict_pricing=False, people_epsilon=None),
                       budget=None, audit=None)
    ledger = g.ledger(Principal.anonymous(), "10.0.0.1")
    for n in range(1, 5):
        out = ledger.release_people(group(n), granularity=Granularity.COUNT)
        assert (out.value, out.precision, out.adjusted_to) == (5, CountPrecision.IMPRECISE, 5)
        assert (out.lower, out.upper) == (1, 4)
    for n in (0, 5, 17):
        out = ledger.release_people(group(n), granularity=Granularity.COUNT)
        assert (out.value, out.precision) == (n, CountPrecision.EXACT)


def test_record_level_people_counts_are_exact_even_below_k(tmp_path: Path) -> None:
    # The records are listed: their number is not hidden behind "k, imprecise".
    ledger = gate(tmp_path).ledger(Principal.anonymous(), "10.0.0.1")
    out = ledger.release_people(group(2), granularity=Granularity.RECORD,
                                entitled=Granularity.RECORD)
    assert (out.value, out.precision) == (2, CountPrecision.EXACT) and ledger.epsilon == 0


def test_people_counts_are_noised_once_per_set_and_charged_once(tmp_path: Path) -> None:
    budget = SQLiteBudget(tmp_path / "b.sqlite3", max_llr=1.0, max_epsilon=10.0)
    g = DisclosureGate(PrivacySettings(), budget=budget, audit=None, secret=b"k" * 32)
    eps = PrivacySettings().people_epsilon
    assert eps is not None
    everyone = group(200)
    ledger = g.ledger(Principal.anonymous(), "10.0.0.1")
    first = ledger.release_people(group(60), granularity=Granularity.COUNT, universe=everyone)
    assert first.precision is CountPrecision.IMPRECISE and ledger.epsilon == eps
    assert (first.lower, first.upper) == (0, 200)
    # The same set again (any wording, any requester of the class): the same value, free.
    again = g.ledger(Principal.anonymous(), "10.0.0.2")
    assert again.release_people(group(60), granularity=Granularity.COUNT,
                                universe=everyone).value == first.value
    assert again.epsilon == eps  # its own first time: charged to it, not to the pool
    assert budget.balance("pool:anonymous:d").epsilon_spent == eps
    ledger.release_people(group(60), granularity=Granularity.COUNT, universe=everyone)
    assert budget.balance(ledger.requester).epsilon_spent == eps
    # Over many sets the noise is the two-sided geometric of ε (mean 0, P(0) = tanh(ε/2)).
    noise = [g.people_count(group(100, first=i), upper=None).value - 100 for i in range(3000)]
    assert abs(sum(noise) / len(noise)) < 0.3
    assert noise.count(0) / len(noise) == pytest.approx(math.tanh(eps / 2), abs=0.03)


def test_a_differencing_pair_never_gets_both_answers(tmp_path: Path) -> None:
    budget = SQLiteBudget(tmp_path / "b.sqlite3", max_llr=1.0, max_epsilon=10.0)
    g = DisclosureGate(PrivacySettings(), budget=budget, audit=None)
    everyone = group(120)
    ledger = g.ledger(Principal.anonymous(), "10.0.0.1")
    with pytest.raises(PermissionDenied):  # everyone but one: the dataset's size is public
        ledger.release_people(group(119), granularity=Granularity.COUNT, universe=everyone)
    ledger.release_people(group(60), granularity=Granularity.COUNT, universe=everyone)
    other = g.ledger(Principal.anonymous(), "10.0.0.2")  # another address, same class
    for n in (59, 61, 64):
        with pytest.raises(PermissionDenied):
            other.release_people(group(n), granularity=Granularity.COUNT, universe=everyone)
    other.release_people(group(65), granularity=Granularity.COUNT, universe=everyone)
    assert other.epsilon == PrivacySettings().people_epsilon


def test_anonymous_addresses_share_a_pool(tmp_path: Path) -> None:
    settings = PrivacySettings(people_epsilon=0.5,
                               budget=BudgetSettings(pool_max_epsilon=1.0))
    budget = SQLiteBudget(tmp_path / "b.sqlite3", max_llr=1.0, max_epsilon=10.0)
    seen: list[str] = []
    g = DisclosureGate(settings, budget=budget, audit=None, on_pool_refusal=seen.append)
    everyone = group(1000)
    for i in range(2):  # two fresh addresses spend the pool (0.5 each)
        g.ledger(Principal.anonymous(), f"10.0.0.{i}").release_people(
            group(100 + 10 * i), granularity=Granularity.COUNT, universe=everyone)
    with pytest.raises(BudgetExhausted, match="anonymous requesters' pooled"):
        g.ledger(Principal.anonymous(), "10.0.0.9").release_people(
            group(300), granularity=Granularity.COUNT, universe=everyone)
    assert seen == ["pool:anonymous:d"]
    # Never blocks a record-level requester; another class has its own pool.
    g.ledger(Principal.anonymous(), "10.0.0.9").release_people(
        group(300), granularity=Granularity.COUNT, entitled=Granularity.RECORD,
        universe=everyone)
    alice = Principal("alice", "https://idp", False, frozenset(), None)
    g.ledger(alice, None).release_people(group(300), granularity=Granularity.COUNT,
                                         universe=everyone)


def test_rare_yes_is_charged_its_likelihood_ratio_common_is_free(tmp_path: Path) -> None:
    g = gate(tmp_path)
    ledger = g.ledger(Principal.anonymous(), "10.0.0.1")
    out = ledger.release(1, "d", granularity=Granularity.BOOLEAN, alleles=[COMMON],
                         individuals=N)
    assert (out.value, out.precision, ledger.llr) == (1, CountPrecision.EXACT, 0.0)
    ledger.release(1, "d", granularity=Granularity.BOOLEAN, alleles=[RARE], individuals=N)
    assert ledger.llr == pytest.approx(ONE, rel=1e-9)
    # Boolean over several alleles: only "one of them is present" -> the cheapest one.
    ledger2 = g.ledger(Principal.anonymous(), "10.0.0.2")
    ledger2.release(2, "d", granularity=Granularity.BOOLEAN, alleles=[RARE, COMMON],
                    individuals=N)
    assert ledger2.llr == 0.0
    # A count tells which alleles are there: the evidence adds up.
    ledger3 = g.ledger(Principal.anonymous(), "10.0.0.3")
    ledger3.release(2, "d", granularity=Granularity.COUNT, alleles=[RARE, RARE],
                    individuals=N)
    assert ledger3.llr == pytest.approx(2 * ONE, rel=1e-9)


def test_a_broad_count_is_charged_every_allele_including_repeats(tmp_path: Path) -> None:
    """Equal statistics are priced once but charged once per allele that has them."""
    g = gate(tmp_path, max_llr=1e9)
    five = stats(5, 5)
    alleles = [RARE, five, COMMON] * 10 + [RARE] * 40 + [five] * 20
    ledger = g.ledger(Principal.anonymous(), "10.0.0.9")
    ledger.release(len(alleles), "d", granularity=Granularity.COUNT, alleles=alleles,
                   individuals=N)
    assert ledger.llr == pytest.approx(50 * ONE + 30 * sb_yes_llr(5 / (2 * N)), rel=1e-9)


def test_spent_budget_refuses_and_charges_nothing(tmp_path: Path) -> None:
    one = ONE
    g = gate(tmp_path, max_llr=2.5 * one)
    ledger = g.ledger(Principal.anonymous(), "10.0.0.1")
    for _ in range(2):
        ledger.release(1, "d", granularity=Granularity.BOOLEAN, alleles=[RARE], individuals=N)
    ledger.counts.clear()
    with pytest.raises(BudgetExhausted):
        ledger.release(1, "d", granularity=Granularity.BOOLEAN, alleles=[RARE], individuals=N)
    assert ledger.counts == {} and ledger.llr == pytest.approx(2 * one)
    # Answers that reveal nobody still flow; another client has its own budget.
    ledger.release(1, "d", granularity=Granularity.BOOLEAN, alleles=[COMMON], individuals=N)
    other = g.ledger(Principal.anonymous(), "10.0.0.9")
    other.release(1, "d", granularity=Granularity.BOOLEAN, alleles=[RARE], individuals=N)


def test_budget_keys(tmp_path: Path) -> None:
    g = gate(tmp_path)
    assert anonymous_key("10.0.0.1") != anonymous_key("10.0.0.2")
    assert g.ledger(Principal.anonymous(), "10.0.0.1").requester == anonymous_key("10.0.0.1")
    assert "10.0.0.1" not in anonymous_key("10.0.0.1")
    alice = Principal("alice", "https://idp", False, frozenset(), None)
    assert g.ledger(alice, "10.0.0.1").requester == alice.requester_id


def test_one_audit_entry_with_counts_granularity_and_charge(tmp_path: Path) -> None:
    budget = SQLiteBudget(tmp_path / "b.sqlite3", max_llr=25.0, max_epsilon=10.0)
    g = DisclosureGate(PrivacySettings(strict_pricing=False, people_epsilon=None),
                       budget=budget, audit=AuditLog(tmp_path / "audit.jsonl", fsync=False))
    ledger = g.ledger(Principal.anonymous(), "10.0.0.1")
    ledger.release_people(people_set("d1", "individuals", ["a", "b"]),
                          granularity=Granularity.COUNT)
    ledger.release(1, "d2", granularity=Granularity.COUNT, alleles=[RARE], individuals=N)
    g.audit(ledger, request_id="r1", datasets=["d1", "d2"], query={"q": 1},
            granularity="count")
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["counts"] == {"d1": {"value": 5, "precision": "imprecise", "adjustedTo": 5},
                               "d2": {"value": 1, "precision": "exact"}}
    assert entry["granularity"] == "count" and entry["request_id"] == "r1"
    assert entry["budget"]["llr"] == pytest.approx(ONE)
    assert entry["requester"] == anonymous_key("10.0.0.1")
    assert verify(tmp_path / "audit.jsonl").ok


def test_absence_is_charged_only_when_configured(tmp_path: Path) -> None:
    budget = SQLiteBudget(tmp_path / "b.sqlite3", max_llr=25.0, max_epsilon=10.0)
    on = DisclosureGate(PrivacySettings(strict_pricing=True), budget=budget, audit=None)
    off = gate(tmp_path / "off")
    for g, expected in ((on, sb_yes_llr(1 / (2 * N))), (off, 0.0)):
        ledger = g.ledger(Principal.anonymous(), "10.0.0.1")
        ledger.release(0, "d", granularity=Granularity.BOOLEAN, individuals=N)
        ledger.release_people(group(0), granularity=Granularity.COUNT)
        assert ledger.llr == pytest.approx(expected, rel=1e-9)


def test_strict_pricing_judges_rarity_without_the_targets_copies(tmp_path: Path) -> None:
    # AF exactly 1% counts as common, but without the target's two copies it is rare:
    # charged, so a member's own copies cannot make its answers free. A singleton is
    # then absent: its "yes" is worth log(1/δ).
    budget = SQLiteBudget(tmp_path / "b.sqlite3", max_llr=100.0, max_epsilon=10.0)
    strict = DisclosureGate(PrivacySettings(strict_pricing=True), budget=budget, audit=None)
    lenient = gate(tmp_path / "lenient")
    for g, expected in ((strict, sb_yes_llr(18 / (2 * N - 2))), (lenient, 0.0)):
        ledger = g.ledger(Principal.anonymous(), "10.0.0.1")
        ledger.release(1, "d", granularity=Granularity.BOOLEAN, alleles=[stats(20, 19)],
                       individuals=N)
        assert ledger.llr == pytest.approx(expected, rel=1e-9)
    ledger = strict.ledger(Principal.anonymous(), "10.0.0.2")
    ledger.release(1, "d", granularity=Granularity.BOOLEAN, alleles=[stats(1, 1)],
                   individuals=N)
    assert ledger.llr == pytest.approx(-math.log(DELTA))


def test_requesters_entitled_to_records_are_not_charged(tmp_path: Path) -> None:
    budget = SQLiteBudget(tmp_path / "b.sqlite3", max_llr=1e-12, max_epsilon=10.0)
    g = DisclosureGate(PrivacySettings(), budget=budget, audit=None)
    ledger = g.ledger(Principal.anonymous(), "10.0.0.1")
    for granularity in (Granularity.BOOLEAN, Granularity.COUNT):
        ledger.release(1, "d", granularity=granularity, alleles=[stats(1, 1)], individuals=N,
                       entitled=Granularity.RECORD)
        ledger.release(0, "d", granularity=granularity, individuals=N,
                       entitled=Granularity.RECORD)
    assert ledger.llr == 0.0
    with pytest.raises(BudgetExhausted):  # the same answers at a count entitlement
        ledger.release(1, "d", granularity=Granularity.COUNT, alleles=[stats(1, 1)],
                       individuals=N, entitled=Granularity.COUNT)


def test_a_deferring_ledger_decides_free_answers_and_refusals_without_the_store(
    tmp_path: Path,
) -> None:
    """On an event loop: free answers and charges above a whole budget need no budget
    store; a charge that could fit raises ChargeDeferred and leaves nothing behind."""
    g = gate(tmp_path, max_llr=0.5 * ONE)
    calls: list[str] = []
    store = g._budget
    assert store is not None
    real_charge = store.charge
    store.charge = lambda r, c, **kw: calls.append(r) or real_charge(r, c, **kw)  # type: ignore[method-assign,func-returns-value]
    ledger = g.ledger(Principal.anonymous(), "10.0.0.1")
    with ledger.deferring():
        ledger.release(1, "d", granularity=Granularity.BOOLEAN, alleles=[COMMON],
                       individuals=N)
        with pytest.raises(BudgetExhausted):  # one rare "yes" is more than the budget
            ledger.release(1, "d", granularity=Granularity.BOOLEAN, alleles=[RARE],
                           individuals=N)
    assert calls == [] and ledger.counts["d"]["value"] == 1
    roomy = gate(tmp_path / "roomy")
    ledger = roomy.ledger(Principal.anonymous(), "10.0.0.1")
    with pytest.raises(ChargeDeferred), ledger.deferring():
        ledger.release(1, "a", granularity=Granularity.BOOLEAN, alleles=[COMMON],
                       individuals=N)
        ledger.release(1, "b", granularity=Granularity.BOOLEAN, alleles=[RARE],
                       individuals=N)
    assert ledger.counts == {} and ledger.llr == 0 and not ledger.defer_charges
    ledger.release(1, "b", granularity=Granularity.BOOLEAN, alleles=[RARE], individuals=N)
    assert ledger.llr == pytest.approx(ONE)
