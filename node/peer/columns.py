"""Batched allele statistics as columns: thousands of alleles without a message each.

A `BatchAlleleStatsRequest` may carry its alleles as `AlleleColumns`; the node then
answers one `DatasetStatsColumns` per dataset (parallel packed arrays in request order).
Encoding, decoding, checking and merging work on whole columns (numpy), so neither the
node nor the coordinator builds or reads a Python object per allele and count: with
10,000 alleles x 8 nodes the per-allele messages cost seconds of coordinator CPU, which
also held the event loop past the call's deadline.

- node side: `keys_of` (validated request), `dataset_columns` (guarded answer);
- coordinator side: `decode` (an answer as arrays, checked like validate.py checks a
  per-allele answer; a lie is `InvalidAnswer`), `Totals` (interval sums over nodes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from node.domain import AlleleKey, AlleleStats, normalize_contig
from node.errors import InvalidInput
from node.names import Granularity
from node.peer import messages
from node.peer._pb import peer_pb2 as pb
from node.peer.guard import UNKNOWN, BoundedCount, CountGuard
from node.peer.validate import InvalidAnswer

__all__ = [
    "COUNTS",
    "Column",
    "DatasetColumns",
    "Totals",
    "allele_columns",
    "concat",
    "dataset_columns",
    "decode",
    "keys_of",
]

COUNTS = ("allele_count", "allele_number", "carriers", "homozygotes")
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
_BASES = frozenset("ACGTN")
_MAX_ALLELE = 10_000
_PRECISIONS = np.array(
    [pb.COUNT_PRECISION_EXACT, pb.COUNT_PRECISION_ROUNDED, pb.COUNT_PRECISION_IMPRECISE]
)
_GRANULARITIES = {pb.GRANULARITY_BOOLEAN, pb.GRANULARITY_COUNT, pb.GRANULARITY_RECORD}


# -- requests ------------------------------------------------------------------------


def allele_columns(keys: Sequence[AlleleKey]) -> pb.AlleleColumns:
    return pb.AlleleColumns(
        contigs=[k.contig for k in keys],
        starts=[k.start for k in keys],
        refs=[k.ref for k in keys],
        alts=[k.alt for k in keys],
    )


def keys_of(columns: pb.AlleleColumns) -> list[AlleleKey]:
    """The validated alleles of a columnar request (INVALID_ARGUMENT when malformed)."""
    n = len(columns.starts)
    if not len(columns.contigs) == len(columns.refs) == len(columns.alts) == n:
        raise InvalidInput("allele columns of different lengths")
    names = {c: normalize_contig(c) for c in set(columns.contigs)}
    contigs = [names[c] for c in columns.contigs]
    starts = list(columns.starts)
    refs = _upper(columns.refs)
    if "<" in "".join(columns.alts):  # symbolic ALTs keep their case
        alts = [a if a.startswith("<") else a.upper() for a in columns.alts]
    else:
        alts = _upper(columns.alts)
    if not all(names.values()) or (n and min(starts) < 0):
        raise InvalidInput("an allele has no contig or a negative start")
    for seqs in (refs, alts):
        if n and (min(map(len, seqs)) == 0 or max(map(len, seqs)) > _MAX_ALLELE):
            raise InvalidInput("an allele has an empty or too long REF or ALT")
    if not set("".join(refs)) <= _BASES:
        raise InvalidInput("REF must be bases")
    return list(map(AlleleKey, contigs, starts, refs, alts))


def _upper(seqs: Sequence[str]) -> list[str]:
    """Upper-cased in one pass over one string (a line break inside is malformed)."""
    if not seqs:
        return []
    out = "\n".join(seqs).upper().split("\n")
    if len(out) != len(seqs):
        raise InvalidInput("REF or ALT with a line break")
    return out


# -- node answers ----------------------------------------------------------------------


def dataset_columns(
    dataset_id: str,
    granularity: Granularity,
    stats: Sequence[AlleleStats | None],
    guard: CountGuard,
    *,
    deterministic: bool,
) -> pb.DatasetStatsColumns:
    """One dataset's answer for every allele, revealing no more than `granularity`.

    `deterministic`: the guard maps equal counts to equal answers (no noise), so each
    distinct count is guarded once; otherwise every count is guarded on its own.
    """
    raw = np.array(
        [(s.ac, s.an, s.n_carriers, s.n_hom_alt) if s else (0, 0, 0, 0) for s in stats],
        dtype=np.int64,
    ).reshape(len(stats), 4)
    message = pb.DatasetStatsColumns(
        dataset_id=dataset_id,
        granularity=messages.granularity_message(granularity),
        exists=(raw[:, 0] > 0).tolist(),
    )
    if granularity is Granularity.BOOLEAN:
        return message
    # None: nobody called at the position; its allele number is unknown, never 0.
    uncalled = np.array([s is None for s in stats], dtype=bool)
    guarded = [
        _guarded(raw[:, i], guard, deterministic, unknown=uncalled if i == 1 else None)
        for i in range(4)
    ]
    for name, (columns, _, _) in zip(COUNTS, guarded, strict=True):
        getattr(message, name).CopyFrom(columns)
    (_, ac, ac_exact), (_, an, an_exact) = guarded[0], guarded[1]
    frequency = np.divide(ac, an, out=np.zeros(len(ac)), where=an > 0)
    message.frequency.extend(np.minimum(frequency, 1.0).tolist())  # noised counts: clipped
    exact = ac_exact & an_exact
    message.frequency_precision.extend(
        np.where(exact, pb.COUNT_PRECISION_EXACT, pb.COUNT_PRECISION_IMPRECISE).tolist()
    )
    return message


def _guarded(
    counts: Ints, guard: CountGuard, deterministic: bool, *, unknown: Bools | None = None
) -> tuple[pb.CountColumns, Ints, Bools]:
    """Guarded counts as columns, their shown values, and which are exact; where
    `unknown`, the count is `guard.UNKNOWN` (nothing is guarded: nothing is known)."""
    if deterministic:
        distinct, where = np.unique(counts, return_inverse=True)
        rows = [guard.count(int(n)) for n in distinct.tolist()]
    else:
        rows = [guard.count(n) for n in counts.tolist()]
        where = np.arange(len(rows))
    table = _table(rows)[where]
    if unknown is not None and unknown.any():
        table[unknown] = _table([UNKNOWN])[0]
    columns = pb.CountColumns(
        values=table[:, 0].tolist(),
        precisions=table[:, 1].tolist(),
        lowers=table[:, 2].tolist(),
        uppers=table[:, 3].tolist(),
        unbounded=table[:, 4].astype(bool).tolist(),
        unknown=table[:, 5].astype(bool).tolist() if table[:, 5].any() else [],
    )
    return columns, table[:, 0], table[:, 1] == pb.COUNT_PRECISION_EXACT


def _table(rows: Sequence[BoundedCount]) -> Ints:
    """value, precision, lower, upper, unbounded, unknown of each count, as rows."""
    return np.array(
        [(r.value, _precision(r), r.lower, _upper_bound(r), r.upper is None, r.unknown)
         for r in rows],
        dtype=np.int64,
    ).reshape(len(rows), 6)


def _precision(count: BoundedCount) -> int:
    return int(messages.precision_message(count.precision))


def _upper_bound(count: BoundedCount) -> int:
    return 0 if count.upper is None else count.upper


# -- coordinator: decode and check -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    """One count of every allele: shown value, interval [lower, upper] (upper ∞ where
    `unbounded`), whether it is exact, and of how many parts the count is unknown."""

    value: Ints
    lower: Ints
    upper: Ints
    unbounded: Bools
    exact: Bools
    unknown: Ints

    @classmethod
    def constant(
        cls, n: int, *, value: int, upper: int | None, exact: bool, unknown: int = 0
    ) -> Column:
        full = np.full(n, value, dtype=np.int64)
        return cls(
            full,
            full.copy(),
            np.full(n, upper or 0, dtype=np.int64),
            np.full(n, upper is None),
            np.full(n, exact),
            np.full(n, unknown, dtype=np.int64),
        )

    def __add__(self, other: Column) -> Column:
        return Column(
            self.value + other.value,
            self.lower + other.lower,
            self.upper + other.upper,
            self.unbounded | other.unbounded,
            self.exact & other.exact,
            self.unknown + other.unknown,
        )


@dataclass(frozen=True, slots=True)
class DatasetColumns:
    """A checked answer of one dataset: `counts` None when it answered booleans only."""

    dataset_id: str
    exists: Bools
    counts: dict[str, Column] | None


def decode(reply: pb.BatchAlleleStatsResponse, n: int) -> list[DatasetColumns]:
    """A columnar answer for `n` alleles as arrays; `InvalidAnswer` when it cannot be true."""
    if len(reply.results):
        raise InvalidAnswer("answer is not in columns")
    ids = [c.dataset_id for c in reply.columns]
    if len(set(ids)) != len(ids) or not all(ids):
        raise InvalidAnswer("dataset ids missing or repeated")
    return [_dataset(c, n) for c in reply.columns]


def _dataset(message: pb.DatasetStatsColumns, n: int) -> DatasetColumns:
    exists = _array(message.exists, n, np.bool_)
    if message.granularity not in _GRANULARITIES:
        raise InvalidAnswer("unknown granularity")
    if message.granularity == pb.GRANULARITY_BOOLEAN:
        if any(message.HasField(name) for name in COUNTS):
            raise InvalidAnswer("counts in a boolean answer")
        return DatasetColumns(message.dataset_id, exists, None)
    if not all(message.HasField(name) for name in COUNTS):
        raise InvalidAnswer("count answer without counts")
    ac, an, carriers, hom = (_column(getattr(message, name), n) for name in COUNTS)
    # Each true count is in its interval: intervals that cannot overlap are lies.
    _at_most(ac, an, "allele count exceeds allele number")
    _at_most(carriers, ac, "more carriers than alleles")
    _at_most(hom, carriers, "more homozygotes than carriers")
    if (exists & ~ac.unbounded & (ac.upper == 0)).any() or (~exists & (ac.lower > 0)).any():
        raise InvalidAnswer("exists disagrees with the allele count")
    # "exists" is itself disclosed: a noised count's interval [0, ∞) becomes [1, ∞).
    ac, carriers = (_at_least_one(c, exists) for c in (ac, carriers))
    frequency = _array(message.frequency, n, np.float64)
    if not (np.isfinite(frequency).all() and ((frequency >= 0) & (frequency <= 1)).all()):
        raise InvalidAnswer("frequency outside [0, 1]")
    counts = dict(zip(COUNTS, (ac, an, carriers, hom), strict=True))
    return DatasetColumns(message.dataset_id, exists, counts)


def _array(values: Sequence[Any], n: int, dtype: type[np.generic]) -> npt.NDArray[Any]:
    if len(values) != n:
        raise InvalidAnswer(f"{len(values)} values for {n} alleles")
    return np.array(values, dtype=dtype)  # upb's repeated scalars convert without a loop


def _column(message: pb.CountColumns, n: int) -> Column:
    value = _array(message.values, n, np.uint64)
    lower = _array(message.lowers, n, np.uint64)
    upper = _array(message.uppers, n, np.uint64)
    precision = _array(message.precisions, n, np.int64)
    unbounded = _array(message.unbounded, n, np.bool_)
    # Absent (nodes before the field, or no unknown count): nothing is unknown.
    unknown = _array(message.unknown, n, np.bool_) if len(message.unknown) else np.zeros(n, bool)
    if (np.concatenate([value, lower, upper]) > (1 << 62)).any():
        raise InvalidAnswer("count out of range")
    if not np.isin(precision, _PRECISIONS).all():
        raise InvalidAnswer("count without a known precision")
    exact = precision == pb.COUNT_PRECISION_EXACT
    if (exact & ((lower != value) | (upper != value) | unbounded)).any():
        raise InvalidAnswer("an exact count with an interval")
    if (~unbounded & (lower > upper)).any():
        raise InvalidAnswer("count interval is empty")
    if (unknown & ((value != 0) | (lower != 0) | ~unbounded | exact)).any():
        raise InvalidAnswer("an unknown count with a value or a bound")
    as_int = np.int64
    return Column(
        value.astype(as_int), lower.astype(as_int), upper.astype(as_int), unbounded, exact,
        unknown.astype(as_int),
    )


def _at_least_one(column: Column, exists: Bools) -> Column:
    lower = np.maximum(column.lower, exists.astype(np.int64))
    return Column(column.value, lower, column.upper, column.unbounded, column.exact,
                  column.unknown)


def _at_most(small: Column, large: Column, why: str) -> None:
    if (~large.unbounded & (small.lower > large.upper)).any():
        raise InvalidAnswer(why)


def concat(chunks: Sequence[list[DatasetColumns]]) -> list[DatasetColumns]:
    """One node's answers to consecutive chunks of a batch, as one answer; the chunks
    must name the same datasets with the same granularity (else `InvalidAnswer`)."""
    first = chunks[0]
    shape = [(d.dataset_id, d.counts is None) for d in first]
    if any([(d.dataset_id, d.counts is None) for d in c] != shape for c in chunks):
        raise InvalidAnswer("datasets differ between parts of one batch")
    out = []
    for i, (dataset_id, boolean) in enumerate(shape):
        parts = [c[i] for c in chunks]
        exists = np.concatenate([d.exists for d in parts])
        counts = None
        if not boolean:
            counts = {name: _concat([d.counts[name] for d in parts if d.counts]) for name in COUNTS}
        out.append(DatasetColumns(dataset_id, exists, counts))
    return out


def _concat(columns: list[Column]) -> Column:
    return Column(*(np.concatenate([getattr(c, f) for c in columns]) for f in Column.__slots__))


# -- coordinator: merge ------------------------------------------------------------------


class Totals:
    """Interval sums of every allele's four counts over the datasets merged so far."""

    def __init__(self, n: int) -> None:
        self.n = n
        zero = Column.constant(n, value=0, upper=0, exact=True)
        self.counts: dict[str, Column] = dict.fromkeys(COUNTS, zero)

    def add(self, dataset: DatasetColumns) -> None:
        if dataset.counts is not None:
            for name in COUNTS:
                self.counts[name] = self.counts[name] + dataset.counts[name]
            return
        # A boolean answer: "yes" is at least one allele (and carrier), no upper bound;
        # nothing is known of the allele number or homozygotes.
        yes = dataset.exists.astype(np.int64)
        none = np.zeros(self.n, np.int64)
        some = Column(yes, yes, none, dataset.exists, ~dataset.exists, none)
        unknown = Column.constant(self.n, value=0, upper=None, exact=False, unknown=1)
        for name, part in zip(COUNTS, (some, unknown, some, unknown), strict=True):
            self.counts[name] = self.counts[name] + part
