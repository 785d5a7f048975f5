"""Block facts cached per file, and BAM regions cut from the index, against samtools.

The facts a ticket keeps about a block (its extent, where records start) must give the
same answers as walking the decompressed block; a ticket computed from cached facts alone
must equal one computed from the file; and whatever the index query drops (chunks right of
the region, chunks joined inside one block), every record samtools finds in the region is
still in the downloaded file, once.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from node.reads.bgzf import iter_blocks
from node.reads.blocks import BlockCache, BlockFacts, BlockMiss, records_reach
from node.reads.layout import FileFormat, Query, load_layout
from tests.htsget.conftest import require_tool, run
from tests.htsget.test_layout import materialise

BAM = "bam/htsnexus_test_NA12878.bam"
SPANS = {"11": (4_999_000, 5_101_000), "20": (5_999_000, 6_101_000)}


@pytest.fixture
def straddling_bam(testdata: Path, tmp_path: Path) -> Path:
    """The test BAM re-compressed by bgzip: records now cross block boundaries."""
    bgzip = require_tool("bgzip")
    samtools = require_tool("samtools")
    raw = subprocess.run([bgzip, "-dc", str(testdata / BAM)], check=True, capture_output=True)
    out = tmp_path / "straddling.bam"
    with out.open("wb") as fh:
        subprocess.run([bgzip, "-c"], input=raw.stdout, stdout=fh, check=True)
    subprocess.run([samtools, "index", str(out)], check=True)
    return out


def _regions(n: int, seed: int) -> list[Query]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ref = rng.choice(sorted(SPANS))
        lo, hi = SPANS[ref]
        start = rng.randrange(lo, hi)
        out.append(Query(ref, start, start + rng.choice((1, 150, 2_000, 30_000))))
    return out


@pytest.mark.parametrize(
    ("rel", "fmt"),
    [
        (BAM, "BAM"),
        ("bcf/sample1-bcbio-cancer.bcf", "BCF"),
        ("vcf/sample1-bcbio-cancer.vcf.gz", "VCF"),
    ],
)
def test_facts_agree_with_walking_the_block(testdata: Path, rel: str, fmt: FileFormat) -> None:
    rng = random.Random(1)
    with (testdata / rel).open("rb") as fh:
        blocks = list(iter_blocks(fh))
    for block, data in blocks[:12]:
        facts = BlockFacts.of(fmt, block, data)
        assert facts.block == block and facts.length == len(data)
        points = sorted({0, len(data), *rng.sample(range(len(data) + 1), min(25, len(data)))})
        for pos in [*points, *facts.chain[:12]]:
            for target in [*points, *facts.chain[:12]]:
                known = facts.reaches(fmt, pos, target)
                if known is not None:
                    assert known == records_reach(fmt, data, pos, target), (pos, target)
        if fmt != "VCF":  # every position on the chain is answered from the facts
            assert all(facts.reaches(fmt, p, len(data)) is not None for p in facts.chain)


def test_cached_ticket_equals_ticket_from_file(testdata: Path) -> None:
    source = testdata / BAM
    layout = load_layout(source, Path(str(source) + ".bai"), "BAM")
    queries = _regions(30, seed=2)
    with pytest.raises(BlockMiss):
        layout.body(queries[:1], max_reads=0)  # nothing known yet: refuses to read the file
    from_file = [layout.body([q]) for q in queries]
    assert len(layout.blocks) > 0
    assert [layout.body([q], max_reads=0) for q in queries] == from_file


@pytest.mark.parametrize("which", ["samtools", "bgzip"])
async def test_bam_regions_equal_samtools(
    testdata: Path, straddling_bam: Path, tmp_path: Path, which: str
) -> None:
    samtools = require_tool("samtools")
    source = testdata / BAM if which == "samtools" else straddling_bam
    layout = load_layout(source, Path(str(source) + ".bai"), "BAM")
    queries = _regions(12, seed=3 if which == "samtools" else 4)
    for i, q in enumerate([*queries, queries]):
        batch = q if isinstance(q, list) else [q]
        out = tmp_path / f"q{i}.bam"
        materialise(layout, list(layout.header) + layout.body(batch), out)
        got = (await run(samtools, "view", str(out))).decode().splitlines()
        assert len(got) == len(set(got)), "a record was sent twice"
        await run(samtools, "index", str(out))
        for r in batch:
            region = f"{r.reference}:{r.start + 1}-{r.end}"
            truth = await run(samtools, "view", str(source), region)
            assert await run(samtools, "view", str(out), region) == truth, region


def test_block_cache_stays_within_its_budget(testdata: Path) -> None:
    with (testdata / BAM).open("rb") as fh:
        facts = [BlockFacts.of("BAM", block, data) for block, data in iter_blocks(fh)][:20]
    one = 128 + 4 * len(facts[0].chain)
    cache = BlockCache(max_bytes=3 * one)
    for f in facts:
        cache.put(f.block.offset, f)
    assert 1 <= len(cache) <= 4
    assert cache.get(facts[-1].block.offset) is facts[-1]  # the most recent stays
    assert cache.get(facts[0].block.offset) is None  # the oldest went first
