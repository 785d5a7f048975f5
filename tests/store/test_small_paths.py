"""Records of a few samples take plain-Python paths (parsing, GT blobs, statistics, the
packed genotypes), because numpy's fixed cost per call is most of a one-sample record's
cost. Those paths must store what the numpy paths store: the same random inputs are
ingested with the small-sample bounds in force and with every bound set below zero (all
records through numpy), and the datasets compared cell by cell.

The numpy paths are the ones checked against TileDB-VCF and bcftools elsewhere
(test_tiledbvcf_stats.py, test_tiledbvcf_compat.py), so this is a second implementation
checked against the first on inputs chosen to reach every branch: ploidy 1-3 and mixed,
missing and partly missing calls, phase, multi-allelic and symbolic ALTs, gVCF blocks,
several records at one position, FORMAT fields of every type, INFO flags, lists and
missing values. The few-sample records also reach the statistics in blocks of records
(`IngestWriter.BLOCK_CELLS`, `StatsCollector.add_block`), checked here against the numpy
paths' record-by-record `add`.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from node.store.ingest import sample_stats_rows, stats, vcfio, vs_rows
from node.store.ingest.ingest_writer import IngestWriter
from node.store.tiledbvcf import TileDBVCFStore
from tests.store.dataset_cells import dataset_cells

_HEADER = """##fileformat=VCFv4.2
##contig=<ID=1,length=1000000>
##contig=<ID=2,length=1000000>
##FILTER=<ID=q10,Description="Low quality">
##INFO=<ID=DP,Number=1,Type=Integer,Description="d">
##INFO=<ID=AF,Number=A,Type=Float,Description="f">
##INFO=<ID=DB,Number=0,Type=Flag,Description="b">
##INFO=<ID=NOTE,Number=1,Type=String,Description="s">
##INFO=<ID=END,Number=1,Type=Integer,Description="e">
##FORMAT=<ID=GT,Number=1,Type=String,Description="g">
##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="q">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="d">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="a">
##FORMAT=<ID=GL,Number=G,Type=Float,Description="l">
##FORMAT=<ID=FT,Number=1,Type=String,Description="t">
"""


def _call(rng: random.Random, n_alleles: int) -> str:
    ploidy = rng.choice((1, 2, 2, 2, 3))
    alleles = [
        "." if rng.random() < 0.15 else str(rng.randrange(n_alleles)) for _ in range(ploidy)
    ]
    return rng.choice("/|").join(alleles)


def _int(rng: random.Random) -> str:
    return "." if rng.random() < 0.2 else str(rng.randint(-5, 90))


def _write_vcf(path: Path, seed: int) -> None:
    rng = random.Random(seed)
    samples = [f"S{rng.randint(0, 99):02d}x{i}" for i in range(rng.randint(1, 3))]
    lines = [_HEADER + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t"
             + "\t".join(samples)]
    for contig in ("1", "2"):
        pos = 100
        for _ in range(150):
            pos += rng.choice((0, 0, 1, 3, 40))  # 0: another record at the same position
            ref = rng.choice(("A", "C", "GT", "TAC"))
            kind = rng.random()
            if kind < 0.15:  # a gVCF reference block
                alts, end = ["<NON_REF>"], pos + rng.randint(0, 2500)
            else:
                alts = rng.sample(["G", "T", "A", "CC", "*", "<DEL>"], rng.randint(1, 3))
                alts = [a for a in alts if a != ref] or ["G" if ref != "G" else "T"]
                end = None
            info = []
            if rng.random() < 0.7:
                info.append(f"DP={rng.randint(0, 500)}")
            if rng.random() < 0.3:
                info.append("AF=" + ",".join(rng.choice((".", "0.25", "1")) for _ in alts))
            if rng.random() < 0.2:
                info.append("DB")
            if rng.random() < 0.2:
                info.append("NOTE=x" + str(rng.randint(0, 9)))
            if end is not None:
                info.append(f"END={end}")
            keys = ["GT", *rng.sample(["GQ", "DP", "AD", "GL", "FT"], rng.randint(0, 4))]
            if rng.random() < 0.05:
                keys = keys[1:] or ["GQ"]  # no GT at all
            n = 1 + len(alts)
            cells = []
            for _ in samples:
                values = {
                    "GT": _call(rng, n),
                    "GQ": _int(rng),
                    "DP": _int(rng),
                    "AD": ",".join(_int(rng) for _ in range(n)),
                    "GL": ",".join(rng.choice((".", "-0.5", "-3.25")) for _ in range(3)),
                    "FT": rng.choice(("PASS", "lowq", ".")),
                }
                cells.append(":".join(values[k] for k in keys))
            lines.append("\t".join([
                contig, str(pos), rng.choice((".", f"rs{pos}")), ref, ",".join(alts),
                rng.choice((".", "30", "12.5")), rng.choice(("PASS", ".", "q10", "q10;LowGQ")),
                ";".join(info) or ".", ":".join(keys), *cells,
            ]))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("block", [1024, 7])
@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_few_sample_paths_store_what_the_numpy_paths_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, version: int, block: int
) -> None:
    """`block`: cells handed to the statistics at once (7: blocks of 2-7 records end inside runs of
    records at one position and inside gVCF blocks)."""
    vcf = tmp_path / "in.vcf"
    _write_vcf(vcf, seed * 10 + version)
    small = TileDBVCFStore.create(str(tmp_path / "small"), variant_stats_version=version)
    monkeypatch.setattr(IngestWriter, "BLOCK_CELLS", block)
    small.ingest([vcf])
    for module, name in (
        (vcfio, "SMALL_RECORD"),
        (vcfio, "_SMALL_GT"),
        (stats, "SMALL"),
        (vs_rows, "SMALL"),
        (sample_stats_rows, "SMALL"),
    ):
        assert getattr(module, name) >= 1  # the bound in force reaches one-sample records
        monkeypatch.setattr(module, name, -1)
    numpy = TileDBVCFStore.create(str(tmp_path / "numpy"), variant_stats_version=version)
    numpy.ingest([vcf])
    assert dataset_cells(tmp_path / "small") == dataset_cells(tmp_path / "numpy")
