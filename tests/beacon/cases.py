"""caseLevelData across pages: the first page from a record response, the rest from
/g_variants/{id}?skip=N (docs/decisions.md: caseLevelData is capped per record)."""

from __future__ import annotations

from typing import Any

from node.beacon.render import MAX_CASES
from tests.beacon.schemas import validate

RESULTSETS = "framework/json/responses/beaconResultsetsResponse.json"
VARIANT_SCHEMA = "models/json/beacon-v2-default-model/genomicVariations/defaultSchema.json"


def truncated(result_set: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """variantInternalId → its `info.caseLevelData.truncated` entry."""
    info = result_set.get("info", {}).get("caseLevelData", {})
    return {t["variantInternalId"]: t for t in info.get("truncated", [])}


async def all_cases(client: Any, result_set: dict[str, Any], record: dict[str, Any]
                    ) -> list[dict[str, Any]]:
    """Every caseLevelData entry of `record`, following its next pages."""
    cases = list(record.get("caseLevelData", []))
    assert len(cases) <= MAX_CASES
    more = truncated(result_set).get(record["variantInternalId"])
    while more is not None:
        assert len(cases) % MAX_CASES == 0
        resp = await client.get(f"/api/{more['nextPage']}")
        assert resp.status == 200, await resp.text()
        doc = await resp.json()
        validate(doc, RESULTSETS)
        (rs,) = doc["response"]["resultSets"]
        (page,) = rs["results"]
        validate(page, VARIANT_SCHEMA)
        assert page["variantInternalId"] == record["variantInternalId"]
        cases += page.get("caseLevelData", [])
        assert 0 < len(page.get("caseLevelData", [])) <= MAX_CASES
        more = truncated(rs).get(record["variantInternalId"])
    if truncated(result_set).get(record["variantInternalId"]):
        assert len(cases) == truncated(result_set)[record["variantInternalId"]]["carriers"]
    return cases
