"""The portal's pages: small server-rendered shells; their scripts (static/) fill them
from the node's APIs. Only the node's name and the OIDC settings are rendered here,
escaped; nothing a request sent is ever written into a page."""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from node.config import Settings
from node.web.keys import SETTINGS
from node.web.portal.assets import Assets
from node.web.portal.security import secure
from node.web.privacy import not_data

__all__ = ["PAGES", "add_pages", "render"]

# path -> (name, title, script, body)
_NAV = (("/", "Home"), ("/query", "Query"), ("/browse", "Browse"), ("/signin", "Sign in"),
        ("/operator", "Operator"))

_HOME = """
<h1>{node}</h1>
<section aria-labelledby="about-h"><h2 id="about-h">This node</h2>
<dl id="node-info" class="facts"><dt>Status</dt><dd>loading…</dd></dl></section>
<section aria-labelledby="ds-h"><h2 id="ds-h">Datasets and what you may see</h2>
<p>Access is per dataset: <strong>boolean</strong> (whether something exists),
<strong>count</strong> (how many), or <strong>record</strong> (the variants themselves,
and streaming through htsget). <a href="/signin">Sign in</a> with a Passport to see more.</p>
<div class="table-wrap"><table id="datasets"><caption>Datasets of this node</caption>
<thead><tr><th scope="col">Dataset</th><th scope="col">Assembly</th>
<th scope="col">Samples</th><th scope="col">Variants</th>
<th scope="col">Security level</th><th scope="col">Your level</th>
<th scope="col">You may see</th></tr></thead><tbody></tbody></table></div>
<p id="home-error" class="error" role="alert" hidden></p></section>
"""

_QUERY = """
<h1>Query variants</h1>
<form id="query-form" novalidate>
<fieldset><legend>What to look for</legend>
<div class="choices" role="radiogroup" aria-label="Kind of query">
<label><input type="radio" name="mode" value="allele" checked> A variant</label>
<label><input type="radio" name="mode" value="range"> A range</label>
<label><input type="radio" name="mode" value="gene"> A gene</label></div>
<div class="grid">
<label for="q-assembly">Assembly</label><select id="q-assembly" name="assemblyId"></select>
<label for="q-dataset">Dataset</label>
<select id="q-dataset" name="datasetIds"><option value="">All datasets</option></select>
<label for="q-chrom" data-modes="allele range">Chromosome</label>
<input id="q-chrom" name="referenceName" data-modes="allele range" autocomplete="off"
 placeholder="e.g. 1, 22, X">
<label for="q-pos" data-modes="allele">Position (1-based, as in VCF)</label>
<input id="q-pos" name="position" data-modes="allele" inputmode="numeric" autocomplete="off">
<label for="q-ref" data-modes="allele">Reference bases</label>
<input id="q-ref" name="referenceBases" data-modes="allele" autocomplete="off">
<label for="q-alt" data-modes="allele">Alternate bases</label>
<input id="q-alt" name="alternateBases" data-modes="allele" autocomplete="off">
<label for="q-start" data-modes="range">From (1-based, inclusive)</label>
<input id="q-start" name="rangeStart" data-modes="range" inputmode="numeric" autocomplete="off">
<label for="q-end" data-modes="range">To (1-based, inclusive)</label>
<input id="q-end" name="rangeEnd" data-modes="range" inputmode="numeric" autocomplete="off">
<label for="q-gene" data-modes="gene">Gene</label>
<input id="q-gene" name="geneId" data-modes="gene" autocomplete="off" placeholder="e.g. BRCA2">
</div></fieldset>
<fieldset><legend>Filters</legend>
<label for="q-filter">Add a filtering term (type to search the node's terms)</label>
<input id="q-filter" list="q-terms" autocomplete="off">
<datalist id="q-terms"></datalist>
<button type="button" id="q-add-filter">Add filter</button>
<ul id="q-filters" aria-label="Chosen filters" class="chips"></ul></fieldset>
<fieldset><legend>Answer</legend>
<label for="q-granularity">Requested granularity</label>
<select id="q-granularity" name="requestedGranularity">
<option value="boolean">boolean: exists or not</option>
<option value="count" selected>count: how many</option>
<option value="record">record: the variants</option></select></fieldset>
<p id="q-form-error" class="error" role="alert" hidden></p>
<button type="submit">Ask the node</button>
</form>
<section id="q-result" aria-labelledby="q-result-h" aria-live="polite" hidden>
<h2 id="q-result-h">Answer</h2>
<dl class="facts"><dt>HTTP status</dt><dd id="q-status"></dd>
<dt>Exists</dt><dd id="q-exists"></dd>
<dt>Count</dt><dd id="q-count"></dd>
<dt>Count precision</dt><dd id="q-precision"></dd>
<dt>Granularity returned</dt><dd id="q-returned"></dd></dl>
<div id="q-notes"></div>
<div id="q-sets"></div>
<div id="q-records"></div>
<h3>The same query with curl</h3>
<pre><code id="q-curl"></code></pre>
<p class="hint">Add <code>-H "Authorization: Bearer $TOKEN"</code> to ask as a signed-in
visitor; the page sends your token in that header, never in the URL.</p>
</section>
"""

_BROWSE = """
<h1>Genome browser</h1>
<form id="browse-form">
<div class="grid">
<label for="b-dataset">Dataset</label><select id="b-dataset"></select>
<label for="b-locus">Region (chromosome:start-end, 1-based)</label>
<input id="b-locus" autocomplete="off" placeholder="e.g. 1:10000-12000">
</div>
<button type="submit">Show region</button>
</form>
<p id="b-message" class="note" role="status"></p>
<p id="b-error" class="error" role="alert" hidden></p>
<div id="igv" class="igv"></div>
"""

_SIGNIN = """
<h1>Sign in</h1>
<section aria-labelledby="token-h"><h2 id="token-h">With a Passport or bearer token</h2>
<p>Paste a GA4GH Passport (a JWT). It is kept in this browser tab's session storage only,
sent to this node in the <code>Authorization</code> header, and forgotten when the tab
closes.</p>
<form id="token-form">
<label for="s-token">Passport or bearer token</label>
<textarea id="s-token" rows="5" spellcheck="false" autocomplete="off"></textarea>
<button type="submit">Sign in with this token</button>
</form></section>
<section id="oidc" aria-labelledby="oidc-h" data-oidc="{oidc}" hidden>
<h2 id="oidc-h">With your institution</h2>
<p>Sign in at <span id="oidc-issuer"></span> (OpenID Connect, authorization code with
PKCE).</p><button type="button" id="oidc-start">Sign in with your institution</button>
</section>
<p id="s-error" class="error" role="alert" hidden></p>
<p id="s-status" role="status"></p>
<button type="button" id="s-signout" hidden>Sign out</button>
<section aria-labelledby="levels-h"><h2 id="levels-h">Your level per dataset</h2>
<div class="table-wrap"><table id="levels"><caption>What you may see</caption>
<thead><tr><th scope="col">Dataset</th><th scope="col">Security level</th>
<th scope="col">Your level</th><th scope="col">You may see</th></tr></thead>
<tbody></tbody></table></div></section>
"""

_OPERATOR = """
<h1>Operator view</h1>
<form id="op-form">
<label for="op-token">Operator credential</label>
<input id="op-token" type="password" autocomplete="off">
<button type="submit">Open the operator view</button>
</form>
<p id="op-error" class="error" role="alert" hidden></p>
<div id="op-view" hidden>
<section aria-labelledby="op-audit-h"><h2 id="op-audit-h">Audit chain</h2>
<p id="op-audit"></p><ul id="op-audit-problems"></ul>
<div class="table-wrap"><table id="op-recent"><caption>Latest entries (newest first)</caption>
<thead><tr><th scope="col">#</th><th scope="col">Time</th><th scope="col">Requester</th>
<th scope="col">Request</th><th scope="col">Outcome</th><th scope="col">Charged</th></tr>
</thead><tbody></tbody></table></div></section>
<section aria-labelledby="op-budget-h"><h2 id="op-budget-h">Budget use by requester class</h2>
<div class="table-wrap"><table id="op-budgets"><caption>Pooled budgets per dataset</caption>
<thead><tr><th scope="col">Dataset</th><th scope="col">Class</th>
<th scope="col">Likelihood ratio (nats)</th><th scope="col">ε</th></tr></thead>
<tbody></tbody></table></div></section>
<section aria-labelledby="op-metrics-h"><h2 id="op-metrics-h">Requests</h2>
<p class="hint">From the node's own metrics, sampled every few seconds while this page is
open.</p>
<figure><figcaption>Requests per second</figcaption><div id="op-rate" class="plot"></div>
</figure>
<figure><figcaption>Latency by route (median and 95th percentile, ms)</figcaption>
<div id="op-latency" class="plot"></div></figure></section>
<section aria-labelledby="op-ds-h"><h2 id="op-ds-h">Datasets</h2>
<div class="table-wrap"><table id="op-datasets"><caption>Datasets and their last ingest
</caption><thead><tr><th scope="col">Dataset</th><th scope="col">Assembly</th>
<th scope="col">Samples</th><th scope="col">Variants</th><th scope="col">Last ingest</th>
</tr></thead><tbody></tbody></table></div></section>
</div>
"""

PAGES = {
    "/": ("home", "Home", _HOME),
    "/query": ("query", "Query", _QUERY),
    "/browse": ("browse", "Browse", _BROWSE),
    "/signin": ("signin", "Sign in", _SIGNIN),
    "/operator": ("operator", "Operator", _OPERATOR),
}


def render(settings: Settings, path: str, *, version: str) -> str:
    name, title, body = PAGES[path]
    node = html.escape(settings.node.name)
    oidc = settings.portal.oidc
    oidc_json = "" if oidc is None else html.escape(json.dumps(oidc.model_dump()), quote=True)
    current = ' aria-current="page"'
    nav = "".join(f'<li><a href="{href}"{current if href == path else ""}>{label}</a></li>'
                  for href, label in _NAV)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · {node}</title>
<link rel="stylesheet" href="/portal/static/portal.css?v={version}">
<script type="module" src="/portal/static/{name}.js?v={version}"></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header><p class="brand"><a href="/">{node}</a></p>
<nav aria-label="Portal"><ul>{nav}</ul></nav>
<p id="visitor" class="visitor" role="status"></p></header>
<main id="main" tabindex="-1">
<noscript><p class="error">These pages need JavaScript; the APIs at /api and /htsget do
not.</p></noscript>
{body.replace("{node}", node).replace("{oidc}", oidc_json)}
</main>
<footer><p>APIs: <a href="/api/info">Beacon v2 at /api</a> ·
<a href="/htsget/reads/service-info">htsget at /htsget</a> ·
<a href="/api/openapi.json">OpenAPI</a></p></footer>
</body>
</html>
"""


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _page(path: str, assets: Assets) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        not_data(request)  # a shell: the data comes from API requests, each audited
        settings = request.app[SETTINGS]
        response = web.Response(text=render(settings, path, version=assets.version),
                                content_type="text/html")
        return secure(response, settings, inline_styles=path == "/browse")

    return handler


def add_pages(router: web.UrlDispatcher, assets: Assets) -> None:
    for path in PAGES:
        router.add_get(path, _page(path, assets))
