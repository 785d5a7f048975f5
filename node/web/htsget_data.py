"""The htsget data endpoint, `/htsget/data/{token}`: the blocks a ticket's URLs name.

A token (node/htsget/signing.py) names either a byte range of a registered file, checked
against the file's version when the ticket was cut, or regions of a dataset whose VCF/BCF
is generated from the store. Ranges are inclusive (`Range: bytes=a-b`); local file bytes
are sent with sendfile where the transport allows it, objects (S3, HTTP) in 1 MiB range
reads conditional on the ticketed ETag; never read whole into memory.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from node.domain import Region
from node.errors import InvalidInput
from node.htsget.signing import BlockSigner
from node.reads.storage import Opened
from node.store.read.export import export_variants
from node.web.keys import DATASETS, READS, SETTINGS

__all__ = ["SIGNER", "data_handler", "parse_range"]

SIGNER = web.AppKey("htsget_signer", BlockSigner)
_CHUNK = 1 << 20


async def data_handler(request: web.Request) -> web.StreamResponse:
    payload = request.config_dict[SIGNER].verify(request.match_info["token"])
    if payload.get("k") == "g":
        return await _send_generated(request, payload)
    if payload.get("k") != "f":
        raise InvalidInput("malformed block token")
    catalog = request.config_dict[READS]
    entry = catalog.find(str(payload["id"]), str(payload["f"]))
    start, end = int(payload["s"]), int(payload["e"])
    source = catalog.source(entry)
    # Still the version the ticket was cut from: checked on the open descriptor (a local
    # file replaced meanwhile is never served under an old range) or by If-Match on every
    # range read of an object.
    opened = await asyncio.to_thread(source.open, str(payload.get("v")))
    try:
        return await _send_span(request, opened, start, end)
    finally:
        opened.close()  # synchronous: it must happen even when the handler is cancelled


def parse_range(header: str | None, length: int) -> tuple[int, int] | None:
    """An inclusive `bytes=a-b` (or `a-`, `-n`) range → [start, end); None: whole body."""
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        raise _RangeError()
    first, _, last = spec.strip().partition("-")
    # ASCII digits only (int() also takes "+1", "1_0" and full-width digits).
    if not all(not p or (p.isascii() and p.isdigit()) for p in (first, last)):
        raise _RangeError()
    try:
        if not first:
            n = int(last)
            return (max(length - n, 0), length) if n > 0 else _raise_range()
        start = int(first)
        end = min(int(last) + 1, length) if last else length
    except ValueError:
        raise _RangeError() from None
    if start >= length or end <= start:
        raise _RangeError()
    return start, end


class _RangeError(Exception):
    pass


def _raise_range() -> tuple[int, int]:
    raise _RangeError()


async def _send_generated(request: web.Request, payload: dict[str, Any]) -> web.StreamResponse:
    registry = request.config_dict[DATASETS]
    limit = request.config_dict[SETTINGS].htsget.max_generated_bytes
    try:
        regions = [Region(str(c), int(s), int(e)) for c, s, e in payload["r"]]
        dataset, fmt, header_only = str(payload["d"]), str(payload["f"]), bool(payload["h"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput("malformed block token") from exc
    data = await asyncio.to_thread(
        lambda: export_variants(
            registry.store(dataset), regions, fmt=fmt, header_only=header_only, max_bytes=limit
        )
    )  # one thread hop for both
    try:
        sub = parse_range(request.headers.get("Range"), len(data))
    except _RangeError:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
    if sub is None:
        return web.Response(body=data, content_type="application/octet-stream")
    lo, hi = sub
    headers = {"Content-Range": f"bytes {lo}-{hi - 1}/{len(data)}", "Accept-Ranges": "bytes"}
    return web.Response(
        status=206, body=data[lo:hi], headers=headers, content_type="application/octet-stream"
    )


async def _send_span(
    request: web.Request, opened: Opened, start: int, end: int
) -> web.StreamResponse:
    length = end - start
    try:
        sub = parse_range(request.headers.get("Range"), length)
    except _RangeError:
        return web.Response(status=416, headers={"Content-Range": f"bytes */{length}"})
    status, lo, hi = (200, 0, length) if sub is None else (206, *sub)
    first = b""
    if opened.fileno is None and request.method != "HEAD" and hi > lo:
        # An object's first chunk before the status line: a changed object is a 404
        # error body, not a 200 cut short.
        first = await asyncio.to_thread(opened.fetch, start + lo, min(_CHUNK, hi - lo))
    response = web.StreamResponse(status=status)
    response.content_type = "application/octet-stream"
    response.content_length = hi - lo
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Cache-Control"] = "private, max-age=60"
    if sub is not None:
        response.headers["Content-Range"] = f"bytes {lo}-{hi - 1}/{length}"
    await response.prepare(request)
    if request.method != "HEAD":
        if first:
            await response.write(first)
        await _sendfile(request, response, opened, start + lo + len(first), hi - lo - len(first))
    await response.write_eof()
    return response


async def _sendfile(
    request: web.Request, response: web.StreamResponse, opened: Opened, offset: int, count: int
) -> None:
    """Zero-copy when the file is local and the transport allows it (as aiohttp's
    FileResponse does), else 1 MiB reads off the event loop; never the whole file in memory.
    An object that changes mid-stream ends the connection (`ObjectChanged` in a read)."""
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("connection lost")
    if opened.fileno is not None and count > 0:
        try:
            await asyncio.get_running_loop().sendfile(transport, opened.fh, offset, count)
            return
        except NotImplementedError:
            pass
    while count > 0:
        chunk = await asyncio.to_thread(opened.fetch, offset, min(_CHUNK, count))
        if not chunk:
            raise ConnectionResetError("file shrank while being served")
        await response.write(chunk)
        offset += len(chunk)
        count -= len(chunk)
