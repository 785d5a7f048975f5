"""The peer (gRPC) path prices answers exactly as HTTP does and charges the same store:
a requester pays the same for the same answer whichever transport it used."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from node.config import PrivacySettings, Settings
from node.domain import AlleleStats, Principal
from node.errors import BudgetExhausted
from node.names import Granularity
from node.peer.accounting import Accounting
from node.peer.auth import Caller
from node.privacy.gate import DisclosureGate

N = 1000
DELTA = 1e-6


def stats(ac: int, carriers: int) -> AlleleStats:
    return AlleleStats(ac=ac, an=2 * N, n_hom_alt=0, n_het=carriers, n_carriers=carriers,
                       n_called=N)


def sb_yes(f: float, n: int = N) -> float:
    return math.log(1 - DELTA * (1 - f) ** (2 * n - 2)) - math.log(1 - (1 - f) ** (2 * n))


CASES = [None, stats(1, 1), stats(3, 3), stats(8, 7), stats(20, 19), stats(400, 360)]


def settings(home: Path, **privacy: object) -> Settings:
    return Settings(home=home, privacy=PrivacySettings.model_validate(
        {"budget": {"max_llr": 1e6}, **privacy}))


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("granularity", [Granularity.BOOLEAN, Granularity.COUNT])
def test_each_answer_costs_what_it_costs_over_http(
    tmp_path: Path, strict: bool, granularity: Granularity
) -> None:
    config = settings(tmp_path, strict_pricing=strict)
    accounting = Accounting(config)
    gate = DisclosureGate.from_settings(config)
    try:
        for i, case in enumerate(CASES):
            ledger = gate.ledger(Principal.anonymous(), f"10.0.0.{i}")
            ledger.release(0 if case is None else 1, "d", granularity=granularity,
                           alleles=[] if case is None else [case], individuals=N)
            peer = accounting.cost([(case, granularity, N)])
            assert peer.llr == pytest.approx(ledger.llr, rel=1e-12, abs=0.0), case
    finally:
        accounting.close()
        gate.close()


def test_strict_peer_prices_by_the_formula_and_batches_add_up(tmp_path: Path) -> None:
    accounting = Accounting(settings(tmp_path))
    absent = accounting.cost([(None, Granularity.BOOLEAN, N)]).llr
    assert absent == pytest.approx(sb_yes(1 / (2 * N)))  # a "no": the singleton price
    # AF 1% is judged without the target's two copies: 18 of 1,998.
    assert accounting.cost([(stats(20, 19), Granularity.BOOLEAN, N)]).llr == pytest.approx(
        sb_yes(18 / (2 * N - 2)))
    assert accounting.cost([(stats(400, 360), Granularity.COUNT, N)]).llr == 0.0
    batch = [(None, Granularity.BOOLEAN, N)] * 3 + [(stats(400, 360), Granularity.BOOLEAN, N)]
    assert accounting.cost(batch).llr == pytest.approx(3 * absent)
    # Record-level answers (a grant holder's) are not charged.
    assert accounting.cost([(stats(1, 1), Granularity.RECORD, N)]).llr == 0.0
    accounting.close()


def test_http_and_peer_charges_draw_on_one_budget(tmp_path: Path) -> None:
    config = settings(tmp_path, budget={"max_llr": 2.5 * sb_yes(1 / (2 * N))})
    alice = Principal("alice", "https://idp.example", False, frozenset(), None)
    gate = DisclosureGate.from_settings(config)
    accounting = Accounting(config)
    caller = Caller("coordinator", alice, None)
    ledger = gate.ledger(alice, None)
    ledger.release(0, "d", granularity=Granularity.BOOLEAN, individuals=N)  # one "no"
    asyncio.run(accounting.charge(caller, accounting.cost([(None, Granularity.BOOLEAN, N)]),
                                  dataset="d"))
    with pytest.raises(BudgetExhausted):  # the third "no", over HTTP: 3 > 2.5
        gate.ledger(alice, None).release(0, "d", granularity=Granularity.BOOLEAN,
                                         individuals=N)
    accounting.close()
    gate.close()
