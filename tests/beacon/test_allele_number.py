"""Issue 17 on one node's Beacon: a record-level "no" to an exact allele says over how
many called alleles (AC 0 and the position's AN, reference blocks included), and null
where none of the dataset's samples is called; a "yes" carries the same AN in its
frequencyInPopulations. Truth: the node's samples in `bcftools merge` (`--gvcf`) of a
cohort split by sites, through `+fill-tags`."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from node.store.memory import MemoryStore
from tests.beacon.conftest import OPEN, make_app
from tests.beacon.test_g_variants import check_schema
from tests.peer import cohort_split


def _node_truth(split: cohort_split.Split, node: Path, out: Path) -> dict[Any, tuple[int, int]]:
    """(AC, AN) of every allele of the whole cohort over `node`'s samples only."""
    samples = subprocess.run(["bcftools", "query", "-l", str(node)], check=True,
                             capture_output=True, text=True).stdout.split()
    subprocess.run(["bcftools", "view", "-s", ",".join(samples), "-Oz", "-o", str(out),
                    str(split.merged)], check=True)
    return cohort_split.fill_tags(out)


@pytest.mark.parametrize("blocks", [False, True])
async def test_a_no_says_over_how_many_alleles(
    aiohttp_client: Any, tmp_path: Path, blocks: bool
) -> None:
    split = cohort_split.by_sites(tmp_path, blocks=blocks)
    node = split.files[0]
    store = MemoryStore(assembly="GRCh37")
    store.ingest([node])
    client = await aiohttp_client(make_app(tmp_path / "home", {"n0": store}, {"n0": OPEN}))
    truth = _node_truth(split, node, tmp_path / "node0.vcf.gz")
    absent = [k for k, (ac, _) in truth.items() if ac == 0]
    held = [k for k, (ac, _) in truth.items() if ac > 0]
    uncalled = [k for k in absent if truth[k][1] == 0]
    # Without blocks the node is called only where it has records; with them, everywhere.
    assert len(absent) >= 100 and len(held) >= 100
    assert (len(uncalled) >= 20) if not blocks else (len(uncalled) < len(absent) // 10)
    for key in absent[::7] + uncalled[::5] + held[::25]:
        ac, an = truth[key]
        params = {"referenceName": key.contig, "start": str(key.start),
                  "referenceBases": key.ref, "alternateBases": key.alt,
                  "requestedGranularity": "record", "includeResultsetResponses": "ALL"}
        reply = await client.get("/api/g_variants", params=params)
        assert reply.status == 200
        doc = await reply.json()
        check_schema(doc)
        (found,) = doc["response"]["resultSets"]
        assert found["exists"] == (ac > 0), key
        if ac:
            (record,) = found["results"]
            (freq,) = record["frequencyInPopulations"][0]["frequencies"]
            assert (freq["alleleCount"], freq["alleleNumber"]) == (ac, an), key
            continue
        want = {"alleleCount": 0, "alleleNumber": an or None,
                "alleleFrequency": 0.0 if an else None}
        assert found["info"]["alleleFrequency"] == want, key
