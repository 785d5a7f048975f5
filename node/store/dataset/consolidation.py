"""`consolidate`: a dataset's fragments, commits, fragment and array metadata merged,
then vacuumed once no reader can still need what was merged.

Safe while the node serves (decision "consolidation while serving"):

- Only fragments up to the committed timestamp are merged, under the writer lock (no
  ingest runs; a dead one's staging is recovered first). TileDB names the merged fragment
  after its inputs' range [t1, t2], t2 <= committed, and a reader opening at or after t2
  uses it instead of its inputs: fednode's readers (at `fednode_committed`) and
  TileDB-VCF's (at the latest) see the same cells, before and after.
- TileDB-VCF's stats arrays keep fragment URI -> samples metadata; the merged fragment
  gets the union of its inputs' samples and their keys go, in one metadata write at a new
  timestamp that the group metadata then commits (same dataset state, new
  `fednode_committed`). Killed before that write, the metadata is newer than the
  committed timestamp: invisible to fednode and removed by the next writer.
- Vacuum deletes the merged inputs, which a reader that opened an array before the merge
  (or at an older committed timestamp) still reads. So it runs only `vacuum_after_s` after
  the last consolidation (recorded in `__fednode_consolidated.json`), at the start of a
  later run; servers reopen their arrays at the current committed timestamp every
  `server.housekeeping_s` (`TileDBVCFStore.housekeeping`), so the grace must exceed that
  plus the longest query. `vacuum_after_s=0` vacuums at once (no reader running).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import tiledb

from node.store.dataset import layout
from node.store.dataset.dataset_state import (
    COMMITTED,
    discard_after,
    latest_timestamp,
    load_state,
    put_meta,
    recover_staged,
)
from node.store.dataset.writer_lock import LockOptions

__all__ = ["MARKER", "ConsolidationSummary", "consolidate"]

MARKER = "__fednode_consolidated.json"  # when the last consolidation ran (epoch ms)
_MODES = ("commits", "fragment_meta", "array_meta")
_VACUUM_MODES = ("fragments", "commits", "fragment_meta", "array_meta")
_STATS_ARRAYS = (layout.ALLELE_COUNT, layout.VARIANT_STATS)
# Every fragment up to the committed timestamp into one (TileDB's default steps merge
# only fragments of similar size). TileDB 2.30's default memory budget (10 GB) costs
# ~2.5 s per array merged even when tiny (measured); 256 MiB keeps the ingest's budget.
# The node's [tiledb_config] may override both.
_FRAGMENT_DEFAULTS = {
    "sm.consolidation.step_min_frags": "2",
    "sm.consolidation.step_size_ratio": "0",
    "sm.mem.total_budget": str(256 << 20),
}


@dataclass(frozen=True, slots=True)
class ConsolidationSummary:
    """Fragments per array before and after; whether the previous run's inputs were
    vacuumed now, and whether this run's wait for a later one."""

    before: dict[str, int]
    after: dict[str, int]
    vacuumed: bool
    vacuum_pending: bool
    seconds: float


def consolidate(
    uri: str,
    *,
    tiledb_config: Mapping[str, str] | None = None,
    lock: LockOptions | None = None,
    vacuum_after_s: float = 600.0,
    clock: Callable[[], float] = time.time,
) -> ConsolidationSummary:
    """Consolidate the dataset at `uri` (see the module docstring), holding its lock."""
    started = time.monotonic()
    uri = uri.rstrip("/")
    config = dict(tiledb_config or {})
    ctx = tiledb.Ctx(config)
    with (lock or LockOptions()).hold(uri):
        recover_staged(uri, ctx, all_owners=True)
        committed = load_state(uri, ctx).committed
        if committed is not None:
            discard_after(uri, ctx, committed)
        vacuumed = _vacuum_if_due(uri, ctx, config, vacuum_after_s, clock)
        before = _fragment_counts(uri, ctx)
        end = committed if committed is not None else latest_timestamp(uri, ctx)
        _merge_fragments(uri, config, end)
        _rewrite_fragment_samples(uri, ctx, committed, clock)
        for name in layout.ALL_ARRAYS:
            for mode in _MODES:
                if mode == "commits" and _has_deletes(uri, name, ctx):
                    continue
                tiledb.consolidate(f"{uri}/{name}", config=_config(config, mode))
        tiledb.Group.consolidate_metadata(uri, config=tiledb.Config(config))
        _write_marker(uri, ctx, clock)
        if vacuum_after_s <= 0:
            _vacuum(uri, ctx, config)
        pending = vacuum_after_s > 0
        return ConsolidationSummary(
            before, _fragment_counts(uri, ctx), vacuumed, pending, time.monotonic() - started
        )


def _merge_fragments(uri: str, config: dict[str, str], end: int) -> list[str]:
    """Merge each array's fragments up to `end`; the arrays that had more than one."""
    merged = []
    for name in layout.ALL_ARRAYS:
        array = f"{uri}/{name}"
        if len(tiledb.array_fragments(array, ctx=tiledb.Ctx(config))) < 2:
            continue
        settings = {
            **_FRAGMENT_DEFAULTS,
            **config,
            "sm.consolidation.mode": "fragments",
            "sm.consolidation.timestamp_start": "0",
            "sm.consolidation.timestamp_end": str(end),
        }
        tiledb.consolidate(array, config=tiledb.Config(settings))
        merged.append(name)
    return merged


def _rewrite_fragment_samples(
    uri: str, ctx: tiledb.Ctx, committed: int | None, clock: Callable[[], float]
) -> None:
    """The stats arrays' fragment URI -> samples keys follow the merge (also one an earlier
    run was killed before committing); committed by one group-metadata write of a new
    `fednode_committed` (a dataset TileDB-VCF wrote has none: its readers read at the
    latest)."""
    changes = {name: _key_changes(f"{uri}/{name}", ctx, committed) for name in _STATS_ARRAYS}
    if not any(updates for updates, _ in changes.values()):
        return
    stamp = max(int(clock() * 1000), latest_timestamp(uri, ctx) + 1)
    for name, (updates, gone) in changes.items():
        if not updates:
            continue
        with tiledb.open(f"{uri}/{name}", "w", ctx=ctx, timestamp=stamp) as arr:
            for key in gone:
                del arr.meta[key]
            for key, text in updates.items():
                put_meta(arr.meta, name, key, text)
    if committed is not None:
        with tiledb.Group(uri, "w", ctx=ctx) as group:
            group.meta[COMMITTED] = stamp


def _key_changes(
    array: str, ctx: tiledb.Ctx, committed: int | None
) -> tuple[dict[str, str], list[str]]:
    """Keys to write (a merged fragment: its inputs' samples) and the inputs' keys."""
    with tiledb.open(array, ctx=ctx, timestamp=committed) as arr:
        keys = {k: _text(arr.meta[k]) for k in arr.meta if "/__fragments/" in k}
    updates: dict[str, str] = {}
    gone: list[str] = []
    for fragment in tiledb.array_fragments(array, ctx=ctx):
        lo, hi = fragment.timestamp_range
        inputs = [k for k in keys if k != fragment.uri and _inside(k, lo, hi)]
        if inputs:
            names = {s for k in inputs for s in keys[k].split(",") if s}
            updates[fragment.uri] = ",".join(sorted(names))
            gone.extend(inputs)
    return updates, gone


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _inside(fragment_uri: str, lo: int, hi: int) -> bool:
    """Whether the fragment named by `fragment_uri` (`__t1_t2_uuid_v`) lies in [lo, hi]."""
    parts = fragment_uri.rstrip("/").rsplit("/", 1)[-1].split("_")
    if len(parts) < 4 or not (parts[2].isdigit() and parts[3].isdigit()):
        return False
    return lo <= int(parts[2]) and int(parts[3]) <= hi


def _vacuum_if_due(
    uri: str,
    ctx: tiledb.Ctx,
    config: dict[str, str],
    vacuum_after_s: float,
    clock: Callable[[], float],
) -> bool:
    """Vacuum what an earlier run merged, once `vacuum_after_s` have passed since."""
    at = _read_marker(uri, ctx)
    if at is None or clock() * 1000 - at < vacuum_after_s * 1000:
        return False
    _vacuum(uri, ctx, config)
    return True


def _vacuum(uri: str, ctx: tiledb.Ctx, config: dict[str, str]) -> None:
    for name in layout.ALL_ARRAYS:
        for mode in _VACUUM_MODES:
            tiledb.vacuum(f"{uri}/{name}", config=tiledb.Config({**config, "sm.vacuum.mode": mode}))
    tiledb.Group.vacuum_metadata(uri, config=tiledb.Config(config))
    vfs = tiledb.VFS(ctx=ctx)
    if vfs.is_file(f"{uri}/{MARKER}"):
        vfs.remove_file(f"{uri}/{MARKER}")


def _read_marker(uri: str, ctx: tiledb.Ctx) -> int | None:
    vfs = tiledb.VFS(ctx=ctx)
    path = f"{uri}/{MARKER}"
    if not vfs.is_file(path):
        return None
    with vfs.open(path, "rb") as handle:
        try:
            return int(json.loads(handle.read())["at"])
        except (ValueError, KeyError, TypeError):
            return 0  # unreadable: vacuum as if long past


def _write_marker(uri: str, ctx: tiledb.Ctx, clock: Callable[[], float]) -> None:
    vfs = tiledb.VFS(ctx=ctx)
    with vfs.open(f"{uri}/{MARKER}", "wb") as handle:
        handle.write(json.dumps({"at": int(clock() * 1000)}).encode())


def _has_deletes(uri: str, name: str, ctx: tiledb.Ctx) -> bool:
    """Whether the array has delete commits (`--replace`). TileDB 2.30 lists them in a
    consolidated commits file, vacuums them, then fails every later commits
    consolidation ("Cannot get file size of ... .del"): their commits stay as they are
    (fragment consolidation and vacuum already remove the merged fragments' commits)."""
    vfs = tiledb.VFS(ctx=ctx)
    folder = f"{uri}/{name}/__commits"
    return vfs.is_dir(folder) and any(e.endswith(".del") for e in vfs.ls(folder))


def _fragment_counts(uri: str, ctx: tiledb.Ctx) -> dict[str, int]:
    return {n: len(tiledb.array_fragments(f"{uri}/{n}", ctx=ctx)) for n in layout.ALL_ARRAYS}


def _config(config: dict[str, str], mode: str) -> tiledb.Config:
    return tiledb.Config({**config, "sm.consolidation.mode": mode})
