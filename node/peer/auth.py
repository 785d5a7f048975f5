"""Who is calling the peer API: a registered coordinator, proven by its own JWT or mTLS.

A coordinator signs a short-lived JWT with its private key: header `alg` ES256 or RS256
(pinned per coordinator in config, never taken from the token), claims `iss` = `sub` =
the coordinator id, `aud` = this node's id, `iat`, `exp`. It is verified against that
coordinator's registered public key only: the token cannot name its own key (no `jku`,
no `jwk`, no `kid` lookup). Without a token, a TLS client certificate verified against
`peer.tls_client_ca` whose subject common name is a coordinator's `tls_subject` is
accepted instead. Anything else is UNAUTHENTICATED: there is no anonymous peer access.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import jwt

from node.config import PeerCoordinatorSettings, Settings
from node.domain import Principal
from node.errors import InvalidInput, Unauthenticated
from node.names import SecurityLevel

__all__ = ["PEER_ISSUER", "Caller", "CoordinatorVerifier"]

# `Principal.issuer` of every coordinator: keeps coordinator ids apart from passport
# subjects in budgets and audit.
PEER_ISSUER = "fednode:peer"
_LEEWAY_S = 30


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated coordinator and the requester it acts as."""

    coordinator_id: str
    principal: Principal
    # Pseudonymous end-user key the coordinator asserts (`act.sub`); budgets are kept
    # per coordinator, this is recorded in the audit log only.
    on_behalf_of: str | None


@dataclass(frozen=True, slots=True)
class _Registered:
    settings: PeerCoordinatorSettings
    key: Any | None


class CoordinatorVerifier:
    """Verifies peer-call credentials against the coordinators registered in config."""

    def __init__(self, settings: Settings) -> None:
        self._audience = settings.node.id
        self._limits = settings.peer
        self._by_id = {
            c.id: _Registered(c, _load_key(c, settings.home)) for c in settings.peer.coordinators
        }

    def verify(self, token: str | None, tls_subjects: Sequence[str]) -> Caller:
        # A client certificate the TLS layer verified against `tls_client_ca` is proof
        # enough; a token is checked only when no registered certificate was presented.
        for coordinator in self._by_id.values():
            wanted = coordinator.settings.tls_subject
            if wanted and any(hmac.compare_digest(wanted, s) for s in tls_subjects):
                return _caller(coordinator.settings, expires_at=None, on_behalf_of=None)
        if token is not None:
            return self._verify_token(token)
        raise Unauthenticated("peer calls need a coordinator token or client certificate")

    def _verify_token(self, token: str) -> Caller:
        if len(token) > self._limits.max_token_bytes:
            raise Unauthenticated("token too large")
        unverified = _peek(token)
        coordinator = self._by_id.get(str(unverified.get("iss", "")))
        if coordinator is None or coordinator.key is None:
            raise Unauthenticated("token issuer is not a registered coordinator")
        claims = self._decode(token, coordinator)
        act = claims.get("act")
        on_behalf_of = act.get("sub") if isinstance(act, dict) else None
        return _caller(
            coordinator.settings,
            # _decode accepted the token until `exp + leeway`; the principal must not expire
            # before that, or the policy would refuse a token the verifier just accepted.
            expires_at=int(claims["exp"]) + _LEEWAY_S,
            on_behalf_of=str(on_behalf_of) if on_behalf_of is not None else None,
        )

    def _decode(self, token: str, coordinator: _Registered) -> dict[str, Any]:
        settings = coordinator.settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=cast(Any, coordinator.key),  # checked not None by the caller
                algorithms=list(settings.algorithms),
                audience=[self._audience],
                issuer=[settings.id],  # a list: exact match (CVE-2024-53861)
                leeway=_LEEWAY_S,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid coordinator token: {_reason(exc)}") from exc
        if claims.get("sub") != settings.id:
            raise Unauthenticated("invalid coordinator token: sub must equal iss")
        lifetime = int(claims["exp"]) - int(claims["iat"])
        if lifetime > self._limits.max_token_lifetime_s:
            raise Unauthenticated("invalid coordinator token: lifetime too long")
        return claims


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The bearer token of gRPC call metadata, None when there is none."""
    for key, value in metadata or ():
        if key.lower() != "authorization":
            continue
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        scheme, _, token = text.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("authorization metadata must be 'Bearer <token>'")
        return token.strip()
    return None


def _caller(
    settings: PeerCoordinatorSettings, *, expires_at: int | None, on_behalf_of: str | None
) -> Caller:
    level = settings.level
    principal = Principal(
        subject=settings.id,
        issuer=PEER_ISSUER,
        registered=level in (SecurityLevel.REGISTERED, SecurityLevel.CONTROLLED),
        controlled_grants=frozenset(settings.controlled_datasets),
        expires_at=expires_at,
    )
    return Caller(settings.id, principal, on_behalf_of)


def _peek(token: str) -> Mapping[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
        claims: Mapping[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise Unauthenticated("malformed coordinator token") from exc
    if any(k in header for k in ("jku", "jwk", "x5u", "x5c")):
        # The key is the one registered for the coordinator; a token may not bring its own.
        raise Unauthenticated("coordinator tokens may not carry key references")
    return claims


def _load_key(settings: PeerCoordinatorSettings, home: Path) -> Any | None:
    pem = settings.public_key
    if pem is None and settings.public_key_file is not None:
        path = Path(settings.public_key_file)
        pem = (path if path.is_absolute() else home / path).read_text()
    if pem is None:
        return None
    try:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        return load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise InvalidInput(f"coordinator {settings.id}: unreadable public key") from exc


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "expired"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "wrong audience"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "wrong issuer"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "algorithm not allowed"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim}"
    return "signature or format invalid"
