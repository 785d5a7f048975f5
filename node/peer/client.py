"""A client of one peer node: its own credentials, deadlines, retries, checked answers.

- Credentials: a short-lived JWT the coordinator signs for this peer only (aud = the
  peer's node id). A user's token is never sent: the client has no way to take one.
- Deadlines: every call has one; an extra asyncio timeout backs it so that no peer
  (even one that never answers at the HTTP/2 level) can hold the caller past it.
- Retries: only UNAVAILABLE, by the channel's service config (gRPC retry design A6:
  at most 5 attempts, exponential backoff), so retries also stop at the deadline.
- Answers are checked (`validate.py`); a malformed or inconsistent one is reported as
  status INVALID_RESPONSE and never merged.

Calls never raise for peer failures: they return a `PeerResult` with a status.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import grpc
import jwt

from node.domain import AlleleKey, Region
from node.peer import columns, messages, validate
from node.peer._pb import peer_pb2 as pb
from node.peer._pb import peer_pb2_grpc as pb_grpc
from node.peer.peers import CoordinatorIdentity, PeerEntry

__all__ = ["OK", "PeerClient", "PeerResult", "TokenSigner", "batch_request"]

OK = "OK"
INVALID_RESPONSE = "INVALID_RESPONSE"
_SERVICE = "fednode.v1.PeerService"
T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True, slots=True)
class PeerResult(Generic[T]):
    """One peer's answer: `status` is OK, a gRPC status code name or INVALID_RESPONSE."""

    peer_id: str
    status: str
    message: str
    elapsed_s: float
    value: T | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK


class TokenSigner:
    """Signs the coordinator's own short-lived tokens, one audience (peer) at a time."""

    def __init__(self, identity: CoordinatorIdentity) -> None:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        self._identity = identity
        self._key = load_pem_private_key(identity.private_key.read_bytes(), password=None)

    def token(self, audience: str, *, on_behalf_of: str | None = None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self._identity.id,
            "sub": self._identity.id,
            "aud": audience,
            "iat": now,
            "exp": now + self._identity.token_lifetime_s,
            "jti": secrets.token_urlsafe(12),
        }
        if on_behalf_of is not None:
            # RFC 8693 §4.1 `act`: a pseudonymous requester key, never a user token.
            claims["act"] = {"sub": on_behalf_of}
        return jwt.encode(claims, self._key, algorithm=self._identity.algorithm)  # type: ignore[arg-type]


def _service_config(max_attempts: int) -> str:
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{"service": _SERVICE}],
                    "retryPolicy": {
                        "maxAttempts": max_attempts,
                        "initialBackoff": "0.1s",
                        "maxBackoff": "1s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    )


class PeerClient:
    def __init__(
        self,
        entry: PeerEntry,
        signer: TokenSigner,
        *,
        max_attempts: int = 3,
        max_message_bytes: int = 32 << 20,
    ) -> None:
        if entry.address is None:
            raise ValueError(f"peer {entry.id} has no gRPC address")
        self.entry = entry
        self._signer = signer
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.enable_retries", 1),
            ("grpc.service_config", _service_config(max_attempts)),
        ]
        if entry.tls is not None and entry.tls.server_name:
            options.append(("grpc.ssl_target_name_override", entry.tls.server_name))
        credentials = _channel_credentials(entry)
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(entry.address, options=options)
        else:
            self._channel = grpc.aio.secure_channel(entry.address, credentials, options=options)
        self._stub = pb_grpc.PeerServiceStub(self._channel)  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        await self._channel.close()

    def _metadata(self, on_behalf_of: str | None) -> tuple[tuple[str, str], ...]:
        token = self._signer.token(self.entry.token_audience, on_behalf_of=on_behalf_of)
        return (("authorization", f"Bearer {token}"),)

    async def node_info(self, *, timeout: float) -> PeerResult[pb.NodeInfo]:
        async def call(t: float) -> pb.NodeInfo:
            reply = await self._stub.GetNodeInfo(
                pb.GetNodeInfoRequest(), timeout=t, metadata=self._metadata(None)
            )
            return cast(pb.NodeInfo, reply)

        return await self._run(call, _checked(validate.node_info), timeout)

    async def audit_checkpoint(self, *, timeout: float) -> PeerResult[pb.AuditCheckpoint]:
        async def call(t: float) -> pb.AuditCheckpoint:
            reply = await self._stub.GetAuditCheckpoint(
                pb.GetAuditCheckpointRequest(), timeout=t, metadata=self._metadata(None)
            )
            return cast(pb.AuditCheckpoint, reply)

        return await self._run(call, _checked(validate.audit_checkpoint), timeout)

    async def allele_stats(
        self,
        keys: Sequence[AlleleKey],
        *,
        timeout: float,
        dataset_ids: Sequence[str] = (),
        on_behalf_of: str | None = None,
        request: pb.BatchAlleleStatsRequest | None = None,
    ) -> PeerResult[list[columns.DatasetColumns]]:
        """Per dataset, every allele's checked counts as columns (columns.py).

        `request`, when given, is `keys` already encoded (built once for many peers)."""
        if request is None:
            request = batch_request(keys, dataset_ids)

        async def call(t: float) -> pb.BatchAlleleStatsResponse:
            reply = await self._stub.BatchAlleleStats(
                request, timeout=t, metadata=self._metadata(on_behalf_of)
            )
            return cast(pb.BatchAlleleStatsResponse, reply)

        return await self._run(call, lambda r: columns.decode(r, len(keys)), timeout)

    async def count_individuals(
        self, keys: Sequence[AlleleKey], *, timeout: float, on_behalf_of: str | None = None
    ) -> PeerResult[pb.CountIndividualsResponse]:
        """Per dataset, the individuals carrying every one of `keys`."""
        request = pb.CountIndividualsRequest(alleles=[messages.allele_message(k) for k in keys])

        async def call(t: float) -> pb.CountIndividualsResponse:
            reply = await self._stub.CountIndividuals(
                request, timeout=t, metadata=self._metadata(on_behalf_of)
            )
            return cast(pb.CountIndividualsResponse, reply)

        return await self._run(call, _checked(validate.individual_counts), timeout)

    async def region_stats(
        self,
        region: Region,
        *,
        timeout: float,
        variant_types: Sequence[str] = (),
        on_behalf_of: str | None = None,
    ) -> PeerResult[list[pb.RegionVariantStats]]:
        request = pb.RegionStatsRequest(
            contig=region.contig, start=region.start, end=region.end, variant_types=variant_types
        )

        async def call(t: float) -> list[pb.RegionVariantStats]:
            stream = self._stub.StreamRegionStats(
                request, timeout=t, metadata=self._metadata(on_behalf_of)
            )
            return [v async for chunk in stream for v in chunk.variants]

        return await self._run(call, _checked(lambda r: validate.region_stats(r, region)), timeout)

    async def _run(
        self,
        call: Callable[[float], Awaitable[T]],
        check: Callable[[T], U],
        timeout: float,
    ) -> PeerResult[U]:
        """`call` under `timeout`; `check` turns the reply into the result's value or
        raises InvalidAnswer. An asyncio timeout at the same instant backs the gRPC
        deadline, so nothing (not even a peer silent at the HTTP/2 level) holds it longer."""
        peer, started = self.entry.id, time.monotonic()

        def result(status: str, message: str, value: U | None = None) -> PeerResult[U]:
            return PeerResult(peer, status, message, time.monotonic() - started, value)

        if timeout <= 0:
            return result("DEADLINE_EXCEEDED", "no time left before the deadline")
        try:
            async with asyncio.timeout(timeout):
                reply = await call(timeout)
            if reply is None:
                # grpc.aio yields None (and logs) when the bytes are no such message.
                raise validate.InvalidAnswer("answer is not a fednode.v1 message")
            value = check(reply)
        except grpc.aio.AioRpcError as exc:
            return result(*_status_of(exc))
        except TimeoutError:
            return result("DEADLINE_EXCEEDED", "peer did not answer before the deadline")
        except validate.InvalidAnswer as exc:
            return result(INVALID_RESPONSE, str(exc))
        return result(OK, "", value)


def _checked(check: Callable[[T], None]) -> Callable[[T], T]:
    def checked(reply: T) -> T:
        check(reply)
        return reply

    return checked


def batch_request(
    keys: Sequence[AlleleKey], dataset_ids: Sequence[str] = ()
) -> pb.BatchAlleleStatsRequest:
    """The alleles as columns: the node answers in columns too (columns.py)."""
    return pb.BatchAlleleStatsRequest(
        allele_columns=columns.allele_columns(keys), dataset_ids=dataset_ids
    )


def _status_of(exc: grpc.aio.AioRpcError) -> tuple[str, str]:
    details = (exc.details() or "")[:200]
    if exc.code() is grpc.StatusCode.INTERNAL and "deserializ" in details.lower():
        return INVALID_RESPONSE, "answer is not a fednode.v1 message"
    return exc.code().name, details


def _channel_credentials(entry: PeerEntry) -> grpc.ChannelCredentials | None:
    tls = entry.tls
    if tls is None:
        return None
    ca = tls.ca.read_bytes() if tls.ca else None
    key = tls.key.read_bytes() if tls.key else None
    cert = tls.cert.read_bytes() if tls.cert else None
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
