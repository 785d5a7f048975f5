"""Malformed input gets a Beacon error envelope with the right status, never a 500; limits
and the access policy hold. Every body is validated against the official schemas."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from node.config import DatasetSettings
from node.names import Granularity, SecurityLevel
from node.store.base import VariantStore
from tests.beacon.conftest import make_app
from tests.beacon.schemas import validate

RESP = "framework/json/responses/"
ERROR = RESP + "beaconErrorResponse.json"
OPEN38 = DatasetSettings(assembly="GRCh38", security_level=SecurityLevel.PUBLIC,
                         max_granularity={SecurityLevel.PUBLIC: Granularity.RECORD})


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path, synth_store: VariantStore) -> Any:
    app = make_app(tmp_path, {"synth": synth_store, "locked": synth_store},
                   {"synth": OPEN38, "locked": DatasetSettings(assembly="GRCh38")})
    return await aiohttp_client(app)


async def expect_error(resp: Any, status: int, words: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    validate(body, ERROR)
    assert body["error"]["errorCode"] == status
    assert words.lower() in body["error"]["errorMessage"].lower()
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    return body


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"referenceName": "1", "start": "abc", "alternateBases": "A"}, "start"),
        ({"referenceName": "1", "start": "5", "alternateBases": "XYZ"}, "alternateBases"),
        ({"requestedGranularity": "everything"}, "requestedGranularity"),
        ({"includeResultsetResponses": "SOME"}, "includeResultsetResponses"),
        ({"colour": "blue"}, "unknown"),
        ({"referenceName": "1"}, "together"),
        ({"referenceName": "1", "start": "100", "end": "50"}, "greater"),
        ({"referenceName": "1", "start": "1,2", "end": "5"}, "bracket"),
        ({"referenceName": "1", "start": "100"}, "alternateBases"),
        ({"referenceName": "1", "start": "1", "end": "9", "variantType": "BLOB"}, "variantType"),
        ({"referenceName": "NC_999999.1", "start": "1", "end": "9"}, "accession"),
        ({"referenceName": "1", "start": "-1", "end": "9"}, "start"),
        ({"referenceName": "1", "start": str(1 << 40), "end": str((1 << 40) + 1)}, "start"),
        ({"skip": "-3"}, "skip"),
        ({"testMode": "maybe"}, "testMode"),
        ({"mateName": "2"}, "not supported"),
    ],
)
async def test_bad_get_parameters(client: Any, params: dict[str, str], words: str) -> None:
    await expect_error(await client.get("/api/g_variants", params=params), 400, words)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "JSON"),
        (b"[1, 2]", "object"),
        (json.dumps({"query": {"requestedGranularity": "all"}}).encode(), "requestedGranularity"),
        (json.dumps({"query": {"colour": "blue"}}).encode(), "colour"),
        (json.dumps({"query": {"pagination": {"skip": -1}}}).encode(), "skip"),
        (json.dumps({"query": {"requestParameters": {"g_variant": [1]}}}).encode(), "g_variant"),
        (json.dumps({"query": {"filters": [{"id": "x", "operator": "~", "value": "1"}]}}).encode(),
         "operator"),
    ],
)
async def test_bad_post_bodies(client: Any, body: bytes, words: str) -> None:
    resp = await client.post("/api/g_variants", data=body,
                             headers={"Content-Type": "application/json"})
    await expect_error(resp, 400, words)


async def test_oversized_body_is_413(client: Any) -> None:
    body = json.dumps({"query": {"requestParameters": {"pad": "A" * 1_100_000}}})  # > 1 MiB
    resp = await client.post("/api/g_variants", data=io.BytesIO(body.encode()),
                             headers={"Content-Type": "application/json"})
    await expect_error(resp, 413, "larger")


async def test_unknown_dataset_and_route_and_method(client: Any) -> None:
    await expect_error(await client.get("/api/g_variants", params={"datasetIds": "nope"}),
                       404, "nope")
    await expect_error(await client.get("/api/nothing/here"), 404, "no such endpoint")
    await expect_error(await client.put("/api/g_variants"), 405, "not allowed")
    await expect_error(await client.get("/api/g_variants/not-an-id"), 400, "variant id")


async def test_error_meta_echoes_the_request(client: Any) -> None:
    resp = await client.get("/api/g_variants", params={
        "referenceName": "1", "start": "5", "end": "1", "requestedGranularity": "count"})
    body = await expect_error(resp, 400, "greater")
    assert body["meta"]["receivedRequestSummary"]["requestedGranularity"] == "boolean"


async def test_page_size_is_bounded(client: Any) -> None:
    resp = await client.get("/api/g_variants", params={
        "requestedGranularity": "record", "limit": "100000", "datasetIds": "synth"})
    doc = await resp.json()
    validate(doc, RESP + "beaconResultsetsResponse.json")
    assert doc["meta"]["receivedRequestSummary"]["pagination"]["limit"] == 100
    assert all(len(rs["results"]) <= 100 for rs in doc["response"]["resultSets"])


async def test_controlled_dataset_answers_boolean_only(client: Any) -> None:
    params = {"referenceName": "1", "start": "1", "end": "300000000",
              "requestedGranularity": "record", "includeResultsetResponses": "ALL"}
    locked = await (await client.get("/api/g_variants",
                                     params={**params, "datasetIds": "locked"})).json()
    validate(locked, RESP + "beaconBooleanResponse.json")
    assert locked["meta"]["returnedGranularity"] == "boolean"
    assert locked["responseSummary"] == {"exists": True}
    both = await (await client.get("/api/g_variants", params=params)).json()
    validate(both, RESP + "beaconResultsetsResponse.json")
    assert [rs["id"] for rs in both["response"]["resultSets"]] == ["synth"]
    assert both["info"]["omittedDatasets"]["datasets"] == {"locked": "boolean"}


async def test_unknown_filter_is_reported_not_500(client: Any) -> None:
    resp = await client.get("/api/g_variants", params={
        "filters": "NOPE:0001", "requestedGranularity": "count"})
    assert resp.status == 200
    doc = await resp.json()
    validate(doc, RESP + "beaconCountResponse.json")
    assert doc["info"]["warnings"]["unknownFilters"] == ["NOPE:0001"]
    assert doc["responseSummary"]["exists"] is False


async def test_bad_token_is_401_envelope_but_test_mode_answers(client: Any) -> None:
    headers = {"Authorization": "Bearer not-a-jwt"}
    params = {"referenceName": "1", "start": "1", "end": "300000000"}
    resp = await client.get("/api/g_variants", params=params, headers=headers)
    await expect_error(resp, 401, "")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    test = await client.get("/api/g_variants", params={**params, "testMode": "true"},
                            headers=headers)
    assert test.status == 200
    validate(await test.json(), RESP + "beaconBooleanResponse.json")
