"""The peer API server: a grpc.aio servicer over the node's `DatasetRegistry`.

Every call: authenticate the coordinator (node/peer/auth.py), decide per dataset what
it may see (node/auth/policy.py), query the store off the event loop in bounded chunks,
pass every count through the privacy guard, write an audit line, answer. Work stops
between chunks when the deadline passes or the caller cancels (grpc.aio cancels the
handler task; the remaining chunks never start). NodeErrors become their `grpc_code`;
anything else is logged and answered INTERNAL without detail.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from node import __version__
from node.auth.policy import effective_granularity
from node.config import Settings
from node.domain import AlleleKey, AlleleStats, Variant
from node.errors import InvalidInput, NotFound, Unauthenticated
from node.names import Granularity
from node.peer import columns, messages
from node.peer._pb import peer_pb2 as pb
from node.peer._pb import peer_pb2_grpc as pb_grpc
from node.peer.accounting import Accounting, Answer
from node.peer.auth import Caller, CoordinatorVerifier, bearer_token
from node.peer.carriers import carriers_of_all
from node.peer.guard import BoundedGuard, CountGuard, bounded
from node.peer.regions import frequency_filter, variant_batches, variant_types
from node.peer.status import streaming as _streaming
from node.peer.status import unary as _unary
from node.privacy.guard import GuardedCount
from node.privacy.people import people_set
from node.store.registry import DatasetRegistry

__all__ = ["API_VERSION", "CAPABILITIES", "PeerServer", "PeerServicer", "start_peer_server"]

API_VERSION = "v1"
CAPABILITIES = ("node_info", "allele_stats", "allele_columns", "region_stats", "individual_counts",
                "audit_checkpoint")
STATS_CHUNK = 1000  # alleles per store call: the unit of cancellation
MAX_INDIVIDUAL_ALLELES = 100

log = logging.getLogger("fednode.peer")
_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
Visible = list[tuple[str, Granularity]]


class PeerServicer(pb_grpc.PeerServiceServicer):
    def __init__(
        self,
        settings: Settings,
        registry: DatasetRegistry,
        *,
        verifier: CoordinatorVerifier | None = None,
        guard: CountGuard | None = None,
        accounting: Accounting | None = None,
    ) -> None:
        self._settings = settings
        self._accounting = accounting or Accounting(settings)
        self._registry = registry
        self._verifier = verifier or CoordinatorVerifier(settings)
        self._guard = guard or BoundedGuard(settings.privacy)
        # node/privacy's guard without noise answers equal counts alike (guarded once each).
        self._deterministic = guard is None and settings.privacy.epsilon is None

    @_unary
    async def GetNodeInfo(
        self, request: pb.GetNodeInfoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.NodeInfo:
        caller = await self._authenticate(context, "GetNodeInfo")
        visible = await self._visible(caller, ())
        node = self._settings.node
        datasets = [self._dataset_info(ds, g) for ds, g in visible]
        await self._accounting.audit(caller, "GetNodeInfo", [ds for ds, _ in visible], {}, {})
        return pb.NodeInfo(
            id=node.id,
            name=node.name,
            organization=node.organization,
            software_version=__version__,
            api_version=API_VERSION,
            datasets=datasets,
            assemblies=sorted({d.assembly for d in datasets}),
            capabilities=CAPABILITIES,
            max_batch_alleles=self._settings.peer.max_batch_alleles,
            max_message_bytes=self._settings.peer.max_message_bytes,
        )

    @_unary
    async def GetAuditCheckpoint(
        self, request: pb.GetAuditCheckpointRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.AuditCheckpoint:
        caller = await self._authenticate(context, "GetAuditCheckpoint")
        # The access is audited first, so the signed head includes it.
        await self._accounting.audit(caller, "GetAuditCheckpoint", [], {}, {})
        token, pem = await asyncio.to_thread(self._accounting.checkpoint)
        return pb.AuditCheckpoint(token=token, public_key_pem=pem.decode())

    def _dataset_info(self, dataset_id: str, granularity: Granularity) -> pb.DatasetInfo:
        ds = self._registry.settings(dataset_id)
        return pb.DatasetInfo(
            id=dataset_id,
            name=ds.name or dataset_id,
            assembly=ds.assembly,
            security_level=str(ds.security_level),
            granularity=messages.granularity_message(granularity),
        )

    @_unary
    async def BatchAlleleStats(
        self, request: pb.BatchAlleleStatsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.BatchAlleleStatsResponse:
        caller = await self._authenticate(context, "BatchAlleleStats")
        columnar = request.HasField("allele_columns")
        if columnar and request.alleles:
            raise InvalidInput("give alleles or allele_columns, not both")
        limit = self._settings.peer.max_batch_alleles
        n = len(request.allele_columns.starts) if columnar else len(request.alleles)
        if n > limit:
            raise InvalidInput(f"{n} alleles in one call; at most {limit}")
        if columnar:
            keys = columns.keys_of(request.allele_columns)
        else:
            keys = [messages.allele_key(a) for a in request.alleles]
        visible = await self._visible(caller, request.dataset_ids)
        async with asyncio.timeout(self._time_left(context)):
            answers = {ds: await self._allele_stats(ds, keys) for ds, _ in visible}
        spent: dict[str, float] = {}
        if self._settings.privacy.budget.enabled:  # else nothing is charged: skip pricing
            for ds, g in visible:
                size = await self._individuals_in(ds)
                charge = self._accounting.cost((stats, g, size) for stats in answers[ds])
                for name, value in (await self._accounting.charge(
                        caller, charge, dataset=ds)).items():
                    spent[name] = spent.get(name, 0.0) + value
        if columnar:
            response = pb.BatchAlleleStatsResponse(
                columns=[
                    columns.dataset_columns(
                        ds, g, answers[ds], self._guard, deterministic=self._deterministic
                    )
                    for ds, g in visible
                ]
            )
        else:
            response = self._allele_results(keys, visible, answers)
        await self._accounting.audit(
            caller, "BatchAlleleStats", [ds for ds, _ in visible], {"alleles": len(keys)}, spent
        )
        return response

    def _allele_results(
        self,
        keys: Sequence[AlleleKey],
        visible: Visible,
        answers: dict[str, list[AlleleStats | None]],
    ) -> pb.BatchAlleleStatsResponse:
        """The per-allele form of the answer (requests that list `alleles`)."""
        results = [
            pb.AlleleResult(
                allele=messages.allele_message(key),
                datasets=[
                    messages.dataset_stats(ds, g, answers[ds][i], self._guard) for ds, g in visible
                ],
            )
            for i, key in enumerate(keys)
        ]
        return pb.BatchAlleleStatsResponse(results=results)

    async def _allele_stats(
        self, dataset_id: str, keys: Sequence[AlleleKey]
    ) -> list[AlleleStats | None]:
        store = await asyncio.to_thread(self._registry.store, dataset_id)
        out: list[AlleleStats | None] = []
        for lo in range(0, len(keys), STATS_CHUNK):
            out.extend(await asyncio.to_thread(store.allele_stats, keys[lo : lo + STATS_CHUNK]))
        return out

    @_streaming
    async def StreamRegionStats(
        self, request: pb.RegionStatsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.RegionStatsChunk]:
        caller = await self._authenticate(context, "StreamRegionStats")
        region = messages.region(request.contig, request.start, request.end)
        types = variant_types(request.variant_types)
        visible = await self._visible(caller, request.dataset_ids)
        keep = frequency_filter(request)
        deadline = asyncio.get_running_loop().time() + self._time_left(context)
        sent = 0
        for dataset_id, granularity in visible:
            store = await asyncio.to_thread(self._registry.store, dataset_id)
            individuals = await self._individuals_in(dataset_id)
            async for batch in variant_batches(store, region, types, deadline):
                chunk = [self._region_variant(dataset_id, granularity, v) for v in batch]
                chunk = [c for c in chunk if keep(c.stats)]
                if chunk:
                    answers: list[Answer] = [(v.stats, granularity, individuals) for v in batch]
                    await self._accounting.charge(caller, self._accounting.cost(answers),
                                                  dataset=dataset_id)
                    sent += len(chunk)
                    yield pb.RegionStatsChunk(variants=chunk)
        query = {"region": f"{region.contig}:{region.start}-{region.end}", "sent": sent}
        await self._accounting.audit(
            caller, "StreamRegionStats", [ds for ds, _ in visible], query, {}
        )

    def _region_variant(
        self, dataset_id: str, granularity: Granularity, variant: Variant
    ) -> pb.RegionVariantStats:
        return pb.RegionVariantStats(
            allele=messages.allele_message(variant.key),
            variant_type=str(variant.variant_type),
            end=variant.end,
            stats=messages.dataset_stats(dataset_id, granularity, variant.stats, self._guard),
        )

    @_unary
    async def CountIndividuals(
        self, request: pb.CountIndividualsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CountIndividualsResponse:
        caller = await self._authenticate(context, "CountIndividuals")
        if not 0 < len(request.alleles) <= MAX_INDIVIDUAL_ALLELES:
            raise InvalidInput(f"give 1 to {MAX_INDIVIDUAL_ALLELES} alleles")
        keys = [messages.allele_key(a) for a in request.alleles]
        visible = await self._visible(caller, request.dataset_ids)
        out = []
        async with asyncio.timeout(self._time_left(context)):
            for dataset_id, granularity in visible:
                store = await asyncio.to_thread(self._registry.store, dataset_id)
                found = await asyncio.to_thread(carriers_of_all, store, keys)
                # A count of people: the gate's people exit (noise keyed by the set,
                # overlap control, ε charged once per set), as over HTTP.
                people = people_set(dataset_id, "carriers", found)
                universe = people_set(dataset_id, "carriers", store.samples)
                guarded = await self._accounting.release_people(caller, people, universe,
                                                                granularity)
                out.append(self._individuals(dataset_id, granularity, guarded))
        await self._accounting.audit(
            caller, "CountIndividuals", [ds for ds, _ in visible], {"alleles": len(keys)}, {}
        )
        return pb.CountIndividualsResponse(datasets=out)

    def _individuals(
        self, dataset_id: str, granularity: Granularity, guarded: GuardedCount
    ) -> pb.DatasetIndividualCount:
        message = pb.DatasetIndividualCount(
            dataset_id=dataset_id,
            granularity=messages.granularity_message(granularity),
            exists=guarded.value > 0,  # from the released count: it says no more
        )
        if granularity is not Granularity.BOOLEAN:
            message.individuals.CopyFrom(messages.count_message(bounded(guarded)))
        return message

    async def _authenticate(self, context: grpc.aio.ServicerContext[Any, Any], call: str) -> Caller:
        token = bearer_token(context.invocation_metadata())
        subjects = [
            v.decode("utf-8", "replace")
            for v in (context.auth_context() or {}).get("x509_common_name", [])
        ]
        try:
            return self._verifier.verify(token, subjects)
        except Unauthenticated:
            # Refusals are accesses too: audited (no token) before the error is sent.
            await self._accounting.unauthenticated(call, context.peer())
            raise

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

    def _time_left(self, context: grpc.aio.ServicerContext[Any, Any]) -> float:
        remaining = context.time_remaining()
        cap = self._settings.peer.max_call_s
        return cap if remaining is None else max(0.0, min(remaining, cap))

    async def _individuals_in(self, dataset_id: str) -> int:
        store = await asyncio.to_thread(self._registry.store, dataset_id)
        return len(store.samples)


@dataclass
class PeerServer:
    """A running peer API server and the port it listens on."""

    server: grpc.aio.Server
    port: int
    accounting: Accounting

    async def stop(self, grace: float = 2.0) -> None:
        await self.server.stop(grace)
        await asyncio.to_thread(self.accounting.close)


async def start_peer_server(
    settings: Settings,
    registry: DatasetRegistry,
    *,
    verifier: CoordinatorVerifier | None = None,
    guard: CountGuard | None = None,
) -> PeerServer:
    """Start serving fednode.v1 on `settings.peer.host:port` (port 0: any free port)."""
    peer = settings.peer
    options = [
        ("grpc.max_receive_message_length", peer.max_message_bytes),
        ("grpc.max_send_message_length", peer.max_message_bytes),
        ("grpc.max_metadata_size", 2 * peer.max_token_bytes),
    ]
    server = grpc.aio.server(options=options, maximum_concurrent_rpcs=peer.max_concurrent_calls)
    accounting = Accounting(settings)
    servicer = PeerServicer(
        settings, registry, verifier=verifier, guard=guard, accounting=accounting
    )
    pb_grpc.add_PeerServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    address = f"{peer.host}:{peer.port or 0}"
    credentials = _server_credentials(settings)
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    await server.start()
    return PeerServer(server, port, accounting)


def _server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    peer = settings.peer
    if peer.tls_cert is None or peer.tls_key is None:
        return None
    read = functools.partial(_read_file, settings.home)
    client_ca = read(peer.tls_client_ca) if peer.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(read(peer.tls_key), read(peer.tls_cert))],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def _read_file(home: Path, name: str) -> bytes:
    path = Path(name)
    return (path if path.is_absolute() else home / path).read_bytes()
