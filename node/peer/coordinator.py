"""Federated counts: fan a question out to every peer, merge what comes back in time.

Merging follows the Beacon network aggregators, with honest precision: counts are
summed as intervals; the total is exact only when every part is exact, otherwise it is
the interval [sum of lower bounds, sum of upper bounds] (unbounded when a part is). A
dataset answering only "exists" adds at least one allele and no upper bound. Peers that
fail, time out or answer inconsistently are left out of the total and reported, each
with its status; the call returns by the deadline whatever the peers do.

Budgets: a node charges the coordinator (one requester for all its users); the end
user's pseudonymous key travels as the token's `act.sub` for the nodes' audit, so the
coordinator is where a user's budget across the federation is kept (node/privacy).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from node.domain import AlleleKey, Region, normalize_contig
from node.names import CountPrecision
from node.peer import columns
from node.peer._pb import peer_pb2 as pb
from node.peer.client import INVALID_RESPONSE, PeerClient, PeerResult, TokenSigner, batch_request
from node.peer.messages import PRECISION_NAME
from node.peer.peers import PeersFile
from node.peer.validate import InvalidAnswer

__all__ = [
    "UNKNOWN",
    "AlleleTotal",
    "Coordinator",
    "FederatedIndividuals",
    "FederatedStats",
    "Interval",
    "NodeReport",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Interval:
    """A merged count: `value` to show, true total in [lower, upper] (upper None: ∞);
    `unknown`: how many of the parts did not know their count (an allele number where a
    dataset has no calls, or a boolean dataset's): the total is then a lower bound."""

    value: int
    lower: int
    upper: int | None
    exact: bool
    unknown: int = 0

    @classmethod
    def zero(cls) -> Interval:
        return cls(0, 0, 0, True)

    def __add__(self, other: Interval) -> Interval:
        upper = None if self.upper is None or other.upper is None else self.upper + other.upper
        return Interval(
            self.value + other.value, self.lower + other.lower, upper,
            self.exact and other.exact, self.unknown + other.unknown,
        )

    @property
    def precision(self) -> CountPrecision:
        return CountPrecision.EXACT if self.exact else CountPrecision.IMPRECISE


UNKNOWN_NONZERO = Interval(1, 1, None, False)  # a boolean "yes": at least one
UNKNOWN = Interval(0, 0, None, False, 1)  # a count the part does not know


@dataclass(frozen=True, slots=True)
class AlleleTotal:
    key: AlleleKey
    allele_count: Interval = field(default_factory=Interval.zero)
    allele_number: Interval = field(default_factory=Interval.zero)
    carriers: Interval = field(default_factory=Interval.zero)
    homozygotes: Interval = field(default_factory=Interval.zero)

    @property
    def exists(self) -> bool:
        return self.allele_count.lower > 0

    @property
    def frequency(self) -> float | None:
        """AC/AN of the shown values (exact when both counts are); None when AN is 0."""
        an = self.allele_number.value
        return self.allele_count.value / an if an else None

    @property
    def frequency_precision(self) -> CountPrecision:
        """Exact only when both counts are, so only when every dataset knew its AN."""
        exact = self.allele_count.exact and self.allele_number.exact
        return CountPrecision.EXACT if exact else CountPrecision.IMPRECISE

    def add(self, stats: pb.DatasetAlleleStats) -> AlleleTotal:
        if stats.granularity == pb.GRANULARITY_BOOLEAN:
            ac = UNKNOWN_NONZERO if stats.exists else Interval.zero()
            return AlleleTotal(
                self.key,
                self.allele_count + ac,
                self.allele_number + UNKNOWN,
                self.carriers + ac,
                self.homozygotes + UNKNOWN,
            )
        # "exists" is itself disclosed: a noised count's [0, ∞) becomes [1, ∞).
        least = 1 if stats.exists else 0
        return AlleleTotal(
            self.key,
            self.allele_count + _interval(stats.allele_count, least),
            self.allele_number + _interval(stats.allele_number),
            self.carriers + _interval(stats.carriers, least),
            self.homozygotes + _interval(stats.homozygotes),
        )


def _interval(count: pb.Count, at_least: int = 0) -> Interval:
    exact = PRECISION_NAME.get(count.precision) is CountPrecision.EXACT
    upper = None if count.unbounded else count.upper
    return Interval(count.value, max(count.lower, at_least), upper, exact, int(count.unknown))


@dataclass(frozen=True, slots=True)
class NodeReport:
    node_id: str
    status: str
    message: str
    elapsed_s: float
    datasets: tuple[str, ...] = ()


class FederatedStats:
    """Merged totals per allele (in the order asked), each node's report, time taken.

    `alleles` is built on first use from `columns` (a batch merged as arrays) when given."""

    def __init__(
        self,
        alleles: list[AlleleTotal] | tuple[Sequence[AlleleKey], columns.Totals],
        nodes: list[NodeReport],
        elapsed_s: float,
    ) -> None:
        self._alleles = alleles
        self.nodes = nodes
        self.elapsed_s = elapsed_s

    @functools.cached_property
    def alleles(self) -> list[AlleleTotal]:
        if isinstance(self._alleles, list):
            return self._alleles
        keys, totals = self._alleles
        return _allele_totals(keys, totals)

    @property
    def complete(self) -> bool:
        return all(n.status == "OK" for n in self.nodes)


def _allele_totals(keys: Sequence[AlleleKey], totals: columns.Totals) -> list[AlleleTotal]:
    as_lists = [
        [
            c.value.tolist(),
            c.lower.tolist(),
            c.upper.tolist(),
            c.unbounded.tolist(),
            c.exact.tolist(),
            c.unknown.tolist(),
        ]
        for c in (totals.counts[name] for name in columns.COUNTS)
    ]

    def interval(parts: list[list[Any]], i: int) -> Interval:
        value, lower, upper, unbounded, exact, unknown = (part[i] for part in parts)
        return Interval(value, lower, None if unbounded else upper, exact, unknown)

    return [
        AlleleTotal(key, *(interval(parts, i) for parts in as_lists)) for i, key in enumerate(keys)
    ]


@dataclass(frozen=True, slots=True)
class FederatedIndividuals:
    """Individuals carrying all of `keys`: the total and each (node, dataset) part."""

    keys: list[AlleleKey]
    total: Interval
    parts: list[tuple[str, str, Interval]]
    nodes: list[NodeReport]
    elapsed_s: float

    @property
    def complete(self) -> bool:
        return all(n.status == "OK" for n in self.nodes)


def _individuals(d: pb.DatasetIndividualCount) -> Interval:
    if d.granularity == pb.GRANULARITY_BOOLEAN:
        return UNKNOWN_NONZERO if d.exists else Interval.zero()
    return _interval(d.individuals)


class Coordinator:
    """Fans calls out to the gRPC peers of a PEERS.yaml; one instance per process."""

    def __init__(self, peers: PeersFile, *, clients: Sequence[PeerClient] | None = None) -> None:
        self.peers = peers
        if clients is None:
            signer = TokenSigner(peers.coordinator)
            clients = [
                PeerClient(
                    entry,
                    signer,
                    max_attempts=peers.max_attempts,
                    max_message_bytes=peers.max_message_bytes,
                )
                for entry in peers.peers
                if entry.address is not None
            ]
        self.clients = list(clients)

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients))

    async def allele_stats(
        self,
        keys: Sequence[AlleleKey],
        *,
        deadline_s: float | None = None,
        on_behalf_of: str | None = None,
    ) -> FederatedStats:
        """Every peer's counts of `keys`, summed as intervals.

        Each answer is merged (as arrays) the moment it arrives, while the others are
        still awaited: at the deadline only the cancelling of late peers remains."""
        started, deadline_at = self._start(deadline_s)
        size = self.peers.batch_alleles
        chunks = [keys[i : i + size] for i in range(0, len(keys), size)] or [keys]
        requests = [batch_request(c) for c in chunks]  # encoded once, sent to every peer
        totals = columns.Totals(len(keys))
        loop = asyncio.get_running_loop()

        async def ask(client: PeerClient, timeout: float) -> PeerResult[Any]:
            """The peer's answer to every chunk in turn, merged only when all are OK."""
            began, until, answers = time.monotonic(), loop.time() + timeout, []
            for chunk, request in zip(chunks, requests, strict=True):
                result = await client.allele_stats(
                    chunk, timeout=until - loop.time(), on_behalf_of=on_behalf_of, request=request
                )
                result = replace(result, elapsed_s=time.monotonic() - began)
                if not result.ok or result.value is None:
                    return result  # nothing of this peer is merged
                answers.append(result.value)
            try:
                merged = columns.concat(answers)
            except InvalidAnswer as exc:
                return replace(result, status=INVALID_RESPONSE, message=str(exc), value=None)
            for dataset in merged:
                totals.add(dataset)
            return replace(result, value=merged)

        results = await self._fan_out(ask, deadline_at)
        return FederatedStats((keys, totals), _reports(results), time.monotonic() - started)

    async def count_individuals(
        self,
        keys: Sequence[AlleleKey],
        *,
        deadline_s: float | None = None,
        on_behalf_of: str | None = None,
    ) -> FederatedIndividuals:
        """Individuals carrying every one of `keys` (at least one copy each), summed over
        the datasets of every peer as intervals (a boolean "yes" is at least one)."""
        started, deadline_at = self._start(deadline_s)

        async def ask(client: PeerClient, timeout: float) -> PeerResult[Any]:
            return await client.count_individuals(keys, timeout=timeout, on_behalf_of=on_behalf_of)

        results = await self._fan_out(ask, deadline_at)
        parts: list[tuple[str, str, Interval]] = []
        for result in results:
            for d in result.value.datasets if result.ok and result.value is not None else ():
                parts.append((result.peer_id, d.dataset_id, _individuals(d)))
        total = sum((p[2] for p in parts), Interval.zero())
        return FederatedIndividuals(
            list(keys), total, parts, _reports(results), time.monotonic() - started
        )

    async def region_stats(
        self,
        region: Region,
        *,
        deadline_s: float | None = None,
        variant_types: Sequence[str] = (),
        on_behalf_of: str | None = None,
    ) -> FederatedStats:
        started = time.monotonic()
        results = await self.region_answers(
            region, deadline_s=deadline_s, variant_types=variant_types, on_behalf_of=on_behalf_of
        )
        totals: dict[AlleleKey, AlleleTotal] = {}
        for result in results:
            for v in result.value or () if result.ok else ():
                a = v.allele
                key = AlleleKey(normalize_contig(a.contig), a.start, a.ref, a.alt)
                totals[key] = totals.get(key, AlleleTotal(key)).add(v.stats)
        ordered = sorted(totals.values(), key=lambda t: (t.key.start, t.key.ref, t.key.alt))
        return FederatedStats(ordered, _reports(results), time.monotonic() - started)

    async def region_answers(
        self,
        region: Region,
        *,
        deadline_s: float | None = None,
        variant_types: Sequence[str] = (),
        on_behalf_of: str | None = None,
    ) -> list[PeerResult[Any]]:
        """Each peer's checked answer (per dataset, unmerged): for callers that report
        per node and dataset, like the Beacon aggregator."""

        _, deadline_at = self._start(deadline_s)

        async def ask(client: PeerClient, timeout: float) -> PeerResult[Any]:
            return await client.region_stats(
                region, timeout=timeout, variant_types=variant_types, on_behalf_of=on_behalf_of
            )

        return await self._fan_out(ask, deadline_at)

    async def node_info(self, *, deadline_s: float | None = None) -> list[PeerResult[Any]]:
        _, deadline_at = self._start(deadline_s)

        async def ask(client: PeerClient, timeout: float) -> PeerResult[Any]:
            return await client.node_info(timeout=timeout)

        return await self._fan_out(ask, deadline_at)

    def _start(self, deadline_s: float | None) -> tuple[float, float]:
        """(monotonic start, absolute event-loop deadline) of a federated call."""
        budget = self.peers.deadline_s if deadline_s is None else deadline_s
        return time.monotonic(), asyncio.get_running_loop().time() + budget

    async def _fan_out(
        self,
        ask: Callable[[PeerClient, float], Awaitable[PeerResult[Any]]],
        deadline_at: float,
    ) -> list[PeerResult[Any]]:
        """Ask every peer at once, under one absolute deadline for the whole fan-out.

        Each call's deadline is min(the peer's own timeout, what is left of the whole);
        retries (UNAVAILABLE only, by the channel) end with it. At the deadline whatever
        has finished is kept and the rest is cancelled: the caller never waits longer.
        """
        loop = asyncio.get_running_loop()

        async def one(client: PeerClient) -> PeerResult[Any]:
            left = deadline_at - loop.time()
            own = client.entry.timeout_s
            return await ask(client, left if own is None else min(own, left))

        tasks = [asyncio.create_task(one(c)) for c in self.clients]
        if tasks:
            await asyncio.wait(tasks, timeout=max(0.0, deadline_at - loop.time()))
        return [_finished(task, client) for task, client in zip(tasks, self.clients, strict=True)]


def _finished(task: asyncio.Task[PeerResult[Any]], client: PeerClient) -> PeerResult[Any]:
    if task.done() and not task.cancelled():
        if task.exception() is None:
            return task.result()
        # A bug of ours, not the peer's answer: logged by asyncio, reported generically.
        return PeerResult(client.entry.id, "INTERNAL", "coordinator error", 0.0)
    task.cancel()
    return PeerResult(client.entry.id, "DEADLINE_EXCEEDED", "no answer by the deadline", 0.0)


def _reports(results: Sequence[PeerResult[Any]]) -> list[NodeReport]:
    return [
        NodeReport(r.peer_id, r.status, r.message, r.elapsed_s, _datasets_of(r)) for r in results
    ]


def _datasets_of(result: PeerResult[Any]) -> tuple[str, ...]:
    value = result.value
    if isinstance(value, list) and value and isinstance(value[0], columns.DatasetColumns):
        return tuple(d.dataset_id for d in value)
    if isinstance(value, list):
        return tuple(dict.fromkeys(v.stats.dataset_id for v in value))
    if isinstance(value, pb.CountIndividualsResponse):
        return tuple(d.dataset_id for d in value.datasets)
    return ()
