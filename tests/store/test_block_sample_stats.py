"""`SampleStatsRows.add_block` counts a block of few-sample records at once (one count per
distinct REF, ALTs and calls; the DP/GQ values of all blobs of one layout as one int32
column). It must leave the builder as `add` of each record in turn leaves it: random
blocks of every record shape (ploidy 1-3 and mixed, missing alleles, no GT, multi-allelic,
symbolic, `*` and gVCF `<NON_REF>` ALTs, runs of records at one position cut by block
boundaries) and every FORMAT layout (DP/GQ present, missing, negative, near the int32
limits, typed Float, zero values, duplicated, after strings of varying length; no FORMAT;
no cells) go through both, and the counters and uint64 totals are compared.
"""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from node.store.dataset import layout
from node.store.dataset.write_buffers import VarChunk
from node.store.ingest.calls import allele_rows
from node.store.ingest.sample_stats_fields import SmallFieldStats
from node.store.ingest.sample_stats_rows import SampleStatsRows
from node.store.ingest.vcfio import ParsedRecord

_REFS = ("A", "C", "G", "T", "GT", "TAC", "a")
_ALTS = ("G", "T", "A", "C", "CC", "G", "*", "<DEL>", "<NON_REF>", "<*>", "TA", "AGT")


def _field(key: bytes, htype: int, values: list[int] | list[float] | bytes) -> bytes:
    if isinstance(values, bytes):
        return key + b"\0" + struct.pack("<ii", htype, len(values)) + values
    code = "f" if htype == layout.HT_REAL else "i"
    return key + b"\0" + struct.pack(f"<ii{len(values)}{code}", htype, len(values), *values)


def _int(rng: random.Random) -> int:
    return rng.choice(
        (layout.INT32_MISSING, -1, -7, 0, 2**31 - 1, -(2**31) + 1, rng.randint(0, 99))
    )


def _blob(rng: random.Random, layout_seed: int, n_alleles: int) -> bytes:
    """One sample's fmt blob; records of one `layout_seed` share the fields (only the
    values, and FT's length, change)."""
    shape = random.Random(layout_seed)
    keys = shape.sample([b"GQ", b"DP", b"AD", b"GL", b"FT", b"DP"], shape.randint(0, 5))
    parts = [struct.pack("<I", len(keys))]
    for key in keys:
        if key == b"FT":
            parts.append(_field(key, layout.HT_STR, rng.choice((b"PASS", b"q10", b""))))
        elif key == b"GL" or (key == b"GQ" and shape.random() < 0.2):
            parts.append(_field(key, layout.HT_REAL, [rng.random() for _ in range(n_alleles)]))
        elif key == b"AD":
            parts.append(_field(key, layout.HT_INT, [_int(rng) for _ in range(n_alleles)]))
        else:
            count = rng.choice((1, 1, 1, 2, 0))
            parts.append(_field(key, layout.HT_INT, [_int(rng) for _ in range(count)]))
    return b"".join(parts)


# blobs `_first_ints` reads without failing though no parser writes them: too short for
# the field count, and a last field of a negative value count
_ODD_BLOBS = (
    b"",
    b"\x01\x00",
    struct.pack("<I", 1) + b"FT\0" + struct.pack("<ii", layout.HT_STR, -3),
    struct.pack("<I", 2) + _field(b"DP", layout.HT_INT, [17])
    + b"AD\0" + struct.pack("<ii", layout.HT_INT, -1),
)  # fmt: skip


def _record(rng: random.Random, n: int, pos: int, layouts: int) -> ParsedRecord:
    ref = rng.choice(_REFS)
    if rng.random() < 0.15:
        alts: tuple[str, ...] = ("<NON_REF>",)
    else:
        alts = tuple(rng.sample(_ALTS, rng.choice((1, 1, 1, 2, 3))))
    alts = () if rng.random() < 0.03 else alts
    ploidy = rng.choice((1, 2, 2, 2, 3))
    gt = np.array(
        [[rng.choice((-1, 0, 0, 1, 1, len(alts))) for _ in range(ploidy)] for _ in range(n)],
        dtype=np.int16,
    )
    gt = np.minimum(gt, len(alts))
    if n and ploidy > 1 and rng.random() < 0.3:
        gt[rng.randrange(n), rng.randrange(1, ploidy) :] = -2  # a sample of lower ploidy
    if rng.random() < 0.05:
        gt = np.full((n, 1), -1, dtype=np.int16)  # no GT
    kind = rng.random()
    if kind < 0.05:
        fmt = VarChunk.of([])  # no cells
    elif kind < 0.1:
        fmt = VarChunk.repeat(struct.pack("<I", 0), n)  # GT only
    elif kind < 0.13:
        fmt = VarChunk.of([rng.choice(_ODD_BLOBS) for _ in range(n)])
    elif kind < 0.15:
        fmt = VarChunk.of([_blob(rng, 0, 1 + len(alts))])  # one cell only
    else:
        seed = rng.randrange(layouts)
        fmt = VarChunk.of([_blob(rng, seed, 1 + len(alts)) for _ in range(n)])
    return ParsedRecord(
        line=pos, contig="1", pos=pos, end=pos + len(ref) - 1, ref=ref, alts=alts, ids=".",
        qual=float("nan"), filters=(), info=b"", gt=gt, phased=np.zeros(n, dtype=bool),
        fmt=fmt, fmt_gt=fmt, rows=allele_rows(gt),
    )  # fmt: skip


def _records(seed: int, n: int, count: int, layouts: int) -> list[ParsedRecord]:
    rng = random.Random(seed)
    out, pos = [], 100
    for _ in range(count):
        pos += rng.choice((0, 0, 0, 1, 5))  # runs of records at one position
        out.append(_record(rng, n, pos, layouts))
    return out


def _blocks(rng: random.Random, records: list[ParsedRecord]) -> list[list[ParsedRecord]]:
    out, at = [], 0
    while at < len(records):
        size = rng.choice((1, 2, 7, 64, 1024))
        out.append(records[at : at + size])
        at += size
    return out


def _groups(rows: SampleStatsRows) -> dict[tuple[str, ...], object]:
    """Every group's counters and DP/GQ totals."""
    return {
        samples: (
            group.counts.tolist(),
            group.small,
            {k: list(map(list, f._totals)) for k, f in group.fields.items()},  # type: ignore[union-attr]
        )
        for samples, group in rows._groups.items()
    }


def _state(rows: SampleStatsRows) -> object:
    """Every group's counters and DP/GQ totals, then the rows `take` gives."""
    groups = _groups(rows)
    taken = {
        k: [np.asarray(x).tolist() for x in v] if isinstance(v, tuple) else np.asarray(v).tolist()
        for k, v in rows.take().items()
    }
    return groups, taken


def _one_by_one(rows: SampleStatsRows, samples: tuple[str, ...], block: list[ParsedRecord]) -> None:
    for r in block:
        assert r.rows is not None
        rows.add(samples, r.gt, r.ref, r.alts, r.fmt, rows=r.rows)


@pytest.mark.parametrize("seed", range(20))
def test_blocks_count_as_records_one_by_one(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.choice((1, 1, 2, 3, 8))
    samples = tuple(f"S{i}" for i in range(n))
    layouts = rng.choice((1, 2, 6))  # 6: more layouts in a block than it reads at once
    records = _records(seed, n, rng.randint(1, 3000), layouts)
    blocked, single = SampleStatsRows(), SampleStatsRows()
    for block in _blocks(rng, records):
        blocked.add_block(samples, block, [r.rows for r in block])  # type: ignore[misc]
        _one_by_one(single, samples, block)
    assert _state(blocked) == _state(single)


def test_groups_of_several_inputs_keep_their_order() -> None:
    rng = random.Random(5)
    inputs = [("A",), ("B", "C"), ("A",)]  # the first and the third: one group
    blocked, single = SampleStatsRows(), SampleStatsRows()
    for i, samples in enumerate(inputs):
        for block in _blocks(rng, _records(i, len(samples), 500, 3)):
            blocked.add_block(samples, block, [r.rows for r in block])  # type: ignore[misc]
            _one_by_one(single, samples, block)
    blocked.add_block(("D",), [], [])  # no records: no row for D
    assert _state(blocked) == _state(single)
    assert blocked._groups == {} and single._groups == {}


def test_one_sample_snvs_in_one_layout() -> None:
    """The common record: one sample, a biallelic SNV, GQ and DP in every blob."""
    rng = random.Random(3)
    records = []
    for pos in range(2000):
        ref = rng.choice("ACGT")
        gt = np.array([[rng.choice((0, 1)), 1]], dtype=np.int16)
        blob = _field(b"GQ", layout.HT_INT, [rng.randint(1, 99)])
        blob += _field(b"DP", layout.HT_INT, [rng.randint(5, 60)])
        records.append(ParsedRecord(
            line=pos, contig="1", pos=pos, end=pos, ref=ref,
            alts=(rng.choice([b for b in "ACGT" if b != ref]),), ids=".", qual=1.0,
            filters=(), info=b"", gt=gt, phased=np.zeros(1, dtype=bool),
            fmt=VarChunk.of([struct.pack("<I", 2) + blob]), fmt_gt=VarChunk.of([b""]),
            rows=allele_rows(gt),
        ))  # fmt: skip
    blocked, single = SampleStatsRows(), SampleStatsRows()
    for at in range(0, len(records), 1024):
        block = records[at : at + 1024]
        blocked.add_block(("S",), block, [r.rows for r in block])  # type: ignore[misc]
        _one_by_one(single, ("S",), block)
    assert _state(blocked) == _state(single)


_BAD_BLOBS = [
    (struct.pack("<I", 1) + b"DP\0" + struct.pack("<ii", 1, 1), struct.error),  # no value
    (struct.pack("<I", 1) + b"DP", ValueError),  # no NUL after the key
    (struct.pack("<I", 1) + b"DP\0\x01", struct.error),  # no type and count
]


@pytest.mark.parametrize("first", [True, False])
@pytest.mark.parametrize(("blob", "error"), _BAD_BLOBS)
def test_an_unreadable_blob_fails_in_a_block_as_alone(
    blob: bytes, error: type[Exception], *, first: bool
) -> None:
    """`add` raises at that record, and so does its block, whether the blob is the one
    its layout is read from or not."""
    good = _records(1, 1, 10, 1)
    bad = _records(2, 1, 1, 1)[0]
    bad.fmt = VarChunk.of([blob])
    block = [bad, *good] if first else [*good, bad]
    with pytest.raises(error):
        _one_by_one(SampleStatsRows(), ("S",), block)
    with pytest.raises(error):
        SampleStatsRows().add_block(("S",), block, [r.rows for r in block])  # type: ignore[misc]


def test_values_of_one_sample_fold_as_one_by_one() -> None:
    rng = random.Random(9)
    values = [_int(rng) for _ in range(5000)]
    values = [v for v in values if v != layout.INT32_MISSING]
    block, single = SmallFieldStats(1), SmallFieldStats(1)
    block.add_values(0, np.array(values, dtype=np.int32))
    block.add_values(0, np.zeros(0, dtype=np.int32))
    for v in values:
        single.add_value(0, v)
    assert block._totals == single._totals


def test_an_input_of_no_samples_counts_nothing() -> None:
    block = _records(4, 0, 50, 2)
    blocked, single = SampleStatsRows(), SampleStatsRows()
    blocked.add_block((), block, [r.rows for r in block])  # type: ignore[misc]
    _one_by_one(single, (), block)
    # compared before `take`, which fails on a group of no samples either way
    assert _groups(blocked) == _groups(single) == {(): ([], [], {b"DP": [], b"GQ": []})}
