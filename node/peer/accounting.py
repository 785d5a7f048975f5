"""Budget and audit of peer calls: the same node/privacy machinery as HTTP.

The requester is the coordinator (its pseudonymous `requester_id`): every answer that
can reveal membership is priced by the node's `DisclosureGate` (node/privacy/gate.py),
exactly as the same answer over HTTP, strict pricing included (an allele the dataset
does not hold costs what a "no" costs), and charged to the same budget store (SQLite or
Redis) before the answer leaves; the whole call is refused (RESOURCE_EXHAUSTED) when it
would overdraw. Each allele of a batch is its own answer: their charges add up, as for a
count over several alleles. Asking the same node through many users of one coordinator
therefore draws on one budget; each node guards its own data subjects with its own budget.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from typing import Any

from node.config import Settings
from node.domain import AlleleStats
from node.errors import BudgetExhausted
from node.names import CountPrecision, Granularity
from node.peer.auth import Caller
from node.privacy.audit import AuditLog
from node.privacy.budget import Charge, open_budget
from node.privacy.gate import DisclosureGate, anonymous_key
from node.privacy.guard import GuardedCount

__all__ = ["Accounting", "Answer"]

# (true statistics or None, granularity, individuals in the dataset)
Answer = tuple[AlleleStats | None, Granularity, int]

_UNNOISED = GuardedCount(0, CountPrecision.EXACT)


class Accounting:
    def __init__(self, settings: Settings) -> None:
        privacy = settings.privacy
        self._privacy = privacy
        self._budget = (
            open_budget(privacy.budget, home=settings.home) if privacy.budget.enabled else None
        )
        # Pricing only: the budget is charged here (off the event loop), the audit below.
        self._gate = DisclosureGate(privacy, budget=None, audit=None)
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
                one = priced[key] = self._gate.price(alleles, granularity, individuals,
                                                     _UNNOISED).llr
            llr += one
            noised = stats is not None and granularity is not Granularity.BOOLEAN
            if noised and self._privacy.epsilon is not None:
                epsilon += self._privacy.epsilon * counts_per_answer
        return Charge(llr=llr, epsilon=epsilon)

    async def charge(self, caller: Caller, charge: Charge) -> dict[str, float]:
        """Charge the caller; a refusal (BudgetExhausted) is audited before it is raised."""
        if self._budget is None or not charge:
            return {}
        try:
            balance = await asyncio.to_thread(
                self._budget.charge, caller.principal.requester_id, charge
            )
        except BudgetExhausted:
            await self.audit(caller, "charge", [], {"outcome": "refused"},
                             {"llr": 0.0, "epsilon": 0.0})
            raise
        return {"llr": charge.llr, "epsilon": charge.epsilon, "llr_left": balance.llr_left}

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

    def close(self) -> None:
        if self._budget is not None:
            self._budget.close()
