"""Region statistics on a node: the request's variant types and the store read in batches
(the frequency filter works on the reported values: node/peer/server.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator, Sequence

from node.domain import Region, Variant
from node.errors import InvalidInput
from node.names import VariantType
from node.store.base import VariantStore

__all__ = ["REGION_CHUNK", "variant_batches", "variant_types"]

REGION_CHUNK = 500  # variants per streamed message


def variant_types(names: Sequence[str]) -> frozenset[VariantType] | None:
    if not names:
        return None
    try:
        return frozenset(VariantType(n.upper()) for n in names)
    except ValueError as exc:
        raise InvalidInput(f"unknown variant type in {list(names)}") from exc


async def variant_batches(
    store: VariantStore,
    region: Region,
    types: frozenset[VariantType] | None,
    deadline: float,
) -> AsyncGenerator[list[Variant], None]:
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
