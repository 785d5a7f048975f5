"""Reads behind two Beacon forms that touch genotypes, beside the reads they replaced.

`python -m bench.entry_bench VCF [--variants N] [--runs R]` ingests VCF into a fresh store,
then times, as medians of R runs:

- entry-scoped variant queries (`/individuals/{id}/g_variants`): which of the first N
  variants one sample carries, by genotype matrices read once per run of nearby variants
  (`service._carried_only`), against one `records()` read per variant (the former code);
- a record page of 10 variants spread over the contig (a filter matching few variants):
  records read per run of nearby variants (`service._page_records`), against one read over
  the page's whole span (the former code).

Both sides must give the same answers; the bench checks that before timing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from node import service
from node.domain import AlleleKey, Record, Region, Variant
from node.store.base import VariantStore
from node.store.tiledbvcf import TileDBVCFStore


def per_variant_carried(store: VariantStore, variants: list[Variant], sample: str) -> list[Variant]:
    """The former check: one one-site `records()` read per variant."""
    out = []
    for v in variants:
        for rec in service.carriers(store, v, [sample]):
            index = rec.alts.index(v.alt) + 1
            if any(index in call.alleles for call in rec.calls):
                out.append(v)
                break
    return out


def span_page(store: VariantStore, page: list[Variant]) -> dict[AlleleKey, tuple[Record, ...]]:
    """The former page read: every record between the page's first and last variant."""
    starts = [v.start for v in page]
    return service.records_of(store, page, [Region(page[0].contig, min(starts), max(starts) + 1)])


def _median(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(vcf: Path, n_variants: int, runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="fednode-entry-") as tmp:
        store = TileDBVCFStore.create(f"{tmp}/ds", assembly="GRCh38")
        store.ingest([vcf])
        contig = store.contigs()[0]
        every = list(store.variants(Region(contig, 0, 2**31)))
        variants = every[:n_variants]
        sample = store.samples[len(store.samples) // 2]
        print(f"{vcf.name}: {len(store.samples)} samples, {len(every)} variants on {contig}; "
              f"medians of {runs} runs")

        new = list(service._carried_only(store, iter(variants), [sample]))
        assert new == per_variant_carried(store, variants, sample)
        fast = _median(lambda: list(service._carried_only(store, iter(variants), [sample])),
                       runs)
        slow = _median(lambda: per_variant_carried(store, variants, sample), runs)
        print(f"  entry-scoped, {len(variants)} variants, 1 sample ({len(new)} carried): "
              f"{fast:.3f} s per run of variants vs {slow:.3f} s per variant: "
              f"{slow / fast:.0f}x faster")

        page = every[:: max(1, len(every) // 10)][:10]
        assert service._page_records(store, page) == span_page(store, page)
        fast = _median(lambda: service._page_records(store, page), runs)
        slow = _median(lambda: span_page(store, page), runs)
        print(f"  record page of 10 variants over {page[-1].start - page[0].start:,} bp: "
              f"{fast:.3f} s per run of variants vs {slow:.3f} s over the span: "
              f"{slow / fast:.0f}x faster")
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.entry_bench", description=__doc__)
    parser.add_argument("vcf", type=Path)
    parser.add_argument("--variants", type=int, default=600)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    run(args.vcf, args.variants, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
