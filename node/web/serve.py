"""Run the node's HTTP server until interrupted.

The server is aiohttp's, with one change (`NodeRequestHandler`): a request its HTTP parser
refuses (a request line or header past `parser_limits`, malformed HTTP) never reaches an
application, so aiohttp would answer it in plain text, unaudited, logging a traceback.
Here it is answered in the error format of the API it was sent to (Beacon envelope under
/api, htsget JSON under /htsget) and audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from node.beacon.render import error_envelope
from node.config import Settings
from node.htsget.models import CONTENT_TYPE
from node.logs import setup_logging
from node.web.app import create_app
from node.web.keys import SETTINGS
from node.web.privacy import audit_parser_refusal

__all__ = ["NodeRunner", "refusal_response", "serve", "tune_gc"]

log = logging.getLogger("fednode.http")
# The start of a request line: the method and the first path segments (enough to tell
# which API the refused request was for, even when its URL is what is too long).
_REQUEST_START = re.compile(rb"[A-Z]{3,10} (/[A-Za-z0-9_./-]{0,40})")


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


def refusal_response(settings: Settings, target: str, status: int, message: str) -> web.Response:
    """A refusal in the format of the API `target` (a path) belongs to."""
    if target.startswith("/htsget"):
        body: dict[str, Any] = {"htsget": {"error": "InvalidInput", "message": message}}
        return web.Response(body=orjson.dumps(body), status=status, content_type=CONTENT_TYPE)
    if target.startswith("/api"):
        body = error_envelope(settings.node.id, status, message)
    else:
        body = {"error": message}
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


class NodeRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering parser refusals as the APIs do."""

    _target = ""

    def data_received(self, data: bytes) -> None:
        # Remember where the latest request began: the parser keeps no trace of it.
        if (m := _REQUEST_START.match(data)) is not None:
            # The API and resource only ("/htsget/data", never a block token after it).
            self._target = "/".join(m.group(1).decode("ascii").split("/")[:3])
        super().data_received(data)

    def _make_error_handler(self, err_info: Any) -> Callable[[Any], Awaitable[web.StreamResponse]]:
        app: web.Application = self._manager.app  # type: ignore[union-attr]
        settings = app[SETTINGS]
        # The parser's message quotes the refused bytes (a block token, a query): only
        # the kind of refusal is logged and answered.
        target, status, kind = self._target, err_info.status, type(err_info.exc).__name__

        async def handler(request: Any) -> web.StreamResponse:
            log.warning("request refused by the HTTP parser",
                        extra={"status": status, "target": target, "reason": kind})
            await audit_parser_refusal(app, client=request.remote, target=target,
                                       status=status)
            message = (f"malformed or oversized request ({kind}); limits: "
                       f"URL {settings.server.max_url_bytes} bytes, header "
                       f"{settings.server.max_header_bytes} bytes, token "
                       f"{settings.auth.max_token_bytes} bytes")
            response = refusal_response(settings, target, status, message)
            response.force_close()
            return response

        return handler


class _NodeServer(web.Server):
    app: web.Application

    def __call__(self) -> RequestHandler:
        return NodeRequestHandler(self, loop=self._loop, **self._kwargs)


class NodeRunner(web.AppRunner):
    """An AppRunner whose connections are `NodeRequestHandler`s."""

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()
        server = _NodeServer(base.request_handler, request_factory=base.request_factory,
                             handler_cancellation=base.handler_cancellation,
                             loop=asyncio.get_running_loop(), **base._kwargs)
        server.app = self.app
        return server


async def _run(app: web.Application, settings: Settings) -> None:
    runner = NodeRunner(app, handle_signals=True, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.server.host, settings.server.port)
        await site.start()
        _announce(runner, settings)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def _announce(runner: web.AppRunner, settings: Settings) -> None:
    """Say where the node answers, once it does: people open the portal, programs the
    APIs (printed, not logged: the line is for the person who started the node)."""
    bound = runner.addresses  # the port actually bound (the settings may say 0)
    port = bound[0][1] if bound else settings.server.port
    host = settings.server.host
    base = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    portal = f"the portal at {base}/, " if settings.portal.enabled else ""
    print(f"fednode: serving {portal}Beacon at {base}/api, htsget at {base}/htsget",
          file=sys.stderr, flush=True)


def serve(settings: Settings) -> None:
    setup_logging(settings.server.log_level)
    app = create_app(settings)
    app.on_startup.append(tune_gc)  # after the datasets and catalog are opened
    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        asyncio.run(_run(app, settings))
