"""Region statistics on a node: the request's filters and the store read in batches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

from node.domain import Region, Variant
from node.errors import InvalidInput
from node.names import VariantType
from node.peer._pb import peer_pb2 as pb
from node.store.base import VariantStore

__all__ = ["REGION_CHUNK", "frequency_filter", "variant_batches", "variant_types"]

REGION_CHUNK = 500  # variants per streamed message


def variant_types(names: Sequence[str]) -> frozenset[VariantType] | None:
    if not names:
        return None
    try:
        return frozenset(VariantType(n.upper()) for n in names)
    except ValueError as exc:
        raise InvalidInput(f"unknown variant type in {list(names)}") from exc


def frequency_filter(request: pb.RegionStatsRequest) -> Callable[[pb.DatasetAlleleStats], bool]:
    """Filter on the frequency as reported (after the guard), so a filter cannot be used
    to bisect a suppressed count."""
    lo = request.min_frequency if request.HasField("min_frequency") else None
    hi = request.max_frequency if request.HasField("max_frequency") else None
    if lo is None and hi is None:
        return lambda stats: True

    def keep(stats: pb.DatasetAlleleStats) -> bool:
        if stats.granularity == pb.GRANULARITY_BOOLEAN:
            return False  # no frequency may be disclosed, so none can be filtered on
        f = stats.frequency
        return (lo is None or f >= lo) and (hi is None or f <= hi)

    return keep


async def variant_batches(
    store: VariantStore,
    region: Region,
    types: frozenset[VariantType] | None,
    deadline: float,
) -> AsyncIterator[list[Variant]]:
    """The store's variants in batches, each read in a worker thread before the deadline."""
    iterator: Iterator[Variant] = store.variants(region, variant_types=types)
    loop = asyncio.get_running_loop()
    try:
        while True:
            async with asyncio.timeout_at(deadline):
                batch = await asyncio.to_thread(_take, iterator, REGION_CHUNK)
            if not batch:
                return
            yield batch
            if loop.time() >= deadline:
                raise TimeoutError
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def _take(iterator: Iterator[Variant], n: int) -> list[Variant]:
    out = []
    for item in iterator:
        out.append(item)
        if len(out) == n:
            break
    return out
