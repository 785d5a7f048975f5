"""Budget and audit of peer calls: the same node/privacy machinery as HTTP.

The requester is the coordinator (its pseudonymous `requester_id`): every answer that
reveals membership (node/privacy/guard.py `disclosure`) is charged to it before the
answer leaves, and the whole call is refused (RESOURCE_EXHAUSTED) when it would overdraw.
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
from node.names import Granularity
from node.peer.auth import Caller
from node.privacy.audit import AuditLog
from node.privacy.budget import Charge, SQLiteBudget, membership_llr
from node.privacy.guard import disclosure

__all__ = ["Accounting", "Answer"]

# (true statistics or None, granularity, individuals in the dataset)
Answer = tuple[AlleleStats | None, Granularity, int]


class Accounting:
    def __init__(self, settings: Settings) -> None:
        privacy = settings.privacy
        self._privacy = privacy
        self._budget = (
            SQLiteBudget.from_settings(privacy.budget, home=settings.home)
            if privacy.budget.enabled
            else None
        )
        self._audit = (
            AuditLog.from_settings(settings.audit, home=settings.home)
            if settings.audit.enabled
            else None
        )

    def cost(self, answers: Iterable[Answer], *, counts_per_answer: int = 4) -> Charge:
        llr, epsilon = 0.0, 0.0
        p = self._privacy
        for stats, granularity, individuals in answers:
            if stats is None:
                continue
            if granularity is not Granularity.BOOLEAN and p.epsilon is not None:
                epsilon += p.epsilon * counts_per_answer
            verdict = disclosure(
                stats,
                granularity,
                min_count=p.min_count,
                rare_allele_count=p.rare_allele_count,
                rare_allele_frequency=p.rare_allele_frequency,
            )
            if verdict.revealing:
                llr += membership_llr(
                    stats.af, max(1, individuals), delta=p.budget.sequencing_error
                )
        return Charge(llr=llr, epsilon=epsilon)

    async def charge(self, caller: Caller, charge: Charge) -> dict[str, float]:
        if self._budget is None or not charge:
            return {}
        balance = await asyncio.to_thread(
            self._budget.charge, caller.principal.requester_id, charge
        )
        return {"llr": charge.llr, "epsilon": charge.epsilon, "llr_left": balance.llr_left}

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
