"""The in-memory aggregate index against the MemoryStore oracle (gVCF blocks, replacement)."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from node.domain import AlleleKey
from node.store.memory import MemoryStore
from node.store.read.aggregate_index import _Coverage, _prefix
from node.store.tiledbvcf import TileDBVCFStore

pytestmark = pytest.mark.skipif(shutil.which("bgzip") is None, reason="htslib tools missing")
HEADER = [
    "##fileformat=VCFv4.2",
    "##contig=<ID=1,length=20000>",
    '##INFO=<ID=END,Number=1,Type=Integer,Description="End">',
    '##ALT=<ID=NON_REF,Description="any other allele">',
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
]


def _gvcf(path: Path, sample: str, rng: random.Random, sites: list[int]) -> Path:
    """Blocks up to 3 kb (several anchors each) between variant calls at `sites`."""
    rows, pos = [], 1
    for site in [*sites, 15_000]:
        while pos < site:
            end = min(site - 1, pos + rng.choice([5, 200, 1500, 3000]))
            if rng.random() < 0.8:
                rows.append(f"1\t{pos}\t.\tA\t<NON_REF>\t.\t.\tEND={end}\tGT\t0/0")
            pos = end + 1
        if site < 15_000:
            gt = rng.choice(["0/1", "1/1", "0/0", "./1"])
            rows.append(f"1\t{site}\t.\tA\tC,<NON_REF>\t.\t.\t.\tGT\t{gt}")
            pos = site + 1
    chrom = "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"])
    path.write_text("\n".join([*HEADER, f"{chrom}\tFORMAT\t{sample}", *rows]) + "\n")
    subprocess.run(["bgzip", "-f", str(path)], check=True)
    return Path(f"{path}.gz")


def _both(tmp_path: Path, rng: random.Random, sites: list[int], samples: list[str]
          ) -> tuple[TileDBVCFStore, MemoryStore]:
    """A TileDB store and the reference MemoryStore, each fed one gVCF per sample in turn."""
    tiledb_store, memory = TileDBVCFStore.create(str(tmp_path / "ds")), MemoryStore()
    for name in samples:
        path = _gvcf(tmp_path / f"{name}.vcf", name, rng, sites)
        tiledb_store.ingest([path])
        memory.ingest([path])
    return tiledb_store, memory


@pytest.mark.parametrize("seed", range(3))
def test_index_equals_memory_store_on_gvcf_blocks(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    sites = sorted(rng.sample(range(10, 14_000), 40))
    tiledb_store, memory = _both(tmp_path, rng, sites, ["G0", "G1", "G2"])
    keys = [AlleleKey("1", p - 1, "A", "C") for p in sites] + [AlleleKey("1", 5, "A", "G")]
    assert tiledb_store.allele_stats(keys) == memory.allele_stats(keys)
    # Replacing a sample writes negated rows; a reopened store sums them away.
    again = _gvcf(tmp_path / "G0b.vcf", "G0", rng, sites)
    tiledb_store.ingest([again], replace=True)
    memory.ingest([again], replace=True)
    reopened = TileDBVCFStore.open(tiledb_store.uri)
    assert tiledb_store.allele_stats(keys) == memory.allele_stats(keys)
    assert reopened.allele_stats(keys) == memory.allele_stats(keys)


def test_coverage_prefix_sums_equal_a_scan() -> None:
    rng = np.random.default_rng(3)
    start = rng.integers(0, 500, 200)
    end = start + rng.integers(0, 100, 200)
    values = rng.integers(-3, 5, (200, 2))
    by_start, by_end = np.argsort(start), np.argsort(end)
    cover = _Coverage(
        start[by_start], _prefix(values[by_start]), end[by_end], _prefix(values[by_end])
    )
    for p in range(0, 620, 7):
        inside = (start <= p) & (end >= p)
        assert cover.at(p) == tuple(int(x) for x in values[inside].sum(axis=0))


def test_warm_builds_every_contig_index_before_any_query(tmp_path: Path) -> None:
    rng = random.Random(7)
    sites = sorted(rng.sample(range(10, 14_000), 20))
    store, memory = _both(tmp_path, rng, sites, ["W0", "W1"])
    cold = TileDBVCFStore.open(store.uri)
    assert not cold.resident("1")  # nothing built until asked
    assert cold.warm() == ("1",)
    assert cold.resident("1") and cold.resident("chr1")
    keys = [AlleleKey("1", p - 1, "A", "C") for p in sites]
    assert cold.allele_stats(keys) == memory.allele_stats(keys)
