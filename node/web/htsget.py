"""The htsget 1.3 sub-app, mounted at /htsget: tickets, service-info and the data endpoint.

Handlers are thin: parse (node/htsget/parse.py), check access, build the ticket off the
event loop (node/htsget/tickets.py). Errors are rendered once, by `htsget_errors`, as
`{"htsget": {"error", "message"}}`; CORS once, by `cors`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from node.auth.policy import effective_granularity
from node.config import Settings
from node.domain import Region
from node.errors import (
    InvalidInput,
    NodeError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    Unauthenticated,
)
from node.htsget.info import service_info
from node.htsget.models import CONTENT_TYPE, HtsgetRequest, Kind
from node.htsget.parse import parse_get, parse_post
from node.htsget.signing import BlockSigner
from node.htsget.tickets import file_ticket, ticket
from node.htsget.variants import store_regions
from node.names import Granularity
from node.reads.blocks import BlockMiss
from node.reads.catalog import ReadsCatalog
from node.reads.layout import Span, file_version
from node.store.export import export_variants
from node.web.auth import principal_of
from node.web.keys import DATASETS, READS, SETTINGS
from node.web.middleware import REQUEST_ID
from node.web.privacy import audit_request, ledger_for

__all__ = ["create_htsget_app"]

log = logging.getLogger("fednode.htsget")
SIGNER = web.AppKey("htsget_signer", BlockSigner)
_CHUNK = 1 << 20
_CORS_MAX_AGE = str(30 * 24 * 3600)
# Tickets computed on the event loop: at most this many regions and uncached block reads.
_INLINE_MAX_REGIONS = 16
_INLINE_MAX_READS = 2


def create_htsget_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[cors, htsget_errors])
    app.on_response_prepare.append(cors_headers)
    app[SIGNER] = BlockSigner(_secret(settings), ttl_s=settings.htsget.token_ttl_s)

    async def reads_ctx(app: web.Application) -> AsyncIterator[None]:
        app[READS] = await asyncio.to_thread(ReadsCatalog, settings.home / "reads")
        yield

    app.cleanup_ctx.append(reads_ctx)
    for kind in ("reads", "variants"):
        app.router.add_route("*", f"/{kind}/service-info", info_handler)
        app.router.add_get(f"/{kind}/{{id:.+}}", ticket_get, name=f"{kind}-get")
        app.router.add_post(f"/{kind}/{{id:.+}}", ticket_post, name=f"{kind}-post")
    app.router.add_get("/data/{token}", data_handler, name="data")
    return app


def _secret(settings: Settings) -> bytes:
    """The node's block-signing key: created once (mode 0600) and reused across restarts."""
    path = Path(settings.htsget.secret_file)
    path = path if path.is_absolute() else settings.home / path
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
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
    """The origin mirrored on every response, tickets and streamed blocks alike (set as
    the response is prepared: a streamed block's headers leave before the handler ends)."""
    origin = request.headers.get("Origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Access-Control-Expose-Headers"] = (
            "Content-Length, Content-Range, Accept-Ranges"
        )
        response.headers["Vary"] = "Origin"


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
    """One audit entry per ticket (the access decision; block URLs are signed tickets)."""
    ledger = ledger_for(request, await principal_of(request))
    granularity = None
    try:
        response = await _answer(request, req)
        granularity = Granularity.RECORD.value
        return response
    finally:
        query = {
            "kind": req.kind,
            "format": req.format,
            "headerOnly": req.header_only,
            "regions": [[q.reference, q.start, q.end] for q in req.regions],
        }
        await audit_request(
            request,
            ledger,
            datasets=[req.id],
            query=query,
            granularity=granularity,
            outcome="answered" if granularity else "refused",
        )


async def _read_bounded(request: web.Request, limit: int) -> bytes:
    """The body, refused as soon as it passes `limit` (chunked bodies have no length)."""
    body = bytearray()
    while chunk := await request.content.read(65536):
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"the request body exceeds {limit} bytes")
    return bytes(body)


async def _answer(request: web.Request, req: HtsgetRequest) -> web.Response:
    catalog = request.config_dict[READS]
    if req.kind == "variants" and not catalog.has(req.id, kind="variants"):
        return await _store_answer(request, req)
    entry = catalog.get(req.id, kind=req.kind, fmt=req.format)
    await _check_access(request, entry.dataset)
    signer = request.config_dict[SIGNER]
    base = _base_url(request)
    path = request.app.router["data"]

    cached = catalog.cached_layout(entry)
    layout = cached if cached is not None else await asyncio.to_thread(catalog.layout, entry)

    def url_for(span: Span) -> dict[str, Any]:
        claims = {"k": "f", "id": entry.id, "f": entry.format, "v": layout.version}
        token = signer.sign({**claims, "s": span.start, "e": span.end})
        return {"url": base + str(path.url_for(token=token))}

    try:
        # Known blocks cost microseconds; a block to read and decompress about 0.3 ms. Up
        # to two of those (a single region's two ends) cost less on the event loop than
        # the two thread wake-ups of a hop, which a loaded machine makes far dearer.
        if len(req.regions) > _INLINE_MAX_REGIONS:
            raise BlockMiss(-1)
        ticket = file_ticket(req, layout, url_for, max_reads=_INLINE_MAX_READS)
    except BlockMiss:
        ticket = await asyncio.to_thread(file_ticket, req, layout, url_for)
    return web.json_response(ticket, content_type=CONTENT_TYPE)


async def _store_answer(request: web.Request, req: HtsgetRequest) -> web.Response:
    """Variants of a dataset, generated from the store (the source of truth)."""
    registry = request.config_dict[DATASETS]
    if req.id not in await asyncio.to_thread(registry.ids):
        raise NotFound(f"no variants with id {req.id!r}")
    await _check_access(request, req.id)
    regions = await asyncio.to_thread(
        lambda: store_regions(registry.store(req.id), req.regions)
    )  # one thread hop for both
    claims = {
        "k": "g",
        "d": req.id,
        "f": req.format,
        "h": req.header_only,
        "r": [[r.contig, r.start, r.end] for r in regions],
    }
    token = request.config_dict[SIGNER].sign(claims)
    url = _base_url(request) + str(request.app.router["data"].url_for(token=token))
    entry = {"url": url, "class": "header"} if req.header_only else {"url": url}
    return web.json_response(ticket(req.format, [entry]), content_type=CONTENT_TYPE)


async def _check_access(request: web.Request, dataset_id: str) -> None:
    """Streaming records needs record granularity on the dataset (deny by default)."""
    registry = request.config_dict[DATASETS]
    principal = await principal_of(request)
    granted = effective_granularity(
        principal, dataset_id, registry.settings(dataset_id), now=int(time.time())
    )
    if granted is Granularity.RECORD:
        return
    if principal.is_anonymous:
        raise Unauthenticated("authentication is required to stream this dataset")
    raise PermissionDenied("no record-level access to this dataset")


def _base_url(request: web.Request) -> str:
    public = request.config_dict[SETTINGS].htsget.public_url
    return public.rstrip("/") if public else f"{request.scheme}://{request.host}"


async def data_handler(request: web.Request) -> web.StreamResponse:
    payload = request.config_dict[SIGNER].verify(request.match_info["token"])
    if payload.get("k") == "g":
        return await _send_generated(request, payload)
    if payload.get("k") != "f":
        raise InvalidInput("malformed block token")
    entry = request.config_dict[READS].find(str(payload["id"]), str(payload["f"]))
    start, end = int(payload["s"]), int(payload["e"])
    # Byte ranges are only valid for the version of the file they were cut from.
    if await asyncio.to_thread(_version_or_none, Path(entry.path)) != payload.get("v"):
        raise NotFound("the file changed since the ticket was issued; request a new ticket")
    return await _send_span(request, Path(entry.path), start, end)


def _version_or_none(path: Path) -> str | None:
    try:
        return file_version(path)
    except OSError:
        return None


def parse_range(header: str | None, length: int) -> tuple[int, int] | None:
    """An inclusive `bytes=a-b` (or `a-`, `-n`) range → [start, end); None: whole body."""
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        raise _RangeError()
    first, _, last = spec.strip().partition("-")
    try:
        if not first:
            n = int(last)
            return (max(length - n, 0), length) if n > 0 else _raise_range()
        start = int(first)
        end = min(int(last) + 1, length) if last else length
    except ValueError:
        raise _RangeError() from None
    if start >= length or end <= start:
        raise _RangeError()
    return start, end


class _RangeError(Exception):
    pass


def _raise_range() -> tuple[int, int]:
    raise _RangeError()


async def _send_generated(request: web.Request, payload: dict[str, Any]) -> web.StreamResponse:
    registry = request.config_dict[DATASETS]
    limit = request.config_dict[SETTINGS].htsget.max_generated_bytes
    try:
        regions = [Region(str(c), int(s), int(e)) for c, s, e in payload["r"]]
        dataset, fmt, header_only = str(payload["d"]), str(payload["f"]), bool(payload["h"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput("malformed block token") from exc
    store = await asyncio.to_thread(registry.store, dataset)
    data = await asyncio.to_thread(
        export_variants, store, regions, fmt=fmt, header_only=header_only, max_bytes=limit
    )
    try:
        sub = parse_range(request.headers.get("Range"), len(data))
    except _RangeError:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
    if sub is None:
        return web.Response(body=data, content_type="application/octet-stream")
    lo, hi = sub
    headers = {"Content-Range": f"bytes {lo}-{hi - 1}/{len(data)}", "Accept-Ranges": "bytes"}
    return web.Response(
        status=206, body=data[lo:hi], headers=headers, content_type="application/octet-stream"
    )


async def _send_span(request: web.Request, path: Path, start: int, end: int) -> web.StreamResponse:
    length = end - start
    try:
        sub = parse_range(request.headers.get("Range"), length)
    except _RangeError:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{length}"})
    status, lo, hi = (200, 0, length) if sub is None else (206, *sub)
    response = web.StreamResponse(status=status)
    response.content_type = "application/octet-stream"
    response.content_length = hi - lo
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Cache-Control"] = "private, max-age=60"
    if sub is not None:
        response.headers["Content-Range"] = f"bytes {lo}-{hi - 1}/{length}"
    try:
        fobj = await asyncio.to_thread(path.open, "rb")
    except OSError as exc:
        raise NotFound("the file of this block is gone") from exc
    try:
        await response.prepare(request)
        if request.method != "HEAD":
            await _sendfile(request, response, fobj, start + lo, hi - lo)
    finally:
        fobj.close()  # synchronous: it must happen even when the handler is cancelled
    await response.write_eof()
    return response


async def _sendfile(
    request: web.Request, response: web.StreamResponse, fobj: Any, offset: int, count: int
) -> None:
    """Zero-copy when the transport allows it (as aiohttp's FileResponse does), else
    1 MiB reads off the event loop; never the whole file in memory."""
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("connection lost")
    try:
        await asyncio.get_running_loop().sendfile(transport, fobj, offset, count)
        return
    except NotImplementedError:
        pass
    while count > 0:
        chunk = await asyncio.to_thread(_pread, fobj, offset, min(_CHUNK, count))
        if not chunk:
            raise ConnectionResetError("file shrank while being served")
        await response.write(chunk)
        offset += len(chunk)
        count -= len(chunk)


def _pread(fobj: Any, offset: int, size: int) -> bytes:
    return os.pread(fobj.fileno(), size, offset)
