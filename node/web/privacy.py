"""The disclosure gate of the HTTP sub-apps: opened once per application (budget store
and audit log in one `cleanup_ctx`), a ledger per request, one audit entry per request.

Protocol handlers audit what they answer (`audit_request`: datasets, counts, charge).
`audit_access`, a middleware of the root application, audits every other access: a token
refused (401), access denied (403), an invalid request, an info endpoint, an htsget data
block. Its entries hold the route and its parameters (an htsget block's `token` left
out), the status and the outcome; never a token, header or query string. Health and
metrics probes are not accesses to data and are not logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from node.domain import Principal
from node.errors import NodeError
from node.privacy.audit_queue import AuditQueue
from node.privacy.gate import DisclosureGate, Ledger
from node.web.auth import resolved_principal
from node.web.keys import METRICS, SETTINGS, config_of
from node.web.middleware import REQUEST_ID

__all__ = [
    "AUDIT_QUEUE",
    "GATE",
    "audit_access",
    "audit_parser_refusal",
    "audit_request",
    "client_address",
    "ledger_for",
    "not_data",
    "privacy_ctx",
]

GATE = web.AppKey("disclosure_gate", DisclosureGate)
AUDIT_QUEUE = web.AppKey("audit_queue", AuditQueue)
_AUDITED = web.RequestKey("access_audited", bool)
_NOT_DATA = frozenset({"/health", "/metrics"})
_SECRET_PARAMS = frozenset({"token"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def privacy_ctx(app: web.Application) -> AsyncIterator[None]:
    metrics = app.get(METRICS)
    gate = await asyncio.to_thread(
        DisclosureGate.from_settings, app[SETTINGS],
        on_pool_refusal=None if metrics is None else metrics.pool_refused)
    app[GATE] = gate
    log = gate.audit_log
    queue = AuditQueue(log) if log is not None else None
    if queue is not None:
        app[AUDIT_QUEUE] = queue
    yield
    if queue is not None:
        await queue.close()
    await asyncio.to_thread(gate.close)


def client_address(request: web.Request) -> str | None:
    """The client's address: the trusted proxy's header when configured (its first,
    client-most entry), else the TCP peer."""
    header = config_of(request)[SETTINGS].privacy.client_address_header
    if header:
        forwarded = request.headers.get(header, "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first
    return request.remote


def ledger_for(request: web.Request, principal: Principal) -> Ledger:
    return config_of(request)[GATE].ledger(principal, client_address(request))


async def _append(request: web.Request, gate: DisclosureGate, ledger: Ledger, *,
                  datasets: Sequence[str], query: Mapping[str, Any], granularity: str | None,
                  outcome: str) -> None:
    """Write the request's audit entry; returns once it is durable, raises if it is not
    (fail closed). No thread hop per request: entries are group-committed by the queue."""
    record = gate.audit_entry(ledger, request_id=request.get(REQUEST_ID, ""),
                              datasets=datasets, query=query, granularity=granularity,
                              outcome=outcome)
    if record is None:
        return
    queue = config_of(request).get(AUDIT_QUEUE)
    if queue is not None:
        await queue.append(record)
    elif (log := gate.audit_log) is not None:  # a gate installed without privacy_ctx
        await asyncio.to_thread(log.append_records, [record])


async def audit_request(
    request: web.Request,
    ledger: Ledger,
    *,
    datasets: Sequence[str],
    query: Mapping[str, Any],
    granularity: str | None,
    outcome: str,
) -> None:
    request[_AUDITED] = True
    await _append(request, config_of(request)[GATE], ledger, datasets=datasets,
                  query={"path": request.path, **query}, granularity=granularity,
                  outcome=outcome)


def not_data(request: web.Request) -> None:
    """Mark `request` as touching no data (the portal's pages and assets: the data they
    show comes from API requests, each audited), so `audit_access` does not log it."""
    request[_AUDITED] = True


@web.middleware
async def audit_access(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Audit each access its handler did not audit itself, refusals included."""
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except NodeError as exc:
        status = exc.http_status
        raise
    finally:
        if not request.get(_AUDITED) and _route(request) not in _NOT_DATA:
            await _audit_access(request, status)


async def _audit_access(request: web.Request, status: int) -> None:
    gate = config_of(request).get(GATE)
    if gate is None:
        return
    principal = resolved_principal(request) or Principal.anonymous()
    params = {k: v for k, v in request.match_info.items() if k not in _SECRET_PARAMS}
    query: dict[str, Any] = {"method": request.method, "route": _route(request),
                             "params": params, "status": status}
    if status == 401:
        query["token"] = "rejected"  # which token is never recorded
    await _append(request, gate, gate.ledger(principal, client_address(request)),
                  datasets=[], query=query, granularity=None, outcome=_outcome(status))


def _route(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"


def _outcome(status: int) -> str:
    if status < 400:
        return "answered"
    return {401: "unauthenticated", 403: "denied", 404: "not found"}.get(
        status, "rejected" if status < 500 else "error")


async def audit_parser_refusal(app: web.Application, *, client: str | None, target: str,
                               status: int) -> None:
    """Audit a request refused by the HTTP parser itself (a request line or header past
    the limits, malformed HTTP): no route, no verified principal, so anonymous; `target`
    is the path prefix the refused bytes began with, when they did."""
    gate = app.get(GATE)
    if gate is None:
        return
    record = gate.audit_entry(
        gate.ledger(Principal.anonymous(), client), request_id="", datasets=[],
        query={"method": "UNKNOWN", "route": "unparsed", "target": target, "status": status},
        granularity=None, outcome=_outcome(status))
    if record is None:
        return
    queue = app.get(AUDIT_QUEUE)
    if queue is not None:
        await queue.append(record)
    elif (log := gate.audit_log) is not None:
        await asyncio.to_thread(log.append_records, [record])
