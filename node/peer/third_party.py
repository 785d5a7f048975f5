"""A third-party Beacon v2 as a federation peer: its count for the user's query.

Only the query string is sent (a user's Authorization header never is), at `count`
granularity; the answer must be a Beacon v2 response whose `exists` agrees with its
count, else it is INVALID_RESPONSE and left out. A beacon answering only `exists` counts
as at least one, with no upper bound.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from node.peer.coordinator import Interval
from node.peer.peers import PeerEntry

__all__ = ["MAX_BEACON_REPLY", "BeaconAnswer", "beacon_count", "count"]

MAX_BEACON_REPLY = 4 << 20


@dataclass(frozen=True, slots=True)
class BeaconAnswer:
    status: str
    message: str
    elapsed_s: float
    count: Interval | None = None


async def count(
    session: aiohttp.ClientSession, entry: PeerEntry, query: Mapping[str, str], timeout_s: float
) -> BeaconAnswer:
    started = time.monotonic()
    params = {k: v for k, v in query.items() if k != "requestedGranularity"}
    params["requestedGranularity"] = "count"
    url = f"{(entry.beacon_url or '').rstrip('/')}/g_variants"

    def answer(code: str, message: str = "", found: Interval | None = None) -> BeaconAnswer:
        return BeaconAnswer(code, message, time.monotonic() - started, found)

    try:
        async with asyncio.timeout(timeout_s):
            async with session.get(url, params=params, allow_redirects=False) as reply:
                if reply.status != 200:
                    return answer("UNAVAILABLE", f"HTTP {reply.status}")
                raw = await reply.content.read(MAX_BEACON_REPLY + 1)
        found = beacon_count(json.loads(raw) if len(raw) <= MAX_BEACON_REPLY else None)
    except TimeoutError:
        return answer("DEADLINE_EXCEEDED", "beacon did not answer before the deadline")
    except aiohttp.ClientError:
        return answer("UNAVAILABLE", "beacon unreachable")
    except (ValueError, UnicodeDecodeError):
        return answer("INVALID_RESPONSE", "answer is not JSON")
    if found is None:
        return answer("INVALID_RESPONSE", "answer is not a Beacon v2 response")
    return answer("OK", "", found)


def beacon_count(doc: object) -> Interval | None:
    """The count a Beacon v2 response states (None: not a Beacon response)."""
    if not isinstance(doc, dict):
        return None
    summary = doc.get("responseSummary")
    if not isinstance(summary, dict) or not isinstance(summary.get("exists"), bool):
        return None
    total = summary.get("numTotalResults")
    if total is None:  # a boolean answer: at least one when it exists
        return Interval(1, 1, None, False) if summary["exists"] else Interval.zero()
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        return None
    if summary["exists"] != (total > 0):
        return None
    return Interval(total, total, total, True)
