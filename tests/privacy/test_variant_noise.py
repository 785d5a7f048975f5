"""Optional differential privacy for variant counts (`privacy.variant_epsilon`): the
geometric mechanism's noise has the theory's mean and variance, answers say they are
imprecise, and each is charged its ε (and at most ε of membership evidence)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from node.config import AuditSettings, BudgetSettings, PrivacySettings, Settings
from node.domain import AlleleStats, Principal
from node.errors import BudgetExhausted
from node.names import CountPrecision, Granularity
from node.privacy.budget import SQLiteBudget
from node.privacy.gate import DisclosureGate
from node.store.memory import MemoryStore
from tests.privacy.test_http_privacy import COMMON, PUBLIC_COUNT, Client, ask, client_for
from tests.privacy.test_http_privacy import store as store

N = 1000
DRAWS = 40_000


def _moments(epsilon: float) -> tuple[float, float]:
    """Variance and fourth moment of P(z) = (1-a)/(1+a) a^|z|, a = e^-ε, by summation."""
    a = math.exp(-epsilon)
    pmf = [(z, (1 - a) / (1 + a) * a ** abs(z)) for z in range(-2000, 2001)]
    return sum(p * z * z for z, p in pmf), sum(p * z**4 for z, p in pmf)


def _noise(gate: DisclosureGate, true: int) -> list[int]:
    out = []
    for _ in range(DRAWS):
        g = gate.variant_count(true, granularity=Granularity.COUNT, alleles=1)
        assert g.precision is CountPrecision.IMPRECISE and g.epsilon == pytest.approx(0.5)
        out.append(g.value - true)
    return out


def test_noise_mean_and_variance_match_the_geometric_mechanism() -> None:
    eps = 0.5
    gate = DisclosureGate(PrivacySettings(variant_epsilon=eps), budget=None, audit=None,
                          rng=random.Random(20261123))
    noise = _noise(gate, 10_000)  # far from 0: no clamping
    var, fourth = _moments(eps)
    a = math.exp(-eps)
    assert var == pytest.approx(2 * a / (1 - a) ** 2, rel=1e-9)  # the closed form
    mean = sum(noise) / DRAWS
    sample_var = sum((z - mean) ** 2 for z in noise) / (DRAWS - 1)
    assert abs(mean) < 4 * math.sqrt(var / DRAWS)
    tolerance = 4 * math.sqrt((fourth - var**2) / DRAWS)
    assert abs(sample_var - var) < tolerance
    # The check has power: a mechanism with 20% more epsilon is far outside it.
    assert abs(sample_var - _moments(1.2 * eps)[0]) > 3 * tolerance


def test_off_by_default_and_never_on_records() -> None:
    exact = DisclosureGate(PrivacySettings(), budget=None, audit=None)
    out = exact.variant_count(7, granularity=Granularity.COUNT, alleles=1)
    assert out.precision is CountPrecision.EXACT
    noised = DisclosureGate(PrivacySettings(variant_epsilon=1.0), budget=None, audit=None,
                            rng=random.Random(1))
    out = noised.variant_count(7, granularity=Granularity.RECORD, alleles=1)
    assert (out.value, out.precision, out.epsilon) == (7, CountPrecision.EXACT, None)


def test_noised_answers_are_charged_epsilon_per_allele(tmp_path: Path) -> None:
    budget = SQLiteBudget(tmp_path / "b.sqlite3", max_llr=0.9, max_epsilon=0.9)
    gate = DisclosureGate(PrivacySettings(variant_epsilon=0.2), budget=budget, audit=None,
                          rng=random.Random(3))
    ledger = gate.ledger(Principal.anonymous(), "10.0.0.1")
    singleton = AlleleStats(ac=1, an=2 * N, n_hom_alt=0, n_het=1, n_carriers=1, n_called=N)
    out = ledger.release(2, "d", granularity=Granularity.COUNT,
                         alleles=[singleton, singleton], individuals=N)
    assert out.epsilon == pytest.approx(0.4)
    # Exact, this count would be worth 2 x log(1/δ) nats; noised, at most its ε.
    assert (ledger.epsilon, ledger.llr) == (pytest.approx(0.4), pytest.approx(0.4))
    ledger.release(0, "d", granularity=Granularity.BOOLEAN, individuals=N)  # a "no": ε
    assert ledger.epsilon == pytest.approx(0.6)
    with pytest.raises(BudgetExhausted):
        ledger.release(2, "d", granularity=Granularity.COUNT,
                       alleles=[singleton, singleton], individuals=N)


async def test_http_count_states_its_precision(
    aiohttp_client: Client, tmp_path: Path, store: MemoryStore
) -> None:
    settings = Settings(home=tmp_path, datasets={"ds": PUBLIC_COUNT},
                        audit=AuditSettings(fsync=False),
                        privacy=PrivacySettings(variant_epsilon=0.5,
                                                budget=BudgetSettings(max_epsilon=100.0)))
    client = await client_for(aiohttp_client, settings, store)
    status, doc = await ask(client, {**COMMON, "requestedGranularity": "count"}, "x")
    assert status == 200, doc
    assert doc["responseSummary"]["countPrecision"] == "imprecise"
