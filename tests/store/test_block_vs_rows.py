"""`VariantStatsRows.add_block` makes what `add` of each record in turn makes: the same
rows in the same order, the same allele key numbering, running maximum and open position
(the state the next block starts from), on random blocks of few-sample records with every
unusual shape mixed among the common biallelic SNVs: multi-allelic records, several
records at one position (runs cut by block boundaries), gVCF `<NON_REF>` blocks, ploidy
0-3, missing alleles, indels whose keys version 3 trims.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from node.store.dataset.write_buffers import VarChunk
from node.store.ingest.calls import allele_rows
from node.store.ingest.vcfio import ParsedRecord
from node.store.ingest.vs_rows import RowBatch, VariantStatsRows

_NO_BLOB = VarChunk(b"", np.zeros(0, dtype=np.uint64))


def _alleles(rng: random.Random) -> tuple[str, tuple[str, ...]]:
    kind = rng.random()
    ref = rng.choice("ACGT")
    if kind < 0.55:
        return ref, (rng.choice([b for b in "ACGT" if b != ref]),)
    if kind < 0.65:
        return ref, ("<NON_REF>",)
    if kind < 0.75:
        return ref + "AC", (ref + "C", "T")  # multi-allelic; version 3 trims the C
    if kind < 0.85:
        return ref + "G", (ref,)
    if kind < 0.9:
        return ref, ()
    return ref, ("T", "<NON_REF>")


def _gt(rng: random.Random, samples: int, n_alleles: int) -> np.ndarray:
    width = rng.choice((1, 2, 2, 2, 3))
    gt = np.full((samples, width), -2, dtype=np.int16)
    for s in range(samples):
        ploidy = rng.choice((0, 1, 2, 2, 2, 2, 3)) if rng.random() < 0.3 else width
        for k in range(min(ploidy, width)):
            gt[s, k] = -1 if rng.random() < 0.15 else rng.randrange(n_alleles)
    return gt


def _records(rng: random.Random, samples: int, n: int) -> list[ParsedRecord]:
    out, contig, pos = [], "1", 100
    for line in range(n):
        if rng.random() < 0.005:
            contig = "2" if contig == "1" else "1"  # a new contig, maybe at the same pos
        elif rng.random() > 0.3:
            pos += rng.randint(1, 40)
        ref, alts = _alleles(rng)
        end = pos + len(ref) - 1 + (rng.randint(0, 500) if alts == ("<NON_REF>",) else 0)
        gt = _gt(rng, samples, 1 + len(alts))
        out.append(ParsedRecord(
            line=line, contig=contig, pos=pos, end=end, ref=ref, alts=alts, ids=".",
            qual=float("nan"), filters=(), info=b"", gt=gt,
            phased=np.zeros(samples, dtype=bool), fmt=_NO_BLOB, fmt_gt=_NO_BLOB,
            rows=allele_rows(gt),
        ))
    return out


def _state(rows: VariantStatsRows) -> tuple[object, ...]:
    """What the next record or block starts from (the open position and its records)."""
    position = rows._position
    where = None if position is None or not rows._records else (
        position[0].offset, *position[1:]
    )
    records = [
        (r.end, r.length, r.codes, r.nr, r.gt.tolist(), r.rows) for r in rows._records
    ]
    return rows.max_length, len(rows), where, records, dict(rows._alleles), rows._names


def _batch(batch: RowBatch) -> tuple[object, ...]:
    counts = {k: (v.dtype.str, v.tolist()) for k, v in batch.counts.items()}
    return batch.sites, counts, batch.names, batch.alleles, batch.version


def _check(
    seed: int, version: int, sign: int, samples: list[str], sizes: tuple[int, ...]
) -> None:
    rng = random.Random(seed)
    records = _records(rng, len(samples), 3000)
    block = VariantStatsRows(version=version, sign=sign)
    single = VariantStatsRows(version=version, sign=sign)
    start = 0
    while start < len(records):
        chunk = records[start : start + rng.choice(sizes)]
        start += len(chunk)
        block.add_block(chunk, [r.rows or [] for r in chunk], samples)
        for r in chunk:
            single.add(r.contig, r.pos, r.end, r.ref, r.alts, r.gt, samples, None, r.rows)
        assert _state(block) == _state(single)
        if rng.random() < 0.1:  # a flush between blocks keeps the open position
            assert _batch(block.take(final=False)) == _batch(single.take(final=False))
    assert _batch(block.take()) == _batch(single.take())
    assert _state(block) == _state(single)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("version", "sign"), [(3, 1), (2, 1), (2, -1)])
def test_add_block_is_add_record_by_record(seed: int, version: int, sign: int) -> None:
    samples = [["S1"], ["b", "a"], ["s10", "s2", "s1"]][seed % 3]
    _check(seed, version, sign, samples, (1, 2, 7, 64, 1024))


@pytest.mark.parametrize("version", [2, 3])
def test_add_block_of_common_records(version: int) -> None:
    """One-sample biallelic records only: every record but each block's last is lone."""
    rng = random.Random(7)
    records = _records(rng, 1, 2000)
    common = [r for r in records if len(r.alts) == 1 and r.alts[0] != "<NON_REF>"]
    for r in common:
        r.contig = "1"
    rows = [r.rows or [] for r in common]
    block, single = VariantStatsRows(version=version), VariantStatsRows(version=version)
    for start in range(0, len(common), 300):
        block.add_block(common[start : start + 300], rows[start : start + 300], ["S"])
    for r in common:
        single.add(r.contig, r.pos, r.end, r.ref, r.alts, r.gt, ["S"], None, r.rows)
    assert _batch(block.take()) == _batch(single.take())


def test_add_block_of_many_samples_is_add() -> None:
    samples = [f"s{i}" for i in range(9, 0, -1)]
    _check(11, 3, 1, samples, (5, 100))


def test_add_block_of_several_inputs() -> None:
    """Blocks of two inputs in turn: each input's rows use its own sample ids."""
    rng = random.Random(5)
    inputs = (["x"], ["b", "a"])
    streams = [_records(rng, len(s), 600) for s in inputs]
    block, single = VariantStatsRows(), VariantStatsRows()
    for start in range(0, 600, 50):
        for samples, records in zip(inputs, streams, strict=True):
            chunk = records[start : start + 50]
            block.add_block(chunk, [r.rows or [] for r in chunk], samples)
            for r in chunk:
                single.add(r.contig, r.pos, r.end, r.ref, r.alts, r.gt, samples, None, r.rows)
            assert _state(block) == _state(single)
    assert _batch(block.take()) == _batch(single.take())
