"""htsget use cases: the ticket of a request, with access, privacy and audit applied here,
once, for every transport (the Beacon ones are in `node/service.py`).

Framework-free: the transport (`node/web/htsget.py`) parses the request, names the
principal, and gives a `TicketCall` with what only it knows (how a signed token becomes
a URL, where the audit entry goes); it renders the ticket or the `NodeError` raised.

- Access (htsget streams records): record granularity on the dataset, from
  `effective_granularity`; an anonymous requester is asked to authenticate (401), an
  authenticated one without a grant is refused (403). Deny by default.
- Privacy: record-level requesters are never charged (docs/privacy.md), so a ticket
  releases no count and costs no budget; nothing else is released.
- Audit: one entry per ticket, answered or refused, durable before the ticket leaves
  (block URLs are signed tickets; their fetches are audited by the transport's access log).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from node.auth.policy import effective_granularity
from node.config import DatasetSettings
from node.domain import Principal
from node.errors import NotFound, PermissionDenied, Unauthenticated
from node.htsget.models import HtsgetRequest
from node.htsget.signing import BlockSigner
from node.htsget.tickets import UrlFor, file_ticket, ticket
from node.htsget.variants import store_regions
from node.names import Granularity
from node.reads.blocks import BlockMiss
from node.reads.catalog import ReadsCatalog
from node.reads.layout import Layout, Span
from node.store.base import VariantStore

__all__ = ["Audit", "Datasets", "HtsgetService", "TicketCall"]

# Tickets computed on the event loop: at most this many regions and uncached block reads.
_INLINE_MAX_REGIONS = 16
_INLINE_MAX_READS = 2


class Audit(Protocol):
    """Writes the request's audit entry (durable on return; raises when it cannot be)."""

    def __call__(
        self,
        *,
        datasets: Sequence[str],
        query: dict[str, Any],
        granularity: str | None,
        outcome: str,
    ) -> Awaitable[None]: ...


class Datasets(Protocol):
    """The datasets of the store (`node.store.registry.DatasetRegistry`)."""

    def ids(self) -> tuple[str, ...]: ...

    def settings(self, dataset_id: str) -> DatasetSettings: ...

    def store(self, dataset_id: str) -> VariantStore: ...


@dataclass(frozen=True, slots=True)
class TicketCall:
    """One request as the transport sees it."""

    principal: Principal
    data_url: Callable[[str], str]  # a signed token → the URL clients fetch its data at
    audit: Audit
    now: Callable[[], float] = field(default=time.time)


@dataclass(frozen=True, slots=True)
class HtsgetService:
    catalog: ReadsCatalog
    datasets: Datasets
    signer: BlockSigner

    async def ticket(self, req: HtsgetRequest, call: TicketCall) -> dict[str, Any]:
        """The ticket of `req` (htsget §Response JSON), audited whatever happens."""
        answered = False
        try:
            out = await self._answer(req, call)
            answered = True
            return out
        finally:
            await call.audit(
                datasets=[req.id],
                query=_audit_query(req),
                granularity=Granularity.RECORD.value if answered else None,
                outcome="answered" if answered else "refused",
            )

    async def _answer(self, req: HtsgetRequest, call: TicketCall) -> dict[str, Any]:
        if req.kind == "variants" and not self.catalog.has(req.id, kind="variants"):
            return await self._store_ticket(req, call)
        entry = self.catalog.get(req.id, kind=req.kind, fmt=req.format)
        self._check_access(call, entry.dataset)
        cached = self.catalog.cached_layout(entry)
        layout = cached if cached is not None else await asyncio.to_thread(
            self.catalog.layout, entry
        )  # fmt: skip

        def url_for(span: Span) -> dict[str, Any]:
            claims = {"k": "f", "id": entry.id, "f": entry.format, "v": layout.version}
            return {
                "url": call.data_url(self.signer.sign({**claims, "s": span.start, "e": span.end}))
            }

        out = _ticket_on_loop(req, layout, url_for)
        if out is None:
            out = await asyncio.to_thread(file_ticket, req, layout, url_for)
        return out

    async def _store_ticket(self, req: HtsgetRequest, call: TicketCall) -> dict[str, Any]:
        """Variants of a dataset, generated from the store (the source of truth)."""
        if req.id not in await asyncio.to_thread(self.datasets.ids):
            raise NotFound(f"no variants with id {req.id!r}")
        self._check_access(call, req.id)
        regions = await asyncio.to_thread(
            lambda: store_regions(self.datasets.store(req.id), req.regions)
        )  # one thread hop for both
        claims = {
            "k": "g",
            "d": req.id,
            "f": req.format,
            "h": req.header_only,
            "r": [[r.contig, r.start, r.end] for r in regions],
        }
        url = call.data_url(self.signer.sign(claims))
        entry = {"url": url, "class": "header"} if req.header_only else {"url": url}
        return ticket(req.format, [entry])

    def _check_access(self, call: TicketCall, dataset_id: str) -> None:
        """Streaming records needs record granularity on the dataset (deny by default)."""
        principal = call.principal
        settings = self.datasets.settings(dataset_id)
        granted = effective_granularity(principal, dataset_id, settings, now=int(call.now()))
        if granted is Granularity.RECORD:
            return
        if principal.is_anonymous:
            raise Unauthenticated("authentication is required to stream this dataset")
        raise PermissionDenied("no record-level access to this dataset")


def _ticket_on_loop(req: HtsgetRequest, layout: Layout, url_for: UrlFor) -> dict[str, Any] | None:
    """The ticket when it is cheap enough for the event loop, else None (a worker's job).

    Known blocks cost microseconds; a block to read and decompress about 0.3 ms. Up to two
    of those (a single region's two ends) cost less here than the two thread wake-ups of a
    hop, which a loaded machine makes far dearer. CRAM indices are scanned per region, so
    CRAM tickets always go to a worker. A remote object's blocks are network requests: only
    a ticket whose blocks are all known is cut on the loop.
    """
    if layout.format == "CRAM" or len(req.regions) > _INLINE_MAX_REGIONS:
        return None
    try:
        reads = 0 if layout.source.remote else _INLINE_MAX_READS
        return file_ticket(req, layout, url_for, max_reads=reads)
    except BlockMiss:
        return None


def _audit_query(req: HtsgetRequest) -> dict[str, Any]:
    return {
        "kind": req.kind,
        "format": req.format,
        "headerOnly": req.header_only,
        "regions": [[q.reference, q.start, q.end] for q in req.regions],
    }
