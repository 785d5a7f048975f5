"""Per-allele statistics: computed at ingest, written as row deltas, summed at lookup.

Semantics (bcftools `+fill-tags` on a `bcftools merge` of the inputs, missing = ./.):

- a sample is *called* at a site when it has a record there with at least one called
  allele, or a gVCF reference block covering the site (then it is hom-ref there);
  a sample with no record at a site is not called (bcftools merge writes ./.);
- AN counts called alleles only (`./1` adds 1), AC the copies of the ALT;
- n_hom_alt: samples whose alleles are all called and all this ALT, ploidy >= 2 (haploid
  calls are hemizygous: carriers, neither hom nor het; bcftools counts them in AC_Hemi);
- n_het: carriers with at least one other called allele (`./1` is a carrier, not het);
- n_carriers: samples with >= 1 copy; n_called: samples called at the site.

Every row is a signed delta: replacing a sample writes the negation of its old rows.

The TileDB-VCF arrays (`allele_count`, `variant_stats`, `sample_stats`) hold TileDB-VCF's
own semantics instead, row for row (`allele_count_rows`, `vs_rows`, `sample_stats_rows`).
"""

from __future__ import annotations

import functools
import itertools
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from node.domain import ZERO_STATS, normalize_contig
from node.store.dataset import layout
from node.store.dataset.write_buffers import VarChunk
from node.store.ingest.aggregate_runs import AggregateRuns
from node.store.ingest.allele_count_rows import (
    AlleleCountRows,
    Classes,
    genotype_classes,
    genotype_classes_small,
)
from node.store.ingest.calls import Calls, allele_rows
from node.store.ingest.sample_stats_rows import SampleStatsRows
from node.store.ingest.vs_rows import VariantStatsRows, normalise_stats_allele
from node.store.read.stats_lookup import Point as Point
from node.store.read.stats_lookup import point_ranges as point_ranges
from node.store.read.stats_lookup import text_of
from node.store.read.stats_lookup import variant_stats_lookup as variant_stats_lookup

if TYPE_CHECKING:
    from node.store.ingest.vcfio import ParsedRecord

__all__ = [
    "ZERO_STATS",
    "Point",
    "StatsCollector",
    "normalise_stats_allele",
    "point_ranges",
    "variant_stats_lookup",
    "variant_type_of",
]

_text = text_of  # the read path decodes TileDB text with it
_NON_VARIANT = {"<NON_REF>", "<*>", "*", "."}
_SV_TYPES = {"DEL", "INS", "DUP", "INV", "CNV", "BND"}
SMALL = 8  # records of at most this many samples take the plain-Python path
_SHAPES = 1 << 16  # `_Shape`s kept (distinct calls of a few samples)
FednodeKey = tuple[str, int, str, str]  # canonical contig, pos, ref, alt ("" = site row)
_WIDTH = len(layout.FEDNODE_COUNTS)


@functools.lru_cache(maxsize=1 << 10)
def _canonical(contig: str) -> str:
    return normalize_contig(contig)


def variant_type_of(ref: str, alt: str) -> str:
    """Beacon variantType of one ALT (names in node.names.VariantType)."""
    if alt in _NON_VARIANT:
        return "REF"
    if alt.startswith("<"):
        kind = alt[1:-1].split(":")[0]
        return kind if kind in _SV_TYPES else "SV"
    if "[" in alt or "]" in alt:
        return "BND"
    if len(ref) == len(alt):
        return "SNP" if len(ref) == 1 else "MNP"
    return "INDEL"


@dataclass
class _Columns:
    """Column buffers of one array's pending rows."""

    cols: dict[str, list[object]] = field(default_factory=lambda: defaultdict(list))

    def add(self, **values: object) -> None:
        for key, value in values.items():
            self.cols[key].append(value)

    def __len__(self) -> int:
        first = next(iter(self.cols.values()), [])
        return len(first)

    def take(self) -> dict[str, list[object]]:
        out, self.cols = dict(self.cols), defaultdict(list)
        return out


@dataclass(frozen=True, slots=True)
class _Shape:
    """What `_add_small` adds for a record of one ALT (not symbolic, not a gVCF block) at
    a position new to its samples: the same for every such record whose samples call the
    same alleles (at most a few hundred distinct calls of a few samples)."""

    local: list[int]  # each sample's called alleles, `_last_site`'s value ([]: none called)
    index: int  # the row of its counts in `StatsCollector._shape_counts` (site, then ALT)
    allele: bool  # whether it has an ALT row (a carrier)
    classes: tuple[tuple[int, str, int], ...]  # (0 REF / 1 ALT, gt class, samples)


class StatsCollector:
    """Accumulates the rows of every statistics array for one ingest (or one removal).

    `allele_count`, `variant_stats` (version `variant_stats_version`) and `sample_stats`
    rows are TileDB-VCF's (see their modules); removals (`sign` -1) write negated
    `allele_count` rows, and negated `variant_stats` rows for version 2 only (version 3
    rows of a removed sample are deleted by their `sample` dimension). The fednode
    aggregate (`keys`, `coverage`) keeps fednode's own semantics (module docstring).
    """

    def __init__(self, *, sign: int = 1, variant_stats_version: int = 3) -> None:
        self.sign = sign
        self.keys: dict[FednodeKey, list[int]] = {}  # the six FEDNODE_COUNTS, signed
        self.key_info: dict[FednodeKey, tuple[int, str, str]] = {}  # end, ids, source contig
        self._last_site: dict[
            tuple[str, ...], tuple[tuple[str, int], list[int] | np.ndarray]] = {}
        self.coverage = _Columns()
        self.variant_stats = VariantStatsRows(version=variant_stats_version, sign=sign)
        self.allele_count = AlleleCountRows(sign=sign)
        self.sample_stats = SampleStatsRows()
        self._variant_stats = sign > 0 or variant_stats_version < 3
        self._shapes: dict[tuple[object, ...], _Shape] = {}  # by a record's calls
        self._shape_counts: list[list[int]] = []  # each shape's site and ALT row counts
        self._table: np.ndarray | None = None  # `_shape_counts` as an array
        self.runs = AggregateRuns()  # the aggregate rows of the block path

    @property
    def max_length(self) -> int:
        """The longest called record seen (`variant_stats` array metadata `max_length`)."""
        return self.variant_stats.max_length

    def pending(self) -> int:
        """Rows waiting in the per-sample arrays (the aggregate is counted apart)."""
        return len(self.coverage) + len(self.variant_stats) + len(self.allele_count)

    def add(
        self,
        *,
        contig: str,
        pos: int,
        end: int,
        ref: str,
        alts: Sequence[str],
        filters: Sequence[str],
        gt: np.ndarray,
        samples: Sequence[str],
        ref_block: bool,
        ids: str = ".",
        fmt: VarChunk | None = None,
        rows: list[list[int]] | None = None,
    ) -> None:
        """One record of `samples` (rows of `gt`: allele index, -1 missing, -2 no allele;
        `fmt`: their FORMAT blobs, for sample_stats DP/GQ; `rows`, when the caller has
        them: each sample's alleles without the -2s)."""
        calls = None
        if len(gt) <= SMALL:
            if rows is None:
                rows = allele_rows(gt)
            self._add_small(contig, pos, end, ref, alts, rows, samples, ref_block, ids)
            classes = genotype_classes_small(rows, (ref, *alts))
        else:
            calls = Calls(gt)
            self._add_aggregate(calls, contig, pos, end, ref, alts, samples, ref_block, ids)
            classes = genotype_classes(gt, (ref, *alts))
        if self._variant_stats:
            self.variant_stats.add(contig, pos, end, ref, alts, gt, samples, calls, rows)
        self.allele_count.add(contig, pos, ref, alts, filters, classes)
        if self.sign > 0:
            self.sample_stats.add(samples, gt, ref, alts, fmt, calls=calls, rows=rows)

    def add_block(self, records: Sequence[ParsedRecord], samples: Sequence[str]) -> None:
        """Consecutive records of one input (one contig), as `add` of each in turn gives.

        Records of a few samples (at most SMALL) go to each builder as one block, so the
        builders can work over the block at once rather than record by record."""
        if len(samples) > SMALL:
            for r in records:
                self.add(
                    contig=r.contig,
                    pos=r.pos,
                    end=r.end,
                    ref=r.ref,
                    alts=r.alts,
                    filters=r.filters,
                    gt=r.gt,
                    samples=samples,
                    ref_block=r.is_ref_block,
                    ids=r.ids,
                    fmt=r.fmt,
                    rows=r.rows,
                )
            return
        rows = [r.rows if r.rows is not None else allele_rows(r.gt) for r in records]
        classes = self._aggregate_block(records, rows, samples)
        if self._variant_stats:
            self.variant_stats.add_block(records, rows, samples)
        self.allele_count.add_block(records, classes)
        if self.sign > 0:
            self.sample_stats.add_block(samples, records, rows)

    def _aggregate_block(
        self,
        records: Sequence[ParsedRecord],
        rows: list[list[list[int]]],
        samples: Sequence[str],
    ) -> list[Classes]:
        """The fednode aggregate's rows of a block of few-sample records, and each
        record's genotype classes (for `allele_count`): what `_add_small` and
        `genotype_classes_small` of each record in turn give.

        A record of one ALT at a position new to its samples (nearly every record of a
        one-sample VCF) adds what its calls' `_Shape` says, as columns (`runs`: no Python
        object per row); any other record goes through `_add_small`, with `_last_site`
        brought up to date around it.
        """
        group = tuple(samples)
        shapes = self._shapes
        if len(shapes) >= _SHAPES:  # few distinct calls in practice; bounded anyway
            shapes.clear()
            self._shape_counts.clear()
            self._table = None
        codes, code = self.runs.codes, self.runs.code
        state = self._last_site.get(group)  # kept here, written back around `_add_small`
        contig = canonical = ""
        out: list[Classes] = []
        runs = _BlockRuns()  # the common records' rows, added to `runs` per contig
        for r, row in zip(records, rows, strict=True):
            if r.contig != contig:
                self._add_runs(contig, canonical, runs)
                runs = _BlockRuns()
                contig, canonical = r.contig, _canonical(r.contig)
            alts, pos = r.alts, r.pos
            shape = None
            if len(alts) == 1 and alts[0] not in _NON_VARIANT:
                calls = tuple(row[0]) if len(row) == 1 else tuple(map(tuple, row))
                shape = shapes.get(calls) or self._shape(calls, row)
            if shape is None or (shape.local and state and state[0] == (canonical, pos)):
                if state is not None:
                    self._last_site[group] = state
                self._add_small(contig, pos, r.end, r.ref, alts, row, samples,
                                r.is_ref_block, r.ids)
                out.append(genotype_classes_small(row, (r.ref, *alts)))
                state = self._last_site.get(group)
                continue
            if not shape.local:  # nothing called
                out.append({})
                continue
            state = ((canonical, pos), shape.local)
            runs.site.append(shape.index)
            runs.site_pos.append(pos)
            if shape.allele:
                pair = (r.ref, alts[0])
                runs.alt.append(shape.index)
                runs.alt_pos.append(pos)
                runs.alt_pair.append(codes.get(pair) or code(pair))
                runs.alt_ids.append(codes.get(r.ids) or code(r.ids))
                runs.alt_end.append(r.end)
            found = shape.classes
            if len(found) == 1:
                index, gt, n = found[0]
                out.append({(alts[0] if index else r.ref, gt): n})
            else:
                out.append({(alts[0] if i else r.ref, gt): n for i, gt, n in found})
        self._add_runs(contig, canonical, runs)
        if state is not None:
            self._last_site[group] = state
        return out

    def _add_runs(self, contig: str, canonical: str, rows: _BlockRuns) -> None:
        """`_aggregate_block`'s rows of one contig, their counts from their shapes
        (`_shape_counts`: the site row's, then the ALT row's)."""
        if not rows.site:
            return
        runs = self.runs
        if self._table is None or len(self._table) != len(self._shape_counts):
            self._table = np.array(self._shape_counts, dtype=np.int64).reshape(-1, 2 * _WIDTH)
        table = self._table * self.sign
        name, source = runs.code(canonical), runs.code(contig)
        n = len(rows.site)
        pos = np.array(rows.site_pos, dtype=np.int64)
        runs.add(
            np.full(n, name, np.int64),
            pos,
            np.full(n, runs.site, np.int64),
            np.full(n, runs.no_id, np.int64),
            np.full(n, source, np.int64),
            pos,  # a site row ends where it starts
            table[np.array(rows.site, dtype=np.int64), :_WIDTH],
        )
        n = len(rows.alt)
        if n:
            runs.add(
                np.full(n, name, np.int64),
                np.array(rows.alt_pos, dtype=np.int64),
                np.array(rows.alt_pair, dtype=np.int64),
                np.array(rows.alt_ids, dtype=np.int64),
                np.full(n, source, np.int64),
                np.array(rows.alt_end, dtype=np.int64),
                table[np.array(rows.alt, dtype=np.int64), _WIDTH:],
            )

    def _shape(self, calls: tuple[object, ...], rows: list[list[int]]) -> _Shape | None:
        """The `_Shape` of `rows` (a record's calls, keyed `calls`), cached; None when
        the calls name an allele past the one ALT (left to `_add_small`)."""
        if any(a > 1 for row in rows for a in row):
            return None
        probe = StatsCollector()
        group = tuple(str(i) for i in range(len(rows)))
        probe._add_small("1", 0, 0, "N", ("A",), rows, group, False, ".")
        state = probe._last_site.get(group)
        classes = genotype_classes_small(rows, ("N", "A"))
        site = probe.keys.get(("1", 0, "", ""), [0] * _WIDTH)
        allele = probe.keys.get(("1", 0, "N", "A"))
        shape = _Shape(
            local=[int(v) for v in state[1]] if state is not None else [],
            index=len(self._shape_counts),
            allele=allele is not None,
            classes=tuple((int(alt == "A"), gt, n) for (alt, gt), n in classes.items()),
        )
        self._shape_counts.append([*site, *(allele or [0] * _WIDTH)])
        self._shapes[calls] = shape
        return shape

    def _add_aggregate(
        self,
        calls: Calls,
        contig: str,
        pos: int,
        end: int,
        ref: str,
        alts: Sequence[str],
        samples: Sequence[str],
        ref_block: bool,
        ids: str,
    ) -> None:
        """The fednode aggregate's rows of one record (numpy)."""
        if not calls.called.any():
            return
        canonical = normalize_contig(contig)
        called, n_called = calls.called, calls.n_called
        # Hom-ref calls of a gVCF reference block cover its whole span; any other call
        # counts at its own position only (like TileDB-VCF's "nr" rows).
        spanning = called & ~calls.non_ref if ref_block else np.zeros_like(called)
        if spanning.any():
            self._coverage(canonical, pos, end, int(n_called[spanning].sum()), int(spanning.sum()))
        local = np.where(called & ~spanning, n_called, 0)
        if local.any():
            self._site(canonical, contig, pos, samples, local)
        copies_all = calls.copies(1 + len(alts))
        complete = n_called == calls.ploidy
        diploid = calls.ploidy >= 2
        for index, alt in enumerate(alts, start=1):
            if alt in _NON_VARIANT:
                continue
            copies = copies_all[:, index]
            carriers = copies > 0
            if not carriers.any():
                continue
            hom = carriers & complete & (copies == calls.ploidy) & diploid
            het = carriers & (n_called > copies)
            counts = [int(copies.sum()), 0, int(hom.sum()), int(het.sum()), int(carriers.sum()), 0]
            self._key((canonical, pos, ref, alt), counts, (end, ids, contig))

    def _add_small(
        self,
        contig: str,
        pos: int,
        end: int,
        ref: str,
        alts: Sequence[str],
        rows: list[list[int]],
        samples: Sequence[str],
        ref_block: bool,
        ids: str,
    ) -> None:
        """`_add_aggregate` for a few samples (one-sample VCFs): plain Python, the same
        semantics (`rows`: each sample's alleles, no -2).

        numpy's per-call overhead dominates below ~10 samples; a test checks both paths
        give identical rows on random genotypes.
        """
        called = [[a for a in row if a >= 0] for row in rows]
        if not any(called):
            return
        canonical = _canonical(contig)
        spanning = [bool(c) and ref_block and max(c) == 0 for c in called]
        if any(spanning):
            an = sum(len(c) for c, sp in zip(called, spanning, strict=True) if sp)
            self._coverage(canonical, pos, end, an, sum(spanning))
        local = [0 if sp else len(c) for c, sp in zip(called, spanning, strict=True)]
        if any(local):
            self._site(canonical, contig, pos, samples, local)
        for index, alt in enumerate(alts, start=1):
            if alt not in _NON_VARIANT:
                self._small_allele(
                    canonical, pos, ref, alt, index, rows, called, (end, ids, contig)
                )

    def _small_allele(
        self,
        canonical: str,
        pos: int,
        ref: str,
        alt: str,
        index: int,
        rows: list[list[int]],
        called: list[list[int]],
        info: tuple[int, str, str],
    ) -> None:
        ac = hom = het = carriers = 0
        for row, alleles in zip(rows, called, strict=True):
            copies = alleles.count(index)
            if not copies:
                continue
            ac += copies
            carriers += 1
            hom += int(copies == len(row) >= 2)
            het += int(len(alleles) > copies)
        if carriers:
            self._key((canonical, pos, ref, alt), [ac, 0, hom, het, carriers, 0], info)

    def _site(
        self,
        canonical: str,
        contig: str,
        pos: int,
        samples: Sequence[str],
        alleles: Sequence[int] | np.ndarray,
    ) -> None:
        """Called alleles/samples at a position, each sample counted once per position.

        An input may split one site into several records (`bcftools norm -m-`); bcftools
        +fill-tags counts each sample once per record, so a second record at the same
        position adds only what the first did not.
        """
        group = tuple(samples)
        last = self._last_site.get(group)
        same = last is not None and last[0] == (canonical, pos)
        if not same and isinstance(alleles, list):  # the first record here (plain Python)
            an = sum(alleles)
            n_called = sum(1 for v in alleles if v > 0)
            seen: list[int] | np.ndarray = alleles
        elif len(alleles) <= SMALL:  # plain Python: numpy's per-call cost dominates
            now = [int(a) for a in alleles]
            before = [int(c) for c in last[1]] if last is not None and same else [0] * len(now)
            an = sum(max(v - c, 0) for v, c in zip(now, before, strict=True))
            n_called = sum(1 for v, c in zip(now, before, strict=True) if c == 0 and v > 0)
            seen = [max(v, c) for v, c in zip(now, before, strict=True)]
        else:
            values = np.asarray(alleles, dtype=np.int64)
            counted = last[1] if last is not None and same else np.zeros_like(values)
            an = int(np.maximum(values - counted, 0).sum())
            n_called = int(((counted == 0) & (values > 0)).sum())
            seen = np.maximum(values, counted)
        self._last_site[group] = ((canonical, pos), seen)
        if an or n_called:
            self._key((canonical, pos, "", ""), [0, an, 0, 0, 0, n_called], (pos, ".", contig))

    def _key(self, key: FednodeKey, counts: list[int], info: tuple[int, str, str]) -> None:
        current = self.keys.get(key)
        if current is None:
            self.keys[key] = counts if self.sign > 0 else [-c for c in counts]
            self.key_info[key] = info
            return
        sign = self.sign
        for i, c in enumerate(counts):
            current[i] += sign * c
        known = self.key_info[key]  # as the read side folds rows (`aggregate_runs`)
        ids = known[1]
        if ids != info[1]:
            ids = ";".join(sorted((set(ids.split(";")) | set(info[1].split(";"))) - {".", ""}))
        self.key_info[key] = (max(known[0], info[0]), ids or ".", known[2])

    def _coverage(self, contig: str, pos: int, end: int, an: int, n_called: int) -> None:
        anchors = range(pos, end + 1, layout.ANCHOR_GAP)
        for start in anchors:
            self.coverage.add(
                contig=contig,
                start=start,
                real_start=pos,
                end=end,
                an=an * self.sign,
                n_called=n_called * self.sign,
            )

    def aggregate_rows(self) -> int:
        """Aggregate rows held (at least the number of distinct keys)."""
        return len(self.keys) + self.runs.rows

    def fednode_rows(self) -> dict[str, object]:
        """The held aggregate rows, one per key (the record path's `keys` and the block
        path's `runs` folded together), as columns; empties both."""
        keys, runs = self.keys, self.runs
        if keys:
            code = runs.code
            info = [self.key_info[k] for k in keys]
            n = len(keys)

            def codes(values: Iterator[object]) -> np.ndarray:
                return np.fromiter(map(code, values), np.int64, n)

            runs.add(
                codes(k[0] for k in keys),
                np.fromiter((k[1] for k in keys), np.int64, n),
                codes((k[2], k[3]) for k in keys),
                codes(i[1] for i in info),
                codes(i[2] for i in info),
                np.fromiter((i[0] for i in info), np.int64, n),
                np.fromiter(  # one pass over the count lists, no array per key
                    itertools.chain.from_iterable(keys.values()), np.int64, n * _WIDTH
                ).reshape(-1, _WIDTH),
            )
            self.keys, self.key_info = {}, {}
        return runs.take()

    def take_sample_stats(self) -> dict[str, object]:
        """One `sample_stats` row per sample (see `sample_stats_rows.SampleStatsRows.take`)."""
        return self.sample_stats.take()


@dataclass(slots=True)
class _BlockRuns:
    """The aggregate rows of a block's common records on one contig (`_aggregate_block`):
    each site row's shape and position; each ALT row's shape, position, (REF, ALT) and ID
    codes and end."""

    site: list[int] = field(default_factory=list)
    site_pos: list[int] = field(default_factory=list)
    alt: list[int] = field(default_factory=list)
    alt_pos: list[int] = field(default_factory=list)
    alt_pair: list[int] = field(default_factory=list)
    alt_ids: list[int] = field(default_factory=list)
    alt_end: list[int] = field(default_factory=list)
