"""Response headers of the portal: a strict Content-Security-Policy and its companions.

Scripts come from the node only (`script-src 'self'`: no inline script, no eval; the
portal's own scripts use neither, nor does igv.js 3). Styles too, except on the genome
browser page: igv.js inserts `<style>` elements of its own at run time, which CSP treats
as inline styles, so that page alone allows `'unsafe-inline'` styles (never scripts).
Requests go to the node only, and to the OIDC token endpoint when sign-in is configured
(the authorization code is exchanged from the browser).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from node.config import Settings

__all__ = ["csp", "secure"]

_FIXED = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a page URL never leaves the node
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def csp(settings: Settings, *, inline_styles: bool = False) -> str:
    connect = ["'self'"]
    oidc = settings.portal.oidc
    if oidc is not None:
        parts = urlsplit(oidc.token_endpoint)
        connect.append(f"{parts.scheme}://{parts.netloc}")
    styles = "'self' 'unsafe-inline'" if inline_styles else "'self'"
    return "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        f"style-src {styles}",
        "img-src 'self' data:",
        f"connect-src {' '.join(connect)}",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ])


def secure(response: web.StreamResponse, settings: Settings, *,
           inline_styles: bool = False, cache: bool = False) -> web.StreamResponse:
    response.headers.update(_FIXED)
    response.headers["Content-Security-Policy"] = csp(settings, inline_styles=inline_styles)
    if cache:  # versioned assets: the URL changes when the file does
        response.headers["Cache-Control"] = "public, max-age=3600"
    return response
