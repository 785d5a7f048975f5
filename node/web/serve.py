"""Run the node's HTTP server until interrupted."""

from __future__ import annotations

import gc

from aiohttp import web

from node.config import Settings
from node.logs import setup_logging
from node.web.app import create_app

__all__ = ["serve", "tune_gc"]

# Young-generation threshold of the cyclic garbage collector while serving. The default
# (700 container allocations) runs a collection every few requests under concurrent load
# (~400 per 12,000 Beacon count queries, ~40 µs of CPU per request in all, measured in
# docs/benchmarks.md (d6)); at 20,000 it runs a few times per 10,000 requests.
GC_YOUNG_THRESHOLD = 20_000


async def tune_gc(app: web.Application) -> None:
    """Startup hook of a serving process: the objects built at startup (settings, schemas,
    catalogs, store handles) are moved out of the collector's reach (`gc.freeze`), so
    full collections no longer walk them (each took 50-75 ms with them), and young
    collections run less often. Process-wide, so only servers install it, not
    `create_app` (tests build many applications in one process)."""
    del app
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def serve(settings: Settings) -> None:
    setup_logging(settings.server.log_level)
    app = create_app(settings)
    app.on_startup.append(tune_gc)  # after the datasets and catalog are opened
    web.run_app(
        app,
        host=settings.server.host,
        port=settings.server.port,
        access_log=None,
        print=lambda msg: None,
        shutdown_timeout=5.0,
    )
