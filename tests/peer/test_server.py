"""The peer servicer, called in-process over a real loopback channel, against bcftools."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from node.peer._pb import peer_pb2 as pb
from node.peer._pb import peer_pb2_grpc as pb_grpc
from node.peer.messages import allele_message
from tests.peer.helpers import COORDINATOR, bcftools_truth, ec_key, token

SAMPLES = [f"S00{i}" for i in range(10)]


def _files(cohort: Path, samples: list[str]) -> list[Path]:
    return [cohort / f"{s}.vcf.gz" for s in samples]


async def _stub(port: int) -> tuple[grpc.aio.Channel, pb_grpc.PeerServiceStub]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return channel, pb_grpc.PeerServiceStub(channel)


def _auth(key: ec.EllipticCurvePrivateKey, aud: str = "node-a") -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token(key, aud=aud)}")]


async def test_batch_allele_stats_equal_bcftools(cohort, start_node, coordinator_key):
    server = await start_node("node-a", {"cohort": _files(cohort, SAMPLES)})
    truth = bcftools_truth(cohort / "merged10.vcf.gz")
    keys = sorted(truth, key=lambda k: (k.contig, k.start))[:2000]
    channel, stub = await _stub(server.port)
    async with channel:
        reply = await stub.BatchAlleleStats(
            pb.BatchAlleleStatsRequest(alleles=[allele_message(k) for k in keys]),
            metadata=_auth(coordinator_key),
            timeout=30,
        )
    assert len(reply.results) == len(keys)
    for key, result in zip(keys, reply.results, strict=True):
        (stats,) = result.datasets
        want = truth[key]
        assert (result.allele.contig, result.allele.start) == (key.contig, key.start)
        assert stats.allele_count.value == want.ac
        assert stats.allele_number.value == want.an
        assert stats.homozygotes.value == want.hom
        assert stats.carriers.value == want.carriers
        assert stats.allele_count.precision == pb.COUNT_PRECISION_EXACT
        assert stats.exists == (want.ac > 0)
        assert stats.frequency == pytest.approx(want.ac / want.an)


async def test_absent_allele_reports_zero(cohort, start_node, coordinator_key):
    server = await start_node("node-a", {"cohort": _files(cohort, SAMPLES[:2])})
    missing = pb.Allele(contig="chr1", start=1, ref="A", alt="T")
    channel, stub = await _stub(server.port)
    async with channel:
        reply = await stub.BatchAlleleStats(
            pb.BatchAlleleStatsRequest(alleles=[missing]), metadata=_auth(coordinator_key)
        )
    (stats,) = reply.results[0].datasets
    assert not stats.exists and stats.allele_count.value == 0


async def test_small_counts_are_intervals_holding_the_truth(cohort, start_node, coordinator_key):
    server = await start_node("node-a", {"cohort": _files(cohort, SAMPLES)}, min_count=5)
    truth = bcftools_truth(cohort / "merged10.vcf.gz")
    keys = sorted(truth, key=lambda k: (k.contig, k.start))[:500]
    channel, stub = await _stub(server.port)
    async with channel:
        reply = await stub.BatchAlleleStats(
            pb.BatchAlleleStatsRequest(alleles=[allele_message(k) for k in keys]),
            metadata=_auth(coordinator_key),
        )
    rare = 0
    for key, result in zip(keys, reply.results, strict=True):
        count = result.datasets[0].allele_count
        ac = truth[key].ac
        assert count.lower <= ac <= count.upper
        if 0 < ac < 5:
            rare += 1
            assert count.precision == pb.COUNT_PRECISION_IMPRECISE
            assert (count.lower, count.upper, count.value) == (1, 4, 5)
        else:
            assert count.precision == pb.COUNT_PRECISION_EXACT and count.value == ac
    assert rare > 0  # the cohort has rare alleles: the rule is exercised


async def test_region_stream_equals_bcftools(cohort, start_node, coordinator_key):
    server = await start_node("node-a", {"cohort": _files(cohort, SAMPLES)})
    truth = bcftools_truth(cohort / "merged10.vcf.gz", region="chr1:20000001-20400000")
    assert len(truth) > 600  # more than one streamed chunk
    request = pb.RegionStatsRequest(contig="chr1", start=20_000_000, end=20_400_000)
    channel, stub = await _stub(server.port)
    got = {}
    async with channel:
        chunks = 0
        async for chunk in stub.StreamRegionStats(request, metadata=_auth(coordinator_key)):
            chunks += 1
            for v in chunk.variants:
                got[(v.allele.start, v.allele.ref, v.allele.alt)] = v.stats.allele_count.value
    assert chunks > 1
    assert got == {(k.start, k.ref, k.alt): t.ac for k, t in truth.items()}


async def test_region_frequency_filter(cohort, start_node, coordinator_key):
    server = await start_node("node-a", {"cohort": _files(cohort, SAMPLES)})
    truth = bcftools_truth(cohort / "merged10.vcf.gz", region="chr1:20000001-20400000")
    request = pb.RegionStatsRequest(
        contig="1", start=20_000_000, end=20_400_000, min_frequency=0.5, variant_types=["SNP"]
    )
    channel, stub = await _stub(server.port)
    async with channel:
        got = {
            v.allele.start
            async for c in stub.StreamRegionStats(request, metadata=_auth(coordinator_key))
            for v in c.variants
        }
    snps = {k: t for k, t in truth.items() if len(k.ref) == 1 == len(k.alt)}
    assert len(snps) < len(truth)  # the type filter is exercised
    assert got == {k.start for k, t in snps.items() if t.an and t.ac / t.an >= 0.5}


async def test_node_info_lists_datasets_and_limits(cohort, start_node, coordinator_key):
    server = await start_node(
        "node-a", {"a": _files(cohort, SAMPLES[:2]), "b": _files(cohort, SAMPLES[2:4])}
    )
    channel, stub = await _stub(server.port)
    async with channel:
        info = await stub.GetNodeInfo(pb.GetNodeInfoRequest(), metadata=_auth(coordinator_key))
    assert info.id == "node-a" and info.api_version == "v1"
    assert [d.id for d in info.datasets] == ["a", "b"]
    assert all(d.granularity == pb.GRANULARITY_COUNT for d in info.datasets)
    assert {"allele_stats", "allele_columns"} <= set(info.capabilities)
    assert info.max_batch_alleles == 10_000


async def test_count_individuals_carrying_all_alleles(cohort, start_node, coordinator_key):
    server = await start_node("node-a", {"cohort": _files(cohort, SAMPLES)})
    truth = bcftools_truth(cohort / "merged10.vcf.gz", region="chr1:20000001-20100000")
    # 6 + 6 carriers among 10 samples: at least 2 carry both, so the count is not 0.
    pair = sorted((k for k, t in truth.items() if t.carriers >= 6), key=lambda k: k.start)[:2]
    channel, stub = await _stub(server.port)
    async with channel:
        reply = await stub.CountIndividuals(
            pb.CountIndividualsRequest(alleles=[allele_message(k) for k in pair]),
            metadata=_auth(coordinator_key),
        )
    # Truth: samples whose genotype has an ALT at both sites, by bcftools query.
    import subprocess

    carriers = []
    for key in pair:
        out = subprocess.run(
            [
                "bcftools",
                "query",
                "-t",
                f"chr1:{key.start + 1}",
                "-i",
                'GT="alt"',
                "-f",
                "[%SAMPLE\n]",
                str(cohort / "merged10.vcf.gz"),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        carriers.append(set(out.split()))
    (count,) = reply.datasets
    assert count.individuals.value == len(carriers[0] & carriers[1])


async def test_count_individuals_leaves_through_the_people_exit(
    cohort, start_node, coordinator_key
):
    """With the default people-count noise, the coordinator's carrier count is noised
    (imprecise, known only to lie in [0, samples]), the same when asked again, and
    charged once."""
    server = await start_node("node-a", {"cohort": _files(cohort, SAMPLES)},
                              people_epsilon=0.5)
    truth = bcftools_truth(cohort / "merged10.vcf.gz", region="chr1:20000001-20100000")
    keys = sorted((k for k, t in truth.items() if t.carriers >= 6), key=lambda k: k.start)[:2]
    channel, stub = await _stub(server.port)
    replies = []
    async with channel:
        for _ in range(3):
            reply = await stub.CountIndividuals(
                pb.CountIndividualsRequest(alleles=[allele_message(k) for k in keys]),
                metadata=_auth(coordinator_key))
            replies.append(reply.datasets[0].individuals)
    assert all(r == replies[0] for r in replies)
    assert replies[0].precision == pb.COUNT_PRECISION_IMPRECISE
    assert (replies[0].lower, replies[0].upper) == (0, len(SAMPLES))
    budget = server.accounting.gate._budget
    assert budget is not None
    requester = next(r for (r,) in budget._db.execute(
        "SELECT DISTINCT requester FROM charges WHERE requester NOT LIKE 'pool:%'"))
    assert budget.balance(requester).epsilon_spent == pytest.approx(0.5)


@pytest.mark.parametrize(
    "make_metadata",
    [
        pytest.param(lambda key: [], id="no-credentials"),
        pytest.param(lambda key: _auth(ec_key()), id="unregistered-key"),
        pytest.param(lambda key: _auth(key, aud="node-b"), id="wrong-audience"),
        pytest.param(
            lambda key: [
                ("authorization", "Bearer " + token(key, aud="node-a", exp=int(time.time()) - 120))
            ],
            id="expired",
        ),
        pytest.param(
            lambda key: [("authorization", "Bearer " + token(key, aud="node-a", iss="evil"))],
            id="unknown-issuer",
        ),
        pytest.param(
            lambda key: [
                (
                    "authorization",
                    "Bearer "
                    + jwt.encode(
                        {
                            "iss": COORDINATOR,
                            "sub": COORDINATOR,
                            "aud": "node-a",
                            "iat": int(time.time()),
                            "exp": int(time.time()) + 60,
                        },
                        "secret-guess-of-the-attacker-0123456789",
                        algorithm="HS256",
                    ),
                )
            ],
            id="hmac-algorithm",
        ),
        pytest.param(lambda key: [("authorization", "Basic Zm9vOmJhcg==")], id="not-bearer"),
    ],
)
async def test_unauthenticated_calls_are_refused(
    cohort, start_node, coordinator_key, make_metadata
):
    server = await start_node("node-a", {"cohort": _files(cohort, SAMPLES[:1])})
    channel, stub = await _stub(server.port)
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetNodeInfo(pb.GetNodeInfoRequest(), metadata=make_metadata(coordinator_key))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_bad_requests_get_their_status(cohort, start_node, coordinator_key):
    server = await start_node(
        "node-a", {"cohort": _files(cohort, SAMPLES[:1])}, max_batch_alleles=10
    )
    allele = pb.Allele(contig="1", start=5, ref="A", alt="G")
    cases = [
        (pb.BatchAlleleStatsRequest(alleles=[allele] * 11), grpc.StatusCode.INVALID_ARGUMENT),
        (
            pb.BatchAlleleStatsRequest(alleles=[pb.Allele(contig="1", start=-1, ref="A", alt="G")]),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            pb.BatchAlleleStatsRequest(alleles=[allele], dataset_ids=["nope"]),
            grpc.StatusCode.NOT_FOUND,
        ),
    ]
    channel, stub = await _stub(server.port)
    async with channel:
        for request, code in cases:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.BatchAlleleStats(request, metadata=_auth(coordinator_key))
            assert caught.value.code() == code
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            bad = pb.RegionStatsRequest(contig="1", start=10, end=5)
            async for _ in stub.StreamRegionStats(bad, metadata=_auth(coordinator_key)):
                pass
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_rare_answers_are_charged_to_the_coordinator_until_refused(
    tmp_path, cohort, start_node, coordinator_key
):
    from node.privacy.audit import verify

    truth = bcftools_truth(cohort / "merged10.vcf.gz")
    # Rare: at most rare_allele_count (4) copies; this small cohort's rare alleles are
    # called in few samples, so each "yes" is worth little evidence: a small budget.
    rare = [k for k in sorted(truth, key=lambda k: k.start) if 0 < truth[k].ac <= 2][:3]
    # Common even without a target's two copies (strict pricing, the default): AC - 2 > 4.
    common = [k for k in sorted(truth, key=lambda k: k.start) if truth[k].ac >= 7][:3]
    assert rare and common
    server = await start_node("node-a", {"cohort": _files(cohort, SAMPLES)}, max_llr=2e-5)
    channel, stub = await _stub(server.port)
    async with channel:
        # Common alleles reveal no one: free, however often they are asked.
        for _ in range(3):
            await stub.BatchAlleleStats(
                pb.BatchAlleleStatsRequest(alleles=[allele_message(k) for k in common]),
                metadata=_auth(coordinator_key),
            )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            for _ in range(20):
                await stub.BatchAlleleStats(
                    pb.BatchAlleleStatsRequest(alleles=[allele_message(k) for k in rare]),
                    metadata=_auth(coordinator_key),
                )
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    audit = tmp_path / "home-0" / "audit.jsonl"
    assert verify(audit).ok
    entries = [json.loads(line) for line in audit.read_text().splitlines()]
    assert {e["query"]["coordinator"] for e in entries} == {COORDINATOR}
    assert all(e["requester"].startswith("sub:") for e in entries)
