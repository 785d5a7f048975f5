"""The htsget 1.3 sub-app, mounted at /htsget: tickets, service-info and the data endpoint
(node/web/htsget_data.py).

Handlers only translate: parse (node/htsget/parse.py), name the principal, and hand the
request to the use case (node/htsget/service.py: access, privacy, audit, the ticket).
Errors are rendered once, by `htsget_errors`, as `{"htsget": {"error", "message"}}`;
CORS once, by `cors`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from node.config import Settings
from node.errors import NodeError, PayloadTooLarge
from node.htsget.info import service_info
from node.htsget.models import CONTENT_TYPE, HtsgetRequest, Kind
from node.htsget.parse import parse_get, parse_post
from node.htsget.service import HtsgetService, TicketCall
from node.htsget.signing import BlockSigner
from node.reads.catalog import ReadsCatalog
from node.reads.storage import Storage
from node.web.auth import principal_of
from node.web.htsget_data import SIGNER, data_handler
from node.web.keys import DATASETS, READS, SETTINGS
from node.web.middleware import REQUEST_ID, cors_origin, external_origin
from node.web.privacy import audit_request, ledger_for

__all__ = ["create_htsget_app"]

log = logging.getLogger("fednode.htsget")
_CORS_MAX_AGE = str(30 * 24 * 3600)


def create_htsget_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[cors, htsget_errors])
    app.on_response_prepare.append(cors_headers)
    app[SIGNER] = BlockSigner(_secret(settings), ttl_s=settings.htsget.token_ttl_s)

    async def reads_ctx(app: web.Application) -> AsyncIterator[None]:
        storage = Storage(settings.tiledb_config)  # s3:// reads reach the store's endpoint
        app[READS] = await asyncio.to_thread(ReadsCatalog, settings.home / "reads", storage=storage)
        yield

    app.cleanup_ctx.append(reads_ctx)
    for kind in ("reads", "variants"):
        app.router.add_route("*", f"/{kind}/service-info", info_handler)
        app.router.add_get(f"/{kind}/{{id:.+}}", ticket_get, name=f"{kind}-get")
        app.router.add_post(f"/{kind}/{{id:.+}}", ticket_post, name=f"{kind}-post")
    app.router.add_get("/data/{token}", data_handler, name="data")
    return app


def _secret(settings: Settings) -> bytes:
    """The node's block-signing key: created once (mode 0600) and reused across restarts.
    Written under a temporary name and linked into place, so of several workers starting
    at once the first link wins and none reads a partial key."""
    path = Path(settings.htsget.secret_file)
    path = path if path.is_absolute() else settings.home / path
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another worker made it first: use theirs
        finally:
            tmp.unlink()
    return path.read_bytes()


@web.middleware
async def htsget_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except NodeError as exc:
        return _error(exc.htsget_error, exc.message, exc.http_status)
    except web.HTTPNotFound:
        return _error("NotFound", "no such htsget resource", 404)
    except web.HTTPMethodNotAllowed:
        return _error("InvalidInput", f"method {request.method} is not allowed here", 405)
    except web.HTTPRequestEntityTooLarge:
        return _error("PayloadTooLarge", "the request body is too large", 413)
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception:
        # Logged with the request id by nothing else: never str(exc) to the client.
        log.exception("htsget: unhandled error", extra={"request_id": request.get(REQUEST_ID)})
        return _error("InternalError", "internal error", 500)


def _error(name: str, message: str, status: int) -> web.Response:
    body = {"htsget": {"error": name, "message": message}}
    return web.json_response(body, status=status, content_type=CONTENT_TYPE)


@web.middleware
async def cors(request: web.Request, handler: Any) -> web.StreamResponse:
    """CORS preflight of GET and POST (browsers, igv.js): Range and Authorization allowed."""
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        requested = request.headers.get("Access-Control-Request-Headers", "")
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": "GET, POST, HEAD, OPTIONS",
                "Access-Control-Allow-Headers": requested or "Authorization, Content-Type, Range",
                "Access-Control-Max-Age": _CORS_MAX_AGE,
            },
        )
    response: web.StreamResponse = await handler(request)
    return response


async def cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """CORS headers (`server.cors_origins`) on every response, tickets and streamed blocks
    alike (set as the response is prepared: a streamed block's headers leave before the
    handler ends)."""
    origin = request.headers.get("Origin")
    allowed = cors_origin(request.config_dict[SETTINGS].server, origin)
    if origin and allowed:
        response.headers.update(allowed)
        response.headers["Access-Control-Expose-Headers"] = (
            "Content-Length, Content-Range, Accept-Ranges"
        )


async def info_handler(request: web.Request) -> web.Response:
    if request.method not in ("GET", "POST", "HEAD"):
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])
    node = request.config_dict[SETTINGS].node
    kind: Kind = "reads" if "/reads/" in request.path else "variants"
    body = service_info(
        kind,
        node_id=node.id,
        node_name=node.name,
        org=node.organization,
        org_url=node.organization_url,
    )
    return web.json_response(body)


async def ticket_get(request: web.Request) -> web.Response:
    kind: Kind = "reads" if "/reads/" in request.path else "variants"
    params = {k: request.query.getall(k) for k in request.query}
    req = parse_get(kind, request.match_info["id"], params)
    return await _audited(request, req)


async def ticket_post(request: web.Request) -> web.Response:
    kind: Kind = "reads" if "/reads/" in request.path else "variants"
    limits = request.config_dict[SETTINGS].htsget
    if (request.content_length or 0) > limits.max_post_bytes:
        raise PayloadTooLarge(f"the request body exceeds {limits.max_post_bytes} bytes")
    body = await _read_bounded(request, limits.max_post_bytes)
    req = parse_post(
        kind,
        request.match_info["id"],
        body,
        has_query=bool(request.query_string),
        max_regions=limits.max_regions,
    )
    return await _audited(request, req)


async def _audited(request: web.Request, req: HtsgetRequest) -> web.Response:
    """The ticket from the use case (`node/htsget/service.py`: access, privacy and the
    one audit entry per ticket); here only what the transport knows."""
    principal = await principal_of(request)
    ledger = ledger_for(request, principal)

    async def audit(
        *, datasets: Sequence[str], query: dict[str, Any], granularity: str | None, outcome: str
    ) -> None:
        await audit_request(
            request, ledger, datasets=datasets, query=query, granularity=granularity,
            outcome=outcome,
        )  # fmt: skip

    base, route = _base_url(request), request.app.router["data"]
    call = TicketCall(
        principal=principal,
        data_url=lambda token: base + str(route.url_for(token=token)),
        audit=audit,
    )
    service = HtsgetService(
        request.config_dict[READS], request.config_dict[DATASETS], request.config_dict[SIGNER]
    )
    body = await service.ticket(req, call)
    return web.json_response(body, content_type=CONTENT_TYPE)


async def _read_bounded(request: web.Request, limit: int) -> bytes:
    """The body, refused as soon as it passes `limit` (chunked bodies have no length)."""
    body = bytearray()
    while chunk := await request.content.read(65536):
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"the request body exceeds {limit} bytes")
    return bytes(body)


def _base_url(request: web.Request) -> str:
    settings = request.config_dict[SETTINGS]
    return external_origin(request, settings.server, settings.htsget.public_url)
