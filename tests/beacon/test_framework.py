"""Framework endpoints validated against the official Beacon v2 schemas."""

from __future__ import annotations

from typing import Any

import pytest

from tests.beacon.schemas import validate

RESP = "framework/json/responses/"


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        ("/api", "beaconInfoResponse.json"),
        ("/api/info", "beaconInfoResponse.json"),
        ("/api/service-info", "ga4gh-service-info-1-0-0-schema.json"),
        ("/api/configuration", "beaconConfigurationResponse.json"),
        ("/api/map", "beaconMapResponse.json"),
        ("/api/entry_types", "beaconEntryTypesResponse.json"),
        ("/api/filtering_terms", "beaconFilteringTermsResponse.json"),
    ],
)
async def test_informational_endpoints_match_schemas(
    tg_client: Any, path: str, schema: str
) -> None:
    resp = await tg_client.get(path)
    assert resp.status == 200
    validate(await resp.json(), RESP + schema)


async def test_service_info_type_is_beacon(tg_client: Any) -> None:
    doc = await (await tg_client.get("/api/service-info")).json()
    assert (doc["type"]["group"], doc["type"]["artifact"]) == ("org.ga4gh", "beacon")


async def test_map_urls_are_all_served(tg_client: Any) -> None:
    """Every URL /map declares answers (with a real id where the URL needs one)."""
    doc = await (await tg_client.get("/api/map")).json()
    base = str(tg_client.make_url("/api"))
    urls = []
    for endpoint_set in doc["response"]["endpointSets"].values():
        urls.append(endpoint_set["rootUrl"])
        urls.append(endpoint_set["singleEntryUrl"])
        urls += [e["url"] for e in endpoint_set["endpoints"].values()]
    assert len(urls) > 20
    for url in urls:
        assert url.startswith(base)
        path = url[len(base) - len("/api"):].replace("{id}", "chr1_10177_A_AC")
        resp = await tg_client.get(path)
        assert resp.status in (200, 404), (path, resp.status)
        body = await resp.json()
        if resp.status == 404:
            # Metadata endpoints without a catalog: a Beacon error, never a bare 404.
            validate(body, RESP + "beaconErrorResponse.json")
        else:
            assert "responseSummary" in body or "response" in body


async def test_unknown_route_is_beacon_404(tg_client: Any) -> None:
    resp = await tg_client.get("/api/no_such_thing")
    assert resp.status == 404
    body = await resp.json()
    validate(body, RESP + "beaconErrorResponse.json")
    assert body["error"]["errorCode"] == 404


async def test_openapi_lists_every_map_endpoint(tg_client: Any) -> None:
    spec = await (await tg_client.get("/api/openapi.json")).json()
    doc = await (await tg_client.get("/api/map")).json()
    base = str(tg_client.make_url("/api"))
    for endpoint_set in doc["response"]["endpointSets"].values():
        for url in [endpoint_set["rootUrl"], endpoint_set["singleEntryUrl"]] + [
            e["url"] for e in endpoint_set["endpoints"].values()
        ]:
            assert url[len(base):] in spec["paths"], url
    # Query operations declare every status a client's query can be answered with.
    from node.errors import NodeError

    statuses = {str(c.http_status) for c in _subclasses(NodeError)} - {"409"}  # 409: ingest
    queries = [op for path in spec["paths"].values() for op in path.values()
               if "400" in op["responses"]]
    assert len(queries) > 20
    for operation in queries:
        assert statuses <= set(operation["responses"]), statuses - set(operation["responses"])


def _subclasses(cls: type) -> set[type]:
    out = set(cls.__subclasses__())
    for sub in list(out):
        out |= _subclasses(sub)
    return out
