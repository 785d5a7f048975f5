"""Checks of peer answers: a node that lies (inconsistent counts, wrong alleles, wrong
lengths) is reported as INVALID_RESPONSE, never merged into a federated total."""

from __future__ import annotations

import math
from collections.abc import Sequence

from node.domain import AlleleKey, Region, normalize_contig
from node.names import VariantType
from node.peer._pb import peer_pb2 as pb

__all__ = ["InvalidAnswer", "allele_stats", "individual_counts", "node_info", "region_stats"]

_PRECISIONS = {pb.COUNT_PRECISION_EXACT, pb.COUNT_PRECISION_ROUNDED, pb.COUNT_PRECISION_IMPRECISE}
_GRANULARITIES = {pb.GRANULARITY_BOOLEAN, pb.GRANULARITY_COUNT, pb.GRANULARITY_RECORD}
_COUNTS = ("allele_count", "allele_number", "carriers", "homozygotes")
_VARIANT_TYPES = frozenset(t.value for t in VariantType) - {VariantType.REF.value}


class InvalidAnswer(Exception):
    """A peer's answer that cannot be true; the message says why (no peer text in it)."""


def node_info(info: pb.NodeInfo) -> None:
    if not info.id or info.api_version != "v1":
        raise InvalidAnswer("node info without id or with another API version")


def audit_checkpoint(reply: pb.AuditCheckpoint) -> None:
    """Shape only (a JWS and a PEM of bounded size); the signature is checked by the
    caller against the key it pinned (`node/peer/checkpoints.py`)."""
    if not reply.token or reply.token.count(".") != 2 or len(reply.token) > 4096:
        raise InvalidAnswer("audit checkpoint is not a compact JWS")
    if not reply.public_key_pem.startswith("-----BEGIN PUBLIC KEY-----") or len(
        reply.public_key_pem
    ) > 4096:
        raise InvalidAnswer("audit checkpoint without a PEM public key")


def allele_stats(reply: pb.BatchAlleleStatsResponse, keys: Sequence[AlleleKey]) -> None:
    if len(reply.results) != len(keys):
        raise InvalidAnswer(f"{len(reply.results)} results for {len(keys)} alleles")
    datasets: list[str] | None = None
    for key, result in zip(keys, reply.results, strict=True):
        _same_allele(result.allele, key)
        ids = [d.dataset_id for d in result.datasets]
        if datasets is None:
            datasets = ids
        if ids != datasets or len(set(ids)) != len(ids) or not all(ids):
            raise InvalidAnswer("dataset lists differ between alleles or repeat")
        for stats in result.datasets:
            dataset_stats(stats)


def region_stats(variants: Sequence[pb.RegionVariantStats], region: Region) -> None:
    for v in variants:
        a = v.allele
        if (
            normalize_contig(a.contig) != region.contig
            or not region.start - 10**6 <= a.start < region.end
        ):
            raise InvalidAnswer("variant outside the requested region")
        if not a.ref or not a.alt or not v.stats.dataset_id:
            raise InvalidAnswer("variant without REF, ALT or dataset")
        if v.variant_type not in _VARIANT_TYPES or (v.end and v.end <= a.start):
            raise InvalidAnswer("variant with an unknown type or an end before its start")
        dataset_stats(v.stats)


def dataset_stats(stats: pb.DatasetAlleleStats) -> None:
    if stats.granularity not in _GRANULARITIES:
        raise InvalidAnswer("unknown granularity")
    if stats.granularity == pb.GRANULARITY_BOOLEAN:
        if any(stats.HasField(name) for name in _COUNTS):
            raise InvalidAnswer("counts in a boolean answer")
        return
    if not all(stats.HasField(name) for name in _COUNTS):
        raise InvalidAnswer("count answer without counts")
    ac, an = stats.allele_count, stats.allele_number
    carriers, hom = stats.carriers, stats.homozygotes
    for count in (ac, an, carriers, hom):
        _count(count)
    # Each true count is in its interval: intervals that cannot overlap are lies.
    _at_most(ac, an, "allele count exceeds allele number")
    _at_most(carriers, ac, "more carriers than alleles")
    _at_most(hom, carriers, "more homozygotes than carriers")
    if (stats.exists and not ac.unbounded and ac.upper == 0) or (not stats.exists and ac.lower > 0):
        raise InvalidAnswer("exists disagrees with the allele count")
    if not (math.isfinite(stats.frequency) and 0.0 <= stats.frequency <= 1.0):
        raise InvalidAnswer("frequency outside [0, 1]")


def individual_counts(reply: pb.CountIndividualsResponse) -> None:
    ids = [d.dataset_id for d in reply.datasets]
    if len(set(ids)) != len(ids) or not all(ids):
        raise InvalidAnswer("dataset ids missing or repeated")
    for d in reply.datasets:
        if d.granularity not in _GRANULARITIES:
            raise InvalidAnswer("unknown granularity")
        if d.granularity == pb.GRANULARITY_BOOLEAN:
            if d.HasField("individuals"):
                raise InvalidAnswer("counts in a boolean answer")
            continue
        if not d.HasField("individuals"):
            raise InvalidAnswer("count answer without counts")
        _count(d.individuals)
        if d.exists != (d.individuals.lower > 0):
            raise InvalidAnswer("exists disagrees with the count")


def _count(count: pb.Count) -> None:
    if count.precision not in _PRECISIONS:
        raise InvalidAnswer("count without a known precision")
    if count.precision == pb.COUNT_PRECISION_EXACT and not (
        count.lower == count.value == count.upper and not count.unbounded
    ):
        raise InvalidAnswer("an exact count with an interval")
    if not count.unbounded and count.lower > count.upper:
        raise InvalidAnswer("count interval is empty")
    if count.unknown and (count.value or count.lower or not count.unbounded
                          or count.precision == pb.COUNT_PRECISION_EXACT):
        raise InvalidAnswer("an unknown count with a value or a bound")


def _at_most(small: pb.Count, large: pb.Count, why: str) -> None:
    if not large.unbounded and small.lower > large.upper:
        raise InvalidAnswer(why)


def _same_allele(allele: pb.Allele, key: AlleleKey) -> None:
    got = (normalize_contig(allele.contig), allele.start, allele.ref.upper(), allele.alt)
    if got != (key.contig, key.start, key.ref, key.alt):
        raise InvalidAnswer("answer for another allele than asked")
