"""`fednode federate checkpoints`: collect each node's signed audit chain head and keep it
outside the node, so that a later rewrite of a node's audit log (chain, `.head` and its
own checkpoints alike, by whoever can write its home) is detectable:
`fednode audit verify HOME --key KEY --checkpoints FILE`.

Per peer, in `DIR`: `<peer>.pub` (the node's audit public key, pinned on first contact: a
changed key is refused, as SSH refuses a changed host key) and `<peer>.checkpoints` (one
JWS per line, appended). A token is kept only when it verifies with the pinned key.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from node.peer.client import PeerClient, TokenSigner
from node.peer.peers import PeersFile

__all__ = ["Collected", "collect"]


@dataclass(frozen=True, slots=True)
class Collected:
    peer_id: str
    ok: bool
    message: str  # "seq N" or why nothing was kept
    seq: int | None = None


async def collect(peers: PeersFile, out: Path, *, deadline_s: float | None = None
                  ) -> list[Collected]:
    """Fetch, check and keep one checkpoint from every gRPC peer."""
    out.mkdir(parents=True, exist_ok=True)
    signer = TokenSigner(peers.coordinator)
    clients = [PeerClient(e, signer, max_attempts=peers.max_attempts)
               for e in peers.peers if e.address is not None]
    timeout = deadline_s or peers.deadline_s
    try:
        results = await asyncio.gather(*(c.audit_checkpoint(timeout=timeout) for c in clients))
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    collected = []
    for result in results:
        if not result.ok or result.value is None:
            collected.append(Collected(result.peer_id, False, f"{result.status}: {result.message}"))
            continue
        collected.append(_keep(out, result.peer_id, result.value.token,
                               result.value.public_key_pem.encode()))
    return collected


_FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


def _keep(out: Path, peer_id: str, token: str, pem: bytes) -> Collected:
    if not _FILE_NAME.fullmatch(peer_id):
        return Collected(peer_id, False, "peer id unusable as a file name; nothing kept")
    pinned = out / f"{peer_id}.pub"
    if pinned.exists() and pinned.read_bytes().strip() != pem.strip():
        return Collected(peer_id, False, f"its audit key differs from the one pinned in "
                         f"{pinned}; nothing kept (remove the file to accept the new key)")
    try:
        key = serialization.load_pem_public_key(pem)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 key")
        claims = jwt.decode(token, key, algorithms=["EdDSA"])
        seq = int(claims["seq"])
    except (ValueError, TypeError, KeyError, jwt.PyJWTError) as exc:
        return Collected(peer_id, False, f"checkpoint does not verify ({exc}); nothing kept")
    if not pinned.exists():
        pinned.write_bytes(pem)
    fd = os.open(out / f"{peer_id}.checkpoints", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, token.encode() + b"\n")
    finally:
        os.close(fd)
    return Collected(peer_id, True, f"seq {seq}", seq)
