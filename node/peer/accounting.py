"""Budget and audit of peer calls: the same node/privacy machinery as HTTP.

The requester is the coordinator (its pseudonymous `requester_id`): every answer that
can reveal membership is priced by the node's `DisclosureGate` (node/privacy/gate.py),
exactly as the same answer over HTTP, strict pricing included (an allele the dataset
does not hold costs what a "no" costs), and charged through the gate's one exit
(`Ledger.account`: the coordinator's budget and its class's pool for the dataset, in the
same SQLite or Redis store) before the answer leaves; the call is refused
(RESOURCE_EXHAUSTED) when it would overdraw. Counts of people (CountIndividuals) leave
through the gate's people exit (`Ledger.release_people`), as over HTTP. Each allele of a
batch is its own answer: their charges add up, as for a count over several alleles.
Asking the same node through many users of one coordinator therefore draws on one
budget; each node guards its own data subjects with its own budget.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from typing import Any

from node.config import Settings
from node.domain import AlleleStats
from node.errors import BudgetExhausted, Unavailable
from node.names import CountPrecision, Granularity
from node.peer.auth import Caller
from node.privacy.audit import AuditLog
from node.privacy.budget import Charge, open_budget
from node.privacy.gate import DisclosureGate, Ledger, anonymous_key
from node.privacy.guard import GuardedCount
from node.privacy.people import PeopleSet, load_secret

__all__ = ["Accounting", "Answer"]

# (true statistics or None, granularity, individuals in the dataset)
Answer = tuple[AlleleStats | None, Granularity, int]

_UNNOISED = GuardedCount(0, CountPrecision.EXACT)


class Accounting:
    def __init__(self, settings: Settings) -> None:
        privacy = settings.privacy
        self._privacy = privacy
        budget = (
            open_budget(privacy.budget, home=settings.home) if privacy.budget.enabled else None
        )
        # The node's gate: pricing, people counts and every charge (its one exit, as for
        # HTTP: the coordinator's own budget and its class's pool per dataset); the audit
        # entries of calls are written below.
        self.gate = DisclosureGate(
            privacy, budget=budget, audit=None,
            secret=load_secret(settings.home / privacy.noise_secret_file))
        self._audit = (
            AuditLog.from_settings(settings.audit, home=settings.home)
            if settings.audit.enabled
            else None
        )

    def cost(self, answers: Iterable[Answer], *, counts_per_answer: int = 4) -> Charge:
        """What `answers` reveal, priced as HTTP prices them, plus ε for each noised count
        (`counts_per_answer` noised counts per allele at count granularity)."""
        llr, epsilon = 0.0, 0.0
        priced: dict[Answer, float] = {}  # equal answers are priced once
        for stats, granularity, individuals in answers:
            key = (stats if stats is not None and stats.ac > 0 else None, granularity,
                   individuals)
            one = priced.get(key)
            if one is None:
                alleles = [] if key[0] is None else [key[0]]
                one = priced[key] = self.gate.price(alleles, granularity, individuals,
                                                    _UNNOISED).llr
            llr += one
            noised = stats is not None and granularity is not Granularity.BOOLEAN
            if noised and self._privacy.epsilon is not None:
                epsilon += self._privacy.epsilon * counts_per_answer
        return Charge(llr=llr, epsilon=epsilon)

    def ledger(self, caller: Caller) -> Ledger:
        return self.gate.ledger(caller.principal, None)

    async def charge(self, caller: Caller, charge: Charge, *, dataset: str
                     ) -> dict[str, float]:
        """Charge the caller for what it learns of `dataset`, through the gate; a refusal
        (BudgetExhausted) is audited before it is raised."""
        if not self.gate.charging or not charge:
            return {}
        try:
            await asyncio.to_thread(self.ledger(caller).account, charge, {}, dataset=dataset)
        except BudgetExhausted:
            await self.audit(caller, "charge", [dataset], {"outcome": "refused"},
                             {"llr": 0.0, "epsilon": 0.0})
            raise
        return {"llr": charge.llr, "epsilon": charge.epsilon}

    async def release_people(self, caller: Caller, people: PeopleSet, universe: PeopleSet,
                             granularity: Granularity) -> GuardedCount:
        """A count of people (carriers of some alleles) through the gate's people exit:
        noised, refused when it completes a differencing pair, charged once per set."""
        ledger = self.ledger(caller)
        try:
            return await asyncio.to_thread(ledger.release_people, people,
                                           granularity=granularity, entitled=granularity,
                                           universe=universe)
        except BudgetExhausted:
            await self.audit(caller, "charge", [people.dataset], {"outcome": "refused"},
                             {"llr": 0.0, "epsilon": 0.0})
            raise

    async def unauthenticated(self, call: str, peer: str | None) -> None:
        """Audit a call refused before authentication: no token or subject recorded, the
        requester keyed by a hash of the peer address (as anonymous HTTP clients are)."""
        if self._audit is None:
            return
        await asyncio.to_thread(
            self._audit.append,
            request_id=uuid.uuid4().hex,
            requester=anonymous_key(peer),
            datasets=[],
            query={"call": call, "outcome": "unauthenticated"},
            granularity=None,
        )

    async def audit(
        self,
        caller: Caller,
        call: str,
        datasets: list[str],
        query: dict[str, Any],
        budget: dict[str, float],
    ) -> None:
        if self._audit is None:
            return
        await asyncio.to_thread(
            self._audit.append,
            request_id=uuid.uuid4().hex,
            requester=caller.principal.requester_id,
            datasets=datasets,
            query={
                "call": call,
                "coordinator": caller.coordinator_id,
                "on_behalf_of": caller.on_behalf_of,
                **query,
            },
            granularity=None,
            budget=budget,
        )

    def checkpoint(self) -> tuple[str, bytes]:
        """The audit chain head signed now, and the public key (`AuditLog.checkpoint`)."""
        if self._audit is None:
            raise Unavailable("this node keeps no audit log")
        return self._audit.checkpoint()

    def close(self) -> None:
        self.gate.close()
