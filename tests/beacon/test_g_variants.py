"""g_variants queries against bcftools truth on the 1000 Genomes chr1 subset (GRCh37),
every response validated against the official Beacon v2 schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pysam
import pytest

from node.beacon.variants import VariantQuery, selector
from node.config import AuditSettings, DatasetSettings, Settings
from node.names import Granularity, SecurityLevel
from node.store.memory import MemoryStore
from node.store.registry import DatasetRegistry
from node.web.app import create_app
from tests.beacon.cases import all_cases
from tests.beacon.schemas import validate
from tests.beacon.truth import alleles, carriers, indexed_copy

RESP = "framework/json/responses/"
VARIANT_SCHEMA = "models/json/beacon-v2-default-model/genomicVariations/defaultSchema.json"
SCHEMA_BY_GRANULARITY = {
    "boolean": "beaconBooleanResponse.json",
    "count": "beaconCountResponse.json",
    "record": "beaconResultsetsResponse.json",
}
# Ranges (0-based half-open) chosen to hold SNPs, indels and the two multi-allelic sites.
RANGES = [(10000, 11000), (15000, 16000), (66000, 67000), (0, 14000), (13288, 13289)]


@pytest.fixture(scope="session")
def tg_indexed(tg_vcf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return indexed_copy(tg_vcf, tmp_path_factory.mktemp("truth") / "tg.vcf.gz")


def check_schema(doc: dict[str, Any]) -> None:
    validate(doc, RESP + SCHEMA_BY_GRANULARITY[doc["meta"]["returnedGranularity"]])
    for rs in doc.get("response", {}).get("resultSets", []):
        for record in rs["results"]:
            validate(record, VARIANT_SCHEMA)


async def get(client: Any, **params: Any) -> dict[str, Any]:
    resp = await client.get("/api/g_variants", params={k: str(v) for k, v in params.items()})
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    check_schema(doc)
    return doc


async def post(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/api/g_variants", json=body)
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    check_schema(doc)
    return doc


@pytest.mark.parametrize(("start", "end"), RANGES)
async def test_range_counts_match_bcftools(
    tg_client: Any, tg_indexed: Path, start: int, end: int
) -> None:
    truth = alleles(tg_indexed, f"1:{start + 1}-{end}")
    doc = await get(tg_client, referenceName="1", start=start, end=end,
                    requestedGranularity="count")
    assert doc["meta"]["returnedGranularity"] == "count"
    assert doc["responseSummary"]["numTotalResults"] == len(truth)
    assert doc["responseSummary"]["exists"] is (len(truth) > 0)


@pytest.mark.parametrize("kind", ["snps", "indels"])
async def test_variant_type_counts_match_bcftools(
    tg_client: Any, tg_indexed: Path, kind: str
) -> None:
    truth = alleles(tg_indexed, "1:1-20000", kind=kind)
    body = {"meta": {"apiVersion": "v2.0"},
            "query": {"requestParameters": {"g_variant": {
                "referenceName": "NC_000001.10", "start": [0], "end": [20000],
                "variantType": "SNP" if kind == "snps" else "INDEL"}},
                "requestedGranularity": "count"}}
    doc = await post(tg_client, body)
    assert len(truth) > 0
    assert doc["responseSummary"]["numTotalResults"] == len(truth)


async def test_records_carry_bcftools_frequencies_and_carriers(
    tg_client: Any, tg_indexed: Path
) -> None:
    truth = {a.internal_id: a for a in alleles(tg_indexed, "1:15000-16000")}
    doc = await get(tg_client, referenceName="chr1", start=14999, end=16000,
                    requestedGranularity="record", limit=100, assemblyId="hg19")
    (rs,) = doc["response"]["resultSets"]
    assert {r["variantInternalId"] for r in rs["results"]} == set(truth)
    for record in rs["results"]:
        t = truth[record["variantInternalId"]]
        (freq,) = record["frequencyInPopulations"][0]["frequencies"]
        assert (freq["alleleCount"], freq["alleleNumber"]) == (t.ac, t.an)
        zygous = (freq["alleleCountHomozygous"], freq["alleleCountHeterozygous"])
        assert zygous == (t.n_hom, t.n_het)
        assert freq["alleleFrequency"] == pytest.approx(t.ac / t.an)
        assert record["identifiers"]["genomicHGVSId"] == f"1:g.{t.pos}{t.ref}>{t.alt}"
    multi = [r for r in rs["results"] if r["variantInternalId"].startswith("chr1_15274_")]
    assert len(multi) == 2  # A>G and A>T of the multi-allelic site, split
    for record in multi:
        t = truth[record["variantInternalId"]]
        expected = carriers(tg_indexed, t.pos, t.ref, t.alt)
        cases = await all_cases(tg_client, rs, record)
        got = {c["biosampleId"]: c["zygosity"]["label"] for c in cases}
        assert set(got) == set(expected)
        for sample, gt in expected.items():
            hom = gt.replace("|", "/") == "1/1"
            assert got[sample] == ("homozygous" if hom else "heterozygous")


async def test_sequence_query_refseq_and_wildcards(tg_client: Any, tg_indexed: Path) -> None:
    (t,) = [a for a in alleles(tg_indexed, "1:10177-10177") if a.alt == "AC"]
    start = t.pos - 1
    for name in ("1", "chr1", "NC_000001.10"):
        doc = await get(tg_client, referenceName=name, start=start, referenceBases="A",
                        alternateBases="AC", requestedGranularity="count")
        assert doc["responseSummary"]["numTotalResults"] == 1
    wild = await get(tg_client, referenceName="1", start=start, alternateBases="NN",
                     requestedGranularity="count")
    assert wild["responseSummary"]["numTotalResults"] == 1
    wrong = await get(tg_client, referenceName="1", start=start, alternateBases="AG")
    assert wrong["responseSummary"]["exists"] is False


async def test_assembly_is_enforced(tg_client: Any) -> None:
    base = {"referenceName": "1", "start": 10176, "alternateBases": "AC"}
    assert (await get(tg_client, **base))["responseSummary"]["exists"] is True
    other = await get(tg_client, **base, assemblyId="GRCh38")
    assert other["responseSummary"]["exists"] is False
    grch38 = await get(tg_client, **{**base, "referenceName": "NC_000001.11"})
    assert grch38["responseSummary"]["exists"] is False
    resp = await tg_client.get("/api/g_variants", params={
        **{k: str(v) for k, v in base.items()}, "referenceName": "NC_000001.11",
        "assemblyId": "GRCh37"})
    assert resp.status == 400
    validate(await resp.json(), RESP + "beaconErrorResponse.json")


async def test_bracket_query(tg_client: Any, tg_indexed: Path) -> None:
    deletions = [a for a in alleles(tg_indexed, "1:1-100000", kind="indels")
                 if len(a.ref) > len(a.alt)]
    d = deletions[0]
    start, end = d.pos - 1, d.pos - 1 + len(d.ref)
    hit = await get(tg_client, referenceName="1", start=f"{start - 2},{start}",
                    end=f"{end},{end + 2}", requestedGranularity="record", limit=100)
    ids = {r["variantInternalId"] for r in hit["response"]["resultSets"][0]["results"]}
    assert d.internal_id in ids
    miss = await get(tg_client, referenceName="1", start=f"{start - 2},{start}",
                     end=f"{end + 1},{end + 2}", requestedGranularity="record", limit=100)
    ids = {r["variantInternalId"] for rs in miss["response"]["resultSets"] for r in rs["results"]}
    assert d.internal_id not in ids


async def test_pagination_skip_counts_records(tg_client: Any) -> None:
    query = {"referenceName": "1", "start": 0, "end": 14700, "requestedGranularity": "record"}
    whole = await get(tg_client, **query, limit=20)
    ids = [r["variantInternalId"] for r in whole["response"]["resultSets"][0]["results"]]
    paged: list[str] = []
    for skip in range(0, 14, 7):
        page = await get(tg_client, **query, skip=skip, limit=7)
        assert page["meta"]["receivedRequestSummary"]["pagination"] == {"skip": skip, "limit": 7}
        paged += [r["variantInternalId"] for r in page["response"]["resultSets"][0]["results"]]
    assert paged == ids[:14]
    assert len(ids) >= 14


async def test_granularities_and_resultset_inclusion(tg_client: Any) -> None:
    query = {"referenceName": "1", "start": 10176, "alternateBases": "AC"}
    boolean = await get(tg_client, **query)
    assert "numTotalResults" not in boolean["responseSummary"]
    count = await get(tg_client, **query, requestedGranularity="count")
    assert count["responseSummary"]["numTotalResults"] == 1
    miss = {**query, "alternateBases": "AG", "requestedGranularity": "record"}
    assert (await get(tg_client, **miss))["response"]["resultSets"] == []
    shown = await get(tg_client, **miss, includeResultsetResponses="MISS")
    assert [rs["exists"] for rs in shown["response"]["resultSets"]] == [False]
    none = await get(tg_client, **query, requestedGranularity="record",
                     includeResultsetResponses="NONE")
    assert none["response"]["resultSets"] == [] and none["responseSummary"]["exists"] is True


async def test_variant_id_round_trips(tg_client: Any) -> None:
    doc = await get(tg_client, referenceName="1", start=66380, end=66381,
                    requestedGranularity="record")
    ids = [r["variantInternalId"] for r in doc["response"]["resultSets"][0]["results"]]
    assert len(ids) == 2  # TATATA>AATATA and TATATA>T
    for vid in ids:
        resp = await tg_client.get(f"/api/g_variants/{vid}",
                                   params={"requestedGranularity": "record"})
        one = await resp.json()
        check_schema(one)
        (rs,) = one["response"]["resultSets"]
        assert [r["variantInternalId"] for r in rs["results"]] == [vid]


async def test_test_mode_uses_no_real_data(tg_client: Any) -> None:
    doc = await get(tg_client, referenceName="1", start=10176, alternateBases="AC",
                    testMode="true", requestedGranularity="count")
    assert doc["meta"]["testMode"] is True
    assert doc["responseSummary"] == {"exists": False, "numTotalResults": 0}


def test_stats_lookup_agrees_with_region_scan(tg_store: Any, tg_indexed: Path) -> None:
    """The exact-allele fast path (precomputed statistics) and the region scan give the
    same variants and statistics, hits and misses alike, on bcftools' allele list."""
    truth = alleles(tg_indexed, "1:10001-20000")
    assert len(truth) > 40
    for t in truth[:40]:
        for alt in (t.alt, "C" if t.alt != "C" else "G"):
            q = VariantQuery(contig="1", start=(t.pos - 1,), reference_bases=t.ref,
                             alternate_bases=alt)
            fast = [(v.key, v.stats) for v in selector(q, by_stats=True)(tg_store)]
            slow = [(v.key, v.stats) for v in selector(q)(tg_store)]
            assert fast == slow
            if alt == t.alt:
                assert [s.ac for _, s in fast] == [t.ac]


async def test_an_unknown_reference_name_or_assembly_is_said_in_words(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """An empty answer on a name no dataset uses carries a warning naming it (issue 16);
    an empty answer on a known name carries none."""
    store = MemoryStore(assembly="GRCh38")
    vcf = tmp_path / "one.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n##contig=<ID=1,length=1000>\n"
                   "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n1\t100\t.\tA\tG\t.\tPASS\t.\n")
    store.ingest([Path(pysam.tabix_index(str(vcf), preset="vcf", force=True))])
    settings = Settings(home=tmp_path, datasets={"ds": DatasetSettings(
        security_level=SecurityLevel.PUBLIC,
        max_granularity={SecurityLevel.PUBLIC: Granularity.RECORD})},
        audit=AuditSettings(fsync=False))
    app = create_app(settings, registry_factory=lambda s: DatasetRegistry(
        s, opener=lambda _: store, lister=lambda: ["ds"]))
    client = await aiohttp_client(app)

    async def warnings(**params: str) -> dict[str, Any]:
        query = {"start": "99", "referenceBases": "A", "alternateBases": "T",
                 "requestedGranularity": "record", **params}
        doc = await (await client.get("/api/g_variants", params=query)).json()
        assert doc["responseSummary"]["exists"] is False
        return dict(doc.get("info", {}).get("warnings", {}))

    assert "unknownReferenceName" in await warnings(referenceName="7", assemblyId="GRCh38")
    assert "unknownAssemblyId" in await warnings(referenceName="1", assemblyId="GRCh37")
    assert await warnings(referenceName="1", assemblyId="GRCh38") == {}
