"""The application factory: `create_app(settings)`.

Resources (the dataset registry) are opened and closed in one `cleanup_ctx`; each
protocol is a sub-app with its own middleware and error format.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from node import __version__
from node.config import Settings
from node.store.registry import DatasetRegistry, tiledb_registry
from node.web.auth import auth_ctx
from node.web.beacon import create_beacon_app
from node.web.htsget import create_htsget_app
from node.web.keys import DATASETS, METRICS, SETTINGS
from node.web.metrics import Metrics
from node.web.middleware import REQUEST_IDS, RequestIds, request_context
from node.web.portal import mount_portal
from node.web.privacy import audit_access, privacy_ctx

__all__ = ["create_app", "parser_limits"]

log = logging.getLogger("fednode.app")

RegistryFactory = Callable[[Settings], DatasetRegistry]


def create_app(
    settings: Settings, *, registry_factory: RegistryFactory = tiledb_registry
) -> web.Application:
    app = web.Application(
        middlewares=[request_context, audit_access],
        client_max_size=settings.server.max_body_bytes,
        handler_args=parser_limits(settings),
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[REQUEST_IDS] = RequestIds()

    async def datasets_ctx(app: web.Application) -> AsyncIterator[None]:
        registry = registry_factory(settings)
        app[DATASETS] = registry
        # Lookup indexes are built in the background while the node already answers (a
        # query that comes first builds its own contig's index, under the store's lock).
        warming = asyncio.create_task(asyncio.to_thread(_warm, registry))
        housekeeping = asyncio.create_task(_housekeeping(registry, settings))
        yield
        housekeeping.cancel()
        await warming  # a thread cannot be cancelled; closing under it would race
        await asyncio.to_thread(registry.close)

    app.cleanup_ctx.append(datasets_ctx)
    app.cleanup_ctx.append(auth_ctx)
    app.cleanup_ctx.append(privacy_ctx)
    if settings.peer.port is not None:
        app.cleanup_ctx.append(peer_ctx)
    app.add_subapp("/htsget", create_htsget_app(settings))
    app.add_subapp("/api", create_beacon_app(settings))
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    if settings.portal.enabled:
        mount_portal(app, settings)  # pages at /, its own sub-app at /portal
    return app


# Room for the method, spaces and version around a URL, and for "Authorization: Bearer ".
_LINE_SLACK = 64


def parser_limits(settings: Settings) -> dict[str, int]:
    """aiohttp's HTTP parser limits from the settings (its 8190-byte defaults refused a
    valid 16 KB Passport and long filter queries before any handler or audit saw them)."""
    server = settings.server
    field = max(server.max_header_bytes, settings.auth.max_token_bytes + _LINE_SLACK)
    return {"max_line_size": server.max_url_bytes + _LINE_SLACK, "max_field_size": field}


def _warm(registry: DatasetRegistry) -> None:
    started = time.perf_counter()
    try:
        warmed = registry.warm()
    except Exception:  # whatever failed is reported again by the first query that needs it
        log.exception("building the lookup indexes failed")
        return
    log.info(
        "lookup indexes built",
        extra={
            "datasets": len(warmed),
            "contigs": sum(len(c) for c in warmed.values()),
            "seconds": round(time.perf_counter() - started, 3),
        },
    )


async def _housekeeping(registry: DatasetRegistry, settings: Settings) -> None:
    """Every `server.housekeeping_s`, release what the storage library keeps per query."""
    while True:
        await asyncio.sleep(settings.server.housekeeping_s)
        try:
            await asyncio.to_thread(registry.housekeeping)
        except Exception:
            log.exception("store housekeeping failed")


async def peer_ctx(app: web.Application) -> AsyncIterator[None]:
    """The peer (gRPC) API beside HTTP, over the same dataset registry."""
    from node.peer.server import start_peer_server  # grpc only where peers are served

    server = await start_peer_server(app[SETTINGS], app[DATASETS])
    yield
    await server.stop()


async def health(request: web.Request) -> web.Response:
    registry = request.config_dict[DATASETS]
    ids = await asyncio.to_thread(registry.ids)
    return web.json_response({"status": "ok", "version": __version__, "datasets": list(ids)})


async def metrics(request: web.Request) -> web.Response:
    body = request.config_dict[METRICS].render()
    return web.Response(body=body, content_type="text/plain", charset="utf-8")
