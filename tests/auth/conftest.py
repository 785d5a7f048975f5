from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from node.auth.jwt import JWKSCache
from node.auth.passport import PassportEvaluator
from node.config import AuthSettings, DatasetGrantSettings, IssuerSettings
from tests.auth.issuer import Issuer, IssuerServer, PrivateKey, make_key

DATASET_VALUE = "https://ega.example/EGAD0001"
DAC = "https://dac.example/DAC1"
LEEWAY_S = AuthSettings().leeway_s  # what `auth_settings` (and so `evaluator`) uses


@pytest.fixture(scope="session")
def keys() -> dict[str, tuple[str, PrivateKey]]:
    # RSA generation is slow: once per session.
    algs = {
        "broker-rs": "RS256",
        "broker-ec": "ES256",
        "visa-rs": "RS256",
        "visa-ec": "ES256",
        "visa-rs-2": "RS256",
        "rogue-rs": "RS256",
        "alt-rs": "RS256",
    }
    return {kid: (alg, make_key(alg)) for kid, alg in algs.items()}


@dataclass
class IdP:
    server: IssuerServer
    broker: Issuer
    visas: Issuer
    rogue: Issuer

    @property
    def base(self) -> str:
        return self.server.base


@pytest.fixture
async def idp(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    keys: dict[str, tuple[str, PrivateKey]],
) -> IdP:
    server = IssuerServer("")
    test_server = await aiohttp_server(server.app(), host="127.0.0.1")
    server.base = str(test_server.make_url("")).rstrip("/")
    broker, visas, rogue = (server.issuer(n) for n in ("broker", "visas", "rogue"))
    for issuer, kids in (
        (broker, ["broker-rs", "broker-ec"]),
        (visas, ["visa-rs", "visa-ec"]),
        (rogue, ["rogue-rs"]),
    ):
        for kid in kids:
            alg, key = keys[kid]
            issuer.add_key(kid, alg, key)
    return IdP(server, broker, visas, rogue)


def auth_settings(idp: IdP, **overrides: object) -> AuthSettings:
    base = {
        "brokers": [
            IssuerSettings(iss=idp.broker.iss, jwks_uri=idp.broker.jwks_uri, audience=["fednode"])
        ],
        "visa_issuers": [
            IssuerSettings(
                iss=idp.visas.iss,
                jwks_uri=idp.visas.jwks_uri,
                jku_allowlist=[f"{idp.base}/alt/jwks"],
            )
        ],
        "grants": {"ds1": DatasetGrantSettings(value=DATASET_VALUE, sources=[DAC])},
    }
    base.update(overrides)
    return AuthSettings.model_validate(base)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def cache(session: aiohttp.ClientSession) -> JWKSCache:
    return JWKSCache(session, min_refresh_interval_s=60.0)


@pytest.fixture
def evaluator(idp: IdP, cache: JWKSCache) -> PassportEvaluator:
    return PassportEvaluator(auth_settings(idp), cache)
