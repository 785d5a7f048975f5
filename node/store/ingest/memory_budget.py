"""An ingest's memory budget (`[ingest] memory_budget_mb`, `fednode ingest
--memory-budget-mb`): the most a process of the ingest may hold at its peak (RSS).

Nothing is measured while the ingest runs: the budget is turned into the thresholds at
which buffers are written out (`BufferLimits`), the depth of the write queues and the
TileDB memory settings, from what each buffered unit was measured to cost at the peak
(`bench/budget_bench.py`; tests/store/test_memory_budget.py checks the result in
a child process). What the process costs before it buffers anything (Python, numpy,
tiledb, cyvcf2, a TileDB context, thread stacks: about 70 MiB measured) is taken off
first, so a budget too small for it is refused rather than silently exceeded. The block
reader of few-sample inputs (`bcf_blocks`) costs another `BLOCK_READER_MB`: it is used only
when the budget has room for it (`block_reader`), and then taken off too.

The samples' VCF headers are not held besides the buffers: a writer writes a whole
file's samples' headers in batches of `HEADER_BATCH_BYTES` as it goes, and `finish` the
rest (region tasks' samples) once the buffers are empty (`header_batches`), so their cost
is one batch, whatever the sample count.

A partitioned ingest splits the budget (`for_workers`): the coordinating process keeps
`COORDINATOR_MB` (it waits and merges outcomes while the workers run, and writes the
region tasks' headers once they have exited) and each worker process gets an equal share
of the rest;
on a remote Dask cluster every task gets the whole budget (its worker's machine holds it).

Thresholds never exceed `IngestWriter`'s class constants (larger batches write no
faster); a budget large enough to reach them ingests as fednode did before budgets.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.errors import InvalidInput

__all__ = [
    "BLOCK_READER_MB",
    "COORDINATOR_MB",
    "DEFAULT_MB",
    "HEADER_BATCH_BYTES",
    "MIN_PROCESS_MB",
    "BufferLimits",
    "MemoryBudget",
]

MIB = 1 << 20
DEFAULT_MB = 500  # issue 18: any input and sample count within 500 MB
FLOOR_MB = 100  # fixed cost of an ingest process: 65-80 MiB measured, and allocator slack
MIN_PROCESS_MB = 200  # below it write batches get so small that fragments multiply
COORDINATOR_MB = 100  # a partitioned ingest's coordinator while its workers run
# The block reader's fixed cost (`bcf_blocks`): numba and LLVM (88 MiB of it the library's
# code, mapped from disk) and the kernels loaded from numba's cache, ~150 MiB measured.
BLOCK_READER_MB = 150
_QUEUE_DEPTH_2_MB = 1000  # from this budget one more batch may wait for the writer
# What the allocators keep of freed buffers grows with the length of an ingest (40 MiB more
# at the peak of 20,000 records of 2,504 samples than of 5,000, at 300 MB): a tenth of the
# budget is left for it.
_HEADROOM = 0.1

# Peak bytes held per unit of each threshold, measured on the 1000 Genomes 2,504 x 1,042
# file, the 2,504-sample synthetic cohort and the one-sample 1 M-record VCF (the largest,
# rounded up):
# - per byte of FLUSH_BYTES: the batch being filled, the packed genotypes (same
#   threshold), the batch in flight as chunks and as columns, and TileDB's copy while it
#   writes; above all the text columns' gather (`vs_rows.gather_text`: three 8-byte
#   arrays per byte of text at once), so records with long INFO cost most (1000 Genomes:
#   ~17 bytes per byte counted; the synthetic cohort, INFO ".": ~9);
_DATA_COST = 18
_DATA_COST_PER_WAITING = 2  # one more batch waiting for the writer (chunks only)
# - per pending statistics row: numpy chunks, the columns built on the writer thread and
#   TileDB's sort of an unordered write;
_ROW_COST = 250
# - per aggregate key: dict entry, key tuple, counts, `key_info`, the row lists (the block
#   path's rows, held as columns by `aggregate_runs`, cost far less: counted the same).
_KEY_COST = 700
# - per byte of a batch of the samples' stored VCF headers (`header_batches`: the encoded
#   texts, the joined column, TileDB's sorted copy; ~3): a batch of 4 MiB (~12 MB) is
#   written while the buffers may be full, within the headroom of the smallest budget
#   (20 MB of 200); `finish` writes larger ones once the buffers are empty.
HEADER_BATCH_BYTES = 4 * MIB
_DATA_SHARE = 0.5  # of what the fixed costs leave; the statistics get the rest
_KEY_SHARE = 0.4  # of the statistics' share: the aggregate keys held between rows flushes

_MIN_FLUSH_BYTES = 1 * MIB
_MIN_FLUSH_ROWS = 10_000
_MIN_FLUSH_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class BufferLimits:
    """Buffer thresholds of one `IngestWriter` (each capped by its class constant)."""

    flush_bytes: int  # buffered `data` cells, and packed genotypes (bytes as counted)
    flush_rows: int  # pending statistics rows
    flush_keys: int  # aggregate keys written at a rows flush once this many are held
    queue_depth: int  # write jobs in flight per writer thread


@dataclass(frozen=True, slots=True)
class MemoryBudget:
    """The peak RSS one ingest process may reach, in MiB (`of` checks it)."""

    mb: int

    @classmethod
    def of(cls, mb: int, *, workers: int = 1) -> MemoryBudget:
        """A budget for an ingest of `workers` processes (1: this one only), or an
        `InvalidInput` saying why it cannot be met."""
        budget = cls(mb)
        if mb < MIN_PROCESS_MB:
            raise InvalidInput(
                f"memory budget {mb} MB: an ingest process needs at least {MIN_PROCESS_MB} MB "
                f"(about {FLOOR_MB} MB before it buffers anything: Python, numpy, TileDB, "
                f"cyvcf2); use at least {MIN_PROCESS_MB} MB (--memory-budget-mb or [ingest] "
                f"memory_budget_mb)"
            )
        if workers > 1:
            budget.for_workers(workers)
        return budget

    def for_workers(self, workers: int) -> MemoryBudget:
        """Each worker process's share when `workers` of them run beside the coordinator."""
        share = (self.mb - COORDINATOR_MB) // max(1, workers)
        if share < MIN_PROCESS_MB:
            least = COORDINATOR_MB + workers * MIN_PROCESS_MB
            raise InvalidInput(
                f"memory budget {self.mb} MB for {workers} worker processes: each would get "
                f"{max(share, 0)} MB, below the {MIN_PROCESS_MB} MB an ingest process needs; "
                f"use at least {least} MB or fewer workers"
            )
        return MemoryBudget(share)

    def coordinator(self) -> MemoryBudget:
        """The coordinator's share while workers run (its own writer's thresholds, which
        also size the header batches it writes after them)."""
        return MemoryBudget(min(self.mb, COORDINATOR_MB))

    def block_reader(self) -> bool:
        """Whether few-sample inputs may be read by blocks: the budget has room for the
        block reader's fixed cost beside the least an ingest process needs."""
        return self.mb >= MIN_PROCESS_MB + BLOCK_READER_MB

    def limits(self, *, samples: int, blocks: bool = False) -> BufferLimits:
        """Thresholds for inputs of at least `samples` samples per record (1 when samples'
        stored statistics are negated: their rows come one sample at a time); `blocks`:
        some are read by blocks (`block_reader`), whose fixed cost is taken off first.

        Aggregate keys are written only when a rows flush finds `flush_keys` of them, so
        between two rows flushes the keys grow by up to one per row when a record has
        one sample (its site and allele keys against its 1-3 rows), by about
        2 / (samples + 1) per row in general: the rows threshold leaves room for them.
        """
        free = max(0, self._free() - (BLOCK_READER_MB * MIB if blocks else 0))
        depth = 2 if self.mb >= _QUEUE_DEPTH_2_MB else 1
        data_cost = _DATA_COST + (depth - 1) * _DATA_COST_PER_WAITING
        stats = free * (1 - _DATA_SHARE)
        keys_per_row = min(1.0, 2 / (max(samples, 0) + 1))
        return BufferLimits(
            flush_bytes=max(_MIN_FLUSH_BYTES, int(free * _DATA_SHARE / data_cost)),
            flush_rows=max(
                _MIN_FLUSH_ROWS,
                int(stats * (1 - _KEY_SHARE) / (_ROW_COST + _KEY_COST * keys_per_row)),
            ),
            flush_keys=max(_MIN_FLUSH_KEYS, int(stats * _KEY_SHARE / _KEY_COST)),
            queue_depth=depth,
        )

    def _free(self) -> int:
        """Bytes the buffers may hold: the budget less headroom and the fixed costs."""
        return max(0, int(self.mb * (1 - _HEADROOM)) - FLOOR_MB) * MIB

    def tiledb_config(self) -> dict[str, str]:
        """TileDB memory settings of the ingest's reads (the stored cells of replaced
        samples, array metadata): within a quarter of what the fixed costs leave, and never
        below what one tile of a large fragment needs. TileDB's writers hold what they are
        given, which `limits` bounds."""
        free = self._free()
        return {
            "sm.mem.total_budget": str(max(64 * MIB, free // 4)),
            # tiledb-py's first read buffer per attribute (a `data` read has 12 and offsets)
            "py.init_buffer_bytes": str(min(10 * MIB, max(1 * MIB, free // 64))),
        }
