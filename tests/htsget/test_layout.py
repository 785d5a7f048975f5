"""Byte segments of bgzip-compressed text, where lines cross BGZF block boundaries and the
header shares a block with records: every region's file equals bcftools' answer, with no
partial or duplicated lines. Layouts are re-read when the file changes."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pysam
import pytest

from node.reads.bgzf import iter_blocks
from node.reads.cache import LayoutCache
from node.reads.layout import Inline, Layout, Query, Span, load_layout
from tests.htsget.conftest import require_tool, run

CONTIGS = {"1": 2_000_000, "2": 1_000_000}


def _vcf_text(n: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = ["##fileformat=VCFv4.3"]
    lines += [f"##contig=<ID={c},length={n_}>" for c, n_ in CONTIGS.items()]
    lines += ['##INFO=<ID=NOTE,Number=1,Type=String,Description="filler">']
    lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    for contig, length in CONTIGS.items():
        for pos in sorted(rng.sample(range(1, length), n)):
            note = "x" * rng.randrange(1, 120)  # varied line lengths: lines cross blocks
            lines.append(f"{contig}\t{pos}\t.\tA\tG\t50\tPASS\tNOTE={note}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def multi_block_vcf(tmp_path: Path) -> Path:
    plain = tmp_path / "multi.vcf"
    plain.write_text(_vcf_text(6000, seed=3))
    out = Path(pysam.tabix_index(str(plain), preset="vcf", force=True))
    return out


def materialise(layout: Layout, segments: list[Span | Inline], path: Path) -> bytes:
    data = bytearray()
    with layout.path.open("rb") as fh:
        for seg in segments:
            if isinstance(seg, Inline):
                data += seg.data
            else:
                fh.seek(seg.start)
                data += fh.read(seg.end - seg.start)
    data += layout.eof
    path.write_bytes(bytes(data))
    return bytes(data)


async def test_regions_of_multi_block_text(multi_block_vcf: Path, tmp_path: Path) -> None:
    bcftools = require_tool("bcftools")
    index = Path(str(multi_block_vcf) + ".tbi")
    layout = load_layout(multi_block_vcf, index, "VCF")
    with multi_block_vcf.open("rb") as fh:
        assert sum(1 for _ in iter_blocks(fh)) > 10  # lines cross many block boundaries
    rng = random.Random(5)
    queries = [Query("1", 0, 2_000_000), Query("2", 10, 11)]
    starts = [(c, s) for c in CONTIGS for s in rng.sample(range(CONTIGS[c] - 300_000), 6)]
    queries += [Query(c, s, s + rng.choice((100, 5000, 300_000))) for c, s in starts]
    for i, q in enumerate(queries):
        out = tmp_path / f"q{i}.vcf.gz"
        materialise(layout, list(layout.header) + layout.body([q]), out)
        region = f"{q.reference}:{q.start + 1}-{q.end}"
        got = (await run(bcftools, "view", "-H", str(out))).decode().splitlines()
        assert len(got) == len(set(got)), "a line was sent twice"
        await run(bcftools, "index", "-f", "-t", str(out))
        truth = await run(bcftools, "view", "-H", "-r", region, str(multi_block_vcf))
        assert await run(bcftools, "view", "-H", "-r", region, str(out)) == truth
    # Several regions at once: merged, in file order, each line once.
    out = tmp_path / "multi.vcf.gz"
    materialise(layout, list(layout.header) + layout.body(queries), out)
    got = (await run(bcftools, "view", "-H", str(out))).decode().splitlines()
    assert len(got) == len(set(got))
    source = (await run(bcftools, "view", "-H", str(multi_block_vcf))).decode().splitlines()
    kept = set(got)
    assert got == [line for line in source if line in kept]


def test_layout_cache_follows_file_changes(multi_block_vcf: Path, tmp_path: Path) -> None:
    index = Path(str(multi_block_vcf) + ".tbi")
    cache = LayoutCache()
    first = cache.get(multi_block_vcf, index, "VCF")
    assert cache.get(multi_block_vcf, index, "VCF") is first  # cached
    plain = tmp_path / "other.vcf"
    plain.write_text(_vcf_text(100, seed=9))
    replacement = Path(pysam.tabix_index(str(plain), preset="vcf", force=True))
    os.replace(replacement, multi_block_vcf)
    os.replace(str(replacement) + ".tbi", index)
    second = cache.get(multi_block_vcf, index, "VCF")
    assert second is not first and second.size == multi_block_vcf.stat().st_size
