"""Every page of the portal loads in Chromium with no console error, no CSP violation and
no request leaving the node; its fields are labelled and reachable from the keyboard; the
operator view is refused without the operator credential."""

from __future__ import annotations

import hashlib
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from node.config import PortalSettings, load_settings
from node.privacy.audit import verify
from node.web.portal.pages import PAGES
from tests.portal.conftest import OPERATOR_SECRET, browser_for, serve, url

# When a page has drawn what it loads from the APIs.
READY = {
    "/": "#datasets tbody tr",
    "/query": "form[data-ready]",
    "/browse": "form[data-ready]",
    "/signin": "body[data-ready]",
    "/operator": "body[data-ready]",
}
UNLABELLED = """[...document.querySelectorAll("input, select, textarea")]
  .filter((e) => e.type !== "hidden" && !(e.labels && e.labels.length)
                 && !e.getAttribute("aria-label"))
  .map((e) => e.id || e.name)"""


async def test_every_page_loads_clean(demo_node: TestServer, tmp_path: Path) -> None:
    assert set(READY) == set(PAGES)
    steps = []
    for path, ready in READY.items():
        steps += [
            {"do": "goto", "path": path},
            {"do": "wait", "selector": ready, "state": "attached"},
            {"do": "eval", "as": f"unlabelled {path}", "expression": UNLABELLED},
            # The first Tab reaches the skip link, which leads to the page's content.
            {"do": "press", "selector": "body", "key": "Tab"},
            {"do": "eval", "as": f"first tab {path}",
             "expression": "document.activeElement.getAttribute('href')"},
        ]
    out = await browser_for(demo_node, tmp_path).run(steps)
    for path in PAGES:
        assert out["results"][f"unlabelled {path}"] == [], path
        assert out["results"][f"first tab {path}"] == "#main", path
    async with aiohttp.ClientSession() as http:
        for path in PAGES:
            async with http.get(url(demo_node, path)) as resp:
                assert resp.status == 200
                policy = resp.headers["Content-Security-Policy"]
                assert "script-src 'self';" in policy and "unsafe-eval" not in policy
                assert "default-src 'none'" in policy


async def test_operator_view_is_refused_without_the_credential(
    demo_home: Path, controlled_node: TestServer, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"},
                        {"Authorization": f"Basic {OPERATOR_SECRET}"}):
            for path in ("/portal/operator/status", "/portal/operator/metrics"):
                async with http.get(url(controlled_node, path), headers=headers) as resp:
                    assert resp.status == 401, (path, headers)
                    assert "audit" not in await resp.json()
    out = await browser_for(controlled_node, tmp_path).run(http_errors=(401,), steps=[
        {"do": "goto", "path": "/operator"},
        {"do": "wait", "selector": "body[data-ready]", "state": "attached"},
        {"do": "fill", "selector": "#op-token", "value": "not-the-credential"},
        {"do": "click", "selector": "#op-form button"},
        {"do": "wait", "selector": "#op-error"},
        {"do": "text", "selector": "#op-error", "as": "error"},
        {"do": "eval", "as": "view hidden",
         "expression": "document.getElementById('op-view').hidden"},
    ])
    assert "refused" in out["results"]["error"] and "credential" in out["results"]["error"]
    assert out["results"]["view hidden"] is True
    assert out["httpErrors"] == [401]

    # A node configured without a credential refuses everyone, whatever they present.
    unset = await serve(load_settings(demo_home, portal=PortalSettings()))
    try:
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {OPERATOR_SECRET}"}
            async with http.get(url(unset, "/portal/operator/status"), headers=headers) as resp:
                assert resp.status == 403
    finally:
        await unset.close()


async def test_operator_view_with_the_credential(
    controlled_home: Path, controlled_node: TestServer, tmp_path: Path
) -> None:
    assert hashlib.sha256(OPERATOR_SECRET.encode()).hexdigest()  # the configured digest's source
    async with aiohttp.ClientSession() as http:  # traffic for the plots and the log
        for path in ("/api/info", "/api/filtering_terms", "/portal/access"):
            async with http.get(url(controlled_node, path)) as resp:
                assert resp.status == 200
    out = await browser_for(controlled_node, tmp_path).run([
        {"do": "goto", "path": "/operator"},
        {"do": "wait", "selector": "body[data-ready]", "state": "attached"},
        {"do": "fill", "selector": "#op-token", "value": OPERATOR_SECRET},
        {"do": "press", "selector": "#op-token", "key": "Enter"},
        {"do": "wait", "selector": "#op-view"},
        {"do": "wait", "selector": "#op-latency svg text", "state": "attached"},
        {"do": "attr", "selector": "#op-audit", "name": "data-ok", "as": "ok"},
        {"do": "attr", "selector": "#op-audit", "name": "data-entries", "as": "entries"},
        {"do": "eval", "as": "latency", "expression":
         "[...document.querySelectorAll('#op-latency svg text')].map((t) => t.textContent)"},
        {"do": "texts", "selector": "#op-datasets tbody th", "as": "datasets"},
        {"do": "text", "selector": "#op-recent", "as": "recent"},
    ])
    report = verify(controlled_home / "audit.jsonl")
    results = out["results"]
    assert report.ok, report.problems
    assert results["ok"] == "true"
    # The page verified the chain at some point before this check: as long, or shorter.
    assert 0 < int(results["entries"]) <= report.entries
    assert OPERATOR_SECRET not in results["recent"]
    assert "/api/filtering_terms" in results["recent"]
    async with aiohttp.ClientSession() as http, \
            http.get(url(controlled_node, "/metrics")) as resp:
        metrics = await resp.text()
    routes = results["latency"][0::2]  # labels, then their figures
    assert "/api/info" in routes
    assert all(f'route="{r}"' in metrics for r in routes)
    assert results["datasets"] == ["demo-cohort"]
