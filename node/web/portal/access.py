"""What a visitor may see in each dataset, and what the portal shows about a dataset.

`access` is the portal's answer to "what may this bearer see": per dataset the visitor's
security level and the granularity the policy gives it (node/auth/policy.py, the same
function the APIs use), and the htsget resources it may stream. Dataset summaries (sample
and variant numbers) are exact figures about the dataset's people, so they are shown to
visitors entitled to records of that dataset only, like the records themselves.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from node.auth.policy import effective_granularity, requester_level
from node.domain import Principal, Region
from node.names import Granularity
from node.reads.catalog import ReadsEntry
from node.store.base import VariantStore
from node.store.registry import DatasetRegistry

__all__ = ["Summaries", "Summary", "access"]

_WHOLE = 1 << 31  # past the end of any contig


@dataclass(frozen=True, slots=True)
class Summary:
    assembly: str
    samples: int
    variants: int
    # Contig (as the input named it) -> one past the last base any variant covers.
    extents: dict[str, int]


def summarize(store: VariantStore) -> Summary:
    variants, extents = 0, dict[str, int]()
    for contig in store.contigs():
        for v in store.variants(Region(contig, 0, _WHOLE)):
            variants += 1
            name = v.source_contig or v.contig
            extents[name] = max(extents.get(name, 0), v.end)
    return Summary(store.assembly, len(store.samples), variants, extents)


class Summaries:
    """Summaries per open store (a dataset re-opened after an ingest is summarized again).
    Blocking: call from a thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[VariantStore, Summary]] = {}

    def of(self, registry: DatasetRegistry, dataset_id: str) -> Summary:
        store = registry.store(dataset_id)
        with self._lock:
            cached = self._cache.get(dataset_id)
            if cached is not None and cached[0] is store:
                return cached[1]
            summary = summarize(store)
            self._cache[dataset_id] = (store, summary)
            return summary


def access(principal: Principal, registry: DatasetRegistry, summaries: Summaries,
           reads: Iterable[ReadsEntry], *, now: int) -> dict[str, Any]:
    """The `/portal/access` document for `principal` (blocking: reads the stores)."""
    by_dataset: dict[str, list[ReadsEntry]] = {}
    for entry in reads:
        by_dataset.setdefault(entry.dataset, []).append(entry)
    datasets = []
    for dataset_id in registry.ids():
        settings = registry.settings(dataset_id)
        granularity = effective_granularity(principal, dataset_id, settings, now=now)
        records = granularity is Granularity.RECORD
        summary = summaries.of(registry, dataset_id)
        datasets.append({
            "id": dataset_id,
            "name": settings.name or dataset_id,
            "description": settings.description,
            "assembly": summary.assembly or settings.assembly,
            "securityLevel": settings.security_level.value,
            "visitorLevel": requester_level(principal, dataset_id, now=now).value,
            "granularity": None if granularity is None else granularity.value,
            "samples": summary.samples if records else None,
            "variants": summary.variants if records else None,
            # htsget streams records: only at record granularity (node/web/htsget.py).
            "htsget": _streams(dataset_id, by_dataset.get(dataset_id, ())) if records else [],
        })
    return {
        "authenticated": not principal.is_anonymous,
        "registered": principal.registered,
        "expiresAt": principal.expires_at,
        "datasets": datasets,
    }


def _streams(dataset_id: str, entries: Iterable[ReadsEntry]) -> list[dict[str, str]]:
    out = [{"kind": "variants", "id": dataset_id, "format": "VCF", "source": "store"}]
    out += [{"kind": e.kind, "id": e.id, "format": e.format, "source": "file"}
            for e in sorted(entries, key=lambda e: (e.kind, e.id, e.format))]
    return out
