"""The node's datasets: discovered under the store URI, opened lazily, closed together."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from node.config import DatasetSettings, Settings
from node.errors import NotFound
from node.store.base import VariantStore

__all__ = ["DatasetRegistry"]

log = logging.getLogger("fednode.store")

Opener = Callable[[str], VariantStore]
Lister = Callable[[], Iterable[str]]
Preparer = Callable[[str], bool]  # dataset id -> whether it changed the dataset


class DatasetRegistry:
    """Dataset id → (settings, store). Stores are opened on first use and cached.

    `lister` yields the ids present in the store; `opener` opens one by id. Both are
    injected so tests can run on the in-memory store. Listing a store root costs a VFS
    round trip (milliseconds locally, more on object storage), so the listing is cached
    for `ids_ttl_s` seconds: a dataset created by another process appears within that time.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        opener: Opener,
        lister: Lister,
        ids_ttl_s: float = 5.0,
        preparer: Preparer | None = None,
    ) -> None:
        """`preparer`, run by `warm` before a dataset is opened, may write what the store
        lacks (the fednode aggregate of a dataset TileDB-VCF wrote) and says if it did."""
        self._settings = settings
        self._opener = opener
        self._lister = lister
        self._preparer = preparer
        self._ttl = ids_ttl_s
        self._ids: tuple[str, ...] = ()
        self._listed_at = float("-inf")
        self._stores: dict[str, VariantStore] = {}
        self._retired: list[VariantStore] = []  # replaced while queries may still read them
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
        """Prepare (see `__init__`) and open every listed dataset, and build its in-memory
        lookup index where the store has one (`warm()`); returns dataset id -> contigs
        warmed. Blocking: run it off the event loop. A dataset that fails to prepare is
        served as it is; one that fails to open is left for the first query to report."""
        warmed: dict[str, tuple[str, ...]] = {}
        for dataset_id in self.ids():
            self._prepare(dataset_id)
            try:
                store = self.store(dataset_id)
            except NotFound:
                continue
            warm = getattr(store, "warm", None)
            warmed[dataset_id] = warm() if callable(warm) else ()
        return warmed

    def _prepare(self, dataset_id: str) -> None:
        """Run the preparer outside the lock (queries go on meanwhile, on the store as it
        was); a store opened before it changed the dataset is reopened on next use."""
        if self._preparer is None:
            return
        try:
            changed = self._preparer(dataset_id)
        except Exception:  # read-only storage, a concurrent writer: serve it unprepared
            log.warning("preparing dataset %s failed; served as it is", dataset_id, exc_info=True)
            return
        if changed:
            with self._lock:
                old = self._stores.pop(dataset_id, None)
                if old is not None:
                    self._retired.append(old)

    def housekeeping(self) -> None:
        """Run each open store's `housekeeping` (the server calls this periodically)."""
        with self._lock:
            stores = list(self._stores.values())
        for store in stores:
            run = getattr(store, "housekeeping", None)
            if callable(run):
                run()

    def close(self) -> None:
        with self._lock:
            for store in [*self._stores.values(), *self._retired]:
                store.close()
            self._stores.clear()
            self._retired.clear()


def tiledb_registry(settings: Settings) -> DatasetRegistry:
    """The registry of a node home: every TileDB-VCF dataset under `settings.store_uri`.

    At start-up (`warm`) a dataset TileDB-VCF wrote (fednode never did) gets the fednode
    aggregate (`aggregate_build`); until it is built, and where it cannot be (read-only
    storage), queries read `data`. Samples TileDB-VCF stores into a dataset after that are
    logged and added by `fednode index` (an automatic update could race a fednode ingest).
    """
    from node.store.tiledbvcf import TileDBVCFStore, list_datasets

    config = settings.tiledb_config

    def opener(dataset_id: str) -> VariantStore:
        return TileDBVCFStore.open(settings.dataset_uri(dataset_id), tiledb_config=config)

    def lister() -> Iterable[str]:
        return list_datasets(settings.dataset_uri(""), tiledb_config=config)

    def preparer(dataset_id: str) -> bool:
        from node.store.dataset.writer_lock import LockOptions
        from node.store.ingest.aggregate_build import aggregate_status, build_aggregate

        uri = settings.dataset_uri(dataset_id)
        status = aggregate_status(uri, tiledb_config=config)
        if status in ("stale", "missing"):
            log.warning(
                "dataset %s: its fednode aggregate lacks samples it holds (%s); "
                "`fednode index --dataset %s` builds them", dataset_id, status, dataset_id,
            )
        if status != "foreign":
            return False
        # an ingest holding the dataset: DatasetBusy, logged by `_prepare`, served as it is
        lock = LockOptions(label=dataset_id, lock_dir=settings.home / "locks")
        summary = build_aggregate(uri, tiledb_config=config, lock=lock)
        log.info(
            "dataset %s: fednode aggregate built for %d samples (%d cells, %.1f s)",
            dataset_id, len(summary.samples), summary.cells, summary.seconds,
        )
        return True

    return DatasetRegistry(settings, opener=opener, lister=lister, preparer=preparer)
