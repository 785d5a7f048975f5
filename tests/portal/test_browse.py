"""The genome browser page: igv.js, served by the node, draws a region of the demo with the
store's variants and a sample's reads streamed through htsget. What igv.js loaded, read
from its own API, is checked against bcftools and samtools on the demo's inputs; a
screenshot is kept as a test artifact."""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp.test_utils import TestServer

from node.demo import DEMO_DATASET
from tests.htsget.conftest import require_tool, run
from tests.portal.conftest import browser_for

CHROM, START, END = "1", 20_001, 21_000  # 1-based, inclusive
LOCUS = f"{CHROM}:{START}-{END}"
READS = "SYN00000"
# Features igv.js loaded for each track, as "<name>\t<chrom>\t<1-based pos>\t<read name>".
FEATURES = """(async () => {
  const out = {};
  for (const track of window.portalBrowser.findTracks(
      (t) => t.type === "alignment" || t.type === "variant")) {
    const features = [];
    for (const vp of track.trackView.viewports) {
      await vp.loadFeatures();
      const cached = vp.cachedFeatures;
      if (!cached) continue;
      if (track.type === "alignment") {
        cached.allAlignments().forEach(
          (a) => features.push(`${a.chr}\\t${a.start + 1}\\t${a.readName}`));
      } else {
        cached.forEach((v) => features.push(`${v.chr}\\t${v.pos}`));
      }
    }
    out[track.name] = features;
  }
  return out;
})()"""


def artifacts_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("FEDNODE_ARTIFACTS", tmp_path / "artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def test_browse_shows_variants_and_reads(
    demo_home: Path, demo_node: TestServer, tmp_path: Path
) -> None:
    bcftools, samtools = require_tool("bcftools"), require_tool("samtools")
    shot = artifacts_dir(tmp_path) / "portal-browse.png"
    out = await browser_for(demo_node, tmp_path).run([
        {"do": "goto", "path": "/browse"},
        {"do": "wait", "selector": "form[data-ready]", "state": "attached"},
        {"do": "select", "selector": "#b-dataset", "value": DEMO_DATASET},
        {"do": "fill", "selector": "#b-locus", "value": LOCUS},
        {"do": "press", "selector": "#b-locus", "key": "Enter"},
        {"do": "wait", "selector": "#igv[data-loaded]", "state": "attached"},
        {"do": "eval", "as": "features", "expression": FEATURES},
        {"do": "screenshot", "path": str(shot)},
    ])
    features = out["results"]["features"]
    assert shot.stat().st_size > 0

    variants = {f for name, fs in features.items() if name.endswith(": variants") for f in fs}
    groups = sorted(str(p) for p in (demo_home / "inputs").glob("demo.g*.vcf.gz"))
    merged = await run(bcftools, "merge", "-r", LOCUS, "-Ou", *groups)
    sites = await _query(bcftools, merged)
    in_locus = {v for v in variants if START <= int(v.split("\t")[1]) <= END}
    assert sites and in_locus == sites

    reads = features[f"{READS} (reads)"]
    bam = str(demo_home / "reads-data" / f"{READS}.bam")
    truth = {_read(line) for line in (await run(samtools, "view", "-F", "0x904", bam, LOCUS)
                                      ).decode().splitlines()}
    loaded = set(reads)
    on_contig = {_read(line) for line in (await run(samtools, "view", bam, CHROM)
                                          ).decode().splitlines()}
    assert truth and truth <= loaded <= on_contig


async def _query(bcftools: str, bcf: bytes) -> set[str]:
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        bcftools, "query", "-f", "%CHROM\t%POS\n", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate(bcf)
    assert proc.returncode == 0
    return set(out.decode().splitlines())


def _read(sam_line: str) -> str:
    name, _, chrom, pos = sam_line.split("\t")[:4]
    return f"{chrom}\t{pos}\t{name}"
