"""Conversions between domain values and fednode.v1 messages, in one place."""

from __future__ import annotations

from typing import Any

from node.domain import ZERO_STATS, AlleleKey, AlleleStats, Region, normalize_contig
from node.errors import InvalidInput
from node.names import CountPrecision, Granularity
from node.peer._pb import peer_pb2 as pb
from node.peer.guard import UNKNOWN, BoundedCount, CountGuard

__all__ = [
    "PRECISION_NAME",
    "allele_key",
    "allele_message",
    "count_message",
    "dataset_stats",
    "granularity_message",
    "precision_message",
    "region",
]

_PRECISION: dict[CountPrecision, Any] = {
    CountPrecision.EXACT: pb.COUNT_PRECISION_EXACT,
    CountPrecision.ROUNDED: pb.COUNT_PRECISION_ROUNDED,
    CountPrecision.IMPRECISE: pb.COUNT_PRECISION_IMPRECISE,
}
PRECISION_NAME: dict[int, CountPrecision] = {v: k for k, v in _PRECISION.items()}
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
        unknown=count.unknown,
    )


def precision_message(precision: CountPrecision) -> Any:
    return _PRECISION[precision]


def granularity_message(granularity: Granularity) -> Any:
    return _GRANULARITY[granularity]


def dataset_stats(
    dataset_id: str,
    granularity: Granularity,
    stats: AlleleStats | None,
    guard: CountGuard,
) -> pb.DatasetAlleleStats:
    """One dataset's answer for one allele, revealing no more than `granularity`.

    `stats` None: none of the dataset's samples is called at the allele's position, so
    its allele number is unknown (`UNKNOWN`, never 0) and it holds no copy of the allele.
    """
    exists = stats is not None and stats.ac > 0
    message = pb.DatasetAlleleStats(
        dataset_id=dataset_id, granularity=_GRANULARITY[granularity], exists=exists
    )
    if granularity is Granularity.BOOLEAN:
        return message
    known = stats or ZERO_STATS
    ac = guard.count(known.ac)
    an = UNKNOWN if stats is None else guard.count(known.an)
    message.allele_count.CopyFrom(count_message(ac))
    message.allele_number.CopyFrom(count_message(an))
    message.carriers.CopyFrom(count_message(guard.count(known.n_carriers)))
    message.homozygotes.CopyFrom(count_message(guard.count(known.n_hom_alt)))
    message.frequency = min(1.0, ac.value / an.value) if an.value else 0.0  # noise: clipped
    exact = ac.precision == CountPrecision.EXACT and an.precision == CountPrecision.EXACT
    message.frequency_precision = _PRECISION[
        CountPrecision.EXACT if exact else CountPrecision.IMPRECISE]
    return message
