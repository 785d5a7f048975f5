"""Arbitrary client input never produces a 500: every answer is a Beacon document or a
Beacon error envelope (seeded random GET parameters and POST bodies)."""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import Any

from node.config import DatasetSettings
from node.names import Granularity, SecurityLevel
from node.store.base import VariantStore
from tests.beacon.conftest import make_app
from tests.beacon.schemas import validate

RESP = "framework/json/responses/"
KEYS = ["referenceName", "start", "end", "referenceBases", "alternateBases", "variantType",
        "variantMinLength", "variantMaxLength", "assemblyId", "geneId", "geneid",
        "aminoacidChange", "requestedGranularity", "includeResultsetResponses", "skip",
        "limit", "testMode", "filters", "datasetIds", "allele", "mateName"]
VALUES = ["1", "chr1", "NC_000001.11", "NC_000001.10", "0", "-5", "100,200", "1,2,3", "A",
          "N", "AC", "SNP", "record", "count", "ALL", "true", "synth", "GRCh38", "BRCA1",
          "V600E", "", "99999999999999999999", "NCIT:C16576", "1:g.5A>G", "%", "<DEL>"]
PATHS = ["/api/g_variants", "/api/individuals", "/api/g_variants/chr1_1_A_G/biosamples",
         "/api/datasets/synth/g_variants", "/api/cohorts", "/api/g_variants/chr1_1_A_G",
         "/api/runs/x/analyses", "/api/biosamples/%00/g_variants"]
BODY_KEYS = ["query", "meta", "filters", "requestParameters", "g_variant", "start", "id",
             "pagination", "limit", "requestedGranularity", "referenceName", "operator"]
OPEN38 = DatasetSettings(assembly="GRCh38", security_level=SecurityLevel.PUBLIC,
                         max_granularity={SecurityLevel.PUBLIC: Granularity.RECORD})


def _text(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return rng.choice(VALUES)
    return "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 20)))


def _json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randint(0, 5 if depth < 3 else 2)
    if kind == 0:
        return rng.choice([None, True, -1, 0, 7, 2**40])
    if kind in (1, 2):
        return _text(rng)
    if kind == 3:
        return [_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(BODY_KEYS): _json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def check(status: int, body: Any) -> None:
    assert status in (200, 400, 401, 404, 413), (status, body)
    if status != 200:
        validate(body, RESP + "beaconErrorResponse.json")


async def test_random_input_never_500(aiohttp_client: Any, tmp_path: Path,
                                      synth_store: VariantStore) -> None:
    client = await aiohttp_client(make_app(tmp_path, {"synth": synth_store}, {"synth": OPEN38}))
    rng = random.Random(2026)
    seen = set()
    for _ in range(150):
        path = rng.choice(PATHS)
        params = {rng.choice(KEYS): _text(rng) for _ in range(rng.randint(0, 6))}
        resp = await client.get(path, params=params)
        check(resp.status, await resp.json())
        seen.add(resp.status)
        body = _json(rng)
        if isinstance(body, dict) and rng.random() < 0.5:
            body = {"query": body}
        resp = await client.post(path, json=body)
        check(resp.status, await resp.json())
        seen.add(resp.status)
    assert {200, 400} <= seen  # the generator reaches both answers and errors
