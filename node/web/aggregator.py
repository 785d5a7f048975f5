"""Beacon v2 over a whole federation: `fednode serve DIR --aggregator PEERS.yaml`.

`/api/g_variants` fans the query out to every peer: fednode nodes over gRPC (the peer
API, with the aggregator's own credentials) and third-party beacons over Beacon HTTP
(the query string only: a user's Authorization header is never forwarded). Answers are
merged as the Beacon network aggregators do, with honest precision:

- one result set per (beacon, dataset), tagged with its beacon id (`info.beaconId`);
  `resultsCount` is the number of matching variants the dataset holds;
- `numTotalResults` is their sum; when a part is imprecise (a beacon answering only
  "exists", or an imprecise count) `info.federation.totalCount` gives the interval;
- `exists` comes from the merged count;
- every peer's status is in `info.federation.nodes`, and the answer comes back by the
  deadline whether peers are slow, dead, hung, unauthorised or lying.

Budgets: nodes see (and charge) only the aggregator, so the aggregator keeps each user's
budget (the passport's pseudonymous requester id, or the client address when anonymous)
with node/privacy's gate and charges every merged answer once (node/peer/pricing.py):
asking k nodes through it costs what the k answers reveal, from one budget.

Matching is the node's own (`node.beacon.variants.matches`: wildcards, variantType and
lengths on the normalised allele), applied to every allele of the region the peers
stream. A sequence query at count granularity or above also gets each matched allele's
merged statistics (`info.federation.alleleFrequencies`): every node's AC and AN of it,
nodes that do not hold it included (AC 0 over the alleles they called there; an unknown
AN where they called none, which makes the merged AN and frequency bounds).

Records are never federated: `record` requests get result sets with counts and no
records. Only position-based queries (sequence, range, bracket) are federated.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from math import inf
from typing import Any

import aiohttp
from aiohttp import web

from node import __version__
from node.beacon.info import by_path
from node.beacon.models import BeaconRequest
from node.beacon.parse import parse_body, parse_get
from node.beacon.render import response_envelope, result_set
from node.beacon.variants import VariantQuery, matches, parse_internal_id
from node.config import Settings
from node.domain import ZERO_STATS, AlleleKey, Variant, normalize_contig
from node.errors import BudgetExhausted, InvalidInput, PayloadTooLarge
from node.names import Granularity, VariantType
from node.peer import pricing, third_party
from node.peer._pb import peer_pb2 as pb
from node.peer.client import PeerResult
from node.peer.coordinator import Coordinator, FederatedStats, Interval
from node.peer.directory import DatasetDirectory
from node.peer.peers import PeerEntry, PeersFile
from node.peer.report import render_json
from node.privacy.gate import Ledger
from node.web.auth import auth_ctx, principal_of
from node.web.beacon import beacon_errors
from node.web.keys import METRICS, SETTINGS
from node.web.metrics import Metrics
from node.web.middleware import REQUEST_IDS, RequestIds, request_context
from node.web.privacy import GATE, audit_access, audit_request, ledger_for, privacy_ctx

__all__ = ["create_aggregator_app", "serve_aggregator"]

log = logging.getLogger("fednode.aggregator")
COORDINATOR = web.AppKey("coordinator", Coordinator)
PEERS = web.AppKey("peers", PeersFile)
DIRECTORY = web.AppKey("directory", DatasetDirectory)
HTTP = web.AppKey("http", aiohttp.ClientSession)
MAX_SPAN = 10_000_000  # bases per federated range query
MAX_FREQUENCIES = 100  # matched alleles of a sequence query whose frequencies are merged


@dataclass(frozen=True, slots=True)
class _Set:
    beacon_id: str
    dataset_id: str
    count: Interval
    # The matching alleles the set says are present (None: a third-party count only).
    present: list[pb.DatasetAlleleStats] | None = None
    people: bool = False  # `count` counts individuals, not variants


@dataclass(frozen=True, slots=True)
class _Status:
    id: str
    status: str
    message: str
    elapsed_s: float


def create_aggregator_app(settings: Settings, peers: PeersFile) -> web.Application:
    # request_context's handler type is aiohttp's RequestHandler, narrower than the stub's.
    # Every access is audited: federated answers by g_variants, the rest (a refused
    # token, an invalid query) by audit_access, as on a node.
    max_body = settings.server.max_body_bytes
    app = web.Application(middlewares=[request_context, audit_access], client_max_size=max_body)
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[PEERS] = peers
    app[REQUEST_IDS] = RequestIds()
    app.cleanup_ctx.extend([_resources, auth_ctx, privacy_ctx])
    api = web.Application(middlewares=[beacon_errors], client_max_size=max_body)
    api.router.add_get("/g_variants", g_variants)
    api.router.add_get("/g_variants/{id}/individuals", individuals_of_variant)
    api.router.add_post("/g_variants", g_variants)
    api.router.add_get("/info", beacon_info)
    app.add_subapp("/api", api)
    app.router.add_get("/health", health)
    return app


async def _resources(app: web.Application) -> AsyncIterator[None]:
    app[COORDINATOR] = Coordinator(app[PEERS])
    app[DIRECTORY] = DatasetDirectory()
    app[HTTP] = aiohttp.ClientSession(headers={"Accept": "application/json"})
    yield
    await app[HTTP].close()
    await app[COORDINATOR].close()


async def health(request: web.Request) -> web.Response:
    peers = request.app[PEERS]
    return web.json_response(
        {"status": "ok", "version": __version__, "role": "aggregator", "peers": len(peers.peers)}
    )


async def beacon_info(request: web.Request) -> web.Response:
    settings = request.config_dict[SETTINGS]
    peers = request.config_dict[PEERS]
    return web.json_response(
        {
            "meta": {"beaconId": settings.node.id, "apiVersion": "v2.0.0", "returnedSchemas": []},
            "response": {
                "id": settings.node.id,
                "name": settings.node.name,
                "apiVersion": "v2.0.0",
                "environment": "prod",
                "organization": {
                    "id": settings.node.organization,
                    "name": settings.node.organization,
                },
                "info": {"federation": [p.id for p in peers.peers]},
            },
        }
    )


async def g_variants(request: web.Request) -> web.Response:
    req = await _parse(request)
    query = _federable(req.variant)
    region = query.region()
    assert region is not None  # _federable guarantees a position
    principal = await principal_of(request)  # a bad token is refused, never forwarded
    ledger = ledger_for(request, principal)  # the user's own budget, kept here
    peers: PeersFile = request.config_dict[PEERS]
    coordinator: Coordinator = request.config_dict[COORDINATOR]
    session: aiohttp.ClientSession = request.config_dict[HTTP]
    query.type_classes()  # an unknown variantType is refused before anyone is asked
    # Every allele in the region: `matches` (the node's own rule) decides type, bases and
    # lengths on the normalised allele, as a node does (a padded SNP is stored as an MNP).
    grpc_part = coordinator.region_answers(
        region, deadline_s=peers.deadline_s, on_behalf_of=ledger.requester
    )
    http_parts = [
        _ask_beacon(session, entry, request.query, min(entry.timeout_s or inf, peers.deadline_s))
        for entry in peers.peers
        if entry.beacon_url is not None
    ]
    known = request.config_dict[DIRECTORY].datasets(coordinator, peers.deadline_s)
    loop = asyncio.get_running_loop()
    deadline_at = loop.time() + peers.deadline_s
    grpc_results, held, *http_results = await asyncio.gather(grpc_part, known, *http_parts)
    sets, statuses, matched = _from_grpc(grpc_results, query, held)
    for found, status in http_results:
        sets += found
        statuses.append(status)
    frequencies = None
    if query.kind == "sequence" and req.granularity != "boolean" and matched:
        # Every node's count of each matched allele, those not holding it included (AC 0
        # over the alleles they called there, or an unknown AN), within the same deadline.
        frequencies = await coordinator.allele_stats(
            matched[:MAX_FREQUENCIES], deadline_s=max(0.0, deadline_at - loop.time()),
            on_behalf_of=ledger.requester)
    await _charge(request, ledger, req, sets, frequencies)
    settings = request.config_dict[SETTINGS]
    return web.json_response(_envelope(settings, req, sets, statuses, frequencies=frequencies))


async def individuals_of_variant(request: web.Request) -> web.Response:
    """Individuals carrying one variant (`/g_variants/{id}/individuals`), counted by every
    node (CountIndividuals) and merged per (node, dataset); counts only, never records."""
    req = parse_get(request.query, variants=False)
    key = AlleleKey(*parse_internal_id(request.match_info["id"]))
    ledger = ledger_for(request, await principal_of(request))
    peers: PeersFile = request.config_dict[PEERS]
    coordinator: Coordinator = request.config_dict[COORDINATOR]
    found = await coordinator.count_individuals(
        [key], deadline_s=peers.deadline_s, on_behalf_of=ledger.requester
    )
    sets = [_Set(node, ds, count, people=True) for node, ds, count in found.parts]
    statuses = [_Status(n.node_id, n.status, n.message, n.elapsed_s) for n in found.nodes]
    await _charge(request, ledger, req, sets)
    settings = request.config_dict[SETTINGS]
    return web.json_response(_envelope(settings, req, sets, statuses, entry="individuals"))


FEDERATION = "@federation"  # the pool key of answers merged from other nodes


async def _charge(
    request: web.Request,
    ledger: Ledger,
    req: BeaconRequest,
    sets: list[_Set],
    frequencies: FederatedStats | None = None,
) -> None:
    """Charge the user once for the whole merged answer (pricing.py), merged allele
    frequencies included, or refuse it (BudgetExhausted: 403, nothing released); one
    audit entry either way."""
    gate = request.config_dict[GATE]
    boolean = req.granularity == "boolean"
    granularity = Granularity.BOOLEAN if boolean else Granularity.COUNT
    parts = [
        pricing.people_charge(gate, granularity, s.count.lower, s.count.lower > 0)
        if s.people
        else pricing.set_charge(gate, granularity, s.present, s.count.value)
        for s in sets
    ]
    if not sets:  # a "no" from the whole federation, with no dataset to price it by
        parts.append(pricing.set_charge(gate, granularity, [], 0))
    if frequencies is not None:
        parts.append(pricing.frequency_charge(gate, granularity, frequencies.alleles))
    charge = pricing.answer_charge(parts)
    counts = {
        f"{s.beacon_id}/{s.dataset_id}": {"value": s.count.value, "precision": s.count.precision}
        for s in sets
    }
    outcome = "answered"
    try:
        # Through the gate's one exit, to the user's budget and its class's pool of the
        # federation (the datasets are other nodes'; what is bounded is what the user
        # learns through this aggregator).
        await asyncio.to_thread(ledger.account, charge, counts, dataset=FEDERATION)
    except BudgetExhausted:
        outcome = "refused"
        raise
    finally:
        await audit_request(
            request,
            ledger,
            datasets=sorted(ledger.counts),
            query={"federated": True, **dict(request.query)},
            granularity=req.granularity,
            outcome=outcome,
        )


async def _parse(request: web.Request) -> BeaconRequest:
    if request.method != "POST":
        return parse_get(request.query, variants=True)
    limit = request.config_dict[SETTINGS].server.max_body_bytes
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body larger than {limit} bytes")
    try:
        body = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("the request body is not valid JSON") from None
    return parse_body(body, variants=True)


def _federable(query: VariantQuery | None) -> VariantQuery:
    if query is None or query.contig is None or query.needs_annotations:
        raise InvalidInput(
            "the aggregator federates position queries only: give referenceName and start"
        )
    region = query.region()
    if region is None or region.end - region.start > MAX_SPAN:
        raise InvalidInput(f"federated range queries span at most {MAX_SPAN} bases")
    return query


def _variant(v: pb.RegionVariantStats) -> Variant:
    """A peer's allele as the node's own matching sees it (statistics are not matched)."""
    a = v.allele
    end = v.end or a.start + len(a.ref)  # nodes before `end` was sent
    return Variant(normalize_contig(a.contig), a.start, end, a.ref, a.alt,
                   VariantType(v.variant_type), ZERO_STATS)


def _from_grpc(
    results: Sequence[PeerResult[Any]],
    query: VariantQuery,
    held: Mapping[str, tuple[str, ...]],
) -> tuple[list[_Set], list[_Status], list[AlleleKey]]:
    """Result sets of the peers that answered: one per dataset they hold (`held`, from
    their NodeInfo), those with no matching variant included (an answer too); and the
    matching alleles some dataset holds, each once, in the order first seen."""
    sets: list[_Set] = []
    statuses = []
    matched: dict[AlleleKey, None] = {}
    for result in results:
        statuses.append(_Status(result.peer_id, result.status, result.message, result.elapsed_s))
        present: dict[str, list[pb.DatasetAlleleStats]] = {}
        if result.ok:
            present = {ds: [] for ds in held.get(result.peer_id, ())}
        for v in result.value or () if result.ok else ():
            variant = _variant(v)
            # The node's own matching rule (node/beacon/variants.py), not a copy of it.
            if matches(query, variant):
                found = present.setdefault(v.stats.dataset_id, [])
                if v.stats.exists:
                    found.append(v.stats)
                    matched[variant.key] = None
        sets += [
            _Set(result.peer_id, ds, Interval(len(p), len(p), len(p), True), p)
            for ds, p in present.items()
        ]
    return sets, statuses, list(matched)


async def _ask_beacon(
    session: aiohttp.ClientSession, entry: PeerEntry, query: Any, timeout_s: float
) -> tuple[list[_Set], _Status]:
    answer = await third_party.count(session, entry, query, timeout_s)
    status = _Status(entry.id, answer.status, answer.message, answer.elapsed_s)
    found = [] if answer.count is None else [_Set(entry.id, entry.id, answer.count)]
    return found, status


def _envelope(
    settings: Settings,
    req: BeaconRequest,
    sets: list[_Set],
    statuses: list[_Status],
    *,
    entry: str = "g_variants",
    frequencies: FederatedStats | None = None,
) -> dict[str, Any]:
    rendered = [
        result_set(
            s.dataset_id,
            s.count.value,
            [],
            info={"beaconId": s.beacon_id, "countPrecision": s.count.precision},
        )
        for s in sets
    ]
    total = sum((s.count for s in sets), Interval.zero())
    federation = {
        "complete": all(s.status == "OK" for s in statuses),
        "totalCount": {
            "value": total.value,
            "lower": total.lower,
            "upper": total.upper,
            "precision": total.precision,
        },
        "nodes": [
            {
                "id": s.id,
                "status": s.status,
                "message": s.message,
                "elapsedSeconds": round(s.elapsed_s, 4),
            }
            for s in statuses
        ],
    }
    if frequencies is not None:
        federation["alleleFrequencies"] = _frequencies(frequencies)
    info = {"federation": federation}
    return response_envelope(
        settings.node.id, req, by_path(entry), req.granularity, rendered, info=info
    )


def _frequencies(found: FederatedStats) -> dict[str, Any]:
    """Each matched allele's merged AC, AN and frequency over every node that answered
    (report.py's form): exact only when every dataset knew its allele number."""
    doc = json.loads(render_json(found))
    return {"complete": doc["complete"], "alleles": doc["totals"]}


def serve_aggregator(settings: Settings, peers: PeersFile) -> None:
    from node.logs import setup_logging
    from node.web.serve import tune_gc

    setup_logging(settings.server.log_level)
    app = create_aggregator_app(settings, peers)
    app.on_startup.append(tune_gc)
    web.run_app(
        app,
        host=settings.server.host,
        port=settings.server.port,
        access_log=None,
        print=lambda msg: None,
        shutdown_timeout=5.0,
    )
