"""The node's datasets: discovered under the store URI, opened lazily, closed together."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from node.config import DatasetSettings, Settings
from node.errors import NotFound
from node.store.base import VariantStore

__all__ = ["DatasetRegistry"]

Opener = Callable[[str], VariantStore]
Lister = Callable[[], Iterable[str]]


class DatasetRegistry:
    """Dataset id → (settings, store). Stores are opened on first use and cached.

    `lister` yields the ids present in the store; `opener` opens one by id. Both are
    injected so tests can run on the in-memory store. Listing a store root costs a VFS
    round trip (milliseconds locally, more on object storage), so the listing is cached
    for `ids_ttl_s` seconds: a dataset created by another process appears within that time.
    """

    def __init__(
        self, settings: Settings, *, opener: Opener, lister: Lister, ids_ttl_s: float = 5.0
    ) -> None:
        self._settings = settings
        self._opener = opener
        self._lister = lister
        self._ttl = ids_ttl_s
        self._ids: tuple[str, ...] = ()
        self._listed_at = float("-inf")
        self._stores: dict[str, VariantStore] = {}
        self._lock = threading.Lock()

    def ids(self) -> tuple[str, ...]:
        now = time.monotonic()
        if now - self._listed_at >= self._ttl:
            self._ids = tuple(sorted(set(self._lister())))
            self._listed_at = now
        return self._ids

    def settings(self, dataset_id: str) -> DatasetSettings:
        return self._settings.dataset(dataset_id)

    def store(self, dataset_id: str) -> VariantStore:
        with self._lock:
            store = self._stores.get(dataset_id)
            if store is None:
                if dataset_id not in self.ids():
                    raise NotFound(f"no dataset {dataset_id!r}")
                store = self._opener(dataset_id)
                self._stores[dataset_id] = store
            return store

    def resident(self, contig: str, dataset_ids: Iterable[str] | None = None) -> bool:
        """Whether `ids()`, and `store()` with its `allele_stats`/`variants` on `contig` for
        each of `dataset_ids` (default: every listed dataset), answer from memory now: the
        listing is fresh and each store is open and says so (`resident`). Then an async
        caller may make those calls on its event loop instead of a thread."""
        if time.monotonic() - self._listed_at >= self._ttl or self._lock.locked():
            return False
        for dataset_id in self._ids if dataset_ids is None else dataset_ids:
            probe = getattr(self._stores.get(dataset_id), "resident", None)
            if probe is None or not probe(contig):
                return False
        return True

    def warm(self) -> dict[str, tuple[str, ...]]:
        """Open every listed dataset and build its in-memory lookup index where the store
        has one (`warm()`); returns dataset id -> contigs warmed. Blocking: run it off the
        event loop. A dataset that fails to open is left for the first query to report."""
        warmed: dict[str, tuple[str, ...]] = {}
        for dataset_id in self.ids():
            try:
                store = self.store(dataset_id)
            except NotFound:
                continue
            warm = getattr(store, "warm", None)
            warmed[dataset_id] = warm() if callable(warm) else ()
        return warmed

    def close(self) -> None:
        with self._lock:
            for store in self._stores.values():
                store.close()
            self._stores.clear()


def tiledb_registry(settings: Settings) -> DatasetRegistry:
    """The registry of a node home: every TileDB-VCF dataset under `settings.store_uri`."""
    from node.store.tiledbvcf import TileDBVCFStore, list_datasets

    config = settings.tiledb_config

    def opener(dataset_id: str) -> VariantStore:
        return TileDBVCFStore.open(settings.dataset_uri(dataset_id), tiledb_config=config)

    def lister() -> Iterable[str]:
        return list_datasets(settings.dataset_uri(""), tiledb_config=config)

    return DatasetRegistry(settings, opener=opener, lister=lister)
