"""`fednode demo` says where its portal is once it serves, and the portal answers there."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import aiohttp

from node.config import load_settings

ANNOUNCED = re.compile(rb"fednode: serving the portal at (http://127\.0\.0\.1:\d+/)")


async def test_the_demo_prints_the_portal_address(demo_home: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "node", "demo", "--dir", str(demo_home), "--port", "0",
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL)
    assert proc.stderr is not None
    try:
        found = None
        while found is None:
            line = await proc.stderr.readline()
            assert line, "the demo stopped before it served"
            found = ANNOUNCED.search(line)
        async with aiohttp.ClientSession() as http, http.get(found.group(1).decode()) as resp:
            assert resp.status == 200
            name = load_settings(demo_home).node.name
            assert f"<title>Home · {name}</title>" in await resp.text()
    finally:
        proc.terminate()
        await proc.wait()
