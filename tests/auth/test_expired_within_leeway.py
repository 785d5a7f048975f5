"""Issue 13: the leeway is applied once. A passport or visa that expired less than
`leeway_s` ago is accepted by the verifier, so it must also get its full level from the
policy; past the leeway it is refused with 401; a principal held past its expiry is refused
with 401, never downgraded to boolean answers."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
import pysam
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from node.auth.passport import PassportEvaluator
from node.auth.policy import requester_level
from node.config import BudgetSettings, DatasetSettings, PrivacySettings, Settings
from node.errors import Unauthenticated
from node.names import Granularity, SecurityLevel
from node.peer.auth import CoordinatorVerifier
from node.store.memory import MemoryStore
from node.store.registry import DatasetRegistry
from node.web.app import create_app
from node.web.auth import principal_of
from tests.auth.conftest import DATASET_VALUE, LEEWAY_S, IdP, auth_settings
from tests.peer.helpers import COORDINATOR, ec_key, public_pem

Client = Callable[..., Awaitable[TestClient]]
INSIDE, OUTSIDE = 20, LEEWAY_S + 10  # seconds past `exp`: within / beyond the leeway
LIFETIME = 600
CONTROLLED = DatasetSettings(
    assembly="GRCh38",
    security_level=SecurityLevel.CONTROLLED,
    max_granularity={
        SecurityLevel.PUBLIC: Granularity.BOOLEAN,
        SecurityLevel.REGISTERED: Granularity.COUNT,
        SecurityLevel.CONTROLLED: Granularity.RECORD,
    },
)
QUERY = {"referenceName": "1", "start": "199", "referenceBases": "C", "alternateBases": "T",
         "assemblyId": "GRCh38", "requestedGranularity": "record"}


def _issued(expired_s: int) -> dict[str, int]:
    """Mint arguments for a token whose `exp` was `expired_s` seconds ago."""
    return {"now": int(time.time()) - LIFETIME - expired_s, "lifetime": LIFETIME}


def _exp(token: str) -> int:
    return int(jwt.decode(token, options={"verify_signature": False})["exp"])


def _passport(idp: IdP, *, passport_expired: int = -300, visa_expired: int = -300) -> str:
    """A passport granting ds1; negative `*_expired`: still valid for that long."""
    visa = idp.visas.visa("ControlledAccessGrants", DATASET_VALUE, **_issued(visa_expired))
    return idp.broker.passport([visa], **_issued(passport_expired))


# --- the evaluator and the policy agree --------------------------------------------------


@pytest.mark.parametrize("which", ["passport", "visa"])
async def test_expired_within_leeway_keeps_its_level(
    evaluator: PassportEvaluator, idp: IdP, which: str
) -> None:
    token = _passport(idp, **{f"{which}_expired": INSIDE})
    principal = await evaluator.principal(token)
    assert requester_level(principal, "ds1", now=int(time.time())) is SecurityLevel.CONTROLLED


async def test_principal_expires_exactly_when_the_verifier_stops_accepting(
    evaluator: PassportEvaluator, idp: IdP
) -> None:
    visa = idp.visas.visa("ControlledAccessGrants", DATASET_VALUE, **_issued(INSIDE))
    principal = await evaluator.principal(idp.broker.passport([visa]))
    until = _exp(visa) + LEEWAY_S
    assert principal.expires_at == until
    # Held (per request, or in any cache) past that instant: 401, not PUBLIC.
    assert requester_level(principal, "ds1", now=until - 1) is SecurityLevel.CONTROLLED
    with pytest.raises(Unauthenticated, match="token expired"):
        requester_level(principal, "ds1", now=until)


async def test_expired_beyond_leeway(evaluator: PassportEvaluator, idp: IdP) -> None:
    with pytest.raises(Unauthenticated, match="token expired"):
        await evaluator.principal(_passport(idp, passport_expired=OUTSIDE))
    # A failing visa is ignored (Passport v1 §General Requirements 8): no grant, no 401.
    principal = await evaluator.principal(_passport(idp, visa_expired=OUTSIDE))
    assert principal.controlled_grants == frozenset()


def test_coordinator_token_within_leeway_keeps_its_level(tmp_path: Path) -> None:
    key = ec_key()
    coordinator = {"id": COORDINATOR, "public_key": public_pem(key), "controlled_datasets": ["ds1"]}
    settings = Settings(home=tmp_path, node={"id": "node-a", "name": "node-a"},
                        peer={"coordinators": [coordinator]})
    now = int(time.time())
    token = jwt.encode(
        {"iss": COORDINATOR, "sub": COORDINATOR, "aud": "node-a", "iat": now - 60,
         "exp": now - INSIDE},
        key,
        algorithm="ES256",
    )
    caller = CoordinatorVerifier(settings).verify(token, [])
    assert requester_level(caller.principal, "ds1", now=now) is SecurityLevel.CONTROLLED


# --- over HTTP -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> MemoryStore:
    path = tmp_path_factory.mktemp("vcf") / "c.vcf"
    names = [f"S{i}" for i in range(10)]
    header = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *names]
    row = ["1", "200", ".", "C", "T", ".", "PASS", ".", "GT", *(["0|1"] * 10)]
    path.write_text("\n".join([
        "##fileformat=VCFv4.2",
        "##contig=<ID=1,length=10000>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "\t".join(header),
        "\t".join(row),
    ]) + "\n")
    out = MemoryStore(assembly="GRCh38")
    out.ingest([Path(pysam.tabix_index(str(path), preset="vcf", force=True))])
    return out


class Clock:
    def __init__(self) -> None:
        self.now = int(time.time())

    def __call__(self) -> int:
        return self.now


@pytest.fixture
async def client(
    idp: IdP, tmp_path: Path, aiohttp_client: Client, store: MemoryStore
) -> tuple[TestClient, Clock]:
    settings = Settings(
        home=tmp_path,
        auth=auth_settings(idp),
        datasets={"ds1": CONTROLLED},
        privacy=PrivacySettings(budget=BudgetSettings(max_llr=1e9), min_count=1),
    )

    def registry(s: Settings) -> DatasetRegistry:
        return DatasetRegistry(s, opener=lambda _: store, lister=lambda: ["ds1"])

    app = create_app(settings, registry_factory=registry)
    clock = Clock()

    async def level(request: web.Request) -> web.Response:
        # The request's principal, looked at an injected instant after it was accepted.
        principal = await principal_of(request)
        return web.json_response(requester_level(principal, "ds1", now=clock()).value)

    app.router.add_get("/level", level)
    return await aiohttp_client(app), clock


async def _ask(client: TestClient, token: str) -> tuple[int, Any]:
    resp = await client.get("/api/g_variants", params=QUERY,
                            headers={"Authorization": f"Bearer {token}"})
    return resp.status, await resp.json()


@pytest.mark.parametrize("which", ["passport", "visa"])
async def test_http_expired_within_leeway_gets_records(
    idp: IdP, client: tuple[TestClient, Clock], which: str
) -> None:
    status, doc = await _ask(client[0], _passport(idp, **{f"{which}_expired": INSIDE}))
    assert status == 200, doc
    assert doc["meta"]["returnedGranularity"] == "record"


async def test_http_passport_expired_beyond_leeway_is_401(
    idp: IdP, client: tuple[TestClient, Clock]
) -> None:
    status, doc = await _ask(client[0], _passport(idp, passport_expired=OUTSIDE))
    assert status == 401, doc
    assert doc["error"]["errorMessage"] == "token expired"


async def test_http_principal_expiring_while_held_is_401(
    idp: IdP, client: tuple[TestClient, Clock]
) -> None:
    http, clock = client
    visa = idp.visas.visa("ControlledAccessGrants", DATASET_VALUE, **_issued(INSIDE))
    headers = {"Authorization": f"Bearer {idp.broker.passport([visa])}"}
    until = _exp(visa) + LEEWAY_S
    clock.now = until - 1
    resp = await http.get("/level", headers=headers)
    assert resp.status == 200 and await resp.json() == "CONTROLLED"
    clock.now = until
    resp = await http.get("/level", headers=headers)
    assert resp.status == 401
