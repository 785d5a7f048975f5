"""Bearer tokens → `Principal`, for every HTTP sub-app.

No `Authorization` header means anonymous. Anything else must be a valid passport from a
trusted broker; an invalid, expired or untrusted token raises `Unauthenticated` (rendered
by the sub-app in its own error format) and is never treated as anonymous. The JWKS
cache and its HTTP session live for the application's lifetime (one `cleanup_ctx`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from node.auth import JWKSCache, PassportEvaluator
from node.domain import Principal
from node.errors import Unauthenticated
from node.web.keys import SETTINGS

__all__ = ["EVALUATOR", "auth_ctx", "principal_of", "resolved_principal"]

EVALUATOR = web.AppKey("passport_evaluator", PassportEvaluator)
_PRINCIPAL = web.RequestKey("principal", Principal)
_SCHEME = "bearer "


async def auth_ctx(app: web.Application) -> AsyncIterator[None]:
    auth = app[SETTINGS].auth
    timeout = aiohttp.ClientTimeout(total=auth.jwks_timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        cache = JWKSCache(
            session,
            max_age_s=auth.jwks_max_age_s,
            min_refresh_interval_s=auth.jwks_min_refresh_interval_s,
            timeout_s=auth.jwks_timeout_s,
        )
        app[EVALUATOR] = PassportEvaluator(auth, cache)
        yield


async def principal_of(request: web.Request) -> Principal:
    """The requester of `request` (computed once per request).

    Kept for the request only, never across requests by token; one that expires while
    kept is refused with 401 by the policy, not downgraded (node/auth/policy.py).
    """
    cached = resolved_principal(request)
    if cached is not None:
        return cached
    header = request.headers.get("Authorization")
    if header is None:
        principal = Principal.anonymous()
    else:
        if not header[: len(_SCHEME)].lower() == _SCHEME or not header[len(_SCHEME) :].strip():
            raise Unauthenticated("Authorization must be 'Bearer <passport JWT>'")
        token = header[len(_SCHEME) :].strip()
        principal = await request.config_dict[EVALUATOR].principal(token)
    request[_PRINCIPAL] = principal
    return principal


def resolved_principal(request: web.Request) -> Principal | None:
    """The requester if `principal_of` already accepted its token, else None."""
    principal: Principal | None = request.get(_PRINCIPAL)
    return principal
