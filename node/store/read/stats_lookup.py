"""Allele statistics of datasets without a fednode aggregate (TileDB-VCF wrote them).

fednode answers with its own semantics (bcftools `+fill-tags` on a merge of the inputs, see
`stats`) on every dataset. TileDB-VCF's `variant_stats` array cannot give them:

- rows are per (position, sample, end) locus, and TileDB-VCF adds up the allele counts of
  every record of one sample at that locus (`VariantStats::process_v2/_v3`: the locus key
  changes only with contig, pos, sample or end): at a site with two records (a multi-allelic
  split with `bcftools norm -m-`), each sample counts twice in AN (196 for 100 called
  alleles); version 2 rows have no sample to undo it with;
- `an` is the call's ploidy (`./1` gives an = 2 for one called allele), and v3 `nr` rows
  are `<NON_REF>` blocks only, keyed on the first allele of the call.

So fednode's statistics of such a dataset come from `data`, the cells its aggregate is
built from (`variant_scan.data_stats_lookup`, `aggregate_build`).

`variant_stats_lookup` is TileDB-VCF's own answer from `variant_stats` (both versions): for
an allele, AC = the sum of `ac` over its rows at the position and AN = the sum of `ac` over
every row there but the `nr` ones (what TileDB-VCF's reader returns, checked against
`vcfstats vs` on its own datasets). Version 2: dimensions (contig, pos), alleles "REF,ALT"
as in the VCF. Version 3: dimensions (contig, pos, sample, end), attribute `max_length`,
alleles normalised (one shared trailing base trimmed), `<NON_REF>` blocks keyed "nr".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import tiledb

from node.store.ingest.vs_rows import normalise_stats_allele

__all__ = ["Point", "TileDBVCFFrequency", "point_ranges", "text_of", "variant_stats_lookup"]

Point = tuple[int, str, str]  # pos, ref, alt


def point_ranges(positions: Sequence[int], *, before: int = 0) -> list[slice]:
    """Sorted positions as merged inclusive ranges [p - before, p] for a multi-range query."""
    out: list[list[int]] = []
    for p in sorted(set(positions)):
        lo = max(0, p - before)
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = p
        else:
            out.append([lo, p])
    return [slice(lo, hi) for lo, hi in out]


@dataclass(frozen=True, slots=True)
class TileDBVCFFrequency:
    """TileDB-VCF's own answer for one allele (its variant-stats reader, `vcfstats vs`)."""

    ac: int
    an: int

    @property
    def af(self) -> float:
        return self.ac / self.an if self.an else 0.0


def variant_stats_lookup(
    array: tiledb.Array, contig: str, points: Sequence[Point]
) -> list[TileDBVCFFrequency | None]:
    """What TileDB-VCF reads from `variant_stats` (either version) for each allele."""
    if not points:
        return []
    version = int(array.meta.get("version", 0))
    ranges = point_ranges([p for p, _, _ in points])
    rows = array.query(attrs=["allele", "ac"], dims=["pos"]).multi_index[[contig], ranges]
    ac_of: dict[tuple[int, str], int] = defaultdict(int)
    an_of: dict[int, int] = defaultdict(int)
    for pos, allele, ac in zip(rows["pos"].tolist(), rows["allele"], rows["ac"].tolist(),
                               strict=True):  # fmt: skip
        key = text_of(allele)
        ac_of[(pos, key)] += ac
        if key != "nr":
            an_of[pos] += ac
    out: list[TileDBVCFFrequency | None] = []
    for pos, ref, alt in points:
        key = normalise_stats_allele(ref, alt) if version >= 3 else f"{ref},{alt}"
        ac = ac_of.get((pos, key))
        out.append(None if ac is None else TileDBVCFFrequency(ac, an_of[pos]))
    return out


def text_of(value: object) -> str:
    text = value.decode() if isinstance(value, bytes) else str(value)
    return text.rstrip("\0")
