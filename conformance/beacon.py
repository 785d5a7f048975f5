"""Beacon v2 conformance: every endpoint /map declares, GET and POST, at every
granularity, error envelopes, and schema validity of responses and records against the
official v2.1.1 schemas (offline: registered under their published URIs)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7, DRAFT202012

from conformance import Context, register

BASE = "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/"
VRS = "https://w3id.org/ga4gh/schema/vrs/1.3/vrs.json"
RESP = "framework/json/responses/"
BY_GRANULARITY = {"boolean": "beaconBooleanResponse.json", "count": "beaconCountResponse.json",
                  "record": "beaconResultsetsResponse.json"}
# Entry type id → default-model folder (models/json/beacon-v2-default-model/<folder>).
MODEL_DIRS = {"genomicVariant": "genomicVariations", "individual": "individuals",
              "biosample": "biosamples", "run": "runs", "analysis": "analyses",
              "cohort": "cohorts", "dataset": "datasets"}
INFORMATIONAL = {"/info": "beaconInfoResponse.json", "/configuration":
                 "beaconConfigurationResponse.json", "/map": "beaconMapResponse.json",
                 "/entry_types": "beaconEntryTypesResponse.json",
                 "/filtering_terms": "beaconFilteringTermsResponse.json",
                 "/service-info": "ga4gh-service-info-1-0-0-schema.json"}


@cache
def _registry(root: Path) -> Registry[Any]:
    beacon = root / "beacon-v2"
    if not beacon.is_dir():
        raise FileNotFoundError(f"Beacon v2 schemas not found under {beacon}")
    resources: list[tuple[str, Resource[Any]]] = []
    for path in sorted(beacon.rglob("*.json")):
        rel = path.relative_to(beacon)
        if "examples" not in rel.parts:
            resources.append((BASE + rel.as_posix(),
                              DRAFT202012.create_resource(json.loads(path.read_text()))))
    vrs = root / "vrs-1.3" / "vrs.json"
    if vrs.is_file():
        resources.append((VRS, DRAFT7.create_resource(json.loads(vrs.read_text()))))
    return Registry().with_resources(resources).crawl()


def schema_errors(root: Path, instance: Any, schema_path: str) -> list[str]:
    validator = Draft202012Validator({"$ref": BASE + schema_path}, registry=_registry(root))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(instance)][:5]


async def _fetch(ctx: Context, method: str, url: str, **kw: Any) -> tuple[int, Any]:
    async with ctx.session.request(method, url, **kw) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


def _check_schema(ctx: Context, name: str, doc: Any, schema_path: str) -> bool:
    errors = schema_errors(ctx.schemas, doc, schema_path)
    return ctx.record(name, not errors, "; ".join(errors))


def _records(doc: dict[str, Any]) -> list[dict[str, Any]]:
    response = doc.get("response", {})
    if "collections" in response:
        return list(response["collections"])
    return [r for rs in response.get("resultSets", []) for r in rs.get("results", [])]


def _check_entry_response(ctx: Context, name: str, status: int, doc: Any, entry: str) -> None:
    if not ctx.record(f"{name}: 200 JSON", status == 200 and isinstance(doc, dict),
                      f"status {status}"):
        return
    granularity = doc.get("meta", {}).get("returnedGranularity", "boolean")
    collections = "collections" in doc.get("response", {})
    schema = "beaconCollectionsResponse.json" if collections else BY_GRANULARITY[granularity]
    _check_schema(ctx, f"{name}: {schema}", doc, RESP + schema)
    folder = MODEL_DIRS.get(entry)
    for i, record in enumerate(_records(doc)[:5]):
        if folder:
            _check_schema(ctx, f"{name}: record {i} vs {entry} default schema", record,
                          f"models/json/beacon-v2-default-model/{folder}/defaultSchema.json")


def _first_id(doc: dict[str, Any]) -> str | None:
    for record in _records(doc):
        found = record.get("variantInternalId") or record.get("id")
        if isinstance(found, str):
            return found
    return None


async def _informational(ctx: Context, api: str) -> None:
    for path, schema in INFORMATIONAL.items():
        status, doc = await _fetch(ctx, "GET", api + path)
        if ctx.record(f"GET {path}: 200", status == 200, f"status {status}"):
            _check_schema(ctx, f"GET {path}: {schema}", doc, RESP + schema)


async def _endpoint_set(ctx: Context, entry: str, spec: dict[str, Any]) -> None:
    root = spec["rootUrl"]
    first: str | None = None
    for granularity in ("boolean", "count", "record"):
        status, doc = await _fetch(ctx, "GET", root,
                                   params={"requestedGranularity": granularity, "limit": "3"})
        _check_entry_response(ctx, f"GET {root} [{granularity}]", status, doc, entry)
        if isinstance(doc, dict):
            first = first or _first_id(doc)
    body = {"meta": {"apiVersion": "v2.0"},
            "query": {"requestedGranularity": "count", "pagination": {"skip": 0, "limit": 3}}}
    status, doc = await _fetch(ctx, "POST", root, json=body)
    _check_entry_response(ctx, f"POST {root} [count]", status, doc, entry)
    if first is None:
        ctx.record(f"{root}: an id to follow", True, "no records visible; id routes skipped")
        return
    single = spec.get("singleEntryUrl", root + "/{id}").replace("{id}", first)
    status, doc = await _fetch(ctx, "GET", single, params={"requestedGranularity": "record"})
    _check_entry_response(ctx, f"GET {single}", status, doc, entry)
    for related in spec.get("endpoints", {}).values():
        url = related["url"].replace("{id}", first)
        status, doc = await _fetch(ctx, "GET", url, params={"requestedGranularity": "count"})
        _check_entry_response(ctx, f"GET {url}", status, doc, related["returnedEntryType"])


async def _errors(ctx: Context, api: str) -> None:
    error = RESP + "beaconErrorResponse.json"
    cases = [
        ("GET", f"{api}/g_variants", {"params": {"referenceName": "1", "start": "x",
                                                  "alternateBases": "A"}}, 400),
        ("GET", f"{api}/g_variants", {"params": {"requestedGranularity": "all"}}, 400),
        ("POST", f"{api}/g_variants", {"data": b"{oops",
                                       "headers": {"Content-Type": "application/json"}}, 400),
        ("GET", f"{api}/no_such_endpoint", {}, 404),
    ]
    for method, url, kw, expected in cases:
        status, doc = await _fetch(ctx, method, url, **kw)
        name = f"{method} {url} {kw.get('params', '')} -> {expected}"
        if ctx.record(f"{name}: status", status == expected, f"status {status}"):
            _check_schema(ctx, f"{name}: error envelope", doc, error)


async def _openapi(ctx: Context, api: str, beacon_map: dict[str, Any]) -> None:
    status, doc = await _fetch(ctx, "GET", api + "/openapi.json")
    if not ctx.record("GET /openapi.json: 200", status == 200 and isinstance(doc, dict)):
        return
    paths = set(doc.get("paths", {}))
    missing = []
    for spec in beacon_map["response"]["endpointSets"].values():
        urls = [spec["rootUrl"], spec.get("singleEntryUrl", "")]
        urls += [e["url"] for e in spec.get("endpoints", {}).values()]
        missing += [u for u in urls if u and u[len(api):] not in paths]
    ctx.record("OpenAPI describes every /map endpoint", not missing, ", ".join(missing[:5]))


@register("beacon")
async def beacon(ctx: Context) -> None:
    api = ctx.base if ctx.base.endswith("/api") else ctx.base + "/api"
    await _informational(ctx, api)
    status, beacon_map = await _fetch(ctx, "GET", api + "/map")
    if status != 200 or not isinstance(beacon_map, dict):
        ctx.record("GET /map usable", False, f"status {status}")
        return
    for entry_id, spec in beacon_map["response"]["endpointSets"].items():
        await _endpoint_set(ctx, spec.get("entryType", entry_id), spec)
    await _errors(ctx, api)
    await _openapi(ctx, api, beacon_map)
