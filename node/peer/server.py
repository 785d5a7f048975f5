"""The peer API server: a grpc.aio servicer, translating between fednode.v1 messages and
the peer use cases (node/peer/service.py) over the node's `DatasetRegistry`.

Every handler: read the credentials and parse the request (INVALID_ARGUMENT when
malformed), call one `PeerService` method (authentication, access, store work within the
deadline, pricing, charging and audit happen there), and encode the answer, its counts
guarded by the service's guard. NodeErrors become their `grpc_code` in one place
(node/peer/status.py); anything else is logged and answered INTERNAL without detail.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import grpc

from node import __version__
from node.config import Settings
from node.domain import AlleleKey, Variant
from node.errors import InvalidInput
from node.names import Granularity
from node.peer import columns, messages
from node.peer._pb import peer_pb2 as pb
from node.peer._pb import peer_pb2_grpc as pb_grpc
from node.peer.accounting import Accounting
from node.peer.auth import Caller, CoordinatorVerifier, bearer_token
from node.peer.guard import CountGuard
from node.peer.regions import variant_types
from node.peer.service import (
    STATS_CHUNK,
    AlleleAnswers,
    IndividualCount,
    PeerService,
    VisibleDataset,
)
from node.peer.status import streaming as _streaming
from node.peer.status import unary as _unary
from node.store.registry import DatasetRegistry

__all__ = [
    "API_VERSION",
    "CAPABILITIES",
    "STATS_CHUNK",
    "PeerServer",
    "PeerServicer",
    "start_peer_server",
]

API_VERSION = "v1"
CAPABILITIES = ("node_info", "allele_stats", "allele_columns", "region_stats", "individual_counts",
                "audit_checkpoint")
MAX_INDIVIDUAL_ALLELES = 100

_Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class PeerServicer(pb_grpc.PeerServiceServicer):
    def __init__(self, settings: Settings, service: PeerService) -> None:
        self._settings = settings
        self._service = service

    @_unary
    async def GetNodeInfo(self, request: pb.GetNodeInfoRequest, context: _Context) -> pb.NodeInfo:
        caller = await self._authenticate(context, "GetNodeInfo")
        datasets = [_dataset_info(d) for d in await self._service.node_info(caller)]
        node = self._settings.node
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
        self, request: pb.GetAuditCheckpointRequest, context: _Context
    ) -> pb.AuditCheckpoint:
        caller = await self._authenticate(context, "GetAuditCheckpoint")
        token, pem = await self._service.audit_checkpoint(caller)
        return pb.AuditCheckpoint(token=token, public_key_pem=pem.decode())

    @_unary
    async def BatchAlleleStats(
        self, request: pb.BatchAlleleStatsRequest, context: _Context
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
        answers = await self._service.allele_stats(
            caller, keys, dataset_ids=request.dataset_ids, remaining=context.time_remaining
        )
        if columnar:
            return self._allele_columns(answers)
        return self._allele_results(keys, answers)

    def _allele_columns(self, answers: AlleleAnswers) -> pb.BatchAlleleStatsResponse:
        """The columnar form of the answer (requests that give `allele_columns`)."""
        guard, deterministic = self._service.guard, self._service.deterministic
        return pb.BatchAlleleStatsResponse(
            columns=[
                columns.dataset_columns(
                    ds, g, answers.stats[ds], guard, deterministic=deterministic
                )
                for ds, g in answers.visible
            ]
        )

    def _allele_results(
        self, keys: Sequence[AlleleKey], answers: AlleleAnswers
    ) -> pb.BatchAlleleStatsResponse:
        """The per-allele form of the answer (requests that list `alleles`)."""
        guard = self._service.guard
        results = [
            pb.AlleleResult(
                allele=messages.allele_message(key),
                datasets=[
                    messages.dataset_stats(ds, g, answers.stats[ds][i], guard)
                    for ds, g in answers.visible
                ],
            )
            for i, key in enumerate(keys)
        ]
        return pb.BatchAlleleStatsResponse(results=results)

    @_streaming
    async def StreamRegionStats(
        self, request: pb.RegionStatsRequest, context: _Context
    ) -> AsyncIterator[pb.RegionStatsChunk]:
        caller = await self._authenticate(context, "StreamRegionStats")
        region = messages.region(request.contig, request.start, request.end)
        types = variant_types(request.variant_types)
        keep = frequency_filter(request)
        guard = self._service.guard

        def render(dataset_id: str, granularity: Granularity, batch: list[Variant]
                   ) -> list[pb.RegionVariantStats]:
            chunk = [_region_variant(dataset_id, granularity, v, guard) for v in batch]
            return [c for c in chunk if keep(c.stats)]

        stream = self._service.region_stats(
            caller, region, types, dataset_ids=request.dataset_ids,
            remaining=context.time_remaining, render=render,
        )
        async with aclosing(stream) as chunks:
            async for chunk in chunks:
                yield pb.RegionStatsChunk(variants=chunk)

    @_unary
    async def CountIndividuals(
        self, request: pb.CountIndividualsRequest, context: _Context
    ) -> pb.CountIndividualsResponse:
        caller = await self._authenticate(context, "CountIndividuals")
        if not 0 < len(request.alleles) <= MAX_INDIVIDUAL_ALLELES:
            raise InvalidInput(f"give 1 to {MAX_INDIVIDUAL_ALLELES} alleles")
        keys = [messages.allele_key(a) for a in request.alleles]
        counts = await self._service.count_individuals(
            caller, keys, dataset_ids=request.dataset_ids, remaining=context.time_remaining
        )
        return pb.CountIndividualsResponse(datasets=[_individuals(c) for c in counts])

    async def _authenticate(self, context: _Context, call: str) -> Caller:
        subjects = [
            v.decode("utf-8", "replace")
            for v in (context.auth_context() or {}).get("x509_common_name", [])
        ]
        return await self._service.authenticate(
            call,
            token=bearer_token(context.invocation_metadata()),
            subjects=subjects,
            peer=context.peer(),
        )


def frequency_filter(request: pb.RegionStatsRequest) -> Callable[[pb.DatasetAlleleStats], bool]:
    """Filter on the frequency as reported (after the guard), so a filter cannot be used
    to bisect a suppressed count."""
    lo = request.min_frequency if request.HasField("min_frequency") else None
    hi = request.max_frequency if request.HasField("max_frequency") else None
    if lo is None and hi is None:
        return lambda stats: True

    def keep(stats: pb.DatasetAlleleStats) -> bool:
        if stats.granularity == pb.GRANULARITY_BOOLEAN:
            return False  # no frequency may be disclosed, so none can be filtered on
        f = stats.frequency
        return (lo is None or f >= lo) and (hi is None or f <= hi)

    return keep


def _dataset_info(dataset: VisibleDataset) -> pb.DatasetInfo:
    ds = dataset.settings
    return pb.DatasetInfo(
        id=dataset.id,
        name=ds.name or dataset.id,
        assembly=ds.assembly,
        security_level=str(ds.security_level),
        granularity=messages.granularity_message(dataset.granularity),
    )


def _region_variant(
    dataset_id: str, granularity: Granularity, variant: Variant, guard: CountGuard
) -> pb.RegionVariantStats:
    return pb.RegionVariantStats(
        allele=messages.allele_message(variant.key),
        variant_type=str(variant.variant_type),
        end=variant.end,
        stats=messages.dataset_stats(dataset_id, granularity, variant.stats, guard),
    )


def _individuals(count: IndividualCount) -> pb.DatasetIndividualCount:
    message = pb.DatasetIndividualCount(
        dataset_id=count.dataset_id,
        granularity=messages.granularity_message(count.granularity),
        exists=count.count.value > 0,  # from the released count: it says no more
    )
    if count.granularity is not Granularity.BOOLEAN:
        message.individuals.CopyFrom(messages.count_message(count.count))
    return message


@dataclass
class PeerServer:
    """A running peer API server and the port it listens on."""

    server: grpc.aio.Server
    port: int
    service: PeerService

    @property
    def accounting(self) -> Accounting:
        return self.service.accounting

    async def stop(self, grace: float = 2.0) -> None:
        await self.server.stop(grace)
        await asyncio.to_thread(self.service.close)


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
    service = PeerService(settings, registry, verifier=verifier, guard=guard)
    servicer = PeerServicer(settings, service)
    pb_grpc.add_PeerServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    address = f"{peer.host}:{peer.port or 0}"
    credentials = _server_credentials(settings)
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    await server.start()
    return PeerServer(server, port, service)


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
