"""htsget use cases outside the transport (issue 16): `node/htsget/service.py` decides
access and audits every ticket without aiohttp, and `node/web/htsget.py` only translates
(it makes no access decision of its own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from node.config import DatasetSettings
from node.domain import Principal
from node.errors import NotFound, PermissionDenied, Unauthenticated
from node.htsget.models import HtsgetRequest
from node.htsget.service import HtsgetService, TicketCall
from node.htsget.signing import BlockSigner
from node.names import Granularity, SecurityLevel
from node.reads.catalog import ReadsCatalog
from node.reads.layout import Query
from node.store.memory import MemoryStore
from tests.beacon.test_layers import FORBIDDEN, imported
from tests.conftest import REPO

REGISTERED = DatasetSettings(
    security_level=SecurityLevel.REGISTERED,
    max_granularity={SecurityLevel.REGISTERED: Granularity.RECORD},
)
VCF = "##fileformat=VCFv4.3\n##contig=<ID=1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
ROWS = ["1\t100\t.\tA\tG\t.\tPASS\t.", "1\t500\t.\tC\tT\t.\tPASS\t."]
USER = Principal("user-1", "https://idp.example", True, frozenset(), None)


COUNT_ONLY = DatasetSettings(
    security_level=SecurityLevel.REGISTERED,
    max_granularity={SecurityLevel.REGISTERED: Granularity.COUNT},
)


class Datasets:
    def __init__(self, store: MemoryStore, settings: DatasetSettings) -> None:
        self._store, self._settings = store, settings

    def ids(self) -> tuple[str, ...]:
        return ("cohort",)

    def settings(self, dataset_id: str) -> DatasetSettings:
        return self._settings

    def store(self, dataset_id: str) -> MemoryStore:
        return self._store


def _service(tmp_path: Path, settings: DatasetSettings) -> HtsgetService:
    source = tmp_path / "in.vcf"
    source.write_text(VCF + "\n".join(ROWS) + "\n")
    store = MemoryStore()
    store.ingest([source])
    signer = BlockSigner(b"k" * 32, ttl_s=60)
    return HtsgetService(ReadsCatalog(tmp_path / "reads"), Datasets(store, settings), signer)


@pytest.fixture
def service(tmp_path: Path) -> HtsgetService:
    return _service(tmp_path, REGISTERED)


def _call(principal: Principal, audited: list[dict[str, Any]]) -> TicketCall:
    async def audit(**entry: Any) -> None:
        audited.append(entry)

    return TicketCall(principal=principal, data_url=lambda t: f"https://node.example/d/{t}",
                      audit=audit)  # fmt: skip


REQ = HtsgetRequest("variants", "cohort", "VCF", regions=(Query("1", 99, 200),))


async def test_granted_ticket_is_signed_for_the_regions_and_audited(
    service: HtsgetService,
) -> None:
    audited: list[dict[str, Any]] = []
    body = await service.ticket(REQ, _call(USER, audited))
    (entry,) = body["htsget"]["urls"]
    token = entry["url"].removeprefix("https://node.example/d/")
    claims = service.signer.verify(token)
    assert (claims["d"], claims["r"]) == ("cohort", [["1", 99, 200]])
    assert [(a["outcome"], a["granularity"], a["datasets"]) for a in audited] == [
        ("answered", "record", ["cohort"])
    ]


@pytest.mark.parametrize(
    ("principal", "settings", "error"),
    [(Principal.anonymous(), REGISTERED, Unauthenticated), (USER, COUNT_ONLY, PermissionDenied)],
    ids=["anonymous", "no-record-access"],
)
async def test_refusals_are_errors_and_audited(
    tmp_path: Path, principal: Principal, settings: DatasetSettings, error: type[Exception]
) -> None:
    audited: list[dict[str, Any]] = []
    with pytest.raises(error):
        await _service(tmp_path, settings).ticket(REQ, _call(principal, audited))
    assert [(a["outcome"], a["granularity"]) for a in audited] == [("refused", None)]


async def test_unknown_dataset_is_not_found_and_audited(service: HtsgetService) -> None:
    audited: list[dict[str, Any]] = []
    missing = HtsgetRequest("variants", "nope", "VCF")
    with pytest.raises(NotFound):
        await service.ticket(missing, _call(USER, audited))
    assert [(a["outcome"], a["datasets"]) for a in audited] == [("refused", ["nope"])]


def test_htsget_protocol_code_imports_no_transport() -> None:
    for path in sorted((REPO / "node" / "htsget").glob("*.py")):
        bad = {n for n in imported(path) if n.split(".")[0] in FORBIDDEN or n.startswith(FORBIDDEN)}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_htsget_transport_decides_no_access() -> None:
    """Access is the use case's: the aiohttp module imports neither the policy nor the
    store (only node/htsget/service.py does)."""
    names = imported(REPO / "node" / "web" / "htsget.py")
    assert not {n for n in names if n.startswith(("node.auth.policy", "node.store"))}
    assert "node.htsget.service" in names
