"""The portal's sub-app at `/portal`: the visitor's access, the operator view's data,
igv.js's reference, and the assets. Errors leave as `{"error": message}` with their
status, like the root application's (node/web/middleware.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from node.config import Settings
from node.errors import NodeError, NotFound
from node.privacy.budget import BudgetStore, open_budget
from node.reads.catalog import ReadsCatalog
from node.web.auth import principal_of
from node.web.keys import DATASETS, METRICS, SETTINGS, config_of
from node.web.portal import operator
from node.web.portal.access import Summaries, access
from node.web.portal.assets import Assets, load_assets
from node.web.portal.reference import chrom_sizes
from node.web.portal.security import secure
from node.web.privacy import not_data

__all__ = ["ASSETS", "create_portal_app"]

ASSETS = web.AppKey("portal_assets", Assets)
SUMMARIES = web.AppKey("portal_summaries", Summaries)
OPERATOR_BUDGET = web.AppKey("portal_operator_budget", BudgetStore)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(doc: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(doc), status=status, content_type="application/json")


@web.middleware
async def portal_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = config_of(request)[SETTINGS]
    try:
        response = await handler(request)
    except NodeError as exc:
        response = _json({"error": exc.message}, exc.http_status)
        if exc.http_status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    except web.HTTPException as exc:
        response = _json({"error": "no such page" if exc.status == 404 else exc.reason},
                         exc.status)
    return secure(response, settings, cache=request.get(_CACHEABLE, False))


_CACHEABLE = web.RequestKey("portal_cacheable", bool)


def create_portal_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[portal_errors])
    app[ASSETS] = load_assets(settings)
    app[SUMMARIES] = Summaries()

    async def budget_ctx(app: web.Application) -> AsyncIterator[None]:
        # The operator view reads the pooled budgets through a handle of its own.
        conf = settings.privacy.budget
        budget = None
        if settings.portal.operator_token_sha256 and conf.enabled:
            budget = await asyncio.to_thread(open_budget, conf, home=settings.home)
            app[OPERATOR_BUDGET] = budget
        yield
        if budget is not None:
            await asyncio.to_thread(budget.close)

    app.cleanup_ctx.append(budget_ctx)
    r = app.router
    r.add_get("/access", access_handler)
    r.add_get("/operator/status", operator_status)
    r.add_get("/operator/metrics", operator_metrics)
    r.add_get("/reference/{dataset}", reference)
    r.add_get("/fasta/{assembly}/{file}", fasta)
    r.add_get("/static/{name}", static)
    r.add_get("/igv/{name}", igv_module)
    return app


async def access_handler(request: web.Request) -> web.Response:
    principal = await principal_of(request)
    config = config_of(request)
    reads = await asyncio.to_thread(_reads_entries, config[SETTINGS])
    settings = config[SETTINGS]
    doc = await asyncio.to_thread(access, principal, config[DATASETS], request.app[SUMMARIES],
                                  reads, now=int(time.time()))
    for dataset in doc["datasets"]:  # the reads' reference, when one is configured
        if dataset["assembly"] in settings.portal.references:
            dataset["fasta"] = f"/portal/fasta/{dataset['assembly']}/sequence.fa"
    return _json(doc)


def _reads_entries(settings: Settings) -> tuple[Any, ...]:
    # Read per request: `fednode reads add` may register files while the node serves.
    return ReadsCatalog(settings.home / "reads").entries()


async def operator_status(request: web.Request) -> web.Response:
    config = config_of(request)
    settings = config[SETTINGS]
    operator.check_operator(settings, request.headers.get("Authorization"))
    registry = config[DATASETS]
    budget = request.app.get(OPERATOR_BUDGET)

    def status() -> dict[str, Any]:
        ids = registry.ids()
        datasets = []
        for dataset_id in ids:
            summary = request.app[SUMMARIES].of(registry, dataset_id)
            datasets.append({
                "id": dataset_id, "assembly": summary.assembly, "samples": summary.samples,
                "variants": summary.variants,
                "lastIngest": operator.last_ingest(settings.dataset_uri(dataset_id),
                                                   settings.tiledb_config)})
        return {
            "audit": operator.audit_status(settings),
            "budgets": None if budget is None else operator.pool_use(settings, budget, ids),
            "datasets": datasets,
        }

    return _json(await asyncio.to_thread(status))


async def operator_metrics(request: web.Request) -> web.Response:
    config = config_of(request)
    operator.check_operator(config[SETTINGS], request.headers.get("Authorization"))
    return _json(operator.metrics_of(config[METRICS].registry))


async def reference(request: web.Request) -> web.Response:
    config = config_of(request)
    dataset_id = request.match_info["dataset"]
    registry = config[DATASETS]
    if dataset_id not in await asyncio.to_thread(registry.ids):
        raise NotFound(f"no dataset {dataset_id!r}")
    summary = await asyncio.to_thread(request.app[SUMMARIES].of, registry, dataset_id)
    return web.Response(text=chrom_sizes(summary), content_type="text/plain")


_FASTA_FILES = {"sequence.fa": "", "sequence.fa.fai": ".fai"}


async def fasta(request: web.Request) -> web.StreamResponse:
    """A configured reference FASTA and its index, with HTTP ranges (igv.js reads the
    bases of the region in view); a reference genome says nothing about anyone."""
    not_data(request)
    settings = config_of(request)[SETTINGS]
    path = settings.portal.references.get(request.match_info["assembly"])
    suffix = _FASTA_FILES.get(request.match_info["file"])
    if path is None or suffix is None:
        raise web.HTTPNotFound()
    file = Path(path) if Path(path).is_absolute() else settings.home / path
    file = file.with_name(file.name + suffix)
    if not file.is_file():
        raise NotFound("the configured reference FASTA (or its .fai index) is missing")
    return web.FileResponse(file, headers={"Content-Type": "text/plain"})


async def static(request: web.Request) -> web.Response:
    not_data(request)
    asset = request.app[ASSETS].get(request.match_info["name"])
    if asset is None:
        raise web.HTTPNotFound()
    request[_CACHEABLE] = True
    return web.Response(body=asset.body, content_type=asset.content_type, charset="utf-8")


async def igv_module(request: web.Request) -> web.StreamResponse:
    not_data(request)
    path = request.app[ASSETS].igv
    if path is None or request.match_info["name"] != path.name:
        raise web.HTTPNotFound()
    request[_CACHEABLE] = True
    return web.FileResponse(path, headers={"Content-Type": "text/javascript"})
