"""Columnar batches (node/peer/columns.py): the same answers as the per-allele form,
merged like per-allele Interval sums, lies and malformed requests refused."""

from __future__ import annotations

import random

import pytest

from node.config import PrivacySettings
from node.domain import AlleleKey, AlleleStats
from node.errors import InvalidInput
from node.names import Granularity
from node.peer import columns, messages
from node.peer._pb import peer_pb2 as pb
from node.peer.coordinator import AlleleTotal
from node.peer.guard import BoundedGuard
from node.peer.validate import InvalidAnswer


def _random_stats(rng: random.Random) -> AlleleStats | None:
    if rng.random() < 0.2:
        return None
    an = rng.randrange(2, 40, 2)
    ac = rng.randrange(0, an + 1)
    carriers = min(ac, an // 2, rng.randrange(0, ac + 1))
    hom = min(carriers, ac - carriers) if ac > carriers else 0
    return AlleleStats(ac, an, hom, carriers - hom, carriers, an // 2)


GUARDS = {
    "exact": PrivacySettings(min_count=1),
    "threshold": PrivacySettings(min_count=5),
    "noised": PrivacySettings(min_count=1, epsilon=1.0),
}


@pytest.mark.parametrize("privacy", list(GUARDS))
def test_columns_merge_like_per_allele_intervals(privacy):
    rng = random.Random(11)
    n = 300
    guard = BoundedGuard(GUARDS[privacy])
    keys = [AlleleKey("1", i, "A", "C") for i in range(n)]
    datasets = [
        (f"ds{j}", g, [_random_stats(rng) for _ in range(n)])
        for j, g in enumerate([Granularity.COUNT, Granularity.BOOLEAN, Granularity.RECORD])
    ]
    totals = columns.Totals(n)
    expected = [AlleleTotal(k) for k in keys]
    for ds, g, stats in datasets:
        # Noised guards answer each count afresh: compare against the same answers.
        answer = columns.dataset_columns(ds, g, stats, guard, deterministic=privacy != "noised")
        reply = pb.BatchAlleleStatsResponse(columns=[answer])
        (decoded,) = columns.decode(
            pb.BatchAlleleStatsResponse.FromString(reply.SerializeToString()), n
        )
        totals.add(decoded)
        for i in range(n):
            expected[i] = expected[i].add(_row(answer, i))
    from node.peer.coordinator import _allele_totals

    assert _allele_totals(keys, totals) == expected


def _row(message: pb.DatasetStatsColumns, i: int) -> pb.DatasetAlleleStats:
    """Allele i of a columnar answer in the per-allele form."""
    row = pb.DatasetAlleleStats(
        dataset_id=message.dataset_id, granularity=message.granularity, exists=message.exists[i]
    )
    if message.granularity == pb.GRANULARITY_BOOLEAN:
        return row
    for name in columns.COUNTS:
        c = getattr(message, name)
        getattr(row, name).CopyFrom(
            pb.Count(
                value=c.values[i],
                precision=c.precisions[i],
                lower=c.lowers[i],
                upper=c.uppers[i],
                unbounded=c.unbounded[i],
                unknown=bool(c.unknown) and c.unknown[i],
            )
        )
    return row


def test_columnar_answer_equals_the_per_allele_answer():
    rng = random.Random(5)
    guard = BoundedGuard(PrivacySettings(min_count=3))
    stats = [_random_stats(rng) for _ in range(200)]
    answer = columns.dataset_columns("ds", Granularity.COUNT, stats, guard, deterministic=True)
    for i, s in enumerate(stats):
        one = messages.dataset_stats("ds", Granularity.COUNT, s, guard)
        row = _row(answer, i)
        row.frequency = answer.frequency[i]
        row.frequency_precision = answer.frequency_precision[i]
        assert row == one


def _lie(**change) -> pb.BatchAlleleStatsResponse:
    guard = BoundedGuard(PrivacySettings(min_count=1))
    stats = [AlleleStats(2, 10, 0, 2, 2, 5)] * 3
    answer = columns.dataset_columns("ds", Granularity.COUNT, stats, guard, deterministic=True)
    for path, value in change.items():
        field, _, sub = path.partition("__")
        target = getattr(answer, field)
        if sub:
            target = getattr(target, sub)
        del target[:]
        target.extend(value)
    return pb.BatchAlleleStatsResponse(columns=[answer])


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"exists": [True, True]}, "values for"),
        ({"allele_count__values": [2, 2, 11]}, "exact count with an interval"),
        ({"allele_count__precisions": [1, 1, 9]}, "precision"),
        (
            {
                "allele_count__lowers": [2, 2, 11],
                "allele_count__values": [2, 2, 11],
                "allele_count__uppers": [2, 2, 11],
            },
            "exceeds allele number",
        ),
        ({"exists": [True, False, True]}, "exists disagrees"),
        ({"frequency": [0.2, 0.2, 1.5]}, "frequency outside"),
        (
            {
                "carriers__lowers": [2, 2, 3],
                "carriers__values": [2, 2, 3],
                "carriers__uppers": [2, 2, 3],
            },
            "more carriers than alleles",
        ),
    ],
)
def test_lies_are_invalid_answers(change, why):
    with pytest.raises(InvalidAnswer, match=why):
        columns.decode(_lie(**change), 3)


def test_per_allele_answer_to_a_columnar_request_is_invalid():
    reply = pb.BatchAlleleStatsResponse(results=[pb.AlleleResult()])
    with pytest.raises(InvalidAnswer, match="not in columns"):
        columns.decode(reply, 1)


def test_request_columns_are_validated():
    keys = [AlleleKey("1", 5, "A", "<DEL>"), AlleleKey("X", 9, "AC", "A")]
    request = columns.allele_columns(keys)
    assert columns.keys_of(request) == keys
    lower = pb.AlleleColumns(contigs=["chr1"], starts=[5], refs=["ac"], alts=["g"])
    assert columns.keys_of(lower) == [AlleleKey("1", 5, "AC", "G")]
    for bad in (
        pb.AlleleColumns(contigs=["1"], starts=[5, 6], refs=["A"], alts=["C"]),
        pb.AlleleColumns(contigs=["1"], starts=[-1], refs=["A"], alts=["C"]),
        pb.AlleleColumns(contigs=["1"], starts=[5], refs=["Q"], alts=["C"]),
        pb.AlleleColumns(contigs=["1"], starts=[5], refs=["A"], alts=[""]),
        pb.AlleleColumns(contigs=[""], starts=[5], refs=["A"], alts=["C"]),
        pb.AlleleColumns(contigs=["1"], starts=[5], refs=["A\nC"], alts=["C"]),
    ):
        with pytest.raises(InvalidInput):
            columns.keys_of(bad)


def test_chunks_of_one_batch_must_name_the_same_datasets():
    guard = BoundedGuard(PrivacySettings(min_count=1))
    stats = [AlleleStats(2, 10, 0, 2, 2, 5)] * 2

    def chunk(ds: str, g: Granularity) -> list[columns.DatasetColumns]:
        answer = columns.dataset_columns(ds, g, stats, guard, deterministic=True)
        return columns.decode(pb.BatchAlleleStatsResponse(columns=[answer]), 2)

    whole = columns.concat([chunk("a", Granularity.COUNT), chunk("a", Granularity.COUNT)])
    assert len(whole[0].exists) == 4 and whole[0].counts is not None
    assert whole[0].counts["allele_count"].value.tolist() == [2, 2, 2, 2]
    for other in (chunk("b", Granularity.COUNT), chunk("a", Granularity.BOOLEAN)):
        with pytest.raises(InvalidAnswer, match="datasets differ"):
            columns.concat([chunk("a", Granularity.COUNT), other])
