"""Tickets (htsget 1.3 §Response JSON) from the byte segments of a file or generated data.

URLs carry `class` on every entry (header / body); the concatenation of all of them is a
whole file: header, records, EOF marker (an empty result is still a valid file).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

from node.htsget.models import HtsgetRequest
from node.reads.layout import Inline, Layout, Query, Segment, Span

__all__ = ["UrlFor", "data_uri", "file_ticket", "ticket"]

UrlFor = Callable[[Span], dict[str, Any]]


def data_uri(data: bytes) -> str:
    # No media type: the GA4GH compliance suite rejects `data:application/...;base64,`.
    return "data:;base64," + base64.b64encode(data).decode()


def file_ticket(
    req: HtsgetRequest, layout: Layout, url_for: UrlFor, *, max_reads: int | None = None
) -> dict[str, Any]:
    """The ticket of `req` on an indexed file; `url_for` turns a span into a block URL.

    `max_reads`: how many uncached blocks it may read (None: any), else `BlockMiss`.
    """
    header = [_url(seg, url_for, "header") for seg in layout.header]
    if req.header_only:
        return ticket(req.format, header)
    body = layout.body(req.regions or (Query(None),), max_reads=max_reads)
    urls = header + [_url(seg, url_for, "body") for seg in body]
    if layout.eof:
        urls.append({"url": data_uri(layout.eof), "class": "body"})
    return ticket(req.format, urls)


def ticket(fmt: str, urls: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"htsget": {"format": fmt, "urls": list(urls)}}


def _url(seg: Segment, url_for: UrlFor, cls: str) -> dict[str, Any]:
    if isinstance(seg, Inline):
        return {"url": data_uri(seg.data), "class": cls}
    return {**url_for(seg), "class": cls}
