"""The dataset registry lists the store root at most once per TTL and opens stores once."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import Settings
from node.errors import NotFound
from node.store.memory import MemoryStore
from node.store.registry import DatasetRegistry


def test_listing_is_cached_for_the_ttl_and_stores_open_once() -> None:
    present = ["a"]
    calls = {"list": 0, "open": 0}

    def lister() -> list[str]:
        calls["list"] += 1
        return list(present)

    def opener(dataset_id: str) -> MemoryStore:
        calls["open"] += 1
        return MemoryStore()

    cached = DatasetRegistry(Settings(home=Path(".")), opener=opener, lister=lister, ids_ttl_s=60)
    assert cached.ids() == ("a",)
    present.append("b")
    assert cached.ids() == ("a",) and calls["list"] == 1  # within the TTL: no new listing
    with pytest.raises(NotFound):
        cached.store("b")
    assert cached.store("a") is cached.store("a") and calls["open"] == 1

    fresh = DatasetRegistry(Settings(home=Path(".")), opener=opener, lister=lister, ids_ttl_s=0)
    assert fresh.ids() == ("a", "b")


def test_resident_only_when_listed_open_and_in_memory() -> None:
    class Cold(MemoryStore):
        def resident(self, contig: str) -> bool:
            return False

    stores = {"a": MemoryStore(), "b": Cold()}
    registry = DatasetRegistry(Settings(home=Path(".")), opener=stores.__getitem__,
                               lister=lambda: list(stores), ids_ttl_s=60)
    assert not registry.resident("1")  # never listed: listing is I/O
    registry.ids()
    assert not registry.resident("1", ["a"])  # listed, but not opened yet
    registry.store("a")
    assert registry.resident("1", ["a"])
    assert not registry.resident("1")  # every dataset: "b" is not open
    registry.store("b")
    assert not registry.resident("1") and not registry.resident("1", ["b"])
    assert not registry.resident("1", ["unknown"])
    stale = DatasetRegistry(Settings(home=Path(".")), opener=stores.__getitem__,
                            lister=lambda: list(stores), ids_ttl_s=0)
    stale.store("a")
    assert not stale.resident("1", ["a"])  # the next ids() lists again
