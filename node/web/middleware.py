"""Middlewares of the root application: request ids, access log, metrics, last-resort errors.

Each protocol sub-app renders its own errors (Beacon envelope, htsget JSON); this layer
only guarantees that nothing unexpected ever reaches a client as a traceback.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from node.errors import NodeError
from node.web.keys import METRICS

__all__ = ["REQUEST_ID", "REQUEST_IDS", "RequestIds", "request_context"]

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
