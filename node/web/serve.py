"""Run the node's HTTP server until interrupted."""

from __future__ import annotations

from aiohttp import web

from node.config import Settings
from node.logs import setup_logging
from node.web.app import create_app

__all__ = ["serve"]


def serve(settings: Settings) -> None:
    setup_logging(settings.server.log_level)
    app = create_app(settings)
    web.run_app(
        app,
        host=settings.server.host,
        port=settings.server.port,
        access_log=None,
        print=lambda msg: None,
        shutdown_timeout=5.0,
    )
