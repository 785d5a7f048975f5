"""A bounded, seeded schemathesis run over every operation of the Beacon OpenAPI document
(`schemas/openapi.json`) and the htsget endpoints, against a live node: no answer is a
5xx, every Beacon answer validates against the official schema its operation names
(`../shared/beacon-v2`, offline), and every htsget answer against schemas/htsget-*.

The document's `$ref`s point at the published Beacon schemas; schemathesis cannot fetch
them here, so request bodies are inlined from the local copies and response schemas are
checked by this test with the offline registry (tests/beacon/schemas.py)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator

from node.catalog import Catalog
from node.config import DatasetSettings
from node.names import Granularity, SecurityLevel
from node.store.base import VariantStore
from tests.beacon.conftest import make_app
from tests.beacon.schemas import BEACON_BASE, validator
from tests.conftest import SHARED

REPO = Path(__file__).resolve().parents[2]
CINECA = "beacon-testdata/ega-beacon2-ri-tools-v2/bff/CINECA_synthetic_cohort_EUROPE_UK1"
EXAMPLES = 3  # per operation: ~90 Beacon operations and 4 htsget ones, a few hundred cases
OPEN = DatasetSettings(assembly="GRCh38", security_level=SecurityLevel.PUBLIC,
                       max_granularity={SecurityLevel.PUBLIC: Granularity.RECORD})
COUNTS = DatasetSettings(assembly="GRCh38", security_level=SecurityLevel.PUBLIC,
                         max_granularity={SecurityLevel.PUBLIC: Granularity.COUNT})


def _inline(node: Any, base: str, seen: tuple[str, ...] = ()) -> Any:
    """`node` with every `$ref` into the Beacon schemas replaced by its local contents."""
    if isinstance(node, list):
        return [_inline(v, base, seen) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = requests.compat.urljoin(base, ref)
        if target in seen:
            return {}  # a recursive definition: anything
        url, _, pointer = target.partition("#")
        if not url.startswith(BEACON_BASE):
            return node
        doc: Any = json.loads((SHARED / "beacon-v2" / url[len(BEACON_BASE):]).read_text())
        for part in filter(None, pointer.split("/")):
            doc = doc[part]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return {**_inline(doc, url, (*seen, target)), **rest}
    return {k: _inline(v, base, seen) for k, v in node.items()}


def _document() -> dict[str, Any]:
    """The Beacon document with inlined request bodies and no response schemas (checked
    here), plus the htsget ticket endpoints."""
    doc = json.loads((REPO / "schemas" / "openapi.json").read_text())
    for item in doc["paths"].values():
        for op in item.values():
            if "requestBody" in op:
                op["requestBody"] = _inline(op["requestBody"], BEACON_BASE)
            for response in op.get("responses", {}).values():
                for media in response.get("content", {}).values():
                    media["x-schema-ref"] = media.pop("schema", {}).get("$ref")
    text = {"type": "string"}
    for kind in ("reads", "variants"):
        params = [{"name": "id", "in": "path", "required": True, "schema": text}]
        params += [{"name": n, "in": "query", "schema": s} for n, s in (
            ("format", text), ("class", text), ("referenceName", text),
            ("start", {"type": "integer"}), ("end", {"type": "integer"}))]  # fmt: skip
        doc["paths"][f"/../htsget/{kind}/{{id}}"] = {
            "get": {"parameters": params, "responses": {"default": {"description": "any"}}},
            "post": {
                "parameters": params[:1],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"default": {"description": "any"}},
            },
        }
    return doc


def _check(case: Any, response: requests.Response, doc: dict[str, Any]) -> None:
    where = f"{case.method} {case.formatted_path} {case.query} {case.body!r:.300}"
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:500]}"
    if "/htsget/" in case.path:
        name = "htsget-ticket" if response.status_code == 200 else "htsget-error"
        schema = json.loads((REPO / "schemas" / f"{name}.schema.json").read_text())
        Draft202012Validator(schema).validate(response.json())
        return
    if not response.headers.get("Content-Type", "").startswith("application/json"):
        return
    responses = doc["paths"][case.path][case.method.lower()]["responses"]
    spec = responses.get(str(response.status_code)) or responses.get("default") or {}
    ref = spec.get("content", {}).get("application/json", {}).get("x-schema-ref")
    if ref:
        validator(ref).validate(response.json())


def _run(base: str) -> Counter[int]:
    doc = _document()
    schema = schemathesis.openapi.from_dict(doc)
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        def one(case: Any) -> None:
            response = case.call(base_url=base, timeout=60)
            statuses[response.status_code] += 1
            _check(case, response, doc)

        one()
    return statuses


@pytest.mark.slow
async def test_fuzzed_requests_get_no_5xx_and_valid_answers(
    aiohttp_server: Any, tmp_path: Path, shared_dir: Path, synth_store: VariantStore
) -> None:
    Catalog.open(tmp_path).load("cineca", [shared_dir / CINECA])
    app = make_app(tmp_path, {"synth": synth_store}, {"synth": COUNTS, "cineca": OPEN})
    server = await aiohttp_server(app)
    statuses = await asyncio.to_thread(_run, str(server.make_url("/api")).rstrip("/"))
    assert sum(statuses.values()) > 200
    assert statuses[200] and statuses[400] and statuses[404], statuses  # answers and refusals
