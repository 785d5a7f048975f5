"""The portal in headless Chromium against real nodes built by `fednode demo`: the demo
as `make demo` serves it (a PUBLIC dataset), and a copy whose dataset is CONTROLLED, with
Passports from a local issuer (tests/auth/issuer.py) and an operator credential."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from node.config import (
    AuthSettings,
    DatasetGrantSettings,
    DatasetSettings,
    IssuerSettings,
    OidcSettings,
    PortalSettings,
    Settings,
    load_settings,
)
from node.demo import DEMO_DATASET, build_demo
from node.names import Granularity, SecurityLevel
from node.web.app import create_app
from tests.auth.issuer import Issuer, IssuerServer, make_key
from tests.conftest import REPO
from tests.htsget.conftest import require_tool, run

DRIVER = Path(__file__).parent / "driver.mjs"
GRANT = "https://dac.example/datasets/demo-cohort"
DAC = "https://dac.example/DAC1"


@dataclass
class Browser:
    node: str
    tmp: Path

    async def run(self, steps: list[dict[str, Any]], *, http_errors: tuple[int, ...] = (),
                  also_allowed: tuple[str, ...] = ()) -> dict[str, Any]:
        """Run `steps` in one page (tests/portal/driver.mjs); fails on any console
        error, page error or CSP violation, on an HTTP error status other than the
        `http_errors` expected, and on any request for another origin."""
        path = self.tmp / f"steps-{secrets.token_hex(4)}.json"
        path.write_text(json.dumps(steps))
        out = json.loads(await run(require_tool("node"), str(DRIVER), self.node, str(path),
                                   *also_allowed))
        assert out["errors"] == [], out["errors"]
        assert out["offsite"] == [], out["offsite"]
        assert set(out["httpErrors"]) <= set(http_errors), out["httpErrors"]
        return out


def _requirements() -> None:
    require_tool("node")
    require_tool("chromium")
    for package in ("igv/dist/igv.esm.min.js", "playwright-core/package.json"):
        if not (REPO / "node_modules" / package).is_file():
            pytest.skip("igv / playwright-core not installed: run `npm ci` (make test does)")


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("portal") / "demo"
    build_demo(home)
    return home


@pytest.fixture(scope="session")
def controlled_home(demo_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("portal") / "controlled"
    shutil.copytree(demo_home, home)
    for state in [*home.glob("audit.jsonl*"), *home.glob("budget.sqlite3*")]:
        state.unlink()  # the copy starts its own audit chain and budgets
    return home


@pytest.fixture
async def issuer(aiohttp_server: Callable[..., Any]) -> Issuer:
    server = IssuerServer("")
    test_server = await aiohttp_server(server.app(), host="127.0.0.1")
    server.base = str(test_server.make_url("")).rstrip("/")
    broker = server.issuer("broker")
    broker.add_key("broker-rs", "RS256", make_key("RS256"))
    return broker


OPERATOR_SECRET = secrets.token_urlsafe(24)


def controlled_settings(home: Path, broker: Issuer, *, oidc: OidcSettings | None = None
                        ) -> Settings:
    """The demo dataset CONTROLLED: anonymous and registered visitors get counts, a grant
    gives records; the broker's passports are trusted, it may assert the grant itself."""
    return load_settings(
        home,
        datasets={DEMO_DATASET: DatasetSettings(
            assembly="GRCh38", security_level=SecurityLevel.CONTROLLED,
            max_granularity={SecurityLevel.PUBLIC: Granularity.COUNT,
                             SecurityLevel.CONTROLLED: Granularity.RECORD})},
        auth=AuthSettings(
            brokers=[IssuerSettings(iss=broker.iss, jwks_uri=broker.jwks_uri,
                                    audience=["fednode"])],
            visa_issuers=[IssuerSettings(iss=broker.iss, jwks_uri=broker.jwks_uri)],
            grants={DEMO_DATASET: DatasetGrantSettings(value=GRANT, sources=[DAC])}),
        portal=PortalSettings(
            operator_token_sha256=hashlib.sha256(OPERATOR_SECRET.encode()).hexdigest(),
            oidc=oidc),
    )


async def serve(settings: Settings) -> TestServer:
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def demo_node(demo_home: Path) -> AsyncIterator[TestServer]:
    _requirements()
    server = await serve(load_settings(demo_home))
    yield server
    await server.close()


@pytest.fixture
async def controlled_node(controlled_home: Path, issuer: Issuer) -> AsyncIterator[TestServer]:
    _requirements()
    server = await serve(controlled_settings(controlled_home, issuer))
    yield server
    await server.close()


def browser_for(server: TestServer, tmp: Path) -> Browser:
    return Browser(str(server.make_url("/")), tmp)


def url(server: TestServer, path: str) -> str:
    return str(server.make_url(path))


__all__ = ["DAC", "GRANT", "OPERATOR_SECRET", "Browser", "browser_for", "serve", "url"]
