"""`DataCells` (the `data` cells an ingest holds, as columns) against a plain reference:
every cell built one by one from its record, as the layout describes it.

Random records of 1-3 samples, sample names out of byte order, long records (anchor
copies every `layout.ANCHOR_GAP` strictly before end_pos), several records at one
position, records arriving out of order, QUAL missing, FORMAT blobs of varied lengths;
blocks added at random sizes and taken at random hold positions, as the writer does.
"""

from __future__ import annotations

import itertools
import random
import struct

import numpy as np
import pytest

from node.store.dataset import layout
from node.store.dataset.write_buffers import VarChunk
from node.store.ingest.data_cells import CHUNK_OVERHEAD, DataCells
from node.store.ingest.vcfio import ParsedRecord

GAP = layout.ANCHOR_GAP
Cell = tuple[int, int, int, float, bytes, bytes, bytes, bytes, bytes, bytes, bytes]


def _record(rng: random.Random, pos: int, n: int) -> ParsedRecord:
    span = rng.choice((0, 0, 0, 1, 40, GAP - 1, GAP, GAP + 1, 2 * GAP + 7))
    ref = rng.choice(("A", "CT", "G"))
    alts = tuple(rng.sample(["T", "<NON_REF>", "GA", "C"], rng.randint(1, 2)))
    fmt = [bytes(rng.randrange(256) for _ in range(rng.choice((4, 4, 9, 13)))) for _ in range(n)]
    gts = [bytes(rng.randrange(256) for _ in range(rng.choice((4, 8)))) for _ in range(n)]
    return ParsedRecord(
        line=pos,
        contig="chr2",
        pos=pos,
        end=pos + span,
        ref=ref,
        alts=alts,
        ids=rng.choice((".", f"rs{pos}")),
        qual=rng.choice((float("nan"), 30.0, 12.5)),
        filters=(),
        info=rng.choice((bytes(4), b"\x01\x02\x03", bytes([rng.randrange(256)]) * 7)),
        gt=np.zeros((n, 2), dtype=np.int16),
        phased=np.zeros(n, dtype=bool),
        fmt=VarChunk.of(fmt),
        fmt_gt=VarChunk.of(gts),
    )


def _cells(rec: ParsedRecord, names: list[bytes], order: list[int], filters: bytes) -> list[Cell]:
    """The record's cells, one by one: anchor copies, then samples in byte order."""
    fmt, gts = rec.fmt.cells(), rec.fmt_gt.cells()
    alleles = (",".join((rec.ref, *rec.alts)) + "\0").encode()
    out = []
    for anchor in range(rec.pos, max(rec.end, rec.pos + 1), GAP):
        for i in order:
            site = (anchor, rec.pos, rec.end, rec.qual, alleles, (rec.ids + "\0").encode())
            out.append((*site, filters, rec.info, names[i], fmt[i], gts[i]))
    return out


def _columns(cells: list[Cell]) -> dict[str, object]:
    qual = layout.htslib_missing(np.array([c[3] for c in cells], dtype=np.float32))
    filters = layout.Var([c[6] for c in cells])
    filters.data = filters.data.view("<i4")
    return {
        "contig": layout.Var([b"chr2"] * len(cells)),
        "start_pos": np.array([c[0] for c in cells], dtype=np.uint32),
        "sample": layout.Var([c[8] for c in cells]),
        "real_start_pos": np.array([c[1] for c in cells], dtype=np.uint32),
        "end_pos": np.array([c[2] for c in cells], dtype=np.uint32),
        "qual": qual,
        "alleles": layout.Var([c[4] for c in cells]),
        "id": layout.Var([c[5] for c in cells]),
        "filter_ids": filters,
        "info": layout.Var([c[7] for c in cells]),
        "fmt": layout.Var([c[9] for c in cells]),
        "fmt_GT": layout.Var([c[10] for c in cells]),
    }


def _same(a: dict[str, object], b: dict[str, object]) -> None:
    assert a.keys() == b.keys()
    for name, x in a.items():
        y = b[name]
        if isinstance(x, np.ndarray):
            assert isinstance(y, np.ndarray) and x.dtype == y.dtype, name
            assert x.tobytes() == y.tobytes(), name
        else:
            assert isinstance(x, layout.Var) and isinstance(y, layout.Var), name
            assert x.offsets.tolist() == y.offsets.tolist(), name
            assert x.data.dtype == y.data.dtype, name
            assert x.data.tobytes() == y.data.tobytes(), name


@pytest.mark.parametrize("seed", range(8))
def test_taken_columns_are_the_cells_in_anchor_order(seed: int) -> None:
    rng = random.Random(seed)
    buffer = DataCells()
    held: list[tuple[int, list[Cell], int]] = []  # (anchor, cells, bytes) of each chunk
    taken_batches = 0
    pos = 100
    for _ in range(rng.randint(5, 12)):
        n = rng.randint(1, 3)  # inputs of different samples share a buffer
        names = [f"s{rng.randrange(100)}-{i}".encode() for i in range(n)]
        order = sorted(range(n), key=names.__getitem__)
        filters = struct.pack("<2i", 1, rng.randrange(4))
        block = []
        for _ in range(rng.choice((1, 3, 40, 200))):
            pos += rng.choice((0, 0, 1, 3, 900))
            if rng.random() < 0.05:
                pos -= 50  # out of order
            block.append(_record(rng, pos, n))
        buffer.add(
            block,
            b"chr2",
            VarChunk.of([names[i] for i in order]),
            None if order == list(range(n)) else np.array(order),
            [filters] * len(block),
        )
        for rec in block:
            copies = _cells(rec, names, order, filters)
            for c in range(0, len(copies), n):
                chunk = copies[c : c + n]
                fmt = sum(len(x[9]) + len(x[10]) for x in chunk)
                site = 4 + len(chunk[0][4]) + len(chunk[0][5]) + 8 + len(rec.info) + 16
                held.append((chunk[0][0], chunk, fmt + n * site + CHUNK_OVERHEAD))
        assert buffer.bytes == sum(h[2] for h in held)
        hold = rng.choice((None, pos, pos - 10, pos + 1))
        taken = buffer.take(hold_from=hold)
        assert taken is not None
        table, ordered = taken
        held.sort(key=lambda h: h[0])  # stable: input order among equal anchors
        cut = len(held) if hold is None else sum(1 for h in held if h[0] < hold)
        now, held = held[:cut], held[cut:]
        assert len(table) == len(now)
        assert ordered == all(a[0] < b[0] for a, b in itertools.pairwise(now))
        if now:
            _same(table.columns(), _columns([c for h in now for c in h[1]]))
            taken_batches += 1
        assert buffer.bytes == buffer.held == sum(h[2] for h in held)
    final = buffer.take(hold_from=None)
    if held:
        assert final is not None
        _same(final[0].columns(), _columns([c for h in held for c in h[1]]))
    assert buffer.take(hold_from=None) is None and buffer.bytes == 0
    assert taken_batches
