"""Bearer passports over HTTP: anonymous without a header, 401 for any bad token, never a
silent fall-back to anonymous."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient

from node.config import Settings
from node.store.registry import DatasetRegistry
from node.web.app import create_app
from node.web.auth import principal_of
from tests.auth.conftest import DATASET_VALUE, IdP, auth_settings


def _empty_registry(settings: Settings) -> DatasetRegistry:
    def lister() -> Iterable[str]:
        return ()

    return DatasetRegistry(settings, opener=lambda _: None, lister=lister)  # type: ignore[arg-type, return-value]


async def _client(
    idp: IdP, tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> TestClient:
    settings = Settings(home=tmp_path, auth=auth_settings(idp))
    app = create_app(settings, registry_factory=_empty_registry)

    async def whoami(request: web.Request) -> web.Response:
        p = await principal_of(request)
        return web.json_response(
            {"anonymous": p.is_anonymous, "grants": sorted(p.controlled_grants)}
        )

    app.router.add_get("/whoami", whoami)
    return await aiohttp_client(app)


async def test_no_header_is_anonymous_and_a_valid_passport_grants(
    idp: IdP, tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> None:
    client = await _client(idp, tmp_path, aiohttp_client)
    assert await (await client.get("/whoami")).json() == {"anonymous": True, "grants": []}
    token = idp.broker.passport([idp.visas.visa("ControlledAccessGrants", DATASET_VALUE)])
    resp = await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert await resp.json() == {"anonymous": False, "grants": ["ds1"]}


async def test_bad_tokens_are_401_not_anonymous(
    idp: IdP, tmp_path: Path, aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> None:
    client = await _client(idp, tmp_path, aiohttp_client)
    expired = idp.broker.passport([], now=0)
    forged = idp.rogue.passport([], iss=idp.broker.iss)
    for header in (f"Bearer {expired}", f"Bearer {forged}", "Bearer ", "Basic dXNlcjpwdw==",
                   "Bearer not.a.jwt"):
        resp = await client.get("/whoami", headers={"Authorization": header})
        assert resp.status == 401, header
        assert "Traceback" not in await resp.text()
