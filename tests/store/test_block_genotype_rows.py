"""`GenotypeRows.add_block` against its record-by-record `add`, and `take`'s columns
against a plain transposition of the buffered cells.

The inputs are random VCFs of one sample mostly (the block path's fast case), with what
sends a record elsewhere or makes its calls pack differently: several samples, ploidy 1-3
(and a one-sample call padded below its ploidy, as a BCF may hold it), missing and phased
calls, more than 127 ALTs (int16 codes), several records at one position, gVCF blocks
just under, at and over `layout.ANCHOR_GAP` (anchor copies), no GT, no FORMAT field but GT,
QUAL `.`. Blocks are cut at random sizes, so they end inside runs of records at one
position and span contigs.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from node.store.dataset import layout
from node.store.ingest.genotype_rows import GenotypeRows, cell_columns
from node.store.ingest.vcfio import ParsedRecord, VcfInput

_HEADER = """##fileformat=VCFv4.2
##contig=<ID=1,length=1000000>
##contig=<ID=2,length=1000000>
##FILTER=<ID=q10,Description="Low quality">
##FILTER=<ID=LowGQ,Description="Low GQ">
##INFO=<ID=DP,Number=1,Type=Integer,Description="d">
##INFO=<ID=END,Number=1,Type=Integer,Description="e">
##FORMAT=<ID=GT,Number=1,Type=String,Description="g">
##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="q">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="d">
"""
_WIDE_ALTS = [f"C{'A' * i}" for i in range(130)]  # allele indexes past 127


def _call(rng: random.Random, n_alleles: int) -> str:
    ploidy = rng.choice((1, 2, 2, 2, 2, 3))
    alleles = [
        "." if rng.random() < 0.1 else str(rng.randrange(n_alleles)) for _ in range(ploidy)
    ]
    return rng.choice("//|").join(alleles)


def _site(rng: random.Random, pos: int) -> tuple[str, list[str], list[str]]:
    """REF, ALTs and INFO of one record at `pos` (1-based)."""
    info = [f"DP={rng.randint(0, 90)}"] if rng.random() < 0.8 else []
    kind = rng.random()
    if kind < 0.15:  # a gVCF block: END - POS around ANCHOR_GAP gives 1, 1, 2 cells
        gap = layout.ANCHOR_GAP
        span = rng.choice((0, 5, gap - 1, gap, gap + 1, 2500))
        return "A", ["<NON_REF>"], [*info, f"END={pos + span}"]
    if kind < 0.2:
        return "A", _WIDE_ALTS, info
    if kind < 0.3:
        return rng.choice(("C", "GT")), rng.sample(["A", "T", "TTA"], rng.randint(2, 3)), info
    ref = rng.choice("ACGT")
    return ref, [rng.choice([b for b in "ACGT" if b != ref])], info


def _write_vcf(path: Path, seed: int, samples: int) -> None:
    rng = random.Random(seed)
    names = [f"S{i}" for i in range(samples)]
    lines = [_HEADER + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(names)]
    for contig in ("1", "2"):
        pos = 100
        for _ in range(400):
            pos += rng.choice((0, 0, 1, 7, 40))  # 0: another record at the same position
            ref, alts, info = _site(rng, pos)
            keys = rng.choice((["GT", "GQ", "DP"], ["GT", "GQ", "DP"], ["GT"], ["GQ"]))
            values = {"GQ": str(rng.randint(0, 99)), "DP": rng.choice((".", "12"))}
            cells = [
                ":".join(_call(rng, 1 + len(alts)) if k == "GT" else values[k] for k in keys)
                for _ in names
            ]
            lines.append("\t".join([
                contig, str(pos), rng.choice((".", f"rs{pos}")), ref, ",".join(alts),
                rng.choice((".", "30", "12.5")), rng.choice(("PASS", "PASS", ".", "q10;LowGQ")),
                ";".join(info) or ".", ":".join(keys), *cells,
            ]))
    path.write_text("\n".join(lines) + "\n")


def _records(tmp_path: Path, seed: int, samples: int) -> list[ParsedRecord]:
    path = tmp_path / f"in{seed}.vcf"
    _write_vcf(path, seed, samples)
    records = list(VcfInput(path).records())
    rng = random.Random(seed)
    for i in rng.sample(range(len(records)), 20):  # one-sample calls below their ploidy
        rec = records[i]
        if rec.rows is not None and len(rec.rows) == 1 and len(rec.rows[0]) < 3:
            row = rec.rows[0]
            gt = np.full((1, 3), -2, dtype=np.int16)
            gt[0, : len(row)] = row
            records[i] = dataclasses.replace(rec, gt=gt)
    return records


def _blocks(records: list[ParsedRecord], rng: random.Random) -> list[list[ParsedRecord]]:
    """Random sizes, and cuts inside the first runs of records at one position."""
    runs = [i for i in range(1, len(records)) if records[i - 1].pos == records[i].pos]
    cuts, i = set(runs[:3]), 0
    while i < len(records):
        cuts.add(i)
        i += rng.choice((1, 2, 3, 7, 7, 64, 1024))
    bounds = [*sorted(cuts), len(records)]
    return [records[a:b] for a, b in itertools.pairwise(bounds)]


def _plain_columns(rows: Sequence[tuple[object, ...]]) -> dict[str, object]:
    """The columns as first written: every field transposed, each one converted."""
    fields = list(zip(*rows, strict=True))
    names = ("contig", "pos", "real_start", "end", "qual", "alleles", "id", "filters", "info",
             "group", "shape", "gt", "phased", "fmt")
    dtypes = {1: np.uint32, 2: np.uint32, 3: np.uint32, 4: np.float32, 9: np.uint64, 10: np.uint8}
    return {
        name: np.array(fields[i], dtype=dtypes[i]) if i in dtypes else layout.Var(fields[i])
        for i, name in enumerate(names)
    }


def _same_columns(a: dict[str, object], b: dict[str, object]) -> None:
    assert a.keys() == b.keys()
    for name, x in a.items():
        y = b[name]
        if isinstance(x, np.ndarray):
            assert isinstance(y, np.ndarray)
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name
        else:
            assert isinstance(x, layout.Var) and isinstance(y, layout.Var)
            assert x.data.dtype == y.data.dtype and x.data.tobytes() == y.data.tobytes(), name
            assert x.offsets.dtype == y.offsets.dtype, name
            assert x.offsets.tolist() == y.offsets.tolist(), name


@pytest.mark.parametrize(("seed", "samples"), [(0, 1), (1, 1), (2, 1), (3, 1), (4, 2), (5, 3)])
def test_add_block_buffers_what_add_buffers(tmp_path: Path, seed: int, samples: int) -> None:
    records = _records(tmp_path, seed, samples)
    blocks = _blocks(records, random.Random(seed))
    # blocks end inside runs of records at one position
    assert any(a[-1].pos == b[0].pos for a, b in itertools.pairwise(blocks))
    by_block, by_record = GenotypeRows(7), GenotypeRows(7)
    group = by_block.group([f"S{i}" for i in range(samples)])
    assert by_record.group([f"S{i}" for i in range(samples)]) == group
    for i, block in enumerate(blocks):
        if i % 5 == 1:  # row parts between column parts
            for rec in block:
                by_block.add(rec, group)
        else:
            by_block.add_block(block, group)
        for rec in block:
            by_record.add(rec, group)
        assert by_block.bytes == by_record.bytes
    (rows,) = by_record._parts  # row tuples only
    assert isinstance(rows, list) and len(rows) > len(records)  # anchor copies of gVCF blocks
    kinds = {type(p) for p in by_block._parts}
    assert kinds == ({dict, list} if samples == 1 else {list})  # one-sample blocks: columns
    taken, expected = by_block.take(), by_record.take()
    assert taken is not None and expected is not None
    assert taken[1] == expected[1] == all(a[:2] <= b[:2] for a, b in itertools.pairwise(rows))
    _same_columns(taken[0], expected[0])
    _same_columns(taken[0], _plain_columns(rows))
    assert by_block.take() is None and by_block.bytes == 0


@pytest.mark.parametrize("seed", range(6))
def test_take_columns_and_order_of_shuffled_cells(tmp_path: Path, seed: int) -> None:
    """Cells out of order, on one contig or two, same-valued columns or not."""
    records = _records(tmp_path, seed, 1)
    rng = random.Random(seed)
    if seed % 2:
        records = [r for r in records if r.contig == "1"]
    if seed < 2:  # no anchor copies and no swap below: in order, with ties
        records = [r for r in records if r.end - r.pos < layout.ANCHOR_GAP]
    rows = GenotypeRows(3)
    group = rows.group(["S0"])
    for rec in records:
        rows.add(rec, group)
    (buffered,) = rows._parts
    assert isinstance(buffered, list)
    if seed % 3 == 0:  # every variable column the same in every cell but fmt, gt, info
        buffered = [(*r[:5], b"A,C", b".", b"PASS", *r[8:]) for r in buffered]
    if seed >= 2:
        i = rng.randrange(1, len(buffered))
        buffered[i - 1], buffered[i] = buffered[i], buffered[i - 1]
    rows._parts = [buffered]
    taken = rows.take()
    assert taken is not None
    assert taken[1] == all(a[:2] <= b[:2] for a, b in itertools.pairwise(buffered))
    assert taken[1] == (seed < 2)
    _same_columns(taken[0], _plain_columns(buffered))
    _same_columns(cell_columns(buffered[:1]), _plain_columns(buffered[:1]))


@pytest.mark.parametrize(
    ("cells", "ordered"),
    [
        ([(b"1", 5), (b"2", 1), (b"2", 1)], True),  # anchors fall where the contig rises
        ([(b"1", 1), (b"2", 5), (b"1", 9)], False),  # anchors rise where the contig falls
        ([(b"2", 1), (b"2", 1), (b"2", 0)], False),
        ([(b"10", 1), (b"9", 1)], True),  # contigs in byte order
    ],
)
def test_take_order_across_contigs(
    tmp_path: Path, cells: list[tuple[bytes, int]], ordered: bool
) -> None:
    rows = GenotypeRows(3)
    group = rows.group(["S0"])
    short = [r for r in _records(tmp_path, 0, 1) if r.end - r.pos < layout.ANCHOR_GAP]
    for rec in short[: len(cells)]:
        rows.add(rec, group)
    (buffered,) = rows._parts
    assert isinstance(buffered, list)
    rows._parts = [[(c, a, *r[2:]) for (c, a), r in zip(cells, buffered, strict=True)]]
    taken = rows.take()
    assert taken is not None and taken[1] == ordered
