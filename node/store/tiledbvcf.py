"""`TileDBVCFStore`: the TileDB-VCF v4 dataset layout on tiledb-py (see `layout`).

Atomic ingest (decision "ingest commits by one group-metadata write", amended by "a
staged ingest is invisible to every reader"): every array write of one ingest uses fixed
timestamps (T for deletes of replaced samples, T+1 for new fragments and metadata) and
goes to the ingest's staging copies of the arrays (`dataset_state.stage`), which other
readers (TileDB-VCF, plain tiledb-py at the latest timestamp) never open. The ingest's last
step publishes them (`dataset_state.publish`: the decision, the files moved into the
arrays, then `fednode_committed` with the sample list, assembly and contigs in one
group-metadata write). fednode's readers open every array at `fednode_committed`. A killed
ingest's staging is rolled back, or forward once decided, when the dataset is next opened.

Region records (`genotype_batches`, `records`) come from `fednode_genotypes` (one cell per
input record, genotypes packed) when the dataset state says it covers every sample, else
from `data` (one cell per sample and record; TileDB-VCF's own datasets). Both give the same
records (tests/store/test_genotypes_array.py).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from pathlib import Path

import tiledb

from node.domain import AlleleKey, AlleleStats, Record, Region, Variant, normalize_contig
from node.errors import Conflict, IngestError, NotFound, UnsupportedFormat
from node.names import VariantType
from node.store.base import IngestSummary
from node.store.dataset import layout
from node.store.dataset.dataset_state import (
    COMMITTED,
    STATE,
    DatasetState,
    Staging,
    discard_after,
    exists,
    header_tables,
    latest_timestamp,
    list_datasets,
    load_state,
    publish,
    put_ascii_meta,
    recover_staged,
    stage,
    write_initial_metadata,
)
from node.store.dataset.writer_lock import LockOptions
from node.store.housekeeping import release_query_statistics
from node.store.ingest import stats
from node.store.ingest.ingest_checks import check_assembly, check_samples
from node.store.ingest.ingest_parallel import TaskRunner, run_partitioned
from node.store.ingest.ingest_tasks import TaskSpec, plan_tasks
from node.store.ingest.ingest_writer import IngestWriter
from node.store.ingest.memory_budget import DEFAULT_MB, MemoryBudget
from node.store.ingest.vcfio import RecordReader, VcfInput
from node.store.read.aggregate_index import ContigIndex, build_contig_index
from node.store.read.batch import GenotypeBatch
from node.store.read.genotype_reader import BULK_READ, SMALL_READ, GenotypeReader
from node.store.read.records import BatchReader
from node.store.read.variant_scan import carried_variants, data_stats_lookup, wanted, with_stats
from node.store.read.vcf_header import stored_headers

__all__ = ["TileDBVCFStore", "list_datasets"]

log = logging.getLogger("fednode.store")


def _ctx(config: Mapping[str, str] | None) -> tiledb.Ctx:
    return tiledb.Ctx(dict(config or {}))


def _now_ms() -> int:
    return int(time.time() * 1000)


class TileDBVCFStore:
    """One TileDB-VCF dataset; satisfies `node.store.base.VariantStore`."""

    def __init__(self, uri: str, ctx: tiledb.Ctx, config: Mapping[str, str] | None) -> None:
        self.uri = uri.rstrip("/")
        self._ctx = ctx
        self._config = dict(config or {})
        self._lock = threading.Lock()
        self._ingest_lock = threading.Lock()
        self._arrays: dict[str, tiledb.Array] = {}
        self._indexes: dict[str, ContigIndex] = {}  # built lazily, valid until a commit
        self._genotype_reader: GenotypeReader | None = None  # likewise
        self._state = self._load_state()

    # --- lifecycle ----------------------------------------------------------------------

    @staticmethod
    def exists(uri: str, *, tiledb_config: Mapping[str, str] | None = None) -> bool:
        return exists(uri, tiledb_config=tiledb_config)

    @classmethod
    def create(
        cls,
        uri: str,
        *,
        assembly: str = "GRCh38",
        tiledb_config: Mapping[str, str] | None = None,
        genotypes: bool = True,
        variant_stats_version: int = layout.VARIANT_STATS_VERSION,
    ) -> TileDBVCFStore:
        """An empty dataset; `genotypes=False` leaves `fednode_genotypes` empty for good
        (region records then read `data`, as on TileDB-VCF's datasets: smaller, slower).
        `variant_stats_version` 2 or 3, 2 unless asked, as `tiledbvcf create` chooses."""
        ctx = _ctx(tiledb_config)
        if variant_stats_version not in layout.VARIANT_STATS_VERSIONS:
            raise UnsupportedFormat(
                f"variant_stats version {variant_stats_version}: TileDB-VCF writes 2 and 3"
            )
        if tiledb.object_type(uri, ctx=ctx) is not None:
            raise Conflict(f"a dataset already exists at {uri}")
        tiledb.Group.create(uri, ctx=ctx)
        tiledb.Group.create(f"{uri}/{layout.METADATA_GROUP}", ctx=ctx)
        for name in layout.ALL_ARRAYS:
            if name == layout.VARIANT_STATS:
                schema = layout.variant_stats_schema(variant_stats_version)
            else:
                schema = layout.SCHEMAS[name]()
            tiledb.Array.create(f"{uri}/{name}", schema, ctx=ctx)
        t0 = _now_ms() + 1
        write_initial_metadata(uri, ctx, t0, variant_stats_version)
        with tiledb.Group(f"{uri}/{layout.METADATA_GROUP}", "w", ctx=ctx) as meta_group:
            meta_group.add("vcf_headers", name="vcf_headers", relative=True)
        with tiledb.Group(uri, "w", ctx=ctx) as group:
            for name in (layout.DATA, layout.METADATA_GROUP, *layout.ALL_ARRAYS[2:]):
                group.add(name, name=name, relative=True)
            put_ascii_meta(group.meta, "dataset_type", "vcf")  # TileDB-VCF's STRING_ASCII
            group.meta[COMMITTED] = t0
            state = DatasetState(t0, (), assembly, {}, aggregate=True, genotypes=genotypes)
            group.meta[STATE] = state.dump()
        return cls(uri, ctx, tiledb_config)

    @classmethod
    def open(cls, uri: str, *, tiledb_config: Mapping[str, str] | None = None) -> TileDBVCFStore:
        if not exists(uri, tiledb_config=tiledb_config):
            raise NotFound(f"no TileDB-VCF dataset at {uri}")
        ctx = _ctx(tiledb_config)
        try:  # a killed ingest's staging: finished when decided, else removed
            recover_staged(uri.rstrip("/"), ctx, all_owners=False)
        except (tiledb.TileDBError, OSError, ValueError) as exc:  # read-only store, say
            log.warning("%s: staged ingest not recovered: %s", uri, exc)
        return cls(uri, ctx, tiledb_config)

    def _load_state(self) -> DatasetState:
        return load_state(self.uri, self._ctx)

    def close(self) -> None:
        with self._lock:
            for array in self._arrays.values():
                array.close()
            self._arrays.clear()
            self._indexes.clear()
            self._genotype_reader = None

    def housekeeping(self) -> None:
        """Free what TileDB keeps of finished queries (`housekeeping`): arrays are opened
        anew, on next use, in fresh contexts; the old ones go when the last query reading
        them ends (nothing closes them under a reader). Indexes are kept unless another
        process committed new samples: the arrays then open at its committed timestamp, so
        no reader stays on fragments a consolidation merged (`consolidation`: their vacuum
        waits longer than this period)."""
        ctx = _ctx(self._config)
        state = self._load_state_quietly(ctx)
        with self._lock:
            self._ctx = ctx
            self._arrays = {}
            self._genotype_reader = None
            if state is not None:
                if dataclasses.replace(state, committed=None) != dataclasses.replace(
                    self._state, committed=None
                ):
                    self._indexes = {}
                    self.__dict__.pop("_header_tables", None)
                self._state = state
        release_query_statistics()

    def _load_state_quietly(self, ctx: tiledb.Ctx) -> DatasetState | None:
        """The dataset state when its committed timestamp moved (else None)."""
        try:
            with tiledb.Group(self.uri, ctx=ctx) as group:
                committed = group.meta.get(COMMITTED)
            if committed is None or int(committed) == self._state.committed:
                return None
            return load_state(self.uri, ctx)
        except (tiledb.TileDBError, OSError, ValueError, KeyError) as exc:
            log.warning("%s: dataset state not reread: %s", self.uri, exc)
            return None

    def _array(self, name: str, *, read_config: Mapping[str, str] | None = None) -> tiledb.Array:
        """`name` opened at the committed timestamp (once per `read_config`, kept)."""
        key = name if read_config is None else f"{name}?{sorted(read_config.items())}"
        array = self._arrays.get(key)
        if array is None:
            uri = f"{self.uri}/{name}"
            ctx = self._ctx if read_config is None else _ctx({**self._config, **read_config})
            array = tiledb.open(uri, ctx=ctx, timestamp=self._state.committed)
            self._arrays[key] = array
        return array

    # --- VariantStore -------------------------------------------------------------------

    @property
    def samples(self) -> tuple[str, ...]:
        return self._state.samples

    @property
    def assembly(self) -> str:
        return self._state.assembly

    @property
    def reads_genotypes_array(self) -> bool:
        """Whether region records come from `fednode_genotypes` (else from `data`)."""
        return self._state.genotypes

    def contigs(self) -> tuple[str, ...]:
        return tuple(sorted(set(self._state.contigs.values()), key=_contig_order))

    def _sources(self, contig: str) -> list[str]:
        canonical = normalize_contig(contig)
        return sorted(s for s, c in self._state.contigs.items() if c == canonical)

    def allele_stats(self, keys: Sequence[AlleleKey]) -> list[AlleleStats | None]:
        out: list[AlleleStats | None] = [None] * len(keys)
        by_contig: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            by_contig.setdefault(normalize_contig(key.contig), []).append(i)
        for contig, indexes in by_contig.items():
            points = [(keys[i].start, keys[i].ref, keys[i].alt) for i in indexes]
            for i, result in zip(indexes, self._lookup(contig, points), strict=True):
                out[i] = result
        return out

    def _lookup(self, contig: str, points: list[stats.Point]) -> list[AlleleStats | None]:
        with self._lock:
            if self._state.aggregate:
                return self._index(contig).lookup(points)
            reader = BatchReader(self._array(layout.DATA), self._headers())
        # No aggregate (TileDB-VCF wrote the dataset): from `data`, whatever variant_stats
        # version it has (see `stats_lookup` for why not from variant_stats).
        return data_stats_lookup(
            reader, self._sources(contig), contig, points, self._state.samples, lock=self._lock
        )

    def resident(self, contig: str) -> bool:
        """Whether `allele_stats` and `variants` on `contig` answer from memory now (its
        aggregate index is built and no other call holds the store): microseconds and no
        I/O, so an async caller may make them on its event loop."""
        return (
            self._state.aggregate
            and normalize_contig(contig) in self._indexes
            and not self._lock.locked()
        )

    def warm(self) -> tuple[str, ...]:
        """Build the aggregate index of every contig the dataset holds, so that no query
        pays for it (`serve` calls this off the event loop at start-up; a 1M-allele contig
        takes seconds). The lock is taken per contig: queries interleave with the build."""
        if not self._state.aggregate:
            return ()
        contigs = self.contigs()
        for contig in contigs:
            with self._lock:
                self._index(contig)
        return contigs

    def _index(self, contig: str) -> ContigIndex:
        """The contig's summed aggregate (caller holds `_lock`)."""
        index = self._indexes.get(contig)
        if index is None:
            cover = self._array(layout.FEDNODE_COVERAGE) if self._state.coverage else None
            index = build_contig_index(self._array(layout.FEDNODE_STATS), cover, contig)
            self._indexes[contig] = index
        return index

    def variants(
        self,
        region: Region,
        *,
        variant_types: frozenset[VariantType] | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
    ) -> Iterator[Variant]:
        contig = normalize_contig(region.contig)
        if region.end <= region.start:
            return iter(())
        found = self._variants_in(contig, region)
        points = [(v.start, v.ref, v.alt) for v in found]
        out = []
        for variant, stat in zip(found, self._lookup(contig, points), strict=True):
            if stat is None or not wanted(variant, variant_types, min_length, max_length):
                continue
            out.append(with_stats(variant, stat))
        return iter(sorted(out, key=lambda v: (v.start, v.ref, v.alt)))

    def _variants_in(self, contig: str, region: Region) -> list[Variant]:
        with self._lock:
            if self._state.aggregate:
                return self._index(contig).variants_in(contig, region)
            reader = BatchReader(self._array(layout.DATA), self._headers())
        columns = self._state.samples
        batches = reader.batches(
            self._sources(contig), region, columns, subset=False, lock=self._lock
        )
        return carried_variants(batches)

    def records(
        self,
        region: Region,
        *,
        samples: Sequence[str] | None = None,
        batch_size: int = 1024,
    ) -> Iterator[list[Record]]:
        if batch_size <= 0:
            self._check_samples_known(samples)
            return
        pending: list[Record] = []
        for batch in self.genotype_batches(region, samples=samples):
            pending.extend(batch.records())
            while len(pending) >= batch_size:
                yield pending[:batch_size]
                pending = pending[batch_size:]
        if pending:
            yield pending

    def genotype_batches(
        self, region: Region, *, samples: Sequence[str] | None = None
    ) -> Iterator[GenotypeBatch]:
        """Records of `region` as genotype matrices (columns: `samples`, else all)."""
        self._check_samples_known(samples)
        if region.end <= region.start:
            return
        if not self._state.genotypes:
            yield from self._data_batches(region, samples)
            return
        with self._lock:
            reader = self._genotype_reader
            if reader is None:
                reader = self._genotype_reader = GenotypeReader(
                    self._array(layout.FEDNODE_GENOTYPES, read_config=BULK_READ),
                    small=self._array(layout.FEDNODE_GENOTYPES, read_config=SMALL_READ))
        columns = self._state.samples if samples is None else tuple(samples)
        yield from reader.batches(self._sources(region.contig), region, columns, lock=self._lock)

    def _data_batches(
        self, region: Region, samples: Sequence[str] | None
    ) -> Iterator[GenotypeBatch]:
        """`genotype_batches` read from `data` (whatever the dataset state says)."""
        with self._lock:
            reader = BatchReader(self._array(layout.DATA), self._headers())
        columns = self._state.samples if samples is None else tuple(samples)
        sources = self._sources(region.contig)
        yield from reader.batches(
            sources, region, columns, subset=samples is not None, lock=self._lock
        )

    def _check_samples_known(self, samples: Sequence[str] | None) -> None:
        if samples is not None:
            unknown = sorted(set(samples) - set(self._state.samples))
            if unknown:
                raise NotFound(f"unknown samples: {', '.join(unknown[:5])}")

    def vcf_headers(self) -> dict[str, str]:
        """Each sample's VCF header as the dataset keeps it (`metadata/vcf_headers`): its
        input's header, which exports carry (`vcf_header.merged_header`)."""
        with self._lock:
            return stored_headers(self._array(layout.HEADERS))

    def _headers(self) -> dict[str, list[str]]:
        """Per sample, its header's htslib FILTER/INFO/FORMAT id table (cached)."""
        cached = getattr(self, "_header_tables", None)
        if cached is None:
            cached = self._header_tables = header_tables(self._array(layout.HEADERS))
        return cached

    # --- ingest -------------------------------------------------------------------------

    def ingest(
        self,
        paths: Sequence[Path],
        *,
        assembly: str | None = None,
        replace: bool = False,
        threads: int = 1,
        progress: bool = False,
        lock: LockOptions | None = None,
        runner: TaskRunner | None = None,
        memory_budget_mb: int = DEFAULT_MB,
        block_reader: bool = True,
    ) -> IngestSummary:
        """Ingest `paths` atomically, holding the dataset's writer lock (`lock`: how long
        to wait for it). `runner`: run the work as partitioned tasks (worker processes, a
        Dask cluster; see `ingest_tasks`), committed here once all succeeded.
        `memory_budget_mb`: the peak RSS of this process, and of the runner's processes
        together when they run on this machine (`memory_budget`)."""
        local = runner is not None and runner.shares_machine
        workers = runner.workers if runner is not None and local else 1
        budget = MemoryBudget.of(memory_budget_mb, workers=workers)  # before the lock wait
        options = lock or LockOptions()
        with self._ingest_lock, options.hold(self.uri):
            self._recover()
            self._check_writable()
            blocks = block_reader and budget.block_reader()
            inputs = [VcfInput(Path(p), threads=threads, blocks=blocks) for p in paths]
            added, replaced = check_samples(inputs, self._state.samples, replace=replace)
            dataset_assembly = check_assembly(
                inputs, assembly, self._state.assembly, empty=not self._state.samples
            )
            t_delete = self._begin()
            mine = budget.coordinator() if local else budget
            ctx = _ctx({**mine.tiledb_config(), **self._config, **_thread_config(threads)})
            bar = progress and sys.stderr.isatty()
            staging = stage(self.uri, self._ctx, t_delete + 1)
            plan = _Plan(inputs, replaced, t_delete, threads, runner, budget, mine, block_reader)
            writer, parts, records = self._write(plan, staging, ctx, bar)
            self._commit(writer.timestamp, writer, added, dataset_assembly, staging, parts)
        return IngestSummary(len(inputs), tuple(added), tuple(replaced), records, dataset_assembly)

    def _write(
        self, plan: _Plan, staging: Staging, ctx: tiledb.Ctx, bar: bool
    ) -> tuple[IngestWriter, list[str], int]:
        """Write every fragment of the ingest into `staging` (its tasks' into their parts);
        on any failure remove the staging and raise."""
        t_write = plan.t_delete + 1
        specs = [] if plan.runner is None else self._specs(plan, staging, t_write)
        writer = IngestWriter(
            self.uri,
            ctx,
            max((s.timestamp for s in specs), default=t_write),  # the commit's timestamp
            staging=staging,
            aggregate=self._state.aggregate,
            progress=bar,
            genotypes=self._state.genotypes,
            group_timestamp=t_write,
            limits=plan.mine.limits(
                samples=_fewest_samples(plan), blocks=any(i.blocks for i in plan.inputs)
            ),
        )
        try:
            if plan.replaced:
                self._remove_samples(writer, plan, staging, ctx)
            if plan.runner is None:
                parts, records = [], sum(writer.add_file(inp) for inp in plan.inputs)
            else:
                results = run_partitioned(plan.runner, specs)
                for result in results:
                    writer.absorb(result.outcome)
                parts = [r.part for r in results]
                records = sum(r.outcome.records for r in results)
            writer.finish()
        except (tiledb.TileDBError, OSError) as exc:
            # Disk full, permissions, object store errors: named, then like any failure.
            writer.close()
            with suppress(Exception):
                staging.discard(self._ctx)
            where, line = writer.position
            raise IngestError(f"writing the dataset failed: {exc}", path=where, line=line) from exc
        except BaseException:
            # Nothing was committed; remove what was staged (the next open would).
            writer.close()
            with suppress(Exception):
                staging.discard(self._ctx)
            raise
        writer.close()
        return writer, parts, records

    def _specs(self, plan: _Plan, staging: Staging, t_write: int) -> list[TaskSpec]:
        runner = plan.runner
        assert runner is not None
        # Worker processes of this machine share the budget; a remote cluster's each hold it.
        task = plan.budget.for_workers(runner.workers) if runner.shares_machine else plan.budget
        return plan_tasks(
            plan.inputs,
            workers=runner.workers,
            dataset=self.uri,
            staging=staging.root,
            config={**task.tiledb_config(), **self._config, **_thread_config(plan.threads)},
            memory_budget_mb=task.mb,
            block_reader=plan.block_reader,
            t_write=t_write,
            aggregate=self._state.aggregate,
            genotypes=self._state.genotypes,
            threads=plan.threads,
        )

    def _check_writable(self) -> None:
        """fednode writes variant_stats rows of versions 2 and 3 (the array's own)."""
        with self._lock:
            version = int(self._array(layout.VARIANT_STATS).meta.get("version", 0))
        if version not in layout.VARIANT_STATS_VERSIONS:
            raise UnsupportedFormat(
                f"{self.uri}: variant_stats version {version}; fednode ingests into datasets "
                f"of versions {' and '.join(map(str, layout.VARIANT_STATS_VERSIONS))}"
            )

    def _recover(self) -> None:
        """Finish or remove every staged ingest (one writer at a time: none is running)."""
        if recover_staged(self.uri, self._ctx, all_owners=True):
            self.close()
            with self._lock:
                self._state = self._load_state()
                self.__dict__.pop("_header_tables", None)

    def _begin(self) -> int:
        """Make the committed timestamp explicit, drop uncommitted leftovers (ingests of
        fednode before staging wrote into the arrays), pick T."""
        latest = latest_timestamp(self.uri, self._ctx)
        if self._state.committed is None:
            self._state.committed = latest
            self._write_group_state(latest)
        discard_after(self.uri, self._ctx, self._state.committed)
        return max(_now_ms(), self._state.committed + 1, latest + 1)

    def _remove_samples(
        self, writer: IngestWriter, plan: _Plan, staging: Staging, ctx: tiledb.Ctx
    ) -> None:
        """Negate the replaced samples' statistics rows, then delete their cells (at
        `plan.t_delete`, staged like the ingest's fragments)."""
        samples, t_delete = plan.replaced, plan.t_delete
        reads = {**plan.mine.tiledb_config(), **self._config}  # the settings' own win
        with self._lock:
            reader = RecordReader(self._array(layout.DATA, read_config=reads), self._headers())
            for sample in samples:
                for source in self._state.contigs:
                    writer.negate(reader.sample_cells(source, sample, lock=None))
        # variant_stats version 2 rows have no sample: the negated rows take them out
        by_sample = [layout.DATA, layout.SAMPLE_STATS, layout.HEADERS]
        if writer.vs_version >= 3:
            by_sample.append(layout.VARIANT_STATS)
        for name in by_sample:
            with tiledb.open(staging.array(name), "d", ctx=ctx, timestamp=t_delete) as arr:
                for sample in samples:
                    arr.query(cond=f"sample == '{sample}'").submit()

    def _commit(
        self,
        t_write: int,
        writer: IngestWriter,
        added: Sequence[str],
        assembly: str,
        staging: Staging,
        parts: Sequence[str] = (),
    ) -> None:
        state = self._state
        contigs = {**state.contigs, **writer.contigs}
        samples = (*state.samples, *added)
        coverage = state.coverage or writer.wrote_coverage
        new = dataclasses.replace(
            state,
            committed=t_write,
            samples=samples,
            assembly=assembly,
            contigs=contigs,
            coverage=coverage,
        )
        publish(staging, self._ctx, t_write, new.dump(), parts=parts)
        self.close()
        with self._lock:
            self._state = new
            self.__dict__.pop("_header_tables", None)

    def _write_group_state(self, committed: int) -> None:
        with tiledb.Group(self.uri, "w", ctx=self._ctx) as group:
            group.meta[COMMITTED] = committed
            group.meta[STATE] = dataclasses.replace(self._state, committed=committed).dump()


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    inputs: list[VcfInput]
    replaced: Sequence[str]
    t_delete: int
    threads: int
    runner: TaskRunner | None
    budget: MemoryBudget  # the whole ingest's
    mine: MemoryBudget  # this process's
    block_reader: bool  # `[ingest] block_reader`: few-sample files may be read by blocks


def _fewest_samples(plan: _Plan) -> int:
    """Samples per record of the input with fewest (1 when replaced samples' statistics
    are negated: one sample at a time), for `MemoryBudget.limits`."""
    fewest = min((len(inp.samples) for inp in plan.inputs), default=1)
    return min(fewest, 1) if plan.replaced else fewest


def _thread_config(threads: int) -> dict[str, str]:
    level = str(max(1, threads))
    return {"sm.compute_concurrency_level": level, "sm.io_concurrency_level": level}


def _contig_order(name: str) -> tuple[int, int, str]:
    return (0, int(name), "") if name.isdigit() else (1, 0, name)
