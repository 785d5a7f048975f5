"""A query typed into the portal's form shows what the Beacon API answers for the same
query (the test builds the request itself and asks the API), for a variant present in
the demo's inputs (bcftools), one absent from them, and one the node refuses; the curl
command the page shows returns the API's answer too; a record opens in the genome
browser in one click."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from aiohttp.test_utils import TestServer

from tests.demo.test_demo import _truth
from tests.htsget.conftest import run
from tests.portal.conftest import browser_for, url

Allele = tuple[str, int, str, str]


def _alleles(home: Path) -> tuple[Allele, Allele]:
    """The demo's most frequent SNV (bcftools over its inputs), and at the same site an
    ALT base the inputs never have there."""
    truth = _truth(home)
    snvs = [(k, ac) for k, (ac, _) in truth.items() if len(k[2]) == len(k[3]) == 1]
    present = max(snvs, key=lambda kv: (kv[1], kv[0]))[0]
    chrom, pos, ref, _ = present
    seen = {k[3] for k in truth if k[:3] == (chrom, pos, ref)}
    absent_alt = next(b for b in "ACGT" if b != ref and b not in seen)
    return present, (chrom, pos, ref, absent_alt)


def _params(allele: Allele, granularity: str) -> dict[str, str]:
    chrom, pos, ref, alt = allele
    return {"referenceName": chrom, "start": str(pos - 1), "referenceBases": ref,
            "alternateBases": alt, "assemblyId": "GRCh38", "requestedGranularity": granularity}


def _typed(allele: Allele, granularity: str, *, filters: tuple[str, ...] = ()
           ) -> list[dict[str, Any]]:
    """Type the query into the form and send it with the keyboard (Enter)."""
    chrom, pos, ref, alt = allele
    steps: list[dict[str, Any]] = [
        {"do": "goto", "path": "/query"},
        {"do": "wait", "selector": "form[data-ready]", "state": "attached"},
        {"do": "fill", "selector": "#q-chrom", "value": chrom},
        {"do": "fill", "selector": "#q-pos", "value": str(pos)},
        {"do": "fill", "selector": "#q-ref", "value": ref},
        {"do": "select", "selector": "#q-granularity", "value": granularity},
    ]
    for term in filters:
        steps += [{"do": "fill", "selector": "#q-filter", "value": term},
                  {"do": "press", "selector": "#q-filter", "key": "Enter"}]
    steps += [
        {"do": "fill", "selector": "#q-alt", "value": alt},
        {"do": "press", "selector": "#q-alt", "key": "Enter"},
        {"do": "wait", "selector": "#q-result"},
    ]
    for field in ("status", "exists", "count", "precision", "returned", "notes", "curl"):
        steps.append({"do": "text", "selector": f"#q-{field}", "as": field})
    return steps


async def _api(server: TestServer, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, \
            http.get(url(server, "/api/g_variants"), params=params) as resp:
        return resp.status, await resp.json()


async def _assert_same(page: dict[str, str], status: int, doc: dict[str, Any],
                       params: dict[str, str]) -> None:
    assert page["status"] == str(status)
    curl = shlex.split(page["curl"])
    assert curl[:2] == ["curl", "-s"]
    assert dict(parse_qsl(urlsplit(curl[2]).query)) == params
    # The command the page shows, run as is, gets the API's answer.
    shown = (await run(*curl)).decode()  # not blocking: the node runs on this loop
    if status != 200:
        assert page["exists"] == "no answer (refused)"
        assert doc["error"]["errorMessage"] in page["notes"]
        assert shown and doc["error"]["errorMessage"] in shown
        return
    summary = doc["responseSummary"]
    assert page["exists"] == ("yes" if summary["exists"] else "no")
    assert page["returned"] == doc["meta"]["returnedGranularity"]
    if "numTotalResults" in summary:
        assert page["count"] == str(summary["numTotalResults"])
        assert page["precision"].split(" ")[0] == summary["countPrecision"]
    else:
        assert page["count"] == "not given at boolean granularity"
    assert json.loads(shown)["responseSummary"] == summary


async def test_present_and_absent_as_the_api_says(
    demo_home: Path, demo_node: TestServer, tmp_path: Path
) -> None:
    present, absent = _alleles(demo_home)
    browser = browser_for(demo_node, tmp_path)
    for allele, exists in ((present, True), (absent, False)):
        for granularity in ("boolean", "count", "record"):
            out = await browser.run(_typed(allele, granularity))
            status, doc = await _api(demo_node, _params(allele, granularity))
            assert status == 200 and doc["responseSummary"]["exists"] is exists
            await _assert_same(out["results"], status, doc, _params(allele, granularity))


async def test_an_unknown_filter_is_explained(
    demo_home: Path, demo_node: TestServer, tmp_path: Path
) -> None:
    present, _ = _alleles(demo_home)
    term = "NOSUCH:0000001"
    out = await browser_for(demo_node, tmp_path).run(_typed(present, "count", filters=(term,)))
    params = {**_params(present, "count"), "filters": term}
    status, doc = await _api(demo_node, params)
    assert doc["info"]["warnings"]["unknownFilters"] == [term]
    await _assert_same(out["results"], status, doc, params)
    assert f"Unknown filter: {term}" in out["results"]["notes"]


async def test_a_refused_query_is_explained(
    demo_home: Path, controlled_node: TestServer, tmp_path: Path
) -> None:
    """On the CONTROLLED copy an anonymous visitor gets counts, and a "no" costs more
    than a whole budget (strict pricing): the API refuses it, and the page says why."""
    present, absent = _alleles(demo_home)
    browser = browser_for(controlled_node, tmp_path)
    out = await browser.run(_typed(absent, "count"), http_errors=(403,))
    status, doc = await _api(controlled_node, _params(absent, "count"))
    assert status == 403 and out["httpErrors"] == [403]
    await _assert_same(out["results"], status, doc, _params(absent, "count"))
    assert "Privacy budget spent" in out["results"]["notes"]

    out = await browser.run(_typed(present, "record"))
    status, doc = await _api(controlled_node, _params(present, "record"))
    assert status == 200 and doc["meta"]["returnedGranularity"] == "count"
    await _assert_same(out["results"], status, doc, _params(present, "record"))
    assert "answered at count" in out["results"]["notes"]


async def test_a_record_opens_its_region_in_one_click(
    demo_home: Path, demo_node: TestServer, tmp_path: Path
) -> None:
    present, _ = _alleles(demo_home)
    chrom, pos, _, _ = present
    steps = [
        *_typed(present, "record"),
        {"do": "click", "selector": "#q-records a"},
        {"do": "wait", "selector": "#igv[data-loaded]", "state": "attached"},
        {"do": "url", "as": "url"},
        {"do": "attr", "selector": "#igv", "name": "data-loaded", "as": "locus"},
    ]
    out = await browser_for(demo_node, tmp_path).run(steps)
    contig, span = out["results"]["locus"].split(":")
    start, end = (int(x) for x in span.split("-"))
    assert contig == chrom and start <= pos <= end
    assert urlsplit(out["results"]["url"]).path == "/browse"
