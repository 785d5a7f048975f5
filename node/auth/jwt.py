"""Verifying JWTs (passports and visas) against trusted issuers' keys.

Everything a token says about how to verify it is distrusted: the algorithm must be one
the issuer's configuration pins (AAI profile §Signing Algorithms: RS256/ES256), `iss` must
equal a configured issuer exactly (passed to pyjwt as a list: CVE-2024-53861), the key is
chosen by `kid` only (never "the first key"), and a `jku` header is honoured only when it
is on the issuer's allowlist (Passport v1 §Visa Format). JWKS documents are fetched with
aiohttp (pyjwt's PyJWKClient blocks the event loop), cached, and refetched on an unknown
`kid` at most once per `min_refresh_interval_s`.

The clock-skew leeway on `exp` is applied here and nowhere else: a token is accepted while
`now < exp + leeway` (pyjwt's rule), and `Claims.accepted_until` carries that instant so
that later checks of a cached result (node/auth/policy.py) agree with this one exactly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import aiohttp
import jwt
from jwt.types import Options

from node.config import IssuerSettings
from node.errors import Unauthenticated, Unavailable

__all__ = ["Claims", "JWKSCache", "TokenVerifier"]

log = logging.getLogger(__name__)

_MAX_JWKS_BYTES = 256 * 1024
_MAX_KEYS = 100
_KTY_FOR_ALG = {"RS256": "RSA", "ES256": "EC"}
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "sub"]


@dataclass(frozen=True, slots=True)
class Claims:
    """A verified token: its issuer, subject, times and the full payload (read-only).

    `expires_at` is the token's `exp`; `accepted_until` is `exp` plus the verifier's
    leeway, the instant from which the verifier refuses it. Compare times against
    `accepted_until`, never `exp`: adding the leeway again, or forgetting it, would accept a
    token here and treat it as expired elsewhere (issue 13).
    """

    issuer: str
    subject: str
    issued_at: int
    expires_at: int
    accepted_until: int
    payload: Mapping[str, Any] = field(repr=False)
    header: Mapping[str, Any] = field(repr=False)


@dataclass(slots=True)
class _KeySet:
    keys: dict[str, dict[str, Any]]
    fetched_at: float


class JWKSCache:
    """JWKS documents by URL, fetched asynchronously through an injected session.

    `key(uri, kid)` serves from the cache; an unknown `kid` (key rotation) triggers one
    refetch per URL per `min_refresh_interval_s`, so a flood of tokens with random `kid`s
    cannot make the node hammer the issuer.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        max_age_s: float = 3600.0,
        min_refresh_interval_s: float = 60.0,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._max_age_s = max_age_s
        self._min_refresh_s = min_refresh_interval_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._sets: dict[str, _KeySet] = {}
        self._last_attempt: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetch_count = 0

    async def key(self, uri: str, kid: str) -> dict[str, Any]:
        """The JWK with this `kid` at `uri`; Unauthenticated when there is none."""
        async with self._locks.setdefault(uri, asyncio.Lock()):
            cached = self._sets.get(uri)
            if cached is not None and not self._stale(cached) and kid in cached.keys:
                return cached.keys[kid]
            if cached is None or self._may_refresh(uri):
                cached = await self._refresh(uri, cached)
        if kid not in cached.keys:
            raise Unauthenticated("token signed with an unknown key")
        return cached.keys[kid]

    def _stale(self, keyset: _KeySet) -> bool:
        return self._clock() - keyset.fetched_at > self._max_age_s

    def _may_refresh(self, uri: str) -> bool:
        last = self._last_attempt.get(uri)
        return last is None or self._clock() - last >= self._min_refresh_s

    async def _refresh(self, uri: str, cached: _KeySet | None) -> _KeySet:
        self._last_attempt[uri] = self._clock()
        try:
            keys = await self._fetch(uri)
        except Unavailable:
            if cached is not None:
                # Keep verifying with the keys we have rather than failing every request.
                log.warning("JWKS refresh failed; keeping cached keys", extra={"jwks": uri})
                return cached
            raise
        fresh = _KeySet(keys, self._clock())
        self._sets[uri] = fresh
        return fresh

    async def _fetch(self, uri: str) -> dict[str, dict[str, Any]]:
        self.fetch_count += 1
        try:
            async with self._session.get(uri, timeout=self._timeout) as resp:
                if resp.status != 200:
                    raise Unavailable(f"issuer key set unavailable (HTTP {resp.status})")
                body = await resp.content.read(_MAX_JWKS_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable("issuer key set unavailable") from exc
        if len(body) > _MAX_JWKS_BYTES:
            raise Unavailable("issuer key set too large")
        try:
            return parse_jwks(json.loads(body))
        except ValueError as exc:
            raise Unavailable("issuer key set malformed") from exc


def parse_jwks(doc: object) -> dict[str, dict[str, Any]]:
    """Signing keys of a JWKS document by `kid`; keys without a `kid` are unusable."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: dict[str, dict[str, Any]] = {}
    for jwk in doc["keys"][:_MAX_KEYS]:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("use", "sig") != "sig" or jwk.get("kty") not in ("RSA", "EC"):
            continue
        keys[jwk["kid"]] = jwk
    return keys


class TokenVerifier:
    """Verifies JWTs from a fixed set of trusted issuers.

    >>> # verifier = TokenVerifier(settings.auth.brokers, cache, leeway_s=30)
    >>> # claims = await verifier.verify(token)
    """

    def __init__(
        self,
        issuers: Iterable[IssuerSettings],
        cache: JWKSCache | None,
        *,
        leeway_s: int = 30,
        max_token_bytes: int = 16384,
        check_audience: bool = True,
    ) -> None:
        self._issuers = {i.iss: i for i in issuers}
        self._static = {
            i.iss: parse_jwks(i.jwks) for i in self._issuers.values() if i.jwks is not None
        }
        self._cache = cache
        self._leeway = leeway_s
        self._max_bytes = max_token_bytes
        # False for visas: they carry no `aud` as a rule (see _decode).
        self._check_audience = check_audience

    async def verify(self, token: str) -> Claims:
        """Claims of `token`, or Unauthenticated with a message safe to show the caller."""
        header, unverified = self._peek(token)
        issuer = self._trusted_issuer(unverified)
        alg = self._pinned_alg(header, issuer)
        jwk_data = await self._key_for(header, issuer)
        key = _build_key(jwk_data, alg)
        payload = self._decode(token, key, alg, issuer, has_aud="aud" in unverified)
        return _claims(payload, header, leeway_s=self._leeway)

    def _peek(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        if not isinstance(token, str) or not token:
            raise Unauthenticated("missing token")
        if len(token) > self._max_bytes:
            raise Unauthenticated(f"token larger than {self._max_bytes} bytes")
        try:
            header = jwt.get_unverified_header(token)
            # Only to find which issuer's keys to use; nothing here is trusted yet.
            payload = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthenticated("malformed token") from exc
        return header, payload

    def _trusted_issuer(self, unverified: Mapping[str, Any]) -> IssuerSettings:
        iss = unverified.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise Unauthenticated("token from an untrusted issuer")
        return issuer

    @staticmethod
    def _pinned_alg(header: Mapping[str, Any], issuer: IssuerSettings) -> str:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in issuer.algorithms:
            raise Unauthenticated("token algorithm not accepted for this issuer")
        return alg

    async def _key_for(self, header: Mapping[str, Any], issuer: IssuerSettings) -> dict[str, Any]:
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("token has no key id")
        jku = header.get("jku")
        if jku is not None and jku not in issuer.jku_allowlist:
            raise Unauthenticated("token key set URL not trusted for this issuer")
        uri = jku if isinstance(jku, str) else issuer.jwks_uri
        if uri is None:
            static = self._static.get(issuer.iss, {})
            if kid not in static:
                raise Unauthenticated("token signed with an unknown key")
            return static[kid]
        if self._cache is None:
            raise Unavailable("no key set fetcher configured")
        return await self._cache.key(uri, kid)

    def _decode(
        self, token: str, key: jwt.PyJWK, alg: str, issuer: IssuerSettings, *, has_aud: bool
    ) -> Any:
        audience: Sequence[str] | None = issuer.audience or None
        # A visa without `aud` is meant for any clearinghouse; one with `aud` must name us
        # like any other token.
        verify_aud = self._check_audience or has_aud
        options: Options = {"require": _REQUIRED_CLAIMS, "verify_aud": verify_aud}
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=[issuer.iss],
                audience=audience,
                leeway=self._leeway,
                options=options,
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(_reason(exc)) from exc


def _build_key(jwk_data: dict[str, Any], alg: str) -> jwt.PyJWK:
    # The key's own `alg` (if any) and type must agree with the pinned algorithm, so an
    # RSA key can never be used as, say, an HMAC secret.
    if jwk_data.get("alg", alg) != alg or jwk_data.get("kty") != _KTY_FOR_ALG[alg]:
        raise Unauthenticated("token key does not match its algorithm")
    try:
        return jwt.PyJWK(jwk_data, algorithm=alg)
    except jwt.PyJWTError as exc:
        raise Unauthenticated("token key unusable") from exc


def _reason(exc: jwt.PyJWTError) -> str:
    reasons: list[tuple[type[jwt.PyJWTError], str]] = [
        (jwt.ExpiredSignatureError, "token expired"),
        (jwt.ImmatureSignatureError, "token not yet valid"),
        (jwt.InvalidAudienceError, "token audience not accepted"),
        (jwt.InvalidIssuerError, "token from an untrusted issuer"),
        (jwt.MissingRequiredClaimError, "token lacks a required claim"),
        (jwt.InvalidSignatureError, "token signature invalid"),
    ]
    for kind, reason in reasons:
        if isinstance(exc, kind):
            return reason
    return "token invalid"


def _claims(payload: Mapping[str, Any], header: Mapping[str, Any], *, leeway_s: int) -> Claims:
    sub, iss = payload.get("sub"), payload.get("iss")
    iat, exp = _time(payload.get("iat")), _time(payload.get("exp"))
    if not isinstance(sub, str) or not sub or not isinstance(iss, str):
        raise Unauthenticated("token subject invalid")
    if iat is None or exp is None:
        raise Unauthenticated("token times invalid")
    return Claims(
        issuer=iss,
        subject=sub,
        issued_at=iat,
        expires_at=exp,
        # pyjwt refuses from `exp + leeway` on (`exp <= now - leeway`), as _decode asked.
        accepted_until=exp + leeway_s,
        payload=MappingProxyType(dict(payload)),
        header=MappingProxyType(dict(header)),
    )


def _time(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)
