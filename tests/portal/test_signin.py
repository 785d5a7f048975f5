"""Sign-in: a Passport from the tests' local issuer, pasted into the sign-in page, raises
the level the page shows on the CONTROLLED dataset to what the Beacon API returns for it;
the token never appears in a URL; an invalid token is refused with the API's own reason
and leaves the visitor anonymous."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from node.demo import DEMO_DATASET
from tests.auth.issuer import Issuer
from tests.portal.conftest import DAC, GRANT, browser_for, url
from tests.portal.test_query import _alleles, _params

LEVEL = f'#levels tr[data-dataset="{DEMO_DATASET}"] .granularity'
HOME_LEVEL = f'#datasets tr[data-dataset="{DEMO_DATASET}"] .granularity'


async def _returned(server: TestServer, home: Path, token: str | None
                   ) -> tuple[int, dict[str, Any]]:
    """What the Beacon API gives this bearer when asked for records of the dataset's most
    frequent SNV (an answer free of charge: common alleles reveal no one)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    params = {**_params(_alleles(home)[0], "record"), "datasetIds": DEMO_DATASET}
    async with aiohttp.ClientSession() as http, http.get(
            url(server, "/api/g_variants"), params=params, headers=headers) as resp:
        return resp.status, await resp.json()


def _sign_in(token: str) -> list[dict[str, Any]]:
    return [
        {"do": "goto", "path": "/signin"},
        {"do": "wait", "selector": "body[data-ready]", "state": "attached"},
        {"do": "attr", "selector": LEVEL, "name": "data-granularity", "as": "before"},
        {"do": "fill", "selector": "#s-token", "value": token},
        {"do": "click", "selector": "#token-form button"},
    ]


async def test_a_passport_raises_the_level_shown(
    controlled_home: Path, controlled_node: TestServer, issuer: Issuer, tmp_path: Path
) -> None:
    token = issuer.passport([issuer.visa("ControlledAccessGrants", GRANT, source=DAC)])
    out = await browser_for(controlled_node, tmp_path).run([
        *_sign_in(token),
        {"do": "wait", "selector": "#s-signout"},
        {"do": "waitFor", "expression":
         "document.getElementById('s-status').textContent.startsWith('Signed in')"},
        {"do": "attr", "selector": LEVEL, "name": "data-granularity", "as": "after"},
        {"do": "goto", "path": "/"},  # the same tab keeps the token
        {"do": "wait", "selector": HOME_LEVEL, "state": "attached"},
        {"do": "attr", "selector": HOME_LEVEL, "name": "data-granularity", "as": "home"},
        {"do": "text", "selector": "#visitor", "as": "visitor"},
    ])
    status, anonymous = await _returned(controlled_node, controlled_home, None)
    assert status == 200
    status, signed = await _returned(controlled_node, controlled_home, token)
    assert status == 200
    results = out["results"]
    assert results["before"] == anonymous["meta"]["returnedGranularity"]
    assert results["after"] == results["home"] == signed["meta"]["returnedGranularity"]
    assert results["before"] != results["after"]
    assert results["visitor"].startswith("Signed in")
    # The token only ever travels in the Authorization header, never in a URL.
    assert not [r for r in out["requests"] if token in r["url"]]
    after = out["requests"][[r["url"] for r in out["requests"]].index(url(controlled_node, "/")):]
    assert any(r["authorization"] for r in after if "/portal/access" in r["url"])


async def test_an_invalid_token_is_refused_in_words(
    controlled_home: Path, controlled_node: TestServer, issuer: Issuer, tmp_path: Path
) -> None:
    expired = issuer.passport([issuer.visa("ControlledAccessGrants", GRANT, source=DAC)], now=0)
    status, doc = await _returned(controlled_node, controlled_home, expired)
    assert status == 401
    out = await browser_for(controlled_node, tmp_path).run(http_errors=(401,), steps=[
        *_sign_in(expired),
        {"do": "wait", "selector": "#s-error"},
        {"do": "text", "selector": "#s-error", "as": "error"},
        {"do": "attr", "selector": LEVEL, "name": "data-granularity", "as": "after"},
        {"do": "eval", "as": "stored", "expression": "sessionStorage.getItem('fednode.token')"},
    ])
    results = out["results"]
    assert results["error"].startswith("Sign-in failed")
    assert doc["error"]["errorMessage"] in results["error"]
    assert results["after"] == results["before"]
    assert results["stored"] is None
