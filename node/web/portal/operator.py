"""The operator view's data: audit chain status, recent entries, pooled budgets, request
metrics, datasets and their last ingest.

The credential is a bearer secret whose SHA-256 the settings hold
(`portal.operator_token_sha256`); without one configured every request is refused (deny
by default). Digests are compared in constant time. Everything here blocks (files,
SQLite, TileDB): call from a thread.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from node.config import Settings
from node.errors import PermissionDenied, Unauthenticated
from node.privacy.audit import load_or_create_key, verify
from node.privacy.budget import BudgetStore, Limits

__all__ = ["audit_status", "check_operator", "last_ingest", "metrics_of", "pool_use"]

MAX_CREDENTIAL_BYTES = 256
RECENT_ENTRIES = 25
_TAIL_BYTES = 256 * 1024
# Entry fields shown; an entry holds no token (node/web/privacy.py), and only these leave.
_SHOWN = ("seq", "ts", "event", "requester", "datasets", "granularity", "counts", "budget")
_QUERY_SHOWN = ("path", "route", "method", "status", "outcome", "granularity", "variant",
                "filters", "id", "nested")
_CLASSES = ("anonymous", "registered")


def check_operator(settings: Settings, header: str | None) -> None:
    """Refuse unless `header` is `Bearer <the operator secret>`."""
    expected = settings.portal.operator_token_sha256
    if expected is None:
        raise PermissionDenied("the operator view is disabled: no operator credential is "
                               "configured (portal.operator_token_sha256)")
    scheme, _, secret = (header or "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret or len(secret) > MAX_CREDENTIAL_BYTES:
        raise Unauthenticated("the operator view needs the operator credential")
    presented = hashlib.sha256(secret.encode()).hexdigest()
    if not hmac.compare_digest(presented, expected):
        raise Unauthenticated("the operator credential was not accepted")


def audit_status(settings: Settings) -> dict[str, Any]:
    """`fednode audit verify` over the node's log (with the node's own key when it has
    one, checking the signed checkpoints too) and its last entries."""
    if not settings.audit.enabled:
        return {"enabled": False}
    path = settings.home / settings.audit.path
    key_path = settings.home / settings.audit.checkpoint_key
    public = load_or_create_key(key_path).public_key() if key_path.is_file() else None
    report = verify(path, public_key=public)
    return {
        "enabled": True,
        "entries": report.entries,
        "ok": report.ok,
        "checkpointsChecked": public is not None,
        "problems": [_problem(p) for p in report.problems[:50]],
        "notices": [_problem(p) for p in report.notices[:50]],
        "recent": recent_entries(path),
    }


def _problem(p: Any) -> dict[str, Any]:
    return {"line": p.line, "kind": str(p.kind), "detail": p.detail,
            "file": p.file.name if p.file is not None else None}


def recent_entries(path: Path, n: int = RECENT_ENTRIES) -> list[dict[str, Any]]:
    """The last `n` entries of the live log, newest first, with the fields shown only."""
    if not path.is_file():
        return []
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - _TAIL_BYTES))
        lines = fh.read().split(b"\n")
    if size > _TAIL_BYTES:
        lines = lines[1:]  # the first line read may be partial
    out: list[dict[str, Any]] = []
    for raw in reversed(lines):
        if len(out) == n:
            break
        try:
            entry = json.loads(raw)
        except ValueError:
            continue  # blank, or a partial last line (the writer rolls it back)
        if isinstance(entry, dict):
            out.append(_shown(entry))
    return out


def _shown(entry: dict[str, Any]) -> dict[str, Any]:
    shown = {k: entry[k] for k in _SHOWN if k in entry}
    query = entry.get("query")
    if isinstance(query, dict):
        shown["query"] = {k: query[k] for k in _QUERY_SHOWN if k in query}
    return shown


def pool_use(settings: Settings, budget: BudgetStore, dataset_ids: Iterable[str]
             ) -> list[dict[str, Any]]:
    """Spent and limit of each requester class's pooled budget per dataset (the keys and
    limits of node/privacy/gate.py `DisclosureGate._pool`)."""
    conf = settings.privacy.budget
    llr = conf.pool_max_llr if conf.pool_max_llr is not None else 50 * budget.max_llr
    limits = Limits(llr, conf.pool_max_epsilon)
    out = []
    for dataset_id in dataset_ids:
        for who in _CLASSES:
            b = budget.balance(f"pool:{who}:{dataset_id}", limits)
            out.append({"dataset": dataset_id, "class": who,
                        "llrSpent": b.llr_spent, "llrLimit": b.llr_limit,
                        "epsilonSpent": b.epsilon_spent, "epsilonLimit": b.epsilon_limit})
    return out


def last_ingest(uri: str, tiledb_config: dict[str, str]) -> str | None:
    """When the dataset's last ingest committed (ISO 8601, UTC); None when unknown (a
    store without fednode's commit record)."""
    import tiledb

    from node.store.dataset.dataset_state import load_state

    try:
        state = load_state(uri, tiledb.Ctx(tiledb_config or None))
    except (tiledb.TileDBError, OSError, ValueError):
        return None
    if state.committed is None:
        return None
    return datetime.fromtimestamp(state.committed / 1000, tz=UTC).isoformat(timespec="seconds")


def metrics_of(registry: CollectorRegistry) -> dict[str, Any]:
    """Request counts by route and status, latency histograms by route, pool refusals:
    the node's own Prometheus metrics (node/web/metrics.py), cumulative."""
    requests: list[dict[str, Any]] = []
    latency: dict[str, dict[str, Any]] = {}
    refusals: list[dict[str, Any]] = []
    for family in registry.collect():
        for s in family.samples:
            labels = s.labels
            if s.name == "fednode_http_requests_total":
                requests.append({"method": labels["method"], "route": labels["route"],
                                 "status": labels["status"], "count": s.value})
            elif s.name.startswith("fednode_http_request_seconds"):
                hist = latency.setdefault(labels["route"], {"route": labels["route"],
                                                            "buckets": []})
                if s.name.endswith("_bucket"):
                    le = float(labels["le"])
                    hist["buckets"].append([None if math.isinf(le) else le, s.value])
                elif s.name.endswith("_count"):
                    hist["count"] = s.value
                elif s.name.endswith("_sum"):
                    hist["sum"] = s.value
            elif s.name == "fednode_privacy_pool_refusals_total":
                refusals.append({"pool": labels["pool"], "count": s.value})
    return {"requests": requests, "latency": list(latency.values()), "poolRefusals": refusals}
