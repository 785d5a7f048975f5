"""caseLevelData is capped per record (MAX_CASES) and paged through /g_variants/{id}?skip=N:
the pages of a common allele hold exactly its bcftools carriers, each once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from node.beacon.render import MAX_CASES
from tests.beacon.cases import all_cases, truncated
from tests.beacon.test_g_variants import check_schema, get
from tests.beacon.truth import carriers, indexed_copy


@pytest.fixture(scope="module")
def tg_indexed(tg_vcf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return indexed_copy(tg_vcf, tmp_path_factory.mktemp("truth") / "tg.vcf.gz")


async def test_common_allele_carriers_are_paged_exactly(tg_client: Any, tg_indexed: Path) -> None:
    truth = carriers(tg_indexed, 10177, "A", "AC")
    assert len(truth) > 10 * MAX_CASES  # a common allele: the cap matters
    doc = await get(tg_client, referenceName="1", start=10176, referenceBases="A",
                    alternateBases="AC", requestedGranularity="record")
    (rs,) = doc["response"]["resultSets"]
    (record,) = rs["results"]
    assert len(record["caseLevelData"]) == MAX_CASES
    more = truncated(rs)["chr1_10177_A_AC"]
    assert more["carriers"] == len(truth)
    assert more["nextPage"] == (
        f"g_variants/chr1_10177_A_AC?requestedGranularity=record&skip={MAX_CASES}")
    cases = await all_cases(tg_client, rs, record)
    ids = [c["biosampleId"] for c in cases]
    assert len(ids) == len(set(ids)) and set(ids) == set(truth)


async def test_page_past_the_end_keeps_the_record_without_cases(tg_client: Any) -> None:
    resp = await tg_client.get("/api/g_variants/chr1_10177_A_AC",
                               params={"requestedGranularity": "record", "skip": "100000"})
    doc = await resp.json()
    check_schema(doc)
    (rs,) = doc["response"]["resultSets"]
    (record,) = rs["results"]
    assert "caseLevelData" not in record and "info" not in rs
    assert doc["meta"]["receivedRequestSummary"]["pagination"]["skip"] == 100000


async def test_rare_allele_is_not_truncated(tg_client: Any, tg_indexed: Path) -> None:
    doc = await get(tg_client, referenceName="1", start=10234, referenceBases="T",
                    alternateBases="TA", requestedGranularity="record")
    (rs,) = doc["response"]["resultSets"]
    (record,) = rs["results"]
    assert "info" not in rs
    truth = carriers(tg_indexed, 10235, "T", "TA")
    assert {c["biosampleId"] for c in record["caseLevelData"]} == set(truth)
