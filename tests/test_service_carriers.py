"""The variant search's genotype reads (node/service.py), on both stores.

- Entry-scoped variant queries (`/individuals/{id}/g_variants`, ...) keep the variants
  some of the entry's samples carry, read as genotype matrices once per run of nearby
  variants: truth is bcftools on the same file, with chunk and gap sizes small enough that
  every split is taken.
- A record page's records, read per run of nearby variants, equal one read per variant.
- Catalog samples the dataset has no genotypes for carry nothing."""

from __future__ import annotations

import random
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from node import service
from node.domain import Region, Variant
from node.store.base import VariantStore
from node.store.memory import MemoryStore
from node.store.tiledbvcf import TileDBVCFStore
from node.synth import generate_cohort

LENGTH = 60_000


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[str, ...]]:
    folder = tmp_path_factory.mktemp("carriers")
    info = generate_cohort(folder / "c.vcf.gz", samples=40, length=LENGTH, seed=7,
                           contigs=("1", "2"), missing_rate=0.05)
    return info.paths[0], info.samples


@pytest.fixture(scope="module", params=["tiledb", "memory"])
def store(request: pytest.FixtureRequest, cohort: tuple[Path, tuple[str, ...]],
          tmp_path_factory: pytest.TempPathFactory) -> VariantStore:
    path, _ = cohort
    if request.param == "memory":
        memory = MemoryStore(assembly="GRCh38")
        memory.ingest([path])
        return memory
    tiledb_store = TileDBVCFStore.create(str(tmp_path_factory.mktemp("ds") / "ds"))
    tiledb_store.ingest([path])
    return tiledb_store


def bcftools_carried(path: Path, samples: list[str]) -> list[tuple[str, int, str, str]]:
    """(contig, 0-based start, ref, alt) of every allele some of `samples` carries: the
    file split to one ALT per record by bcftools, so a carrier holds allele 1 (`.|1`
    included, which bcftools' GT="alt" leaves out)."""
    subset = subprocess.run(["bcftools", "view", "-Ou", "-s", ",".join(samples), str(path)],
                            check=True, capture_output=True).stdout
    split = subprocess.run(["bcftools", "norm", "-m-", "-Ou", "-"], input=subset,
                           check=True, capture_output=True).stdout
    text = subprocess.run(["bcftools", "query", "-f", "%CHROM\t%POS\t%REF\t%ALT\t[%GT,]\n",
                           "-"], input=split, check=True, capture_output=True).stdout.decode()
    out = []
    for line in text.splitlines():
        contig, pos, ref, alt, calls = line.split("\t")
        if "1" in re.split(r"[/|,]", calls):
            out.append((contig, int(pos) - 1, ref, alt))
    return out


@pytest.mark.parametrize("chunk,gap", [(1024, 100_000), (7, 100_000), (5, 40)])
@pytest.mark.parametrize("picked", [[3], [0, 17, 39], list(range(0, 40, 2))])
def test_carried_variants_match_bcftools(
    store: VariantStore, cohort: tuple[Path, tuple[str, ...]], chunk: int, gap: int,
    picked: list[int], monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, names = cohort
    samples = [names[i] for i in picked]
    monkeypatch.setattr(service, "_CARRIED_CHUNK", chunk)
    monkeypatch.setattr(service, "_CARRIED_GAP", gap)
    everything = (v for contig in ("1", "2")
                  for v in store.variants(Region(contig, 0, LENGTH + 1000)))
    got = [(v.contig, v.start, v.ref, v.alt)
           for v in service._carried_only(store, everything, samples)]
    expected = bcftools_carried(path, samples)
    assert sorted(got) == sorted(expected) and expected
    assert got == sorted(got, key=lambda k: (("1", "2").index(k[0]), k[1], k[2], k[3]))


@pytest.mark.parametrize("gap", [1_000, 0, 10**9])
def test_record_pages_read_per_run_equal_one_read_per_variant(
    store: VariantStore, gap: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page's records, read per run of nearby variants, are each variant's own records
    (one-site reads, whose calls the store tests check against bcftools)."""
    monkeypatch.setattr(service, "_PAGE_GAP", gap)
    variants = [v for contig in ("1", "2") for v in store.variants(Region(contig, 0, LENGTH))]
    rng = random.Random(gap)
    for size in (1, 3, 10, 25):
        page = sorted(rng.sample(variants, size), key=lambda v: (v.contig, v.start))
        got = service._page_records(store, page)
        assert got == {v.key: service.carriers(store, v, None) for v in page}


def test_catalog_samples_without_genotypes_carry_nothing(
    store: VariantStore, cohort: tuple[Path, tuple[str, ...]]
) -> None:
    """A catalog may describe samples the VCF lacks: they restrict nothing and match
    nothing, and are no reason to refuse the query."""
    path, names = cohort
    samples = [names[5], names[9]]

    def everything(s: VariantStore) -> Iterator[Variant]:
        return (v for contig in ("1", "2") for v in s.variants(Region(contig, 0, LENGTH)))

    assert service._genotyped(store, [*samples, "NOT_SEQUENCED"]) == sorted(samples)
    plain = service._matching(store, everything, None, samples, (0, 10))
    assert plain[0] == len(bcftools_carried(path, samples))
    assert service._genotyped(store, ["NOT_SEQUENCED"]) == []
    assert service._matching(store, everything, None, [], (0, 10))[0] == 0
