"""Middlewares of the root application: request ids, access log, metrics, last-resort errors.

Each protocol sub-app renders its own errors (Beacon envelope, htsget JSON); this layer
only guarantees that nothing unexpected ever reaches a client as a traceback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from node.config import ServerSettings
from node.errors import InvalidInput, NodeError
from node.web.keys import METRICS

__all__ = ["REQUEST_ID", "REQUEST_IDS", "RequestIds", "cors_origin", "external_origin",
           "request_context"]

log = logging.getLogger("fednode.http")
REQUEST_ID = web.RequestKey("request_id", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RequestIds:
    """Request ids unique across processes: a random per-process prefix and a counter
    (a uuid4 per request reads the OS entropy source, which releases the GIL)."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


REQUEST_IDS = web.AppKey("request_ids", RequestIds)
# Logged and counted for a request cancelled before its answer (nginx's "client closed
# request"): a client that hangs up is not a server error.
CLIENT_CLOSED = 499


def _route_name(request: web.Request) -> str:
    info = request.match_info
    resource = info.route.resource if info.route is not None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app  # the root application (config_dict would build a chain per access)
    request_id = request.headers.get("X-Request-Id", "")[:64] or app[REQUEST_IDS].next()
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as exc:
        status = exc.status
        raise
    except NodeError as exc:
        status = exc.http_status
        response = web.json_response({"error": exc.message}, status=status)
    except asyncio.CancelledError:
        status = CLIENT_CLOSED  # the client went away (or the server is stopping): no 500
        raise
    except Exception:
        log.exception("unhandled error", extra={"request_id": request_id})
        response = web.json_response(
            {"error": "internal error", "requestId": request_id}, status=500
        )
    finally:
        elapsed = time.perf_counter() - started
        route = _route_name(request)
        app[METRICS].observe(request.method, route, status, elapsed)
        log.info(
            "request",
            extra={
                "request_id": request_id,
                "method": request.method,
                "path": request.path,
                "status": status,
                "ms": round(elapsed * 1000, 2),
            },
        )
    response.headers["X-Request-Id"] = request_id
    return response


def cors_origin(server: ServerSettings, origin: str | None) -> dict[str, str]:
    """CORS response headers for `origin`: `*` when every origin is allowed (the default),
    the origin itself (and `Vary: Origin`) when it is listed, nothing otherwise. Never
    `Allow-Credentials`: bearer tokens are not credentials in the CORS sense."""
    if "*" in server.cors_origins:
        return {"Access-Control-Allow-Origin": "*"}
    if origin and origin != "null" and origin in server.cors_origins:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {}


_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def external_origin(request: web.Request, server: ServerSettings,
                    public_url: str | None = None) -> str:
    """The scheme://host[:port] the client reached the node at, for URLs the node hands
    out: `public_url` when configured; else the Host header (or X-Forwarded-Host/-Proto,
    from a trusted proxy only), refused unless the host is allowed (a `Host: evil.example`
    must never yield URLs pointing there)."""
    if public_url:
        return public_url.rstrip("/")
    scheme, host = request.scheme, request.host
    if _from_trusted_proxy(request, server):
        host = request.headers.get("X-Forwarded-Host", host).split(",")[0].strip()
        scheme = request.headers.get("X-Forwarded-Proto", scheme).split(",")[0].strip()
    if scheme not in ("http", "https") or not _host_allowed(host, server):
        raise InvalidInput(f"host {host[:100]!r} is not served by this node "
                           "(server.allowed_hosts, htsget.public_url)")
    return f"{scheme}://{host}"


def _from_trusted_proxy(request: web.Request, server: ServerSettings) -> bool:
    if not server.trusted_proxies or request.remote is None:
        return False
    try:
        peer = ipaddress.ip_address(request.remote)
    except ValueError:
        return False
    return any(peer in ipaddress.ip_network(net, strict=False) for net in server.trusted_proxies)


def _host_allowed(host: str, server: ServerSettings) -> bool:
    host = host.lower()
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if server.allowed_hosts:
        allowed = {h.lower() for h in server.allowed_hosts}
        return host in allowed or name in allowed
    return name in _LOOPBACK or name == server.host.lower()
