"""htsget 1.3 checks against a live node over HTTP, one per MUST of the spec, including
those the GA4GH compliance suite skips (errors, class=header, multi-region POST, CORS,
empty results, Range on blocks).

    python -m conformance.htsget http://127.0.0.1:8080/htsget [--reads ID] [--variants ID]

Prints one line per check and exits 1 when any fails.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import struct
import sys
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from conformance import Context, register

__all__ = ["CheckResult", "run_checks"]

MEDIA_TYPE = "application/vnd.ga4gh.htsget.v1.3.0+json"
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
ERRORS = {
    "InvalidAuthentication": 401, "PermissionDenied": 403, "NotFound": 404,
    "PayloadTooLarge": 413, "UnsupportedFormat": 400, "InvalidInput": 400, "InvalidRange": 400,
}  # fmt: skip


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str = ""


class CheckFailed(Exception):
    pass


def expect(cond: bool, detail: str) -> None:
    if not cond:
        raise CheckFailed(detail)


@dataclass
class Ctx:
    http: aiohttp.ClientSession
    base: str
    reads: str
    variants: str
    region: tuple[str, int, int]


async def ticket(ctx: Ctx, path: str, *, body: Any = None) -> dict[str, Any]:
    url = ctx.base + path
    req = ctx.http.post(url, json=body) if body is not None else ctx.http.get(url)
    async with req as resp:
        text = await resp.text()
        expect(resp.status == 200, f"{path}: HTTP {resp.status}: {text[:200]}")
        ctype = resp.headers.get("Content-Type", "")
        expect(ctype.startswith(MEDIA_TYPE), f"{path}: content type {ctype!r}")
    doc = json.loads(text)
    check_ticket_shape(doc)
    return dict(doc)


def check_ticket_shape(doc: Any) -> None:
    # htsget §Response JSON: htsget.format, htsget.urls[] of {url, headers?, class?}.
    expect(isinstance(doc, dict) and isinstance(doc.get("htsget"), dict), "no htsget object")
    urls = doc["htsget"].get("urls")
    expect(isinstance(urls, list) and bool(urls), "urls must be a non-empty list")
    classes = [u.get("class") for u in urls]
    expect(all(c is None for c in classes) or all(c in ("header", "body") for c in classes),
           "either every URL has class (header/body) or none does")  # fmt: skip
    for u in urls:
        expect(isinstance(u.get("url"), str), "every urls entry needs a url string")
        if u["url"].startswith("data:"):
            expect(";base64," in u["url"].split(",", 1)[0] + ",", "data: URIs must be base64")


async def assemble(ctx: Ctx, doc: dict[str, Any]) -> bytes:
    out = bytearray()
    for u in doc["htsget"]["urls"]:
        url = u["url"]
        if url.startswith("data:"):
            out += base64.b64decode(url.split(",", 1)[1])
            continue
        async with ctx.http.get(url, headers=u.get("headers", {})) as resp:
            expect(resp.status == 200, f"block {url[:80]}: HTTP {resp.status}")
            body = await resp.read()
            length = resp.headers.get("Content-Length")
            expect(length is None or int(length) == len(body), "Content-Length mismatch")
            out += body
    return bytes(out)


def inflate(data: bytes) -> bytes:
    out, rest = bytearray(), data
    while rest:
        d = zlib.decompressobj(31)
        out += d.decompress(rest)
        expect(d.eof, "truncated BGZF stream")
        rest = d.unused_data
    return bytes(out)


def bam_parts(data: bytes) -> tuple[int, list[bytes]]:
    """Header length and raw records of a whole BAM file (checks its structure)."""
    expect(data.endswith(BGZF_EOF), "the file does not end with the BGZF EOF marker")
    expect(data.count(BGZF_EOF) == 1, "more than one BGZF EOF marker")
    raw = inflate(data)
    expect(raw[:4] == b"BAM\x01", "not a BAM file")
    (l_text,) = struct.unpack_from("<I", raw, 4)
    pos = 8 + l_text
    (n_ref,) = struct.unpack_from("<I", raw, pos)
    pos += 4
    for _ in range(n_ref):
        (l_name,) = struct.unpack_from("<I", raw, pos)
        pos += 8 + l_name
    header_len, records = pos, []
    while pos < len(raw):
        expect(pos + 4 <= len(raw), "truncated record")
        (size,) = struct.unpack_from("<I", raw, pos)
        expect(pos + 4 + size <= len(raw), "truncated record")
        records.append(raw[pos : pos + 4 + size])
        pos += 4 + size
    return header_len, records


async def error(ctx: Ctx, method: str, path: str, name: str, body: bytes | None = None) -> None:
    async with ctx.http.request(method, ctx.base + path, data=body) as resp:
        text = await resp.text()
        expect(resp.status == ERRORS[name], f"{path}: HTTP {resp.status}, want {ERRORS[name]}")
    try:
        doc = json.loads(text)
    except ValueError:
        raise CheckFailed(f"{path}: error body is not JSON") from None
    err = doc.get("htsget", {}) if isinstance(doc, dict) else {}
    expect(err.get("error") == name, f"{path}: error {err.get('error')!r}, want {name}")
    expect(isinstance(err.get("message"), str), f"{path}: error without a message")


# --- the checks -----------------------------------------------------------------------


async def service_info(ctx: Ctx) -> None:
    for kind, formats in (("reads", {"BAM", "CRAM"}), ("variants", {"VCF", "BCF"})):
        async with ctx.http.get(f"{ctx.base}/{kind}/service-info") as resp:
            expect(resp.status == 200, f"{kind}/service-info: HTTP {resp.status}")
            info = await resp.json(content_type=None)
        t = info.get("type", {})
        expect((t.get("group"), t.get("artifact")) == ("org.ga4gh", "htsget"), "service type")
        h = info.get("htsget", {})
        expect(h.get("datatype") == kind, f"{kind}: htsget.datatype")
        expect(set(h.get("formats", [])) <= formats and h.get("formats"), f"{kind}: formats")


async def whole_reads(ctx: Ctx) -> None:
    doc = await ticket(ctx, f"/reads/{ctx.reads}")
    expect(doc["htsget"]["format"] == "BAM", "the default reads format is BAM")
    _, records = bam_parts(await assemble(ctx, doc))
    expect(len(records) > 0, "the whole file has no records")


async def whole_variants(ctx: Ctx) -> None:
    doc = await ticket(ctx, f"/variants/{ctx.variants}")
    expect(doc["htsget"]["format"] == "VCF", "the default variants format is VCF")
    data = await assemble(ctx, doc)
    expect(data.endswith(BGZF_EOF), "VCF does not end with the BGZF EOF marker")
    expect(inflate(data).startswith(b"##fileformat=VCF"), "not a VCF file")


async def header_class(ctx: Ctx) -> None:
    doc = await ticket(ctx, f"/reads/{ctx.reads}?class=header")
    expect(all(u.get("class") == "header" for u in doc["htsget"]["urls"]), "class=header URLs")
    data = await assemble(ctx, doc)
    header_len, records = bam_parts(data if data.endswith(BGZF_EOF) else data + BGZF_EOF)
    expect(records == [], "class=header returned records")
    expect(len(inflate(data)) == header_len, "class=header returned more than the header")


async def region(ctx: Ctx) -> None:
    ref, start, end = ctx.region
    doc = await ticket(ctx, f"/reads/{ctx.reads}?referenceName={ref}&start={start}&end={end}")
    _, records = bam_parts(await assemble(ctx, doc))
    expect(len(records) > 0, "no records in the region")
    expect(len(set(records)) == len(records), "a record was returned twice")


async def empty_region(ctx: Ctx) -> None:
    ref, start, _ = ctx.region
    path = f"/reads/{ctx.reads}?referenceName={ref}&start={start}&end={start}"
    bam_parts(await assemble(ctx, await ticket(ctx, path)))  # a whole, valid file


async def post_multi_region(ctx: Ctx) -> None:
    ref, start, end = ctx.region
    mid = (start + end) // 2
    regions = [
        {"referenceName": ref, "start": mid, "end": end},
        {"referenceName": ref, "start": start, "end": mid + 1000},
    ]
    doc = await ticket(ctx, f"/reads/{ctx.reads}", body={"format": "BAM", "regions": regions})
    _, merged = bam_parts(await assemble(ctx, doc))
    single = await ticket(ctx, f"/reads/{ctx.reads}?referenceName={ref}&start={start}&end={end}")
    _, one = bam_parts(await assemble(ctx, single))
    expect(len(set(merged)) == len(merged), "POST: a record was returned twice")
    expect(set(one) <= set(merged), "POST: records of the union are missing")


async def errors(ctx: Ctx) -> None:
    r = f"/reads/{ctx.reads}"
    ref = ctx.region[0]
    await error(ctx, "GET", "/reads/conformance-no-such-id", "NotFound")
    await error(ctx, "GET", r + "?format=VCF", "UnsupportedFormat")
    await error(ctx, "GET", r + "?start=5", "InvalidInput")
    await error(ctx, "GET", r + f"?referenceName={ref}&start=10&end=5", "InvalidRange")
    await error(ctx, "GET", r + f"?referenceName={ref}&start=abc", "InvalidInput")
    await error(ctx, "GET", r + f"?class=header&referenceName={ref}", "InvalidInput")
    await error(ctx, "GET", r + "?referenceName=conformance-no-such-ref", "NotFound")
    await error(ctx, "POST", r, "InvalidInput", b"{not json")
    await error(ctx, "POST", r + "?format=BAM", "InvalidInput", b"{}")
    bad = json.dumps({"regions": [{"referenceName": ref, "start": 9, "end": 9}]}).encode()
    await error(ctx, "POST", r, "InvalidRange", bad)


async def cors(ctx: Ctx) -> None:
    origin = "https://conformance.example"
    pre = {
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }  # fmt: skip
    async with ctx.http.options(f"{ctx.base}/reads/{ctx.reads}", headers=pre) as resp:
        expect(resp.status in (200, 204), f"preflight: HTTP {resp.status}")
        expect(resp.headers.get("Access-Control-Allow-Origin") in (origin, "*"), "preflight ACAO")
        expect("POST" in resp.headers.get("Access-Control-Allow-Methods", ""), "preflight POST")
    ref, start, end = ctx.region
    path = f"{ctx.base}/reads/{ctx.reads}?referenceName={ref}&start={start}&end={end}"
    async with ctx.http.get(path, headers={"Origin": origin}) as resp:
        expect(resp.headers.get("Access-Control-Allow-Origin") in (origin, "*"), "ticket ACAO")
        doc = json.loads(await resp.text())
    urls = [u for u in doc["htsget"]["urls"] if not u["url"].startswith("data:")]
    for u in urls[:1]:
        headers = {"Origin": origin, **u.get("headers", {})}
        async with ctx.http.get(u["url"], headers=headers) as resp:
            expect(resp.headers.get("Access-Control-Allow-Origin") in (origin, "*"), "block ACAO")


async def block_ranges(ctx: Ctx) -> None:
    doc = await ticket(ctx, f"/reads/{ctx.reads}")
    urls = [u for u in doc["htsget"]["urls"] if not u["url"].startswith("data:")]
    expect(bool(urls), "no block URL to check")
    u = urls[-1]
    async with ctx.http.get(u["url"], headers=u.get("headers", {})) as resp:
        whole = await resp.read()
    headers = {**u.get("headers", {}), "Range": "bytes=1-10"}
    async with ctx.http.get(u["url"], headers=headers) as resp:
        body = await resp.read()
        expect(resp.status in (200, 206), f"Range: HTTP {resp.status}")
        expect(body == (whole[1:11] if resp.status == 206 else whole), "Range: wrong bytes")


CHECKS: dict[str, Callable[[Ctx], Awaitable[None]]] = {
    "service-info": service_info,
    "reads: whole file, default BAM": whole_reads,
    "variants: whole file, default VCF": whole_variants,
    "reads: class=header": header_class,
    "reads: region": region,
    "reads: empty range is a valid file": empty_region,
    "reads: POST multi-region (one header, no duplicates, one EOF)": post_multi_region,
    "errors: names and statuses": errors,
    "CORS: preflight, tickets, blocks": cors,
    "blocks: Range requests": block_ranges,
}


async def run_checks(
    base: str,
    *,
    reads: str = "htsnexus_test_NA12878",
    variants: str = "spec-v4.3",
    region: tuple[str, int, int] = ("11", 5_000_000, 5_050_000),
    timeout_s: float = 30.0,
    session: aiohttp.ClientSession | None = None,
) -> list[CheckResult]:
    """Every check against the htsget API at `base` (e.g. http://host:8080/htsget)."""
    if session is None:
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as own:
            return await run_checks(base, reads=reads, variants=variants, region=region,
                                    session=own)  # fmt: skip
    results = []
    ctx = Ctx(session, base.rstrip("/"), reads, variants, region)
    for name, check in CHECKS.items():
        try:
            await check(ctx)
            results.append(CheckResult(name, True))
        except CheckFailed as exc:
            results.append(CheckResult(name, False, str(exc)))
        except (aiohttp.ClientError, ValueError, KeyError, struct.error) as exc:
            results.append(CheckResult(name, False, f"{type(exc).__name__}: {exc}"))
    return results


@register("htsget")
async def htsget_suite(ctx: Context) -> None:
    """The suite as `python -m conformance URL` runs it (the node's base URL). Ids and
    region default to the GA4GH compliance suite's; `--htsget-reads`, `--htsget-variants`
    and `--htsget-region` (`targets`) point it at any node's own data."""
    reads = ctx.targets.get("htsget-reads", "htsnexus_test_NA12878")
    variants = ctx.targets.get("htsget-variants", "spec-v4.3")
    region = parse_region(ctx.targets.get("htsget-region", "11:5000000-5050000"))
    results = await run_checks(f"{ctx.base}/htsget", reads=reads, variants=variants,
                               region=region, session=ctx.session)  # fmt: skip
    for r in results:
        ctx.record(r.name, r.ok, r.detail)


def parse_region(text: str) -> tuple[str, int, int]:
    """`NAME:START-END`, 0-based half-open as in htsget; ValueError when malformed."""
    name, sep, span = text.rpartition(":")
    start, dash, end = span.partition("-")
    if not (name and sep and dash and start.isdigit() and end.isdigit()) or int(end) <= int(start):
        raise ValueError(f"region {text!r}: expected NAME:START-END with START < END")
    return name, int(start), int(end)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m conformance.htsget", description=__doc__)
    p.add_argument("url", help="the htsget base URL, e.g. http://127.0.0.1:8080/htsget")
    p.add_argument("--reads", default="htsnexus_test_NA12878")
    p.add_argument("--variants", default="spec-v4.3")
    args = p.parse_args(argv)
    results = asyncio.run(run_checks(args.url, reads=args.reads, variants=args.variants))
    for r in results:
        print(f"{'PASS' if r.ok else 'FAIL'}  {r.name}" + (f": {r.detail}" if r.detail else ""))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
