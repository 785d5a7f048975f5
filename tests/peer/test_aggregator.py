"""Beacon v2 over the federation: in-process gRPC nodes, third-party beacons over HTTP,
faulty peers; counts against bcftools on each dataset's samples."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from node.config import Settings
from node.peer.peers import load_peers
from node.web.aggregator import create_aggregator_app
from tests.beacon.test_g_variants import check_schema
from tests.deadline import ended_by
from tests.peer import fakes
from tests.peer.helpers import COORDINATOR, SPLIT, private_pem

REGION = "chr1:20000001-20200000"


def _dataset_truth(cohort: Path, tmp: Path, samples: list[str]) -> int:
    """Variants in REGION with at least one ALT copy among `samples` (bcftools)."""
    subset = subprocess.run(
        [
            "bcftools",
            "view",
            "-Ou",
            "-s",
            ",".join(samples),
            "-t",
            REGION,
            str(cohort / "merged10.vcf.gz"),
        ],
        check=True,
        capture_output=True,
    ).stdout
    out = subprocess.run(
        ["bcftools", "view", "-H", "-i", 'GT="alt"', "-"],
        input=subset,
        check=True,
        capture_output=True,
    ).stdout
    return len(out.splitlines())


@pytest.fixture
async def third_party(aiohttp_server):
    seen: list[dict[str, str]] = []

    async def honest(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response(
            {
                "meta": {"beaconId": "org.other"},
                "responseSummary": {"exists": True, "numTotalResults": 7},
            }
        )

    async def boolean_only(request: web.Request) -> web.Response:
        return web.json_response({"meta": {}, "responseSummary": {"exists": True}})

    async def garbage(request: web.Request) -> web.Response:
        return web.Response(text="<html>oops</html>", content_type="application/json")

    app = web.Application()
    app.router.add_get("/honest/g_variants", honest)
    app.router.add_get("/boolean/g_variants", boolean_only)
    app.router.add_get("/garbage/g_variants", garbage)
    server = await aiohttp_server(app)
    return server, seen


@pytest.fixture
async def aggregator(aiohttp_client, tmp_path, three_nodes, coordinator_key, third_party):
    server, seen = third_party
    (tmp_path / "coordinator.pem").write_text(private_pem(coordinator_key))
    base = f"http://127.0.0.1:{server.port}"
    peers = [{"id": n, "address": f"127.0.0.1:{p}"} for n, p in three_nodes.items()]
    peers += [
        {"id": "dead", "address": f"127.0.0.1:{fakes.dead_port()}"},
        {"id": "other", "beacon_url": f"{base}/honest"},
        {"id": "yes-man", "beacon_url": f"{base}/boolean"},
        {"id": "broken", "beacon_url": f"{base}/garbage"},
    ]
    doc = {
        "coordinator": {"id": COORDINATOR, "private_key": "coordinator.pem"},
        "deadline_s": 3,
        "peers": peers,
    }
    (tmp_path / "peers.yaml").write_text(yaml.safe_dump(doc))
    settings = Settings(
        home=tmp_path,
        node={"id": "org.example.aggregator"},
        privacy={"budget": {"max_llr": 1e9, "max_epsilon": 1e9, "anonymous_max_epsilon": 1e9,
                            "pool_max_epsilon": 1e9}},  # budgets: tested on their own below
    )
    app = create_aggregator_app(settings, load_peers(tmp_path / "peers.yaml"))
    return await aiohttp_client(app), seen


async def test_federated_beacon_counts_and_statuses(aggregator, cohort, tmp_path):
    client, seen = aggregator
    reply = await client.get(
        "/api/g_variants",
        params={
            "referenceName": "1",
            "start": "20000000",
            "end": "20200000",
            "requestedGranularity": "record",
        },
    )
    assert reply.status == 200
    doc = await reply.json()
    check_schema(doc)  # official Beacon v2 response schemas
    sets = {
        (s["info"]["beaconId"], s["id"]): s["resultsCount"] for s in doc["response"]["resultSets"]
    }
    want = {
        (node, ds): _dataset_truth(cohort, tmp_path, samples)
        for node, datasets in SPLIT.items()
        for ds, samples in datasets.items()
    }
    assert {k: v for k, v in sets.items() if k[0].startswith("node-")} == want
    assert sets[("other", "other")] == 7 and sets[("yes-man", "yes-man")] == 1
    fed = doc["info"]["federation"]
    status = {n["id"]: n["status"] for n in fed["nodes"]}
    assert status == {
        "node-a": "OK",
        "node-b": "OK",
        "node-c": "OK",
        "dead": "UNAVAILABLE",
        "other": "OK",
        "yes-man": "OK",
        "broken": "INVALID_RESPONSE",
    }
    total = sum(want.values()) + 7 + 1
    assert doc["responseSummary"] == {"exists": True, "numTotalResults": total}
    # The boolean-only beacon makes the total an interval with no upper bound.
    assert fed["totalCount"] == {
        "value": total,
        "lower": total,
        "upper": None,
        "precision": "imprecise",
    }
    assert not fed["complete"]
    # A token the aggregator cannot verify is refused, and never reaches any peer.
    asked = len(seen)
    params = {"referenceName": "1", "start": "20000000", "end": "20200000"}
    bad = await client.get(
        "/api/g_variants", params=params, headers={"Authorization": "Bearer users-own-token"}
    )
    assert bad.status == 401
    assert len(seen) == asked and all("Authorization" not in h for h in seen)


async def test_sequence_query_and_bad_queries(aggregator, cohort):
    client, _ = aggregator
    reply = await client.get(
        "/api/g_variants",
        params={
            "referenceName": "1",
            "start": "20000065",
            "referenceBases": "T",
            "alternateBases": "C",
            "requestedGranularity": "count",
        },
    )
    doc = await reply.json()
    check_schema(doc)
    carriers = subprocess.run(
        [
            "bcftools",
            "query",
            "-t",
            "chr1:20000066",
            "-i",
            'GT="alt"',
            "-f",
            "[%SAMPLE\n]",
            str(cohort / "merged10.vcf.gz"),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    holding = {
        ds
        for datasets in SPLIT.values()
        for ds, samples in datasets.items()
        if set(samples) & set(carriers)
    }
    assert doc["responseSummary"]["numTotalResults"] == len(holding) + 7 + 1
    for params in ({"geneId": "BRCA2"}, {"referenceName": "1", "start": "1", "end": "99999999"}):
        reply = await client.get("/api/g_variants", params=params)
        assert reply.status == 400
        assert "error" in await reply.json()


async def test_serve_aggregator_process(tmp_path, three_nodes, coordinator_key):
    import asyncio
    import os
    import sys

    import aiohttp

    from tests.peer.helpers import write_peers

    peers = write_peers(tmp_path, coordinator_key, three_nodes)
    home = tmp_path / "agg"
    init = await asyncio.create_subprocess_exec(sys.executable, "-m", "node", "init", str(home))
    assert await init.wait() == 0
    port = fakes.dead_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "node",
        "serve",
        str(home),
        "--port",
        str(port),
        "--aggregator",
        str(peers),
        env={**os.environ, "FEDNODE_PRIVACY__BUDGET__MAX_LLR": "1e9"},
    )
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/health") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)
            params = {
                "referenceName": "1",
                "start": "20000000",
                "end": "20010000",
                "requestedGranularity": "count",
            }
            async with session.get(f"http://127.0.0.1:{port}/api/g_variants", params=params) as r:
                doc = await r.json()
        assert [n["status"] for n in doc["info"]["federation"]["nodes"]] == ["OK"] * 3
        assert doc["responseSummary"]["exists"] is True
    finally:
        proc.terminate()
        await proc.wait()


async def test_individuals_of_a_variant_are_merged_from_every_node(aggregator, cohort):
    """/g_variants/{id}/individuals: per (node, dataset), the individuals carrying the
    variant (CountIndividuals), against bcftools carriers on the merged VCF."""
    client, _ = aggregator
    out = subprocess.run(
        [
            "bcftools",
            "query",
            "-f",
            "%CHROM\t%POS\t%REF\t%ALT[\t%SAMPLE=%GT]\n",
            str(cohort / "merged10.vcf.gz"),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    carriers = {
        f"{r[0]}_{r[1]}_{r[2]}_{r[3]}": {c.split("=")[0] for c in r[4:] if "1" in c.split("=")[1]}
        for r in rows
    }
    variant, samples = max(carriers.items(), key=lambda kv: (len(kv[1]) < 10, len(kv[1])))
    reply = await client.get(
        f"/api/g_variants/{variant}/individuals", params={"requestedGranularity": "record"}
    )
    assert reply.status == 200, await reply.text()
    doc = await reply.json()
    check_schema(doc)
    got = {
        (s["info"]["beaconId"], s["id"]): s["resultsCount"] for s in doc["response"]["resultSets"]
    }
    assert got == {
        (node, ds): len(samples & set(members))
        for node, datasets in SPLIT.items()
        for ds, members in datasets.items()
    }
    assert doc["responseSummary"] == {"exists": True, "numTotalResults": len(samples)}
    status = {n["id"]: n["status"] for n in doc["info"]["federation"]["nodes"]}
    assert status == {"node-a": "OK", "node-b": "OK", "node-c": "OK", "dead": "UNAVAILABLE"}
    bad = await client.get("/api/g_variants/not-an-id/individuals")
    assert bad.status == 400


async def test_a_hung_peer_does_not_hold_the_beacon_answer(
    aiohttp_client, tmp_path, three_nodes, coordinator_key
):
    import time

    hung, port = await fakes.start_fake(fakes.hang)
    try:
        (tmp_path / "coordinator.pem").write_text(private_pem(coordinator_key))
        doc = {
            "coordinator": {"id": COORDINATOR, "private_key": "coordinator.pem"},
            "deadline_s": 1.0,
            "peers": [
                {"id": "node-a", "address": f"127.0.0.1:{three_nodes['node-a']}"},
                {"id": "hung", "address": f"127.0.0.1:{port}"},
            ],
        }
        (tmp_path / "peers.yaml").write_text(yaml.safe_dump(doc))
        settings = Settings(home=tmp_path, privacy={"budget": {"max_llr": 1e9}})
        client = await aiohttp_client(
            create_aggregator_app(settings, load_peers(tmp_path / "peers.yaml"))
        )
        params = {"referenceName": "1", "start": "20000000", "end": "20100000"}
        started = time.monotonic()
        reply = await client.get("/api/g_variants", params=params)
        elapsed = time.monotonic() - started
    finally:
        await hung.stop(0)
    assert reply.status == 200 and ended_by(elapsed, 1.0)
    nodes = (await reply.json())["info"]["federation"]["nodes"]
    assert {n["id"]: n["status"] for n in nodes} == {"node-a": "OK", "hung": "DEADLINE_EXCEEDED"}
