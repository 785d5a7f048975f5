"""A partitioned ingest's tasks: the plan (`plan_tasks`) and one task (`run_task`).

A task ingests one input file, or one contig region of an indexed one (records whose POS
lies in it), into its own staging part (`dataset_state.stage_part`: a fresh folder per
attempt, so a killed attempt's files are never published) and returns the `Outcome` the
coordinator merges and commits once. Tasks run in worker processes (`--workers`) or on a
Dask cluster (`--dask`); they take plain values and return plain values (picklable).

Fragment order: TileDB-VCF reads `data` fragment after fragment in (timestamp, name)
order, and fragment names are random, so the regions of one contig are written at
increasing timestamps (region k of a contig at `timestamp + k`): a sample's export stays
sorted, as with one fragment. The ingest commits at the last of those timestamps.
Genotype groups keep the ingest's base timestamp and the input's index, as one writer
would name them.
"""

from __future__ import annotations

import itertools
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import tiledb

from node.errors import NodeError
from node.reads.index import parse_index
from node.store.dataset.dataset_state import Staging, stage_part
from node.store.ingest.ingest_writer import IngestWriter, Outcome
from node.store.ingest.memory_budget import DEFAULT_MB, MemoryBudget
from node.store.ingest.vcfio import Region, VcfInput

__all__ = ["TaskResult", "TaskSpec", "plan_tasks", "run_task"]

SPLITS_PER_WORKER = 4  # regions per worker, by compressed size: evens out uneven regions
_WHOLE = 2**32 - 1


@dataclass(frozen=True, slots=True)
class TaskSpec:
    dataset: str  # the dataset URI
    staging: str  # the ingest's staging root
    config: tuple[tuple[str, str], ...]  # TileDB configuration (an object store's too)
    path: str
    index: int  # the input's place in the ingest (its genotype group)
    region: Region | None  # None: the whole file
    timestamp: int  # of this task's fragments
    base: int  # the ingest's first write timestamp (genotype groups)
    aggregate: bool
    genotypes: bool
    threads: int = 1
    memory_budget_mb: int = DEFAULT_MB  # this task's process (`MemoryBudget.for_workers`)
    # Whole files (path, index) ingested after `path` by the same writer: many small
    # inputs (per-sample files) share a task, not pay a task's fixed cost each.
    more: tuple[tuple[str, int], ...] = ()
    block_reader: bool = True  # `[ingest] block_reader` (and the budget's room: `run_task`)

    def describe(self) -> str:
        if self.more:
            return f"{self.path} and {len(self.more)} more file(s)"
        if self.region is None:
            return self.path
        contig, start, end = self.region
        return f"{self.path} ({contig}:{start + 1}-{min(end, _WHOLE)})"


@dataclass(slots=True)
class TaskResult:
    spec: TaskSpec
    part: str  # the staging part holding its fragments
    outcome: Outcome


def plan_tasks(
    inputs: Sequence[VcfInput],
    *,
    workers: int,
    dataset: str,
    staging: str,
    config: dict[str, str],
    t_write: int,
    aggregate: bool,
    genotypes: bool,
    threads: int = 1,
    memory_budget_mb: int = DEFAULT_MB,
    block_reader: bool = True,
) -> list[TaskSpec]:
    """Tasks for `workers`: every input split by contig, and contigs into regions of about
    equal compressed size (from the index's bins), when the input is indexed and large
    enough to be cut; else the whole file is one task, and whole files beyond the plan's
    pieces share tasks (`_batch_whole_files`)."""
    spans = [_spans(inp) for inp in inputs]
    total = sum(b for per_input in spans for b, _ in per_input.values()) or 1
    pieces = max(1, workers) * SPLITS_PER_WORKER
    specs = []
    for index, (inp, per_input) in enumerate(zip(inputs, spans, strict=True)):
        regions: list[tuple[Region | None, int]] = [
            (region, order)
            for contig, (size, points) in per_input.items()
            for order, region in enumerate(_split(contig, points, round(pieces * size / total)))
        ]
        if len(regions) <= len(per_input):  # no contig split: the whole file is one task
            regions = []
        for region, order in regions or [(None, 0)]:
            specs.append(
                TaskSpec(
                    dataset,
                    staging,
                    tuple(sorted(config.items())),
                    inp.name,
                    index,
                    region,
                    t_write + order,
                    t_write,
                    aggregate,
                    genotypes,
                    threads,
                    memory_budget_mb,
                    block_reader=block_reader,
                )
            )
    return _batch_whole_files(specs, pieces)


def _batch_whole_files(specs: list[TaskSpec], pieces: int) -> list[TaskSpec]:
    """Whole-file tasks (more of them than `pieces`) in `pieces` batches of consecutive
    inputs: a task's fixed cost (a TileDB context, a staging part, a fragment per array)
    is ~0.1 s, more than a per-sample file's records cost."""
    whole = [s for s in specs if s.region is None]
    if len(whole) <= pieces:
        return specs
    size = -(-len(whole) // pieces)
    batched = [
        replace(group[0], more=tuple((s.path, s.index) for s in group[1:]))
        for group in (whole[i : i + size] for i in range(0, len(whole), size))
    ]
    return [s for s in specs if s.region is not None] + batched


_Points = list[tuple[int, int]]  # (position, compressed offset) of each leaf bin


def _spans(inp: VcfInput) -> dict[str, tuple[int, _Points]]:
    """Per contig with records: its compressed size and leaf-bin offsets; {} when the
    input cannot be split (no index, a contig name htslib would read as a region)."""
    found = inp.index_file()
    if found is None:
        return {}
    try:
        index = parse_index(found.read_bytes())
    except (OSError, NodeError, ValueError, struct.error):
        return {}
    names = index.names or inp.contig_names()
    if len(names) < len(index.refs) or any(":" in n for n in names):
        return {}
    leaf = ((1 << 3 * index.depth) - 1) // 7  # the first bin of the deepest level
    out = {}
    for name, ref in zip(names, index.refs, strict=False):
        # the meta bin's "chunks" are the reference's extent and its record counts
        chunks = [
            (b, ref.beg[k], ref.end[k])
            for i, b in enumerate(ref.bin_ids)
            if b != index.meta_bin
            for k in range(ref.first[i], ref.first[i + 1])
        ]
        if not chunks:
            continue
        first: dict[int, int] = {}
        for b, beg, _ in chunks:
            if b >= leaf:
                first[b] = min(beg, first.get(b, beg))
        points = sorted(((b - leaf) << index.min_shift, _bytes(o)) for b, o in first.items())
        size = _bytes(max(c[2] for c in chunks)) - _bytes(min(c[1] for c in chunks))
        out[name] = (max(size, 1), points)
    return out


def _bytes(voffset: int) -> int:
    """About how many uncompressed bytes precede a BGZF virtual offset: the block's file
    offset times a typical VCF compression ratio, plus the offset within the block (which
    alone tells records apart in a small file of one block)."""
    return (voffset >> 16) * 4 + (voffset & 0xFFFF)


def _split(contig: str, points: _Points, n: int) -> list[Region]:
    """`n` regions of `contig` of about equal compressed size (cut at leaf bins)."""
    cuts: list[int] = []
    if n > 1 and points:
        lo, hi = points[0][1], points[-1][1]
        for k in range(1, n):
            target = lo + (hi - lo) * k / n
            pos = next(p for p, off in points if off >= target)
            if pos > (cuts[-1] if cuts else 0):
                cuts.append(pos)
    bounds = [0, *cuts, _WHOLE]
    return [(contig, a, b) for a, b in itertools.pairwise(bounds)]


def run_task(spec: TaskSpec) -> TaskResult:
    """Ingest the task's records into a new staging part (run in a worker process)."""
    ctx = tiledb.Ctx(dict(spec.config))
    part = stage_part(Staging(spec.dataset, spec.staging), ctx, uuid.uuid4().hex)
    budget = MemoryBudget(spec.memory_budget_mb)
    blocks = spec.block_reader and budget.block_reader()
    inputs = [
        (VcfInput(Path(spec.path), threads=spec.threads, blocks=blocks), spec.index, spec.region)
    ]
    inputs += [
        (VcfInput(Path(p), threads=spec.threads, blocks=blocks), i, None) for p, i in spec.more
    ]
    samples = min(len(inp.samples) for inp, _, _ in inputs)  # fewest: most keys per row
    reads_blocks = any(inp.blocks and region is None for inp, _, region in inputs)
    writer = IngestWriter(
        spec.dataset,
        ctx,
        spec.timestamp,
        staging=part,
        aggregate=spec.aggregate,
        progress=False,
        genotypes=spec.genotypes,
        group_timestamp=spec.base,
        limits=budget.limits(samples=samples, blocks=reads_blocks),
    )
    try:
        records = sum(
            writer.add_file(inp, region=region, index=index) for inp, index, region in inputs
        )
        writer.write_fragments()
    finally:
        writer.close()
    return TaskResult(spec, part.root.rsplit("/", 1)[-1], writer.outcome(records))
