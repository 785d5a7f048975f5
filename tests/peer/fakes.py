"""Misbehaving peers for fault tests: real gRPC servers on loopback that hang, send
bytes that are no protobuf, or send well-formed lies."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from node.peer._pb import peer_pb2 as pb

Handler = Callable[[bytes, grpc.aio.ServicerContext[Any, Any]], Awaitable[bytes]]
SERVICE = "fednode.v1.PeerService"


async def start_fake(handler: Handler) -> tuple[grpc.aio.Server, int]:
    """A server answering every method of the service with `handler` (raw bytes; the
    region stream sends what it returns as its one chunk)."""
    rpc = grpc.unary_unary_rpc_method_handler(handler)
    methods = {name: rpc for name in ("GetNodeInfo", "BatchAlleleStats", "CountIndividuals")}

    async def stream(
        request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        yield await handler(request, context)  # the one chunk the handler makes (if ever)

    methods["StreamRegionStats"] = grpc.unary_stream_rpc_method_handler(stream)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, methods),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def hang(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    await asyncio.sleep(3600)
    return b""


async def garbage(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return b"\xff\xfe not a protobuf message \x00\x01" * 10


async def liar(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    """Well-formed answers whose counts cannot be true (AC above AN), in the form asked."""
    asked = pb.BatchAlleleStatsRequest.FromString(request)
    count = pb.Count(value=7, precision=pb.COUNT_PRECISION_EXACT, lower=7, upper=7)
    small = pb.Count(value=2, precision=pb.COUNT_PRECISION_EXACT, lower=2, upper=2)
    if asked.HasField("allele_columns"):
        n = len(asked.allele_columns.starts)

        def column(c: pb.Count) -> pb.CountColumns:
            return pb.CountColumns(
                values=[c.value] * n,
                precisions=[c.precision] * n,
                lowers=[c.lower] * n,
                uppers=[c.upper] * n,
                unbounded=[False] * n,
            )

        lie = pb.DatasetStatsColumns(
            dataset_id="x",
            granularity=pb.GRANULARITY_COUNT,
            exists=[True] * n,
            allele_count=column(count),
            allele_number=column(small),
            carriers=column(small),
            homozygotes=column(small),
            frequency=[1.0] * n,
            frequency_precision=[pb.COUNT_PRECISION_EXACT] * n,
        )
        return pb.BatchAlleleStatsResponse(columns=[lie]).SerializeToString()
    stats = pb.DatasetAlleleStats(
        dataset_id="x",
        granularity=pb.GRANULARITY_COUNT,
        exists=True,
        allele_count=count,
        allele_number=small,
        carriers=small,
        homozygotes=small,
    )
    results = [pb.AlleleResult(allele=a, datasets=[stats]) for a in asked.alleles]
    return pb.BatchAlleleStatsResponse(results=results).SerializeToString()


def dead_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _serve_forever(kind: str, port_file: str) -> None:
    server, port = await start_fake({"hang": hang, "garbage": garbage, "liar": liar}[kind])
    with open(port_file, "w") as out:
        out.write(str(port))
    await server.wait_for_termination()


if __name__ == "__main__":  # a misbehaving peer as its own process
    import sys

    asyncio.run(_serve_forever(sys.argv[1], sys.argv[2]))
