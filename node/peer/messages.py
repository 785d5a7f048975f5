"""Conversions between domain values and fednode.v1 messages, in one place."""

from __future__ import annotations

from typing import Any

from node.domain import AlleleKey, AlleleStats, Region, normalize_contig
from node.errors import InvalidInput
from node.names import Granularity
from node.peer._pb import peer_pb2 as pb
from node.peer.guard import BoundedCount, CountGuard, Precision

__all__ = [
    "allele_key",
    "allele_message",
    "count_message",
    "dataset_stats",
    "granularity_message",
    "precision_message",
    "region",
]

_PRECISION: dict[Precision, Any] = {
    "exact": pb.COUNT_PRECISION_EXACT,
    "rounded": pb.COUNT_PRECISION_ROUNDED,
    "imprecise": pb.COUNT_PRECISION_IMPRECISE,
}
PRECISION_NAME: dict[int, Precision] = {v: k for k, v in _PRECISION.items()}
_GRANULARITY = {
    Granularity.BOOLEAN: pb.GRANULARITY_BOOLEAN,
    Granularity.COUNT: pb.GRANULARITY_COUNT,
    Granularity.RECORD: pb.GRANULARITY_RECORD,
}
_MAX_ALLELE = 10_000  # bases per REF/ALT: longer alleles are symbolic in practice
_BASES = frozenset("ACGTN")


def allele_key(message: pb.Allele) -> AlleleKey:
    """A validated allele key from a request (INVALID_ARGUMENT when malformed)."""
    contig = normalize_contig(message.contig)
    if not contig or message.start < 0:
        raise InvalidInput(f"allele {message.contig}:{message.start}: bad contig or start")
    for seq in (message.ref, message.alt):
        if not seq or len(seq) > _MAX_ALLELE:
            raise InvalidInput(f"allele at {contig}:{message.start}: empty or too long")
    if not set(message.ref.upper()) <= _BASES:
        raise InvalidInput(f"allele at {contig}:{message.start}: REF must be bases")
    return AlleleKey(contig, message.start, message.ref.upper(), _norm_alt(message.alt))


def _norm_alt(alt: str) -> str:
    return alt if alt.startswith("<") else alt.upper()


def allele_message(key: AlleleKey) -> pb.Allele:
    return pb.Allele(contig=key.contig, start=key.start, ref=key.ref, alt=key.alt)


def region(contig: str, start: int, end: int) -> Region:
    contig = normalize_contig(contig)
    if not contig:
        raise InvalidInput("region needs a contig")
    return Region(contig, start, end)


def count_message(count: BoundedCount) -> pb.Count:
    return pb.Count(
        value=count.value,
        precision=_PRECISION[count.precision],
        lower=count.lower,
        upper=count.upper if count.upper is not None else 0,
        unbounded=count.upper is None,
    )


def precision_message(precision: Precision) -> Any:
    return _PRECISION[precision]


def granularity_message(granularity: Granularity) -> Any:
    return _GRANULARITY[granularity]


def dataset_stats(
    dataset_id: str,
    granularity: Granularity,
    stats: AlleleStats | None,
    guard: CountGuard,
) -> pb.DatasetAlleleStats:
    """One dataset's answer for one allele, revealing no more than `granularity`."""
    exists = stats is not None and stats.ac > 0
    message = pb.DatasetAlleleStats(
        dataset_id=dataset_id, granularity=_GRANULARITY[granularity], exists=exists
    )
    if granularity is Granularity.BOOLEAN:
        return message
    stats = stats or AlleleStats(0, 0, 0, 0, 0, 0)
    ac, an = guard.count(stats.ac), guard.count(stats.an)
    message.allele_count.CopyFrom(count_message(ac))
    message.allele_number.CopyFrom(count_message(an))
    message.carriers.CopyFrom(count_message(guard.count(stats.n_carriers)))
    message.homozygotes.CopyFrom(count_message(guard.count(stats.n_hom_alt)))
    message.frequency = min(1.0, ac.value / an.value) if an.value else 0.0  # noise: clipped
    exact = ac.precision == "exact" and an.precision == "exact"
    message.frequency_precision = _PRECISION["exact" if exact else "imprecise"]
    return message
