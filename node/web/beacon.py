"""The Beacon v2 sub-app, mounted at /api: routes built from the entry-type table, one
error middleware rendering every failure as the Beacon error envelope, CORS.

Handlers only parse, call `node.beacon.query.answer` in a thread, and serialise.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from node import __version__
from node.beacon import info as docs
from node.beacon.annotations import GeneIndex
from node.beacon.info import ENTRY_TYPES, EntryType
from node.beacon.models import BeaconRequest
from node.beacon.openapi import openapi_document
from node.beacon.parse import parse_body, parse_get
from node.beacon.query import Context, answer, in_memory
from node.beacon.refseq import canonical_assembly
from node.beacon.render import error_envelope
from node.beacon.variants import VariantQuery
from node.config import Settings
from node.domain import Principal
from node.errors import InvalidInput, NodeError, PayloadTooLarge, TimedOut
from node.privacy.gate import ChargeDeferred
from node.service import MetadataCatalog, Planner
from node.web.auth import principal_of
from node.web.keys import DATASETS, SETTINGS, config_of
from node.web.middleware import REQUEST_ID, cors_origin, external_origin
from node.web.privacy import audit_request, ledger_for

__all__ = ["CATALOG", "create_beacon_app"]

log = logging.getLogger("fednode.beacon")

CATALOG = web.AppKey("catalog", MetadataCatalog)
GENES = web.AppKey("genes", dict[str, GeneIndex])
PLANNER = web.AppKey("planner", Planner)
PARSED = web.RequestKey("beacon_request", BeaconRequest)
_CORS = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, X-Request-Id",
    "Access-Control-Max-Age": "600",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CatalogFactory = Callable[[Settings], MetadataCatalog | None]


def _json(doc: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(doc), status=status, content_type="application/json")


def _beacon_id(request: web.Request) -> str:
    return request.config_dict[SETTINGS].node.id


@web.middleware
async def beacon_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as a beaconErrorResponse with its HTTP status; CORS headers on all."""
    cors = {**_CORS, **cors_origin(request.config_dict[SETTINGS].server,
                                   request.headers.get("Origin"))}
    if request.method == "OPTIONS":
        return web.Response(status=204, headers=cors)
    try:
        response = await handler(request)
    except NodeError as exc:
        response = _json(error_envelope(_beacon_id(request), exc.http_status, exc.message,
                                        request.get(PARSED)), exc.http_status)
        if exc.http_status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'  # RFC 6750 §3
    except web.HTTPException as exc:
        message = "no such endpoint" if exc.status == 404 else exc.reason
        response = _json(error_envelope(_beacon_id(request), exc.status, message), exc.status)
    except Exception:
        log.exception("unhandled error", extra={"request_id": request.get(REQUEST_ID, "")})
        response = _json(error_envelope(_beacon_id(request), 500, "internal error"), 500)
    response.headers.update(cors)
    return response


async def _read_body(request: web.Request) -> object:
    limit = config_of(request)[SETTINGS].server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body larger than {limit} bytes")
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body larger than {limit} bytes")
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("the request body is not valid JSON") from None


async def _parse(request: web.Request, *, variants: bool) -> BeaconRequest:
    if request.method == "POST":
        req = parse_body(await _read_body(request), variants=variants)
    else:
        req = parse_get(request.query, variants=variants)
    request[PARSED] = req
    return req


async def _context(request: web.Request, req: BeaconRequest) -> Context:
    # Beacon v2 testMode: answered "skipping authentication" (with no real data), so a
    # test request never needs, nor is refused for, a token.
    principal = Principal.anonymous() if req.test_mode else await principal_of(request)
    app, config = request.app, config_of(request)  # config_dict is rebuilt per access
    return Context(
        settings=config[SETTINGS],
        registry=config[DATASETS],
        catalog=app.get(CATALOG),
        principal=principal,
        genes=app.get(GENES),
        ledger=ledger_for(request, principal),
        planner=app[PLANNER],
        deadline=time.monotonic() + config[SETTINGS].server.request_timeout_s,
    )


def _entry_handler(entry: EntryType, *, nested: str | None, by_id: bool) -> Handler:
    takes_variant_params = (nested or entry.path) == "g_variants" and not (
        entry.path == "g_variants" and by_id)

    async def handler(request: web.Request) -> web.Response:
        req = await _parse(request, variants=takes_variant_params)
        entry_id = request.match_info.get("id")
        ctx = await _context(request, req)
        doc: dict[str, Any] = {}
        outcome = "refused"
        try:
            doc = await _answer(ctx, entry, req, entry_id=entry_id, nested=nested)
            outcome = "answered"
        except TimedOut:
            outcome = "timed out"
            raise
        finally:
            # Every access is audited once, refusals (a spent budget) included.
            if ctx.ledger is not None:
                await audit_request(
                    request, ctx.ledger, datasets=sorted(ctx.ledger.counts)
                    or list(req.dataset_ids or ()), query=_summary(req, entry_id, nested),
                    granularity=doc.get("meta", {}).get("returnedGranularity"),
                    outcome=outcome)
        return _json(doc)

    return handler


_GRACE_S = 0.5  # after the deadline, time for the thread to stop and answer TimedOut itself


async def _answer(ctx: Context, entry: EntryType, req: BeaconRequest, *,
                  entry_id: str | None, nested: str | None) -> dict[str, Any]:
    """A lookup in memory takes microseconds, less than a thread hop: it runs on the event
    loop, its ledger deferring to a thread the answers that cost budget (charging is
    SQLite or Redis I/O). Everything else runs in a thread."""
    ledger = ctx.ledger
    if in_memory(ctx, entry, req, nested=nested):
        if ledger is None:
            return answer(ctx, entry, req, entry_id=entry_id, nested=nested)
        try:
            with ledger.deferring():
                return answer(ctx, entry, req, entry_id=entry_id, nested=nested)
        except ChargeDeferred:
            pass  # nothing was released or charged: answered in a thread like any other
    # The thread stops itself at the deadline between store reads (TimedOut); this bound
    # answers on time even when one read runs past it (the thread then finishes alone).
    left = None if ctx.deadline is None else max(0.0, ctx.deadline - time.monotonic())
    try:
        async with asyncio.timeout(None if left is None else left + _GRACE_S):
            return await asyncio.to_thread(answer, ctx, entry, req, entry_id=entry_id,
                                           nested=nested)
    except TimeoutError:
        raise TimedOut("the query ran past the node's time limit; narrow it") from None


_VARIANT_FIELDS = tuple(f.name for f in dataclasses.fields(VariantQuery))


def _summary(req: BeaconRequest, entry_id: str | None, nested: str | None) -> dict[str, Any]:
    """What was asked, for the audit log (no tokens, nothing the client did not send)."""
    out: dict[str, Any] = {"id": entry_id, "nested": nested,
                           "granularity": req.granularity.value}
    if req.variant is not None:
        out["variant"] = {k: v for k in _VARIANT_FIELDS
                          if (v := getattr(req.variant, k)) is not None and v != ()}
    if req.filters:
        out["filters"] = [f.id for f in req.filters]
    return out


def _base(request: web.Request) -> str:
    origin = external_origin(request, request.config_dict[SETTINGS].server)
    return f"{origin}{request.app.router['root'].canonical}".rstrip("/")


async def info(request: web.Request) -> web.Response:
    return _json(docs.info(request.config_dict[SETTINGS], version=__version__))


async def service_info(request: web.Request) -> web.Response:
    return _json(docs.service_info(request.config_dict[SETTINGS], version=__version__))


async def configuration(request: web.Request) -> web.Response:
    return _json(docs.configuration(request.config_dict[SETTINGS]))


async def beacon_map(request: web.Request) -> web.Response:
    return _json(docs.map_document(request.config_dict[SETTINGS], base=_base(request)))


async def entry_types(request: web.Request) -> web.Response:
    return _json(docs.entry_types(request.config_dict[SETTINGS]))


def _filtering_terms(scope: str | None) -> Handler:
    """/filtering_terms, or those of one dataset or cohort (`scope`), GET and POST; `skip`
    and `limit` page the terms when given (every term otherwise, as networks expect)."""

    async def handler(request: web.Request) -> web.Response:
        if request.method == "POST":
            body = await _read_body(request)
            req = parse_body(body, variants=False)
            query = body.get("query") if isinstance(body, dict) else None
            paged = isinstance(query, dict) and "pagination" in query
        else:
            req = parse_get(request.query, variants=False)
            paged = "skip" in request.query or "limit" in request.query
        request[PARSED] = req
        config, catalog = request.config_dict, request.app.get(CATALOG)

        def terms() -> list[dict[str, Any]]:
            known = set(config[DATASETS].ids()) | set(catalog.dataset_ids() if catalog else ())
            return docs.filtering_terms_of(catalog, scope=scope, dataset_ids=sorted(known),
                                           entry_id=request.match_info.get("id"))

        found = await asyncio.to_thread(terms)
        page = found[req.skip : req.skip + req.limit] if paged else found
        meta = docs.informational_meta(config[SETTINGS], "beacon-filtering-terms-v2.0.0")
        return _json({"meta": meta, "response": {"filteringTerms": page}})

    return handler



async def openapi(request: web.Request) -> web.Response:
    return _json(openapi_document(base=_base(request), version=__version__))


def _open_catalog(settings: Settings) -> MetadataCatalog | None:
    from node.catalog import Catalog

    return Catalog.open(settings.home)


def _load_genes(settings: Settings) -> dict[str, GeneIndex]:
    out = {}
    for assembly, path in settings.gene_beds.items():
        bed = Path(path) if Path(path).is_absolute() else settings.home / path
        out[canonical_assembly(assembly)] = GeneIndex.load(bed)
    return out


def create_beacon_app(
    settings: Settings,
    *,
    catalog_factory: CatalogFactory = _open_catalog,
    genes: Mapping[str, GeneIndex] | None = None,
) -> web.Application:
    """The Beacon API. `catalog_factory` opens the metadata catalog (node home's by
    default); `genes` maps assemblies to gene coordinates for geneId queries (default: the
    BED files of `settings.gene_beds`)."""
    app = web.Application(middlewares=[beacon_errors],
                          client_max_size=settings.server.max_body_bytes)
    app[PLANNER] = Planner(settings.dataset)

    async def catalog_ctx(app: web.Application) -> AsyncIterator[None]:
        catalog = await asyncio.to_thread(catalog_factory, settings)
        if catalog is not None:
            app[CATALOG] = catalog
        if genes is None and settings.gene_beds:
            app[GENES] = await asyncio.to_thread(_load_genes, settings)
        yield

    if genes is not None:
        app[GENES] = dict(genes)
    app.cleanup_ctx.append(catalog_ctx)
    r = app.router
    r.add_get("", info, name="root")
    r.add_get("/", info)
    r.add_get("/info", info)
    r.add_get("/service-info", service_info)
    r.add_get("/configuration", configuration)
    r.add_get("/map", beacon_map)
    r.add_get("/entry_types", entry_types)
    r.add_get("/filtering_terms", _filtering_terms(None))
    r.add_get("/openapi.json", openapi)
    for path in ("datasets", "cohorts"):  # scoped terms (models' datasets/cohorts endpoints)
        r.add_get(f"/{path}/{{id}}/filtering_terms", _filtering_terms(path))
        r.add_post(f"/{path}/{{id}}/filtering_terms", _filtering_terms(path))
    for entry in ENTRY_TYPES:
        _add_entry_routes(r, entry)
    return app


def _add_entry_routes(r: web.UrlDispatcher, entry: EntryType) -> None:
    routes = [(f"/{entry.path}", _entry_handler(entry, nested=None, by_id=False)),
              (f"/{entry.path}/{{id}}", _entry_handler(entry, nested=None, by_id=True))]
    routes += [(f"/{entry.path}/{{id}}/{n}", _entry_handler(entry, nested=n, by_id=True))
               for n in entry.nested]
    for path, handler in routes:
        r.add_get(path, handler)
        r.add_post(path, handler)
