"""OIDC sign-in from the portal: authorization code with PKCE (RFC 7636) against a local
authorization server that checks the S256 challenge, then the Passport it issues raises
the level shown as the API does; the code never stays in the address bar."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from node.config import OidcSettings
from tests.auth.issuer import Issuer
from tests.portal.conftest import DAC, GRANT, browser_for, controlled_settings, serve
from tests.portal.test_signin import LEVEL, _returned

CLIENT = "fednode-portal"


class AuthorizationServer:
    """/authorize answers at once with a code bound to the request's S256 challenge;
    /token gives `token` for a code only with the verifier that matches it."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.codes: dict[str, dict[str, str]] = {}
        self.verified: list[bool] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/token", self.exchange)
        return app

    async def authorize(self, request: web.Request) -> web.Response:
        q = request.query
        assert q["response_type"] == "code" and q["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"challenge": q["code_challenge"], "redirect_uri": q["redirect_uri"],
                            "client_id": q["client_id"]}
        raise web.HTTPFound(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}")

    async def exchange(self, request: web.Request) -> web.Response:
        form = await request.post()
        cors = {"Access-Control-Allow-Origin": request.headers.get("Origin", "*")}
        grant = self.codes.pop(str(form.get("code")), None)
        verifier = str(form.get("code_verifier", "")).encode()
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
        ok = (grant is not None and challenge.decode() == grant["challenge"]
              and form.get("redirect_uri") == grant["redirect_uri"]
              and form.get("client_id") == grant["client_id"] == CLIENT)
        self.verified.append(ok)
        if not ok:
            return web.json_response({"error": "invalid_grant"}, status=400, headers=cors)
        return web.json_response({"access_token": self.token, "token_type": "Bearer"},
                                 headers=cors)


async def test_oidc_with_pkce_signs_in(
    controlled_home: Path, issuer: Issuer, aiohttp_server: Callable[..., Any],
    tmp_path: Path,
) -> None:
    passport = issuer.passport([issuer.visa("ControlledAccessGrants", GRANT, source=DAC)])
    auth = AuthorizationServer(passport)
    auth_server = await aiohttp_server(auth.app(), host="127.0.0.1")
    base = str(auth_server.make_url("")).rstrip("/")
    oidc = OidcSettings(issuer=issuer.iss, client_id=CLIENT,
                        authorization_endpoint=f"{base}/authorize",
                        token_endpoint=f"{base}/token")
    node = await serve(controlled_settings(controlled_home, issuer, oidc=oidc))
    try:
        out = await browser_for(node, tmp_path).run(also_allowed=(base,), steps=[
            {"do": "goto", "path": "/signin"},
            {"do": "wait", "selector": "body[data-ready]", "state": "attached"},
            {"do": "attr", "selector": LEVEL, "name": "data-granularity", "as": "before"},
            {"do": "click", "selector": "#oidc-start"},
            {"do": "waitFor", "expression":
             "document.getElementById('s-status').textContent.startsWith('Signed in')"},
            {"do": "attr", "selector": LEVEL, "name": "data-granularity", "as": "after"},
            {"do": "url", "as": "url"},
        ])
        _, anonymous = await _returned(node, controlled_home, None)
        _, signed = await _returned(node, controlled_home, passport)
    finally:
        await node.close()
    results = out["results"]
    assert auth.verified == [True]
    assert results["before"] == anonymous["meta"]["returnedGranularity"]
    assert results["after"] == signed["meta"]["returnedGranularity"] != results["before"]
    assert urlsplit(results["url"]).query == ""  # the code left the address bar
    assert not [r for r in out["requests"] if passport in r["url"]]
