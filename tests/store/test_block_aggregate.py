"""The fednode aggregate and `allele_count` of a block of few-sample records
(`StatsCollector._aggregate_block`, `AlleleCountRows.add_block`) must leave what the
record-by-record paths leave: the same keys in the same order, the same key info,
coverage rows, "last site" state carried into the next block, genotype classes and
`allele_count` rows.

Inputs mix the common record (one ALT, a new position) with every other shape: several
ALTs, symbolic ALTs, several records at one position (blocks end inside such runs), gVCF
blocks, ploidy 1 and 3, missing alleles, no GT; two inputs share positions, so a block's
keys may already be there.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path

import numpy as np
import pytest

from node.store.ingest.allele_count_rows import AlleleCountRows, genotype_classes_small
from node.store.ingest.stats import StatsCollector
from node.store.ingest.vcfio import ParsedRecord, VcfInput
from node.store.read.aggregate_index import index_of_rows

_HEADER = """##fileformat=VCFv4.2
##contig=<ID=chr1,length=1000000>
##contig=<ID=2,length=1000000>
##FILTER=<ID=q10,Description="Low quality">
##INFO=<ID=END,Number=1,Type=Integer,Description="e">
##FORMAT=<ID=GT,Number=1,Type=String,Description="g">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="d">
"""


def _call(rng: random.Random, n_alleles: int) -> str:
    if rng.random() < 0.6:  # the common call of a one-sample VCF
        return rng.choice(("0/1", "1/1", "0|1", "1|0", "0/0"))
    ploidy = rng.choice((1, 2, 2, 3))
    alleles = [
        "." if rng.random() < 0.25 else str(rng.randrange(n_alleles)) for _ in range(ploidy)
    ]
    return rng.choice("/|").join(alleles)


def _alts(rng: random.Random, ref: str) -> tuple[list[str], int | None]:
    kind = rng.random()
    if kind < 0.1:  # a gVCF reference block
        return [rng.choice(("<NON_REF>", "<*>"))], rng.randint(0, 2500)
    if kind < 0.25:  # several ALTs, symbolic ones among them
        alts = rng.sample(["G", "T", "A", "CC", "*", "<DEL>", "<NON_REF>"], rng.randint(2, 3))
        return [a for a in alts if a != ref] or ["G" if ref != "G" else "T"], None
    if kind < 0.3:  # one ALT that is not a variant
        return [rng.choice(("*", "<DEL>", "<NON_REF>"))], None
    return [rng.choice([a for a in "ACGT" if a != ref])], None


def _write_vcf(path: Path, rng: random.Random, samples: list[str]) -> None:
    lines = [_HEADER + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t"
             + "\t".join(samples)]
    for contig in ("chr1", "2"):
        pos = 100
        for _ in range(rng.randint(150, 400)):
            pos += rng.choice((0, 0, 1, 3, 40, 40, 40))  # 0: another record at one position
            ref = rng.choice(("A", "C", "G", "T", "GT"))
            alts, span = _alts(rng, ref)
            info = f"END={pos + span}" if span is not None else "."
            keys = "GT:DP" if rng.random() > 0.05 else "DP"  # no GT at all
            cells = [
                f"{_call(rng, 1 + len(alts))}:{rng.randint(1, 50)}" if keys == "GT:DP"
                else str(rng.randint(1, 50))
                for _ in samples
            ]
            lines.append("\t".join([
                contig, str(pos), rng.choice((".", ".", f"rs{pos}", f"rs{pos % 7}")), ref,
                ",".join(alts), "30", rng.choice(("PASS", ".", "q10")), info, keys, *cells,
            ]))
    path.write_text("\n".join(lines) + "\n")


def _inputs(tmp_path: Path, seed: int) -> list[VcfInput]:
    """Two inputs of 1-3 samples each, at overlapping positions."""
    rng = random.Random(seed)
    out = []
    for i in range(2):
        samples = [f"S{i}x{j}" for j in range(rng.choice((1, 1, 2, 3)))]
        path = tmp_path / f"in{i}.vcf"
        _write_vcf(path, rng, samples)
        out.append(VcfInput(path))
    return out


def _blocks(records: list[ParsedRecord], rng: random.Random) -> list[list[ParsedRecord]]:
    """Blocks of random length (1 to 40 records, some of 1024), each on one contig."""
    out: list[list[ParsedRecord]] = []
    i = 0
    while i < len(records):
        size = 1024 if rng.random() < 0.1 else rng.randint(1, 40)
        block = records[i:i + size]
        block = [r for r in block if r.contig == block[0].contig]
        out.append(block)
        i += len(block)
    return out


def _rows(record: ParsedRecord) -> list[list[int]]:
    assert record.rows is not None
    return record.rows


def _aggregate(collector: StatsCollector) -> dict[str, tuple[object, ...]]:
    """The aggregate rows held (without taking them) as the read side sums them
    (`index_of_rows`): per contig, each ALT's counts, end and IDs, each site's counts."""
    rows = copy.deepcopy(collector).fednode_rows()
    contigs = np.asarray(rows.pop("contig"), dtype=object)
    columns = {k: np.asarray(v) for k, v in rows.items()}
    out: dict[str, tuple[object, ...]] = {}
    for contig in sorted(set(contigs.tolist())):
        index = index_of_rows({k: v[contigs == contig] for k, v in columns.items()}, None, contig)
        alleles = list(zip(index.pos.tolist(), [index.names[i] for i in index.ref],
                           [index.names[i] for i in index.alt], index.counts.tolist(),
                           index.end.tolist(), index.record_ids, strict=True))
        out[contig] = (alleles, index.site_pos.tolist(), index.site_counts.tolist())
    return out


def _state(collector: StatsCollector) -> tuple[object, ...]:
    return (_aggregate(collector), dict(collector.coverage.cols), collector._last_site)


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("seed", range(6))
def test_block_aggregate_matches_record_by_record(tmp_path: Path, seed: int, sign: int) -> None:
    block_wise, by_record = StatsCollector(sign=sign), StatsCollector(sign=sign)
    rng = random.Random(seed)
    for inp in _inputs(tmp_path, seed):
        records = list(inp.records())
        for block in _blocks(records, rng):
            rows = [_rows(r) for r in block]
            classes = block_wise._aggregate_block(block, rows, inp.samples)
            expected = []
            for r, row in zip(block, rows, strict=True):
                by_record._add_small(r.contig, r.pos, r.end, r.ref, r.alts, row,
                                     inp.samples, r.is_ref_block, r.ids)
                expected.append(genotype_classes_small(row, (r.ref, *r.alts)))
            assert classes == expected
            assert [list(c.items()) for c in classes] == [list(c.items()) for c in expected]
            assert _state(block_wise) == _state(by_record)


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("seed", range(4))
def test_allele_count_block_matches_record_by_record(
    tmp_path: Path, seed: int, sign: int
) -> None:
    block_wise, by_record = AlleleCountRows(sign=sign), AlleleCountRows(sign=sign)
    rng = random.Random(seed)
    for inp in _inputs(tmp_path, seed):
        for block in _blocks(list(inp.records()), rng):
            classes = [genotype_classes_small(_rows(r), (r.ref, *r.alts)) for r in block]
            block_wise.add_block(block, classes)
            for r, found in zip(block, classes, strict=True):
                by_record.add(r.contig, r.pos, r.ref, r.alts, r.filters, found)
            assert list(block_wise._counts.items()) == list(by_record._counts.items())
    assert block_wise.take() == by_record.take()


@pytest.mark.parametrize("seed", range(3))
def test_collector_blocks_match_record_by_record(tmp_path: Path, seed: int) -> None:
    """Through `StatsCollector.add_block` and `add`: the aggregate and `allele_count`."""
    block_wise, by_record = StatsCollector(), StatsCollector()
    rng = random.Random(seed)
    for inp in _inputs(tmp_path, seed):
        for block in _blocks(list(inp.records()), rng):
            block_wise.add_block(block, inp.samples)
            for r in block:
                by_record.add(contig=r.contig, pos=r.pos, end=r.end, ref=r.ref, alts=r.alts,
                              filters=r.filters, gt=r.gt, samples=inp.samples,
                              ref_block=r.is_ref_block, ids=r.ids, fmt=r.fmt, rows=r.rows)
    assert _state(block_wise) == _state(by_record)
    assert block_wise.allele_count.take() == by_record.allele_count.take()
