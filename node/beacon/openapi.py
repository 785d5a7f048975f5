"""The OpenAPI 3.0 document of the Beacon API this node serves, built from the same
entry-type table as the router and /map, so it cannot drift from what is served."""

from __future__ import annotations

from typing import Any

from node.beacon.info import ENTRY_TYPES, SPEC_BASE, EntryType, by_path
from node.beacon.models import API_VERSION, MAX_LIMIT

__all__ = ["openapi_document"]

_RESP = SPEC_BASE + "framework/json/responses/"
_VARIANT_PARAMS = (
    ("referenceName", "string", "1, chr1 or a RefSeq accession (NC_000001.11)"),
    ("start", "string", "0-based start; two comma-separated values for a bracket query"),
    ("end", "string", "0-based exclusive end; two values for a bracket query"),
    ("referenceBases", "string", "IUPAC bases; N is a wildcard"),
    ("alternateBases", "string", "IUPAC bases; N is a wildcard"),
    ("variantType", "string", "SNP, MNP, INDEL, DEL, INS, DUP, INV, CNV, BND, SV"),
    ("variantMinLength", "integer", "minimum variant length"),
    ("variantMaxLength", "integer", "maximum variant length"),
    ("assemblyId", "string", "GRCh37/GRCh38 (hg19/hg38 accepted); enforced"),
    ("geneId", "string", "gene symbol or id (annotations or gene coordinates); alias geneid"),
    ("aminoacidChange", "string", "e.g. V600E or p.Val600Glu"),
    ("genomicAlleleShortForm", "string", "e.g. NC_000017.11:g.43057063G>A"),
)
_COMMON_PARAMS = (
    ("requestedGranularity", "string", "boolean, count or record"),
    ("includeResultsetResponses", "string", "HIT, MISS, ALL or NONE"),
    ("skip", "integer", "number of records (not pages) to skip in each result set"),
    ("limit", "integer", f"page size in records; 0 or more than {MAX_LIMIT} means {MAX_LIMIT}"),
    ("testMode", "boolean", "answer without real data"),
    ("filters", "string", "comma-separated filters (ANDed): CURIEs, custom field:value "
                          "terms, alphanumeric id:OPvalue (e.g. PATO_0000011:>P70Y)"),
    ("datasetIds", "string", "comma-separated dataset ids"),
)


def _param(name: str, kind: str, text: str, where: str = "query") -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path",
            "schema": {"type": kind}, "description": text}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": ref}}}


def _responses(schema: str) -> dict[str, Any]:
    error = {"description": "Beacon error envelope",
             "content": _json(_RESP + "beaconErrorResponse.json")}
    return {
        "200": {"description": "Beacon response (boolean, count or record)",
                "content": _json(_RESP + schema)},
        "400": error, "401": error, "403": error, "404": error, "413": error,
        "503": {**error, "description": "Beacon error envelope: the node cannot answer now "
                "(its audit log or budget store is unavailable; it fails closed)"},
        "504": {**error, "description": "Beacon error envelope: the query ran past the "
                "node's time limit (server.request_timeout_s)"},
    }


def _operation(
    summary: str, params: list[dict[str, Any]], schema: str, *, post: bool
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": _responses(schema)}
    if post:
        op["parameters"] = [p for p in params if p["in"] == "path"]
        op["requestBody"] = {
            "content": _json(SPEC_BASE + "framework/json/requests/beaconRequestBody.json")}
    else:
        op["parameters"] = params
    return op


def _entry_paths(e: EntryType) -> dict[str, Any]:
    schema = f"beacon{'Collections' if e.collection else 'Resultsets'}Response.json"
    common = [_param(*p) for p in _COMMON_PARAMS]
    variant = [_param(*p) for p in _VARIANT_PARAMS]
    ident = _param("id", "string", f"{e.id} id", "path")
    collection_params = common + (variant if e.path == "g_variants" else [])
    out: dict[str, Any] = {
        f"/{e.path}": {
            "get": _operation(f"{e.name}: query", collection_params, schema, post=False),
            "post": _operation(f"{e.name}: query", collection_params, schema, post=True)},
        f"/{e.path}/{{id}}": {
            "get": _operation(f"One {e.id} by id", [ident, *common], schema, post=False),
            "post": _operation(f"One {e.id} by id", [ident, *common], schema, post=True)},
    }
    for n in e.nested:
        params = [ident, *common] + (variant if n == "g_variants" else [])
        text = f"{by_path(n).name} of one {e.id}"
        out[f"/{e.path}/{{id}}/{n}"] = {
            "get": _operation(text, params, "beaconResultsetsResponse.json", post=False),
            "post": _operation(text, params, "beaconResultsetsResponse.json", post=True)}
    return out


def _framework_paths() -> dict[str, Any]:
    simple = {
        "/": "beaconInfoResponse.json", "/info": "beaconInfoResponse.json",
        "/configuration": "beaconConfigurationResponse.json",
        "/map": "beaconMapResponse.json", "/entry_types": "beaconEntryTypesResponse.json",
        "/filtering_terms": "beaconFilteringTermsResponse.json",
        "/datasets/{id}/filtering_terms": "beaconFilteringTermsResponse.json",
        "/cohorts/{id}/filtering_terms": "beaconFilteringTermsResponse.json",
        "/service-info": "ga4gh-service-info-1-0-0-schema.json",
    }
    out = {}
    for path, schema in simple.items():
        params = [_param("id", "string", "id", "path")] if "{id}" in path else []
        if path.endswith("filtering_terms"):
            params += [_param("skip", "integer", "terms to skip (all terms when absent)"),
                       _param("limit", "integer", "terms per page (all when absent)")]
        out[path] = {"get": _operation(path, params, schema, post=False)}
        if "{id}" in path and path.endswith("filtering_terms"):
            out[path]["post"] = _operation(path, params, schema, post=True)
    out["/openapi.json"] = {"get": {"summary": "this document",
                                    "responses": {"200": {"description": "OpenAPI 3.0"}}}}
    return out


def openapi_document(*, base: str, version: str) -> dict[str, Any]:
    paths = _framework_paths()
    for e in ENTRY_TYPES:
        paths.update(_entry_paths(e))
    return {
        "openapi": "3.0.3",
        "info": {"title": "fednode Beacon v2 API", "version": version,
                 "description": f"GA4GH Beacon {API_VERSION}. Coordinates are 0-based, "
                                "half-open; skip counts records."},
        "servers": [{"url": base}],
        "paths": paths,
    }
