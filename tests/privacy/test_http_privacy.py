"""Privacy end to end over HTTP: budget refusal as a Beacon error, budgets surviving a
restart, per-client anonymous budgets, small counts never exact, and the audit log of a
session verifying and recording what was returned."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pysam
import pytest
from aiohttp.test_utils import TestClient

from node.catalog import Catalog
from node.config import AuditSettings, BudgetSettings, DatasetSettings, PrivacySettings, Settings
from node.errors import Unavailable
from node.names import Granularity, SecurityLevel
from node.privacy.audit import AuditLog, verify
from node.store.memory import MemoryStore
from node.store.registry import DatasetRegistry
from node.web.app import create_app
from tests.beacon.schemas import validate

Client = Callable[..., Awaitable[TestClient]]
N = 20
RESP = "framework/json/responses/"
CINECA = "beacon-testdata/ega-beacon2-ri-tools-v2/bff/CINECA_synthetic_cohort_EUROPE_UK1"
PUBLIC_COUNT = DatasetSettings(
    assembly="GRCh38",
    security_level=SecurityLevel.PUBLIC,
    max_granularity={SecurityLevel.PUBLIC: Granularity.COUNT},
)
# (POS, REF, ALT, carriers): one singleton, one common allele.
SITES = [(100, "A", "G", 1), (200, "C", "T", 10)]


def yes_llr(ac: int) -> float:
    """The SB evidence of a "yes" on an allele of count `ac` (D_N = (1-f)^(2N))."""
    f = ac / (2 * N)
    return math.log(1 - 1e-6 * (1 - f) ** (2 * N - 2)) - math.log(1 - (1 - f) ** (2 * N))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> MemoryStore:
    path = tmp_path_factory.mktemp("vcf") / "c.vcf"
    names = [f"S{i:02d}" for i in range(N)]
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=1,length=10000>",
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
             "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO",
                        "FORMAT", *names])]
    for pos, ref, alt, carriers in SITES:
        gts = ["0|1" if i < carriers else "0|0" for i in range(N)]
        lines.append("\t".join(["1", str(pos), ".", ref, alt, ".", "PASS", ".", "GT", *gts]))
    path.write_text("\n".join(lines) + "\n")
    gz = pysam.tabix_index(str(path), preset="vcf", force=True)
    out = MemoryStore(assembly="GRCh38")
    out.ingest([Path(gz)])
    return out


def app_settings(home: Path, max_llr: float, **privacy: Any) -> Settings:
    # Lenient pricing unless a test asks otherwise: a "yes" costs its SB evidence at the
    # dataset's frequency, which the expected charges below are computed from.
    privacy.setdefault("strict_pricing", False)
    return Settings(
        home=home,
        datasets={"ds": PUBLIC_COUNT},
        privacy=PrivacySettings(budget=BudgetSettings(max_llr=max_llr), **privacy),
        audit=AuditSettings(fsync=False),
    )


async def client_for(aiohttp_client: Client, settings: Settings, store: MemoryStore
                     ) -> TestClient:
    def registry(s: Settings) -> DatasetRegistry:
        return DatasetRegistry(s, opener=lambda _: store, lister=lambda: ["ds"])

    return await aiohttp_client(create_app(settings, registry_factory=registry))


def allele(pos: int, ref: str, alt: str, granularity: str = "boolean") -> dict[str, str]:
    return {"referenceName": "1", "start": str(pos - 1), "referenceBases": ref,
            "alternateBases": alt, "assemblyId": "GRCh38",
            "requestedGranularity": granularity}


async def ask(client: TestClient, params: dict[str, str], who: str) -> tuple[int, Any]:
    resp = await client.get("/api/g_variants", params=params,
                            headers={"X-Forwarded-For": who})
    return resp.status, await resp.json()


RARE, COMMON = allele(*SITES[0][:3]), allele(*SITES[1][:3])


async def test_spent_budget_is_a_403_envelope_and_survives_restart(
    aiohttp_client: Client, tmp_path: Path, store: MemoryStore
) -> None:
    # Room for exactly two "yes" answers on the singleton.
    settings = app_settings(tmp_path, 2.5 * yes_llr(1), client_address_header="X-Forwarded-For")
    client = await client_for(aiohttp_client, settings, store)
    for _ in range(2):
        status, doc = await ask(client, RARE, "198.51.100.7")
        assert status == 200 and doc["responseSummary"]["exists"] is True
        validate(doc, RESP + "beaconBooleanResponse.json")
    status, doc = await ask(client, RARE, "198.51.100.7")
    assert status == 403
    validate(doc, RESP + "beaconErrorResponse.json")
    assert "budget" in doc["error"]["errorMessage"]
    # An answer that reveals nobody still flows; another client has its own budget.
    assert (await ask(client, COMMON, "198.51.100.7"))[0] == 200
    assert (await ask(client, RARE, "203.0.113.9"))[0] == 200
    await client.close()

    restarted = await client_for(aiohttp_client, settings, store)
    assert (await ask(restarted, RARE, "198.51.100.7"))[0] == 403
    assert (await ask(restarted, COMMON, "198.51.100.7"))[0] == 200


async def test_without_proxy_header_anonymous_clients_share_the_peer_address(
    aiohttp_client: Client, tmp_path: Path, store: MemoryStore
) -> None:
    # X-Forwarded-For is ignored unless configured: a client cannot mint fresh budgets.
    client = await client_for(aiohttp_client, app_settings(tmp_path, 1.5 * yes_llr(1)), store)
    assert (await ask(client, RARE, "198.51.100.1"))[0] == 200
    assert (await ask(client, RARE, "198.51.100.2"))[0] == 403


async def test_audit_log_of_a_session_verifies_and_records_answers(
    aiohttp_client: Client, tmp_path: Path, store: MemoryStore
) -> None:
    client = await client_for(aiohttp_client, app_settings(tmp_path, 1.5 * yes_llr(1)), store)
    statuses = [
        (await ask(client, allele(*SITES[1][:3], "count"), "x"))[0],
        (await ask(client, RARE, "x"))[0],
        (await ask(client, RARE, "x"))[0],
    ]
    assert statuses == [200, 200, 403]
    log = tmp_path / "audit.jsonl"
    report = verify(log)
    assert report.ok and report.entries == 3
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    count, yes, refused = entries
    assert count["granularity"] == "count" and count["datasets"] == ["ds"]
    assert count["counts"] == {"ds": {"value": 1, "precision": "exact"}}
    assert count["query"]["variant"]["start"] == [199]
    assert yes["granularity"] == "boolean" and yes["budget"]["llr"] == pytest.approx(yes_llr(1))
    assert refused["query"]["outcome"] == "refused" and refused["granularity"] is None
    assert refused["counts"] == {} and refused["budget"]["llr"] == 0.0
    assert len({e["requester"] for e in entries}) == 1
    assert {e["request_id"] for e in entries}.isdisjoint({""})
    # An edited entry is detected.
    lines = log.read_text().splitlines()
    assert '"value":1' in lines[1]
    lines[1] = lines[1].replace('"value":1', '"value":2')
    log.write_text("\n".join(lines) + "\n")
    assert "edited" in verify(log).kinds()


async def test_small_people_counts_are_never_exact(
    aiohttp_client: Client, tmp_path: Path, store: MemoryStore, shared_dir: Path
) -> None:
    raw = json.loads((shared_dir / CINECA / "individuals.json").read_text())
    Catalog.open(tmp_path).load("ds", [shared_dir / CINECA])
    for k, expected in ((5, (5, "imprecise", 5)), (1, (1, "exact", None))):
        # The threshold alone (noise off; noised counts: tests/privacy/test_attacks.py).
        settings = app_settings(tmp_path / f"k{k}", 25.0, min_count=k, people_epsilon=None)
        settings = settings.model_copy(update={"home": tmp_path})
        client = await client_for(aiohttp_client, settings, store)
        resp = await client.get(f"/api/individuals/{raw[0]['id']}",
                                params={"requestedGranularity": "count"})
        doc = await resp.json()
        validate(doc, RESP + "beaconCountResponse.json")
        summary = doc["responseSummary"]
        got = (summary["numTotalResults"], summary["countPrecision"],
               summary.get("countAdjustedTo"))
        assert got == expected
        await client.close()


async def test_default_settings_answer_common_alleles_and_refuse_no_and_singletons(
    aiohttp_client: Client, tmp_path: Path, store: MemoryStore
) -> None:
    settings = Settings(home=tmp_path, datasets={"ds": PUBLIC_COUNT},
                        audit=AuditSettings(fsync=False))
    client = await client_for(aiohttp_client, settings, store)
    for _ in range(3):
        status, doc = await ask(client, COMMON, "203.0.113.1")
        assert status == 200 and doc["responseSummary"]["exists"] is True
    absent = allele(300, "G", "A")
    for params in (RARE, absent):
        status, doc = await ask(client, params, "203.0.113.1")
        assert status == 403 and "budget" in doc["error"]["errorMessage"]


async def test_an_unwritable_audit_log_answers_nothing(
    aiohttp_client: Client, tmp_path: Path, store: MemoryStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fail closed: the answer waits for its audit entry (group-committed by the app's
    audit queue) and is not given when the entry cannot be written."""
    client = await client_for(aiohttp_client, app_settings(tmp_path, 1e9), store)
    assert (await ask(client, COMMON, "10.0.0.1"))[0] == 200

    def broken(self: AuditLog, records: Sequence[dict[str, Any]]) -> None:
        raise Unavailable("audit log unwritable")

    monkeypatch.setattr(AuditLog, "append_records", broken)
    status, doc = await ask(client, COMMON, "10.0.0.1")
    assert status == 503 and "responseSummary" not in doc and "response" not in doc
