"""The disclosure gate of the HTTP sub-apps: opened once per application (budget store
and audit log in one `cleanup_ctx`), a ledger per request, one audit entry per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from aiohttp import web

from node.domain import Principal
from node.privacy.gate import DisclosureGate, Ledger
from node.web.keys import SETTINGS
from node.web.middleware import REQUEST_ID

__all__ = ["GATE", "audit_request", "client_address", "ledger_for", "privacy_ctx"]

GATE = web.AppKey("disclosure_gate", DisclosureGate)


async def privacy_ctx(app: web.Application) -> AsyncIterator[None]:
    gate = await asyncio.to_thread(DisclosureGate.from_settings, app[SETTINGS])
    app[GATE] = gate
    yield
    await asyncio.to_thread(gate.close)


def client_address(request: web.Request) -> str | None:
    """The client's address: the trusted proxy's header when configured (its first,
    client-most entry), else the TCP peer."""
    header = request.config_dict[SETTINGS].privacy.client_address_header
    if header:
        forwarded = request.headers.get(header, "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first
    return request.remote


def ledger_for(request: web.Request, principal: Principal) -> Ledger:
    return request.config_dict[GATE].ledger(principal, client_address(request))


async def audit_request(
    request: web.Request,
    ledger: Ledger,
    *,
    datasets: Sequence[str],
    query: Mapping[str, Any],
    granularity: str | None,
    outcome: str,
) -> None:
    await asyncio.to_thread(
        request.config_dict[GATE].audit,
        ledger,
        request_id=request.get(REQUEST_ID, ""),
        datasets=datasets,
        query={"path": request.path, **query},
        granularity=granularity,
        outcome=outcome,
    )
