"""`IngestWriter`: buffers one ingest's cells and statistics rows, writes its fragments.

Every fragment is written at the ingest's timestamp into the ingest's staging copies of
the arrays (`dataset_state.Staging`; see `tiledbvcf` for the commit protocol). Cells are
held as columns a block of records at a time (`data_cells.DataCells`), so no Python object
is made per sample and record. Fragments are written by three background threads
(`WriteQueue`s: `data`, `fednode_genotypes`, the statistics arrays) while the next batch
is parsed.

`data` gets one fragment per input and contig run (TileDB-VCF's layout: a batch of samples
over all positions; inputs whose cells all stay in the buffer until they end share one),
written batch by batch through one global-order query
(`FragmentStream`). TileDB-VCF reads `data` unordered, i.e. fragment after fragment in
(timestamp, name) order; with position slices of one timestamp that order is random and
each exported sample came out unsorted. A batch holds back the cells at or after the last
record's position (that record, records at the same position, anchor copies ahead) so the
next batch continues the global order.

With `genotypes`, each record also becomes one `fednode_genotypes` cell (`GenotypeRows`),
written at the same timestamp, so it commits or vanishes with `data`.
"""

from __future__ import annotations

import functools
import gc
import struct
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import tiledb
from tqdm import tqdm

from node.domain import normalize_contig
from node.store.dataset import layout
from node.store.dataset.dataset_state import Staging, put_meta
from node.store.ingest import stats
from node.store.ingest.data_cells import DataCells, Table
from node.store.ingest.genotype_rows import GenotypeRows
from node.store.ingest.global_order import FragmentStream, sorted_columns
from node.store.ingest.header_batches import write_headers
from node.store.ingest.memory_budget import HEADER_BATCH_BYTES, BufferLimits
from node.store.ingest.sample_stats_rows import merge_sample_stats, write_sample_stats
from node.store.ingest.vcfio import ParsedRecord, Region, StoredCall, VcfInput
from node.store.ingest.vs_rows import RowBatch
from node.store.ingest.write_queue import WriteQueue

__all__ = ["IngestWriter", "Outcome"]


@dataclass(slots=True)
class Outcome:
    """What one writer (a task of a partitioned ingest) leaves for the commit: its
    fragments are in its staging part; these are the rows and metadata written once, by
    the coordinator, and what the dataset state needs."""

    records: int = 0
    contigs: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    extra_filters: dict[str, list[str]] = field(default_factory=dict)  # input -> declared
    fragment_samples: dict[str, dict[str, str]] = field(default_factory=dict)
    sample_stats: list[dict[str, object]] = field(default_factory=list)
    groups: dict[int, tuple[str, ...]] = field(default_factory=dict)
    max_length: int = 0  # fednode_allele_stats
    vs_max_length: int = 0  # variant_stats
    wrote_coverage: bool = False


class IngestWriter:
    """Buffers cells and statistics rows; writes fragments at the ingest's timestamp.

    Memory is bounded by the flush thresholds, not by the input size: `limits` (from the
    ingest's memory budget, `memory_budget.MemoryBudget.limits`) sets them for this
    writer, each at most the class constant below (larger batches write no faster).
    """

    FLUSH_BYTES = 64 << 20
    FLUSH_ROWS = 400_000
    FLUSH_KEYS = 250_000  # aggregate keys held in memory (~700 bytes each at the peak)
    # Records of a few samples go to the builders in blocks of at most this many cells
    # (samples x records): 1,024 one-sample records, 128 of 8 samples. Buffers are checked
    # against their thresholds after each block, so a block stays small beside them.
    BLOCK_CELLS = 1024

    def __init__(
        self,
        uri: str,
        ctx: tiledb.Ctx,
        timestamp: int,
        *,
        staging: Staging,
        aggregate: bool,
        progress: bool,
        genotypes: bool = False,
        group_timestamp: int | None = None,
        limits: BufferLimits | None = None,
    ) -> None:
        """`group_timestamp`: the ingest's base timestamp, which names its genotype groups
        (a partitioned ingest's tasks write at timestamps after it, see ingest_tasks).
        `limits`: the buffer thresholds of the ingest's memory budget (None: the class's)."""
        if limits is not None:
            self.FLUSH_BYTES = min(self.FLUSH_BYTES, limits.flush_bytes)
            self.FLUSH_ROWS = min(self.FLUSH_ROWS, limits.flush_rows)
            self.FLUSH_KEYS = min(self.FLUSH_KEYS, limits.flush_keys)
        depth = 2 if limits is None else limits.queue_depth
        self.uri, self.ctx, self.timestamp, self.aggregate = uri, ctx, timestamp, aggregate
        self.staging = staging  # where fragments are written (read from `uri`)
        self.packed = GenotypeRows(group_timestamp or timestamp) if genotypes else None
        self.absorbed = Outcome()  # tasks' outcomes, merged (`absorb`)
        self.extra_filters: dict[str, list[str]] = {}
        self.cells = DataCells()
        # variant_stats rows are written in the version the array was created with
        with tiledb.open(f"{uri}/{layout.VARIANT_STATS}", ctx=ctx) as arr:
            self.vs_version = int(arr.meta.get("version", layout.VARIANT_STATS_VERSION))
        self.collector = stats.StatsCollector(variant_stats_version=self.vs_version)
        self.negative = stats.StatsCollector(sign=-1, variant_stats_version=self.vs_version)
        self.contigs: dict[str, str] = {}
        self.headers: dict[str, str] = {}  # region inputs' and tasks' (written by `finish`)
        self._whole_headers: dict[str, str] = {}  # whole-file inputs', written in batches
        self._whole_bytes = 0
        self.fragment_samples: dict[str, dict[str, str]] = {
            layout.VARIANT_STATS: {},
            layout.ALLELE_COUNT: {},
        }
        self.flush_samples: set[str] = set()
        self.max_length = 0
        self.wrote_coverage = False
        self._encoded: dict[str, tuple[layout.VarChunk, np.ndarray | None]] = {}
        self._filter_blobs: dict[tuple[str, ...], bytes] = {}  # the current input's
        self._contig: bytes | None = None  # of the buffered cells (one contig at a time)
        self._last_pos = 0  # of the last record buffered
        self._batches = 0  # `data` batches handed to the writer thread so far
        self._data_stream: FragmentStream | None = None  # the open `data` fragment
        # Three writer threads: `data`, `fednode_genotypes`, the statistics arrays. Each
        # array's fragments keep their order (one thread per array), TileDB writes arrays
        # at once on two cores, and a flush of one buffer never waits for another's write
        # (with one job in flight per thread, `fednode_genotypes` behind `data` on one
        # thread held the parser up for a quarter of its time; py-spy).
        self.writes = WriteQueue(depth=depth, name="ingest-data")
        self.genotype_writes = WriteQueue(depth=depth, name="ingest-genotypes")
        self.stats_writes = WriteQueue(depth=depth, name="ingest-stats")
        self.position: tuple[str, int | None] = (uri, None)  # input and line being written
        self.bar = tqdm(desc="ingest", unit=" variants", disable=not progress, file=sys.stderr)

    def close(self) -> None:
        self._abort_writes()
        self.bar.close()

    def _abort_writes(self) -> None:
        """Stop the writer threads; no fragment is written once this returns."""
        try:
            self.writes.abort()
        finally:
            try:
                self.genotype_writes.abort()
            finally:
                self.stats_writes.abort()
                stream, self._data_stream = self._data_stream, None
                if stream is not None:
                    stream.abandon()

    def add_file(
        self, inp: VcfInput, *, region: Region | None = None, index: int | None = None
    ) -> int:
        """Buffer (and write as buffers fill) the records of `inp`, or of its `region`;
        `index`: the input's place in the ingest (its genotype group), default the next."""
        try:
            with _fewer_collections():
                return self._add_file(inp, region, index)
        except BaseException:
            self._abort_writes()  # no fragment may appear after the caller cleans up
            raise

    def _add_file(self, inp: VcfInput, region: Region | None, index: int | None) -> int:
        text = inp.header  # read from the file: inputs do not hold theirs
        self._filter_blobs = {}
        table = layout.header_id_table(text)
        ids = {name: i for i, name in enumerate(table)}
        extra: list[str] = self.extra_filters.setdefault(inp.name, [])
        count, batches = 0, self._batches
        self.flush_samples.update(inp.samples)  # the samples of the fragments written next
        group = 0
        if self.packed is not None:
            group = self.packed.group(inp.samples, index=index)
        # Records of a few samples go to the statistics in blocks (one contig each).
        n = len(inp.samples)
        size = max(1, self.BLOCK_CELLS // max(n, 1)) if n <= stats.SMALL else 1
        block: list[ParsedRecord] = []
        for record in inp.records(region):
            if block and (len(block) >= size or record.contig != block[0].contig):
                self._add_block(block, inp, ids, extra, group)
                block = []
            block.append(record)
            count += 1
        if block:
            self._add_block(block, inp, ids, extra, group)
        if self._batches != batches:
            # Part of this input was written: its fragment ends here, or its held-back
            # cells could go into a later fragment with the next input's earlier
            # positions, and TileDB-VCF (fragments in name order) export it unsorted.
            self.flush_data(hold=False, end=True)
        # Else every cell of the input is still buffered, all going into one fragment:
        # small inputs share fragments (TileDB-VCF's batches of samples), fewer and fuller.
        header = inp.sample_header(extra, text)
        # A whole file's samples are this writer's alone: their headers are written in
        # batches as they come (100,000 per-sample files may hold as many distinct 16 KB
        # headers). A region's go to `finish`, or to the coordinator with the other
        # regions' of the same samples (`outcome`).
        held = self.headers if region is not None else self._whole_headers
        for sample in inp.samples:
            held[sample] = header
        if region is None:
            self._whole_bytes += len(header) * len(inp.samples)
            if self._whole_bytes >= HEADER_BATCH_BYTES:
                self._write_whole_headers()
        return count

    def _write_whole_headers(self) -> None:
        """Write the whole-file inputs' headers held so far (a fragment per batch)."""
        held, self._whole_headers, self._whole_bytes = self._whole_headers, {}, 0
        if held:
            write_headers(lambda: self._open(layout.HEADERS), held, batch_bytes=HEADER_BATCH_BYTES)

    def _add_block(
        self,
        block: list[ParsedRecord],
        inp: VcfInput,
        ids: dict[str, int],
        extra: list[str],
        group: int,
    ) -> None:
        """Consecutive records of `inp` on one contig: their cells, statistics and packed
        genotypes, then the flushes their buffers call for."""
        last = block[-1]
        self.position = (inp.name, None if inp.is_bcf else last.line)
        if last.contig not in self.contigs:
            self.contigs[last.contig] = normalize_contig(last.contig)
        contig = last.contig.encode()
        if contig != self._contig:
            self.flush_data(hold=False)  # `data` batches never span contigs
        self._contig, self._last_pos = contig, last.pos
        # Every sample's call is stored, ./. included: records read back as in the input.
        if inp.samples:
            blobs = self._filter_blobs  # this input's: its header numbers the FILTERs
            filters = [
                blobs.get(rec.filters) or self._filter_blob(rec.filters, ids, extra)
                for rec in block
            ]
            self.cells.add(block, contig, *self._names(inp), filters)
        else:
            for rec in block:  # FILTERs the header lacks are declared all the same
                for f in rec.filters:
                    _filter_id(f, ids, extra)
        self.collector.add_block(block, inp.samples)
        if self.packed is not None:
            self.packed.add_block(block, group)
            if self.packed.bytes >= self.FLUSH_BYTES:
                self.flush_genotypes()
        if self.cells.bytes - self.cells.held >= self.FLUSH_BYTES:
            self.flush_data()
        if self.collector.pending() >= self.FLUSH_ROWS:
            self.flush_stats(self.collector, final=False)
        self.bar.update(len(block))

    def _names(self, inp: VcfInput) -> tuple[layout.VarChunk, np.ndarray | None]:
        """The input's sample names in byte order, and that order (None: already sorted)."""
        found = self._encoded.get(inp.name)
        if found is None:
            names = [s.encode() for s in inp.samples]
            order = sorted(range(len(names)), key=names.__getitem__)
            chunk = layout.VarChunk.of([names[i] for i in order])
            identity = order == list(range(len(names)))
            found = self._encoded[inp.name] = (
                chunk,
                None if identity else np.asarray(order, dtype=np.int64),
            )
        return found

    def _filter_blob(self, names: tuple[str, ...], ids: dict[str, int], extra: list[str]) -> bytes:
        """A record's filter_ids as stored (int32 count, then each FILTER's header id)."""
        numbers = [_filter_id(f, ids, extra) for f in names]
        blob = struct.pack(f"<{1 + len(numbers)}i", len(numbers), *numbers)
        self._filter_blobs[names] = blob
        return blob

    def negate(self, cells: Iterator[StoredCall]) -> None:
        try:
            for c in cells:
                self.negative.add(
                    contig=c.contig,
                    pos=c.pos,
                    end=c.end,
                    ref=c.ref,
                    alts=c.alts,
                    filters=c.filters,
                    gt=c.gt,
                    samples=[c.sample],
                    ref_block=c.is_ref_block,
                    ids=c.ids,
                )
                self.contigs[c.contig] = normalize_contig(c.contig)
                self.flush_samples.add(c.sample)  # the negated rows' fragments name them
                if self.negative.pending() >= self.FLUSH_ROWS:
                    self.flush_stats(self.negative, final=False)
        except BaseException:
            self._abort_writes()
            raise

    def _open(self, name: str) -> tiledb.Array:
        return tiledb.open(self.staging.array(name), "w", ctx=self.ctx, timestamp=self.timestamp)

    def flush_data(self, *, hold: bool = True, end: bool = False) -> None:
        """Hand the held cells to the writer thread.

        `hold`: keep the cells at or after the last record's position for the next batch
        (later records may sort before them). `end`: close the `data` fragment after.
        """
        taken = self.cells.take(hold_from=self._last_pos if hold else None)
        table, ordered = taken if taken is not None else (None, False)
        if (table is None or not len(table)) and not end:
            return
        self._batches += 1
        self.writes.submit(lambda: self._write_data(table, ordered, end))

    def flush_genotypes(self) -> None:
        taken = None if self.packed is None else self.packed.take()
        if taken is not None:
            columns, ordered = taken
            self.genotype_writes.submit(lambda: self._write_genotypes(columns, ordered))

    def _write_genotypes(self, columns: dict[str, object], ordered: bool) -> None:
        with self._open(layout.FEDNODE_GENOTYPES) as arr:
            layout.write_columns(arr, columns, ordered=ordered)

    def _write_data(self, table: Table | None, ordered: bool, end: bool) -> None:
        """Append the batch to the open `data` fragment (a new one when it cannot continue
        the fragment's global order: unsorted input, or a contig sorting before the last)."""
        if table is not None and len(table):
            first = (table.contig, int(table.anchor[0]))
            last = (table.contig, int(table.anchor[-1]))
            stream = self._data_stream
            if stream is not None and stream.last is not None and first <= stream.last:
                self._close_data_fragment()
            if self._data_stream is None:
                self._data_stream = FragmentStream(self._open(layout.DATA))
            columns = table.columns()
            if not ordered:
                columns = sorted_columns(self._data_stream.schema, columns)
            self._data_stream.submit(columns, last)
        if end:
            self._close_data_fragment()

    def _close_data_fragment(self) -> None:
        stream, self._data_stream = self._data_stream, None
        if stream is not None:
            stream.finalize()

    def flush_stats(self, collector: stats.StatsCollector, *, final: bool = True) -> None:
        """Write pending rows; the aggregate only when big or final (few fragments). The
        arrays' writes are one job: its rows are taken from the collector either way, and
        separate jobs made each wait for the one before at `submit`."""
        jobs: list[Callable[[], None]] = []
        held = collector.aggregate_rows()
        if self.aggregate and held and (final or held >= self.FLUSH_KEYS):
            rows = collector.fednode_rows()
            lengths = np.asarray(rows["end"], dtype=np.int64) - np.asarray(
                rows["pos"], dtype=np.int64
            )
            self.max_length = max(self.max_length, int(lengths.max()) + 1)
            jobs.append(self._job(layout.FEDNODE_STATS, rows))
        if self.aggregate and len(collector.coverage):
            self.wrote_coverage = True
            jobs.append(self._job(layout.FEDNODE_COVERAGE, collector.coverage.take()))
        samples = ",".join(sorted(self.flush_samples))
        if len(collector.allele_count):
            jobs.append(self._job(layout.ALLELE_COUNT, collector.allele_count.take(), samples))
        if len(collector.variant_stats):
            batch = collector.variant_stats.take(final=final)
            jobs.append(lambda: self._write_variant_stats(batch, samples))
        if jobs:
            self.stats_writes.submit(functools.partial(_run_all, jobs))

    def _write_variant_stats(self, batch: RowBatch, samples: str) -> None:
        with self._open(layout.VARIANT_STATS) as arr:
            uri = layout.write_columns(arr, batch.columns(), ordered=batch.ordered())
        if uri:
            self.fragment_samples[layout.VARIANT_STATS][self.staging.final_uri(uri)] = samples

    def _job(
        self, name: str, rows: Mapping[str, object], samples: str | None = None
    ) -> Callable[[], None]:
        def job() -> None:
            uri = self._write(name, rows)
            if uri and samples is not None:
                self.fragment_samples[name][self.staging.final_uri(uri)] = samples

        return job

    def _write(self, name: str, rows: Mapping[str, object]) -> str | None:
        with self._open(name) as arr:
            schema = arr.schema
            columns = {}
            for key, values in rows.items():
                dtype = (
                    schema.attr(key).dtype if schema.has_attr(key) else schema.domain.dim(key).dtype
                )
                if dtype.kind in "SUO" or key in ("contig", "sample"):
                    columns[key] = layout.Var.text(values)  # type: ignore[arg-type]
                else:
                    columns[key] = np.asarray(values, dtype=dtype)  # type: ignore[assignment]
            return layout.write_columns(arr, columns)

    def write_fragments(self) -> None:
        """Write everything buffered and wait for the writer threads."""
        try:
            self.flush_data(hold=False, end=True)
            self.flush_genotypes()
            self.flush_stats(self.negative)
            self.flush_stats(self.collector)
            self.writes.join()
            self.genotype_writes.join()
            self.stats_writes.join()
            self._write_whole_headers()
        except BaseException:
            self._abort_writes()
            raise

    def outcome(self, records: int) -> Outcome:
        """After `write_fragments`: what a task hands to the coordinator's `absorb`."""
        groups = dict(self.packed.groups) if self.packed is not None else {}
        return Outcome(
            records=records,
            contigs=dict(self.contigs),
            headers=dict(self.headers),
            extra_filters={k: list(v) for k, v in self.extra_filters.items()},
            fragment_samples={k: dict(v) for k, v in self.fragment_samples.items()},
            sample_stats=[self.collector.take_sample_stats()],
            groups=groups,
            max_length=self.max_length,
            vs_max_length=self.collector.max_length,
            wrote_coverage=self.wrote_coverage,
        )

    def absorb(self, outcome: Outcome) -> None:
        """Take a task's outcome into what `finish` writes and the commit records."""
        self.contigs.update(outcome.contigs)
        self.headers.update(outcome.headers)
        for name, fragments in outcome.fragment_samples.items():
            self.fragment_samples.setdefault(name, {}).update(fragments)
        self.absorbed.sample_stats.extend(outcome.sample_stats)
        if self.packed is not None:
            self.packed.groups.update(outcome.groups)
        self.max_length = max(self.max_length, outcome.max_length)
        self.absorbed.vs_max_length = max(self.absorbed.vs_max_length, outcome.vs_max_length)
        self.wrote_coverage = self.wrote_coverage or outcome.wrote_coverage

    def finish(self) -> None:
        self.write_fragments()
        self._write_sample_stats()
        # In batches of the `data` batches' size: those buffers are all written by now.
        batch = max(self.FLUSH_BYTES, HEADER_BATCH_BYTES)
        write_headers(lambda: self._open(layout.HEADERS), self.headers, batch_bytes=batch)
        self._write_metadata()

    def _write_sample_stats(self) -> None:
        rows = self.collector.take_sample_stats()
        if self.absorbed.sample_stats:  # one row per sample, as one writer writes it
            rows = merge_sample_stats([rows, *self.absorbed.sample_stats])
        if rows["sample"]:
            with self._open(layout.SAMPLE_STATS) as arr:
                write_sample_stats(arr, rows)

    def _write_metadata(self) -> None:
        if self.packed is not None and self.packed.groups:
            with self._open(layout.FEDNODE_GENOTYPES) as arr:
                for key, text in self.packed.metadata().items():
                    arr.meta[key] = text
        for name, fragments in self.fragment_samples.items():
            with self._open(name) as arr:
                for uri, samples in fragments.items():
                    put_meta(arr.meta, name, uri, samples)
        vs_max = max(self.collector.max_length, self.absorbed.vs_max_length, 0)
        for name, value in (
            (layout.VARIANT_STATS, vs_max),
            (layout.FEDNODE_STATS, self.max_length),
        ):
            if name == layout.FEDNODE_STATS and not self.aggregate:
                continue
            if name == layout.VARIANT_STATS and self.vs_version < 3:
                continue  # TileDB-VCF keeps no max_length for version 2
            with tiledb.open(f"{self.uri}/{name}", ctx=self.ctx) as current:
                old = int(current.meta.get("max_length", 0))
            with self._open(name) as arr:
                put_meta(arr.meta, name, "max_length", max(old, value))


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Python's cycle collector at most once per 50,000 allocations while records are
    read, not every 700: the buffers hold hundreds of thousands of small lists and tuples,
    and collecting them every few records cost 10-15 us of CPU per one-sample record
    (bench/ingest_stages). Nothing the ingest buffers is cyclic; refcounts free it."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], 50_000), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _run_all(jobs: list[Callable[[], None]]) -> None:
    for job in jobs:
        job()


def _filter_id(name: str, ids: dict[str, int], extra: list[str]) -> int:
    """htslib id of a FILTER; one the header lacks is declared (htslib does the same)."""
    if name not in ids:
        ids[name] = len(ids)
        extra.append(f'##FILTER=<ID={name},Description="Declared by fednode ingest">')
    return ids[name]
