"""A real OIDC/JWKS issuer for tests: keys made with `cryptography`, JWKS served by aiohttp
on loopback, tokens, passports and visas minted with pyjwt.

One server hosts several issuers by path: issuer "broker" is `<base>/broker`, its JWKS at
`<base>/broker/jwks` and its discovery document at `<base>/broker/.well-known/
openid-configuration`. Extra JWKS documents (for `jku` tests) are served at
`<base>/<name>/jwks` for any issuer name, and each JWKS request is counted.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

REGISTERED = "https://doi.org/10.1038/s41431-018-0219-y"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def make_key(alg: str) -> PrivateKey:
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: PrivateKey, kid: str, alg: str) -> dict[str, Any]:
    algo = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.ECAlgorithm
    jwk = json.loads(algo.to_jwk(key.public_key()))
    jwk.update(kid=kid, alg=alg, use="sig")
    return jwk


@dataclass
class Issuer:
    """One issuer: its keys by kid and a way to mint any token with them."""

    iss: str
    keys: dict[str, tuple[str, PrivateKey]] = field(default_factory=dict)
    published: set[str] = field(default_factory=set)

    @property
    def jwks_uri(self) -> str:
        return f"{self.iss}/jwks"

    def add_key(self, kid: str, alg: str, key: PrivateKey, *, publish: bool = True) -> None:
        self.keys[kid] = (alg, key)
        if publish:
            self.published.add(kid)

    def jwks(self) -> dict[str, Any]:
        return {
            "keys": [
                public_jwk(k, kid, a) for kid, (a, k) in self.keys.items() if kid in self.published
            ]
        }

    def default_kid(self, alg: str = "RS256") -> str:
        return next(kid for kid, (a, _) in self.keys.items() if a == alg)

    def mint(
        self,
        claims: dict[str, Any],
        *,
        kid: str | None = None,
        alg: str = "RS256",
        headers: dict[str, Any] | None = None,
        iss: str | None = None,
        lifetime: int = 600,
        now: int | None = None,
    ) -> str:
        kid = kid or self.default_kid(alg)
        key_alg, key = self.keys[kid]
        now = int(time.time()) if now is None else now
        body = {"iss": iss or self.iss, "sub": "alice", "iat": now, "exp": now + lifetime}
        body.update(claims)
        head = {"kid": kid, **(headers or {})}
        return jwt.encode(body, key, algorithm=key_alg, headers=head)

    def visa(
        self,
        kind: str,
        value: str,
        *,
        source: str = "https://dac.example/DAC1",
        by: str | None = "dac",
        conditions: Any = None,
        sub: str = "alice",
        **mint: Any,
    ) -> str:
        obj: dict[str, Any] = {
            "type": kind,
            "value": value,
            "source": source,
            "asserted": int(time.time()) - 3600,
        }
        if by is not None:
            obj["by"] = by
        if conditions is not None:
            obj["conditions"] = conditions
        headers = {"typ": "vnd.ga4gh.visa+jwt", **mint.pop("headers", {})}
        claims = {"sub": sub, "scope": "openid", "ga4gh_visa_v1": obj, **mint.pop("claims", {})}
        return self.mint(claims, headers=headers, **mint)

    def passport(
        self, visas: list[str], *, sub: str = "alice", aud: str = "fednode", **mint: Any
    ) -> str:
        claims = {"sub": sub, "aud": aud, "ga4gh_passport_v1": visas, **mint.pop("claims", {})}
        headers = {"typ": "vnd.ga4gh.passport+jwt", **mint.pop("headers", {})}
        return self.mint(claims, headers=headers, **mint)


class IssuerServer:
    """Serves every issuer's discovery document and JWKS; counts JWKS fetches."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.issuers: dict[str, Issuer] = {}
        self.extra_jwks: dict[str, dict[str, Any]] = {}
        self.fetches: Counter[str] = Counter()

    def issuer(self, name: str) -> Issuer:
        return self.issuers.setdefault(name, Issuer(f"{self.base}/{name}"))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{name}/jwks", self._jwks)
        app.router.add_get("/{name}/.well-known/openid-configuration", self._discovery)
        return app

    async def _jwks(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.fetches[name] += 1
        if name in self.extra_jwks:
            return web.json_response(self.extra_jwks[name])
        if name not in self.issuers:
            raise web.HTTPNotFound()
        return web.json_response(self.issuers[name].jwks())

    async def _discovery(self, request: web.Request) -> web.Response:
        issuer = self.issuers.get(request.match_info["name"])
        if issuer is None:
            raise web.HTTPNotFound()
        return web.json_response(
            {
                "issuer": issuer.iss,
                "jwks_uri": issuer.jwks_uri,
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            }
        )
