"""Peer API use cases: who is calling, what it may see, what each answer costs, and the
audit of every call, applied here once (the Beacon ones are in `node/service.py`, the
htsget ones in `node/htsget/service.py`).

Framework-free: the transport (`node/peer/server.py`) reads the credentials and the
request messages, calls one method here, and renders the result or the `NodeError`
raised (`node/peer/status.py`). No grpc and no wire message is known here.

- Access: the caller is a registered coordinator (`CoordinatorVerifier`); a refusal is
  audited, keyed by the peer address, before `Unauthenticated` is raised. Per dataset the
  caller sees what `effective_granularity` grants; a requested dataset it may not see is
  `NotFound`, like a missing one (existence is not disclosed).
- Privacy: every answer is priced by the node's `DisclosureGate` and charged through its
  one exit (`Accounting`, node/peer/accounting.py) before it leaves; a refusal
  (`BudgetExhausted`) is audited, then raised. Counts of people leave through the gate's
  people exit. Allele counts are guarded by `guard` as the transport encodes them (whole
  columns at once: each distinct count is guarded once when `deterministic`).
- Audit: one entry per answered call, written before the answer is returned.
- Work: store calls run in threads, in chunks, within the call's time left (its deadline,
  capped by `peer.max_call_s`); chunks not yet started never run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import TypeVar

from node.auth.policy import effective_granularity
from node.config import DatasetSettings, Settings
from node.domain import AlleleKey, AlleleStats, Region, Variant
from node.errors import NotFound, Unauthenticated
from node.names import Granularity, VariantType
from node.peer.accounting import Accounting, Answer
from node.peer.auth import Caller, CoordinatorVerifier
from node.peer.carriers import carriers_of_all
from node.peer.guard import BoundedCount, BoundedGuard, CountGuard, bounded
from node.peer.regions import variant_batches
from node.privacy.people import people_set
from node.store.registry import DatasetRegistry

__all__ = [
    "STATS_CHUNK",
    "AlleleAnswers",
    "IndividualCount",
    "PeerService",
    "Remaining",
    "Visible",
    "VisibleDataset",
]

STATS_CHUNK = 1000  # alleles per store call: the unit of cancellation

Visible = list[tuple[str, Granularity]]
# The call's time left in seconds, None without a deadline (grpc's `time_remaining`).
Remaining = Callable[[], float | None]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class VisibleDataset:
    id: str
    granularity: Granularity  # the most this caller may see of it
    settings: DatasetSettings


@dataclass(frozen=True, slots=True)
class AlleleAnswers:
    """The true statistics of each allele per visible dataset, charged and audited; None:
    none of the dataset's samples is called at the allele's position."""

    visible: Visible
    stats: dict[str, list[AlleleStats | None]]


@dataclass(frozen=True, slots=True)
class IndividualCount:
    dataset_id: str
    granularity: Granularity
    count: BoundedCount  # released by the gate's people exit


class PeerService:
    def __init__(
        self,
        settings: Settings,
        registry: DatasetRegistry,
        *,
        verifier: CoordinatorVerifier | None = None,
        guard: CountGuard | None = None,
        accounting: Accounting | None = None,
    ) -> None:
        self.settings = settings
        self.accounting = accounting or Accounting(settings)
        self.guard = guard or BoundedGuard(settings.privacy)
        # node/privacy's guard without noise answers equal counts alike (guarded once each).
        self.deterministic = guard is None and settings.privacy.epsilon is None
        self._registry = registry
        self._verifier = verifier or CoordinatorVerifier(settings)

    async def authenticate(
        self, call: str, *, token: str | None, subjects: Sequence[str], peer: str | None
    ) -> Caller:
        """The coordinator proven by `token` or a TLS subject; `peer`: its address."""
        try:
            return self._verifier.verify(token, subjects)
        except Unauthenticated:
            # Refusals are accesses too: audited (no token) before the error is sent.
            await self.accounting.unauthenticated(call, peer)
            raise

    async def node_info(self, caller: Caller) -> list[VisibleDataset]:
        """The datasets the caller may see (GetNodeInfo)."""
        visible = await self._visible(caller, ())
        out = [VisibleDataset(ds, g, self._registry.settings(ds)) for ds, g in visible]
        await self.accounting.audit(caller, "GetNodeInfo", [ds for ds, _ in visible], {}, {})
        return out

    async def audit_checkpoint(self, caller: Caller) -> tuple[str, bytes]:
        """The signed audit chain head and its public key (PEM)."""
        # The access is audited first, so the signed head includes it.
        await self.accounting.audit(caller, "GetAuditCheckpoint", [], {}, {})
        return await asyncio.to_thread(self.accounting.checkpoint)

    async def allele_stats(
        self,
        caller: Caller,
        keys: Sequence[AlleleKey],
        *,
        dataset_ids: Sequence[str],
        remaining: Remaining,
    ) -> AlleleAnswers:
        """Statistics of `keys` in each visible dataset (of `dataset_ids`; all when empty),
        each allele charged as its own answer."""
        visible = await self._visible(caller, dataset_ids)
        async with asyncio.timeout(self._time_left(remaining)):
            answers = {ds: await self._allele_stats(ds, keys) for ds, _ in visible}
        spent: dict[str, float] = {}
        if self.settings.privacy.budget.enabled:  # else nothing is charged: skip pricing
            for ds, g in visible:
                size = await self._individuals_in(ds)
                charge = self.accounting.cost((stats, g, size) for stats in answers[ds])
                for name, value in (await self.accounting.charge(
                        caller, charge, dataset=ds)).items():
                    spent[name] = spent.get(name, 0.0) + value
        await self.accounting.audit(
            caller, "BatchAlleleStats", [ds for ds, _ in visible], {"alleles": len(keys)}, spent
        )
        return AlleleAnswers(visible, answers)

    async def region_stats(
        self,
        caller: Caller,
        region: Region,
        types: frozenset[VariantType] | None,
        *,
        dataset_ids: Sequence[str],
        remaining: Remaining,
        render: Callable[[str, Granularity, list[Variant]], list[_T]],
    ) -> AsyncGenerator[list[_T], None]:
        """The region's variants per visible dataset, in batches as `render` encodes them
        (guarded and filtered on the reported values); a batch that renders to nothing
        is not sent and costs nothing, one that renders to something costs all it was read from."""
        visible = await self._visible(caller, dataset_ids)
        deadline = asyncio.get_running_loop().time() + self._time_left(remaining)
        sent = 0
        for dataset_id, granularity in visible:
            store = await asyncio.to_thread(self._registry.store, dataset_id)
            individuals = await self._individuals_in(dataset_id)
            async with aclosing(variant_batches(store, region, types, deadline)) as batches:
                async for batch in batches:
                    chunk = render(dataset_id, granularity, batch)
                    if chunk:
                        answers: list[Answer] = [(v.stats, granularity, individuals)
                                                 for v in batch]
                        await self.accounting.charge(caller, self.accounting.cost(answers),
                                                     dataset=dataset_id)
                        sent += len(chunk)
                        yield chunk
        query = {"region": f"{region.contig}:{region.start}-{region.end}", "sent": sent}
        await self.accounting.audit(
            caller, "StreamRegionStats", [ds for ds, _ in visible], query, {}
        )

    async def count_individuals(
        self,
        caller: Caller,
        keys: Sequence[AlleleKey],
        *,
        dataset_ids: Sequence[str],
        remaining: Remaining,
    ) -> list[IndividualCount]:
        """Individuals carrying every one of `keys`, per visible dataset."""
        visible = await self._visible(caller, dataset_ids)
        out = []
        async with asyncio.timeout(self._time_left(remaining)):
            for dataset_id, granularity in visible:
                store = await asyncio.to_thread(self._registry.store, dataset_id)
                found = await asyncio.to_thread(carriers_of_all, store, keys)
                # A count of people: the gate's people exit (noise keyed by the set,
                # overlap control, ε charged once per set), as over HTTP.
                people = people_set(dataset_id, "carriers", found)
                universe = people_set(dataset_id, "carriers", store.samples)
                guarded = await self.accounting.release_people(caller, people, universe,
                                                               granularity)
                out.append(IndividualCount(dataset_id, granularity, bounded(guarded)))
        await self.accounting.audit(
            caller, "CountIndividuals", [ds for ds, _ in visible], {"alleles": len(keys)}, {}
        )
        return out

    def close(self) -> None:
        self.accounting.close()

    async def _allele_stats(
        self, dataset_id: str, keys: Sequence[AlleleKey]
    ) -> list[AlleleStats | None]:
        store = await asyncio.to_thread(self._registry.store, dataset_id)
        out: list[AlleleStats | None] = []
        for lo in range(0, len(keys), STATS_CHUNK):
            out.extend(await asyncio.to_thread(store.allele_stats, keys[lo : lo + STATS_CHUNK]))
        return out

    async def _visible(self, caller: Caller, requested: Sequence[str]) -> Visible:
        """(dataset, granularity) the caller may see; a requested dataset it may not see
        is NOT_FOUND, like one that does not exist (existence is not disclosed)."""
        now = int(time.time())
        ids = await asyncio.to_thread(self._registry.ids)
        visible: Visible = []
        for dataset_id in ids:
            granularity = effective_granularity(
                caller.principal, dataset_id, self._registry.settings(dataset_id), now=now
            )
            if granularity is not None:
                visible.append((dataset_id, granularity))
        if requested:
            names = dict(visible)
            missing = sorted(set(requested) - names.keys())
            if missing:
                raise NotFound(f"no dataset {missing[0]!r}")
            visible = [(ds, names[ds]) for ds in dict.fromkeys(requested)]
        return visible

    def _time_left(self, remaining: Remaining) -> float:
        left = remaining()
        cap = self.settings.peer.max_call_s
        return cap if left is None else max(0.0, min(left, cap))

    async def _individuals_in(self, dataset_id: str) -> int:
        store = await asyncio.to_thread(self._registry.store, dataset_id)
        return len(store.samples)
