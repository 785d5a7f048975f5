"""The node's portal: pages for people, served by the node itself at `/`.

Pages are small server-rendered shells (`pages.py`) and a little plain JavaScript
(`static/`) that calls the node's own APIs from the browser, so what a page shows is what
the API answers. The sub-app at `/portal` holds what the APIs lack: the visitor's access
per dataset (`access.py`), the operator view (`operator.py`), the assets (`assets.py`)
and a reference for igv.js. Nothing is loaded from another origin; every response carries
a strict Content-Security-Policy (`security.py`).
"""

from __future__ import annotations

from aiohttp import web

from node.config import Settings
from node.web.portal.app import ASSETS, create_portal_app
from node.web.portal.pages import add_pages

__all__ = ["mount_portal"]


def mount_portal(app: web.Application, settings: Settings) -> None:
    """Serve the portal's pages at `/` and its sub-app at `/portal` on `app`."""
    portal = create_portal_app(settings)
    app.add_subapp("/portal", portal)
    add_pages(app.router, portal[ASSETS])
