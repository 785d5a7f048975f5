"""TokenVerifier and JWKSCache against a real issuer on loopback, and the attacks on them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from node.auth.jwt import JWKSCache, TokenVerifier
from node.config import IssuerSettings
from node.errors import Unauthenticated, Unavailable
from tests.auth.conftest import IdP
from tests.auth.issuer import make_key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, object], payload: dict[str, object]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"


def _claims(idp: IdP, **extra: object) -> dict[str, object]:
    now = int(time.time())
    return {
        "iss": idp.broker.iss,
        "sub": "alice",
        "aud": "fednode",
        "iat": now,
        "exp": now + 600,
        **extra,
    }


def _verifier(idp: IdP, cache: JWKSCache, **issuer: object) -> TokenVerifier:
    settings = {"iss": idp.broker.iss, "jwks_uri": idp.broker.jwks_uri, "audience": ["fednode"]}
    settings.update(issuer)
    return TokenVerifier([IssuerSettings.model_validate(settings)], cache)


async def _rejected(verifier: TokenVerifier, token: str, reason: str) -> None:
    with pytest.raises(Unauthenticated) as info:
        await verifier.verify(token)
    assert reason in info.value.message


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_valid_token_verifies(idp: IdP, cache: JWKSCache, alg: str) -> None:
    token = idp.broker.mint({"aud": "fednode", "sub": "bob"}, alg=alg)
    claims = await _verifier(idp, cache).verify(token)
    assert (claims.issuer, claims.subject) == (idp.broker.iss, "bob")
    assert claims.expires_at - claims.issued_at == 600
    assert claims.header["kid"] == idp.broker.default_kid(alg)


async def test_alg_none_rejected(idp: IdP, cache: JWKSCache) -> None:
    token = _segments({"alg": "none", "kid": "broker-rs"}, _claims(idp)) + "."
    await _rejected(_verifier(idp, cache), token, "algorithm not accepted")


async def test_hs256_with_public_key_as_secret_rejected(idp: IdP, cache: JWKSCache) -> None:
    # The classic algorithm confusion: HMAC keyed with the issuer's public RSA key.
    public_pem = (
        idp.broker.keys["broker-rs"][1]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    signing_input = _segments({"alg": "HS256", "typ": "JWT", "kid": "broker-rs"}, _claims(idp))
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{_b64(mac)}"
    await _rejected(_verifier(idp, cache), token, "algorithm not accepted")
    # Even an issuer wrongly configured to list HS256 cannot be: config allows RS256/ES256.
    with pytest.raises(ValueError, match="RS256"):
        IssuerSettings(iss="x", algorithms=["HS256"])  # type: ignore[list-item]


async def test_algorithm_pinned_by_config_not_header(idp: IdP, cache: JWKSCache) -> None:
    token = idp.broker.mint({"aud": "fednode"}, alg="ES256")
    await _rejected(_verifier(idp, cache, algorithms=["RS256"]), token, "algorithm not accepted")


async def test_key_type_must_match_algorithm(idp: IdP, cache: JWKSCache) -> None:
    # Signed ES256 but naming the issuer's RSA key: the RSA key is never used as EC.
    ec_key = idp.broker.keys["broker-ec"][1]
    token = jwt.encode(_claims(idp), ec_key, algorithm="ES256", headers={"kid": "broker-rs"})
    await _rejected(_verifier(idp, cache), token, "does not match its algorithm")


async def test_expired_rejected(idp: IdP, cache: JWKSCache) -> None:
    token = idp.broker.mint({"aud": "fednode"}, now=int(time.time()) - 3600, lifetime=600)
    await _rejected(_verifier(idp, cache), token, "expired")


async def test_expired_within_leeway_accepted(idp: IdP, cache: JWKSCache) -> None:
    token = idp.broker.mint({"aud": "fednode"}, now=int(time.time()) - 610, lifetime=600)
    assert (await _verifier(idp, cache).verify(token)).subject == "alice"


async def test_not_yet_valid_rejected(idp: IdP, cache: JWKSCache) -> None:
    token = idp.broker.mint({"aud": "fednode", "nbf": int(time.time()) + 600})
    await _rejected(_verifier(idp, cache), token, "not yet valid")


async def test_wrong_or_missing_audience_rejected(idp: IdP, cache: JWKSCache) -> None:
    verifier = _verifier(idp, cache)
    await _rejected(verifier, idp.broker.mint({"aud": "another-node"}), "audience")
    await _rejected(verifier, idp.broker.mint({}), "required claim")


async def test_audience_carried_but_none_configured_rejected(idp: IdP, cache: JWKSCache) -> None:
    await _rejected(_verifier(idp, cache, audience=[]), idp.broker.mint({"aud": "x"}), "audience")


@pytest.mark.parametrize("suffix", [".evil", "/../evil", "x"])
async def test_issuer_must_match_exactly(idp: IdP, cache: JWKSCache, suffix: str) -> None:
    # Prefix and substring matches must fail (CVE-2024-53861: `iss` compared with `in`).
    token = idp.broker.mint({"aud": "fednode"}, iss=idp.broker.iss + suffix)
    await _rejected(_verifier(idp, cache), token, "untrusted issuer")
    shorter = idp.broker.mint({"aud": "fednode"}, iss=idp.broker.iss[:-1])
    await _rejected(_verifier(idp, cache), shorter, "untrusted issuer")


async def test_token_from_untrusted_issuer_rejected(idp: IdP, cache: JWKSCache) -> None:
    await _rejected(_verifier(idp, cache), idp.rogue.mint({"aud": "fednode"}), "untrusted issuer")


async def test_forged_signature_with_trusted_kid_rejected(idp: IdP, cache: JWKSCache) -> None:
    rogue_key = idp.rogue.keys["rogue-rs"][1]
    token = jwt.encode(_claims(idp), rogue_key, algorithm="RS256", headers={"kid": "broker-rs"})
    await _rejected(_verifier(idp, cache), token, "signature invalid")


async def test_tampered_payload_rejected(idp: IdP, cache: JWKSCache) -> None:
    header, _, signature = idp.broker.mint({"aud": "fednode", "sub": "bob"}).split(".")
    forged_payload = _b64(json.dumps(_claims(idp, sub="admin")).encode())
    await _rejected(_verifier(idp, cache), f"{header}.{forged_payload}.{signature}", "signature")


async def test_unknown_or_missing_kid_rejected(idp: IdP, cache: JWKSCache) -> None:
    verifier = _verifier(idp, cache)
    idp.broker.add_key("hidden", "RS256", idp.broker.keys["broker-rs"][1], publish=False)
    await _rejected(verifier, idp.broker.mint({"aud": "fednode"}, kid="hidden"), "unknown key")
    key = idp.broker.keys["broker-rs"][1]
    no_kid = jwt.encode(_claims(idp), key, algorithm="RS256")
    await _rejected(verifier, no_kid, "no key id")


async def test_jku_outside_allowlist_rejected(idp: IdP, cache: JWKSCache) -> None:
    # The attacker serves their own JWKS and points `jku` at it.
    idp.server.extra_jwks["attacker"] = idp.rogue.jwks()
    rogue_key = idp.rogue.keys["rogue-rs"][1]
    token = jwt.encode(
        _claims(idp),
        rogue_key,
        algorithm="RS256",
        headers={"kid": "rogue-rs", "jku": f"{idp.base}/attacker/jwks"},
    )
    await _rejected(_verifier(idp, cache), token, "key set URL not trusted")
    assert idp.server.fetches["attacker"] == 0


async def test_jku_on_allowlist_used(idp: IdP, cache: JWKSCache) -> None:
    alt = f"{idp.base}/alt/jwks"
    idp.server.extra_jwks["alt"] = idp.rogue.jwks()
    rogue_key = idp.rogue.keys["rogue-rs"][1]
    token = jwt.encode(
        _claims(idp), rogue_key, algorithm="RS256", headers={"kid": "rogue-rs", "jku": alt}
    )
    claims = await _verifier(idp, cache, jku_allowlist=[alt]).verify(token)
    assert claims.subject == "alice" and idp.server.fetches["alt"] == 1


async def test_oversized_token_rejected_before_parsing(idp: IdP, cache: JWKSCache) -> None:
    token = idp.broker.mint({"aud": "fednode", "pad": "x" * 20_000})
    await _rejected(_verifier(idp, cache), token, "larger than")
    assert idp.server.fetches["broker"] == 0


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "....", "é.é.é"])
async def test_malformed_tokens_rejected(idp: IdP, cache: JWKSCache, garbage: str) -> None:
    with pytest.raises(Unauthenticated):
        await _verifier(idp, cache).verify(garbage)


async def test_static_jwks_needs_no_fetch(idp: IdP, cache: JWKSCache) -> None:
    verifier = _verifier(idp, cache, jwks_uri=None, jwks=idp.broker.jwks())
    assert (await verifier.verify(idp.broker.mint({"aud": "fednode"}))).subject == "alice"
    assert idp.server.fetches["broker"] == 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_unknown_kid_refreshes_with_rate_limit(
    idp: IdP, session: aiohttp.ClientSession
) -> None:
    clock = Clock()
    cache = JWKSCache(session, min_refresh_interval_s=60.0, clock=clock)
    verifier = _verifier(idp, cache)
    await verifier.verify(idp.broker.mint({"aud": "fednode"}))
    assert idp.server.fetches["broker"] == 1
    # The issuer rotates in a new key; within the interval the node does not refetch.
    idp.broker.add_key("rotated", "RS256", make_key("RS256"))
    rotated = idp.broker.mint({"aud": "fednode"}, kid="rotated")
    clock.now += 10
    for _ in range(5):
        await _rejected(verifier, rotated, "unknown key")
    assert idp.server.fetches["broker"] == 1
    clock.now += 60
    assert (await verifier.verify(rotated)).subject == "alice"
    assert idp.server.fetches["broker"] == 2
    # Known keys keep working from the cache.
    await verifier.verify(idp.broker.mint({"aud": "fednode"}))
    assert idp.server.fetches["broker"] == 2


async def test_concurrent_misses_fetch_once(idp: IdP, cache: JWKSCache) -> None:
    verifier = _verifier(idp, cache)
    tokens = [idp.broker.mint({"aud": "fednode", "sub": f"u{i}"}) for i in range(10)]
    claims = await asyncio.gather(*(verifier.verify(t) for t in tokens))
    assert [c.subject for c in claims] == [f"u{i}" for i in range(10)]
    assert idp.server.fetches["broker"] == 1


async def test_stale_key_set_refetched(idp: IdP, session: aiohttp.ClientSession) -> None:
    clock = Clock()
    cache = JWKSCache(session, max_age_s=300.0, min_refresh_interval_s=60.0, clock=clock)
    verifier = _verifier(idp, cache)
    token = idp.broker.mint({"aud": "fednode"})
    await verifier.verify(token)
    clock.now += 301
    await verifier.verify(token)
    assert idp.server.fetches["broker"] == 2


async def test_unreachable_jwks_is_unavailable_not_accepted(idp: IdP, cache: JWKSCache) -> None:
    verifier = _verifier(idp, cache, jwks_uri=f"{idp.base}/nowhere/jwks")
    with pytest.raises(Unavailable):
        await verifier.verify(idp.broker.mint({"aud": "fednode"}))


async def test_failed_refresh_keeps_cached_keys(idp: IdP, session: aiohttp.ClientSession) -> None:
    clock = Clock()
    cache = JWKSCache(session, max_age_s=300.0, clock=clock)
    verifier = _verifier(idp, cache)
    token = idp.broker.mint({"aud": "fednode"})
    await verifier.verify(token)
    idp.server.extra_jwks["broker"] = {"keys": "not a list"}  # the issuer now serves junk
    clock.now += 301
    assert (await verifier.verify(token)).subject == "alice"
    assert idp.server.fetches["broker"] == 2
