"""Run the node's HTTP server until interrupted."""

from __future__ import annotations

import gc

from aiohttp import web

from node.config import Settings
from node.logs import setup_logging
from node.web.app import create_app

__all__ = ["serve", "tune_gc"]


async def tune_gc(app: web.Application) -> None:
    """Startup hook of a serving process: the objects built at startup (settings, schemas,
    catalogs, store handles) are moved out of the collector's reach (`gc.freeze`), so full
    collections no longer walk them (each took 50-75 ms with them, a latency spike for
    every request in flight). The young-generation threshold stays at its default: raised
    to 20,000, tiledb-py query objects (kept by reference cycles until a collection)
    piled up in thousands and freeing them together cost tens of seconds on endpoints
    that then ran one query per variant (docs/decisions.md). Process-wide, so only servers
    install it, not `create_app` (tests build many applications in one process)."""
    del app
    gc.collect()
    gc.freeze()


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
