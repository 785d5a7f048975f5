"""`build_aggregate`: fednode's own arrays for a dataset another writer (TileDB-VCF) wrote.

A dataset fednode ingests gets, beside TileDB-VCF's arrays, its aggregate (summed allele
statistics) and `fednode_genotypes` (one cell per record, genotypes packed). A dataset
TileDB-VCF wrote has neither: every statistic and region is then read from `data`, one
cell per sample and record (`variant_scan`, seconds to minutes at 2,548 samples). This
module writes them from `data`, once:

- `fednode_allele_stats`, `fednode_coverage`: the rows `variant_scan.AggregateRows` makes,
  i.e. what the ingest's `StatsCollector` makes of the same calls;
- `fednode_genotypes`: samples whose records are the same cells at the same positions (the
  usual case for per-sample files split from one call set) form a group, named in the
  array metadata as an ingest's input is, with one cell per record and group. When groups
  are small (per-sample gVCFs: every sample its own records) the packed array would be as
  big as `data` and no faster; it is then not written and region reads stay on `data`.

Only arrays and group members TileDB-VCF does not know are added, and the root group's
fednode metadata: TileDB-VCF's arrays are not touched. The build commits like an ingest
(`tiledbvcf`): fragments and metadata at one timestamp T, made visible by the one
group-metadata write of `fednode_committed` = T and the state; a failed or killed build
leaves nothing readers see, and its leftovers are removed by the next build. Samples
TileDB-VCF stores later are added by the next build (their rows are deltas, as a later
ingest's); samples deleted since the last build cannot be taken out (UnsupportedFormat).
One writer at a time, as for ingest.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import tiledb

from node.domain import Region, normalize_contig
from node.errors import Conflict, NotFound, UnsupportedFormat
from node.store.dataset import layout
from node.store.dataset.dataset_state import (
    COMMITTED,
    STATE,
    DatasetState,
    declared_contigs,
    discard_after,
    exists,
    header_tables,
    header_texts,
    latest_timestamp,
    load_state,
)
from node.store.dataset.writer_lock import LockOptions
from node.store.ingest.genotype_packing import GenotypeCells, Groups
from node.store.ingest.memory_budget import DEFAULT_MB, MemoryBudget
from node.store.read.records import BatchReader, RecordCells
from node.store.read.variant_scan import AggregateRows

__all__ = ["AggregateSummary", "Status", "aggregate_status", "build_aggregate"]

Status = Literal["foreign", "missing", "stale", "current"]

FEDNODE_ARRAYS = (layout.FEDNODE_STATS, layout.FEDNODE_COVERAGE, layout.FEDNODE_GENOTYPES)
GROUP_SIZE = 4  # samples a fednode_genotypes group must average for the array to be built
_POS_MAX = 2**32 - 2
_FLUSH_ROWS = 500_000  # aggregate rows held before a write (at most: `MemoryBudget`)


@dataclass(frozen=True, slots=True)
class AggregateSummary:
    samples: tuple[str, ...]  # samples whose rows were built (none: it was up to date)
    cells: int  # `data` cells read
    groups: int  # fednode_genotypes groups written
    genotypes: bool  # region reads come from fednode_genotypes
    seconds: float


@dataclass(frozen=True, slots=True)
class _Plan:
    state: DatasetState  # as committed before the build
    samples: tuple[str, ...]  # whose rows to build, in name order
    full: bool  # every sample of the dataset (no aggregate yet)
    after: tuple[str, ...]  # the dataset's samples once committed
    contigs: dict[str, str]  # source -> canonical, once committed


def aggregate_status(uri: str, *, tiledb_config: Mapping[str, str] | None = None) -> Status:
    """What `build_aggregate` would do for the dataset at `uri`.

    "foreign": fednode never wrote the dataset (TileDB-VCF did): everything to build;
    "missing": fednode wrote it without an aggregate (an ingest into a TileDB-VCF dataset);
    "stale": its headers list samples the aggregate lacks (stored by another writer since,
    or an ingest in progress); "current": nothing to do.
    """
    ctx = _context(uri, tiledb_config)
    state = load_state(uri, ctx)
    if state.committed is None:
        return "foreign"
    if not state.aggregate:
        return "missing"
    return "stale" if set(_stored_samples(uri, ctx)) - set(state.samples) else "current"


def build_aggregate(
    uri: str,
    *,
    tiledb_config: Mapping[str, str] | None = None,
    lock: LockOptions | None = None,
    memory_budget_mb: int = DEFAULT_MB,
) -> AggregateSummary:
    """Build (or bring up to date) the fednode arrays of the dataset at `uri`, atomically,
    holding the dataset's writer lock (an ingest's; `lock`: how long to wait for it).
    `memory_budget_mb` sets its write thresholds as an ingest's (`memory_budget`); the
    reads of `data` keep their own windows (`data_scan`)."""
    budget = MemoryBudget.of(memory_budget_mb)
    with (lock or LockOptions()).hold(uri):
        return _build(uri, {**budget.tiledb_config(), **(tiledb_config or {})}, budget)


def _build(
    uri: str, tiledb_config: Mapping[str, str] | None, budget: MemoryBudget
) -> AggregateSummary:
    started = time.perf_counter()
    ctx = _context(uri, tiledb_config)
    plan = _plan(uri, ctx)
    limits = budget.limits(samples=len(plan.samples))
    if not plan.samples:
        return AggregateSummary((), 0, 0, plan.state.genotypes, time.perf_counter() - started)
    committed = plan.state.committed
    _discard_after(uri, ctx, committed)  # a killed build's leftovers
    if plan.full and _holds_fragments(uri, ctx):
        raise Conflict(f"{uri}: fednode arrays hold rows its state does not account for")
    t = max(int(time.time() * 1000), latest_timestamp(uri, ctx) + 1, (committed or 0) + 1)
    try:
        writer = _Writer(uri, ctx, t, flush_bytes=limits.flush_bytes)
        with _ReadArrays(uri, ctx, t - 1) as reader:
            cells, groups = _aggregate(reader, plan, writer, min(_FLUSH_ROWS, limits.flush_rows))
            wanted = plan.state.genotypes if not plan.full else groups.worth(GROUP_SIZE)
            if wanted:
                writer.prepare_groups(groups)
                for chunk in _scan(reader, plan):
                    writer.genotypes(groups, chunk)
        writer.finish()
        _commit(uri, ctx, plan, t, coverage=writer.wrote_coverage, genotypes=wanted)
    except BaseException:
        _discard_after(uri, ctx, committed)
        raise
    seconds = time.perf_counter() - started
    return AggregateSummary(plan.samples, cells, len(groups) if wanted else 0, wanted, seconds)


def _context(uri: str, config: Mapping[str, str] | None) -> tiledb.Ctx:
    if not exists(uri, tiledb_config=config):
        raise NotFound(f"no TileDB-VCF dataset at {uri}")
    return tiledb.Ctx(dict(config or {}))


def _aggregate(
    reader: BatchReader, plan: _Plan, writer: _Writer, flush_rows: int
) -> tuple[int, Groups]:
    """Pass 1: the aggregate rows (written as they come) and the samples' groups."""
    rows = AggregateRows()
    groups = Groups(plan.samples)
    cells = 0
    for chunk in _scan(reader, plan):
        rows.add(chunk.batch)
        groups.add(chunk)
        cells += chunk.block.n
        if rows.pending() >= flush_rows:
            writer.aggregate(rows)
    writer.aggregate(rows)
    return cells, groups


def _scan(reader: BatchReader, plan: _Plan) -> Iterator[RecordCells]:
    for source in sorted(plan.contigs):
        region = Region(plan.contigs[source], 0, _POS_MAX + 1)
        yield from reader.record_cells(
            [source], region, plan.samples, subset=not plan.full, lock=None, scan=True
        )


class _ReadArrays:
    """`data` and the headers at timestamp `t`, as a `BatchReader` (a context manager)."""

    def __init__(self, uri: str, ctx: tiledb.Ctx, t: int) -> None:
        self._data = tiledb.open(f"{uri}/{layout.DATA}", ctx=ctx, timestamp=t)
        with tiledb.open(f"{uri}/{layout.HEADERS}", ctx=ctx, timestamp=t) as headers:
            self._tables = header_tables(headers)

    def __enter__(self) -> BatchReader:
        return BatchReader(self._data, self._tables)

    def __exit__(self, *exc: object) -> None:
        self._data.close()


class _Writer:
    """The build's fragments and metadata, all at timestamp `t`."""

    def __init__(self, uri: str, ctx: tiledb.Ctx, t: int, *, flush_bytes: int) -> None:
        self.uri, self.ctx, self.t = uri, ctx, t
        self.wrote_coverage = False
        self.max_length = 0
        self._groups: dict[str, str] = {}
        self._cells = GenotypeCells(flush_bytes=flush_bytes)
        with tiledb.open(f"{uri}/{layout.DATA}", ctx=ctx) as data:
            self.gap = int(data.meta.get("anchor_gap", layout.ANCHOR_GAP))
        _ensure_arrays(uri, ctx, t, self.gap)

    def _open(self, name: str) -> tiledb.Array:
        return tiledb.open(f"{self.uri}/{name}", "w", ctx=self.ctx, timestamp=self.t)

    def aggregate(self, rows: AggregateRows) -> None:
        stats, coverage = rows.take()
        if stats["pos"].size:  # max_length as an ingest's: the longest row, ends inclusive
            spans = stats["end"].astype(np.int64) - stats["pos"].astype(np.int64) + 1
            self.max_length = max(self.max_length, int(spans.max()))
            self._write(layout.FEDNODE_STATS, stats)
        if coverage["start"].size:
            self.wrote_coverage = True
            self._write(layout.FEDNODE_COVERAGE, coverage)

    def _write(self, name: str, rows: dict[str, np.ndarray]) -> None:
        with self._open(name) as arr:
            columns: dict[str, object] = {}
            for key, values in rows.items():
                schema = arr.schema
                kind = (schema.attr(key) if schema.has_attr(key) else schema.domain.dim(key)).dtype
                if kind.kind in "SUO" or key == "contig":
                    columns[key] = layout.Var.text([str(v) for v in values.tolist()])
                else:
                    columns[key] = np.asarray(values, dtype=kind)
            layout.write_columns(arr, columns)

    def prepare_groups(self, groups: Groups) -> None:
        self._groups = groups.metadata(self.t, gap=self.gap)

    def genotypes(self, groups: Groups, chunk: RecordCells) -> None:
        groups.cells(chunk, self._cells)
        if self._cells.full():
            self._write_genotypes()

    def _write_genotypes(self) -> None:
        if len(self._cells):
            with self._open(layout.FEDNODE_GENOTYPES) as arr:
                layout.write_columns(arr, self._cells.columns())

    def finish(self) -> None:
        self._write_genotypes()
        with tiledb.open(f"{self.uri}/{layout.FEDNODE_STATS}", ctx=self.ctx) as current:
            old = int(current.meta.get("max_length", 0))
        with self._open(layout.FEDNODE_STATS) as arr:
            arr.meta["max_length"] = max(old, self.max_length)
        if self._groups:
            with self._open(layout.FEDNODE_GENOTYPES) as arr:
                for key, text in self._groups.items():
                    arr.meta[key] = text


def _plan(uri: str, ctx: tiledb.Ctx) -> _Plan:
    state = load_state(uri, ctx)
    stored = _stored_samples(uri, ctx)
    gone = sorted(set(state.samples) - set(stored))
    if gone:
        raise UnsupportedFormat(
            f"{uri}: samples {', '.join(gone[:5])} were deleted since fednode last wrote "
            "the dataset; its aggregate cannot drop them"
        )
    new = tuple(s for s in stored if s not in set(state.samples))
    after = (*state.samples, *new)
    full = not state.aggregate
    samples = tuple(sorted(after if full else new))
    contigs = {**state.contigs, **_present_contigs(uri, ctx)} if samples else state.contigs
    return _Plan(state, samples, full, after, contigs)


def _stored_samples(uri: str, ctx: tiledb.Ctx) -> tuple[str, ...]:
    """The samples in the stored headers now (committed or not), in name order."""
    with tiledb.open(f"{uri}/{layout.HEADERS}", ctx=ctx) as headers:
        names = headers.query(attrs=[], dims=["sample"])[:]["sample"]
    return tuple(sorted({n.decode() if isinstance(n, bytes) else str(n) for n in names}))


def _present_contigs(uri: str, ctx: tiledb.Ctx) -> dict[str, str]:
    """Contigs holding `data` cells now, named as stored -> canonical.

    Fragments' non-empty domains name most (a fragment of one contig); a name inside a
    wider fragment range is checked with a one-chunk read of its coordinates.
    """
    data = f"{uri}/{layout.DATA}"
    spans = [tuple(map(_text, f.nonempty_domain[0])) for f in tiledb.array_fragments(data, ctx=ctx)]
    with tiledb.open(f"{uri}/{layout.HEADERS}", ctx=ctx) as headers:
        # each distinct header once, not once per sample
        texts = (text for _, _, text in header_texts(headers) if text is not None)
        names = declared_contigs(texts) | {lo for lo, hi in spans if lo == hi}
    small = tiledb.Ctx({**ctx.config().dict(), "py.init_buffer_bytes": str(1 << 16)})
    present = {}
    with tiledb.open(data, ctx=small) as arr:
        for name in sorted(names):
            if any(lo == hi == name for lo, hi in spans) or (
                any(lo <= name <= hi for lo, hi in spans) and _has_cells(arr, name)
            ):
                present[name] = normalize_contig(name)
    return present


def _has_cells(arr: tiledb.Array, contig: str) -> bool:
    query = arr.query(attrs=[], dims=["start_pos"], return_incomplete=True)
    for chunk in query.multi_index[[contig], slice(0, _POS_MAX)]:
        return len(chunk["start_pos"]) > 0
    return False


def _ensure_arrays(uri: str, ctx: tiledb.Ctx, t: int, gap: int) -> None:
    """The fednode arrays, created and made group members where missing (empty until
    something commits their fragments; TileDB-VCF ignores members it does not know)."""
    with tiledb.Group(uri, ctx=ctx) as group:
        members = {m.name for m in group}
    missing = [name for name in FEDNODE_ARRAYS if name not in members]
    for name in missing:
        if tiledb.object_type(f"{uri}/{name}", ctx=ctx) is None:
            tiledb.Array.create(f"{uri}/{name}", layout.SCHEMAS[name](), ctx=ctx)
        initial = {"version": 1}
        if name == layout.FEDNODE_GENOTYPES:
            initial["anchor_gap"] = gap
        with tiledb.open(f"{uri}/{name}", "w", ctx=ctx, timestamp=t) as arr:
            for key, value in initial.items():
                arr.meta[key] = value
    if missing:
        with tiledb.Group(uri, "w", ctx=ctx) as group:
            for name in missing:
                group.add(name, name=name, relative=True)


def _commit(
    uri: str, ctx: tiledb.Ctx, plan: _Plan, t: int, *, coverage: bool, genotypes: bool
) -> None:
    with tiledb.Group(uri, ctx=ctx) as group:
        now = group.meta.get(COMMITTED)
    if (None if now is None else int(now)) != plan.state.committed:
        raise Conflict(f"{uri} changed while its aggregate was built; nothing was committed")
    state = dataclasses.replace(
        plan.state,
        committed=t,
        samples=plan.after,
        contigs=plan.contigs,
        aggregate=True,
        coverage=plan.state.coverage or coverage,
        genotypes=genotypes,
    )
    with tiledb.Group(uri, "w", ctx=ctx) as group:  # the commit: one metadata write
        group.meta[COMMITTED] = t
        group.meta[STATE] = state.dump()


def _holds_fragments(uri: str, ctx: tiledb.Ctx) -> bool:
    vfs = tiledb.VFS(ctx=ctx)
    return any(
        vfs.is_dir(f"{uri}/{name}/__fragments") and vfs.ls(f"{uri}/{name}/__fragments")
        for name in FEDNODE_ARRAYS
    )


def _discard_after(uri: str, ctx: tiledb.Ctx, committed: int | None) -> None:
    """Remove the fednode arrays' files newer than `committed` (all, when None). Only those
    arrays: what TileDB-VCF wrote since is its own, committed by its own rules."""
    discard_after(uri, ctx, committed, arrays=FEDNODE_ARRAYS)


def _text(value: object) -> str:
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return text.rstrip("\0")
