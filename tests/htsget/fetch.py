"""Assemble the file a ticket describes, as a client does (data: URIs and block URLs)."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp


async def assemble(session: aiohttp.ClientSession, ticket: dict[str, Any]) -> bytes:
    out = bytearray()
    for entry in ticket["htsget"]["urls"]:
        url = entry["url"]
        if url.startswith("data:"):
            meta, _, payload = url.partition(",")
            assert meta.endswith(";base64"), meta
            out += base64.b64decode(payload)
            continue
        async with session.get(url, headers=entry.get("headers", {})) as resp:
            assert resp.status == 200, await resp.text()
            body = await resp.read()
            assert len(body) == int(resp.headers["Content-Length"])
            out += body
    return bytes(out)
