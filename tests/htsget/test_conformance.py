"""The htsget conformance module passes against this node, and fails against a broken one."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer

from conformance.htsget import run_checks


async def test_conformance_passes(server: TestServer) -> None:
    results = await run_checks(f"http://127.0.0.1:{server.port}/htsget")
    failed = [r for r in results if not r.ok]
    assert not failed, failed
    assert len(results) >= 10


async def test_conformance_catches_wrong_errors() -> None:
    """A server answering every request with a 500 fails every check."""

    async def broken(request: web.Request) -> web.Response:
        return web.json_response({"error": "boom"}, status=500)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", broken)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    try:
        results = await run_checks(f"http://127.0.0.1:{srv.port}/htsget")
    finally:
        await srv.close()
    assert results and not any(r.ok for r in results)


async def test_registered_in_the_conformance_runner(server: TestServer) -> None:
    from conformance import run

    report = await run(f"http://127.0.0.1:{server.port}", suites=["htsget"])
    assert report.ok, report.render()
    assert len(report.results) >= 10
